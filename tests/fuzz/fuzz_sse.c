/* fuzz_sse: lp_sse_feed, the incremental server-sent-events parser every provider stream goes
 * through. Its contract is that bytes may arrive in any split: the input is parsed once whole
 * and once in pseudo-random pieces (1 byte up to all of it), and both runs must produce the
 * same events and leave the same bytes pending. Events are also checked one by one (name
 * bounded and terminated, data NUL-terminated). */
#include <string.h>

#include "fuzz.h"
#include "lp_buf.h"
#include "lp_sse.h"

/* Every event as name NUL length data, so two runs compare with memcmp. */
static int s_record(const char *event, const char *data, size_t len, void *arg)
{
    lp_buf_t *log = arg;
    FZ_CHECK(event != NULL && data != NULL, "NULL event or data");
    size_t elen = strnlen(event, 64);
    FZ_CHECK(elen < 64, "event name not terminated within 64 bytes");
    FZ_CHECK(data[len] == '\0', "data not NUL-terminated");
    lp_buf_append(log, event, elen + 1);
    lp_buf_append(log, &len, sizeof len);
    lp_buf_append(log, data, len);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lp_buf_t whole_log = {0}, split_log = {0};
    lp_sse_t whole = {0}, split = {0};
    int rc = lp_sse_feed(&whole, (const char *)data, size, s_record, &whole_log);
    FZ_CHECK(rc == 0, "lp_sse_feed failed on %zu bytes", size);

    fz_rng_t rng;
    fz_rng_seed(&rng, data, size);
    size_t pieces = 0;
    for (size_t off = 0; off < size; pieces++) {
        size_t n = fz_rng_piece(&rng, size - off);
        rc = lp_sse_feed(&split, (const char *)data + off, n, s_record, &split_log);
        FZ_CHECK(rc == 0, "lp_sse_feed failed on a piece");
        off += n;
    }
    FZ_CHECK(whole.events == split.events, "%zu events whole, %zu in %zu pieces", whole.events,
             split.events, pieces);
    FZ_CHECK(whole_log.len == split_log.len &&
                 (whole_log.len == 0 || memcmp(whole_log.data, split_log.data, whole_log.len) == 0),
             "events differ when the same %zu bytes come in %zu pieces", size, pieces);
    FZ_CHECK(lp_sse_pending(&whole) == lp_sse_pending(&split), "pending state differs");
    lp_sse_free(&whole);
    lp_sse_free(&split);
    lp_buf_free(&whole_log);
    lp_buf_free(&split_log);
    return 0;
}
