/* fuzz_spool: the logger's disk spool read back after damage (Z-8). The input is the spool
 * file as found at start-up; it is opened (a half-written last line cut), read in batches
 * and every line decoded into a "LiteLLM_SpendLogs" row, as the writer does. Invariants:
 * the cut leaves the file empty or ending in a newline; the lines read are exactly the
 * file's lines; a decoded row has its request_id; no byte sequence crashes or stalls. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "lg_db.h"
#include "lg_spool.h"

static char s_path[64];

static void s_remove(void)
{
    unlink(s_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_setup();
    snprintf(s_path, sizeof s_path, "/tmp/fuzz_spool.%d", (int)getpid());
    atexit(s_remove);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = open(s_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FZ_CHECK(fd >= 0, "cannot write %s", s_path);
    FZ_CHECK(write(fd, data, size) == (ssize_t)size, "short write");
    close(fd);
    char err[LP_ERR_LEN];
    lg_spool_t *spool = lg_spool_open(s_path, LG_SPOOL_MAX, err);
    FZ_CHECK(spool != NULL, "spool open: %s", err);
    size_t whole = 0, kept = 0;
    for (size_t i = 0; i < size; i++)
        if (data[i] == '\n') {
            whole++;
            kept = i + 1;
        }
    struct stat st;
    FZ_CHECK(stat(s_path, &st) == 0 && (size_t)st.st_size == kept,
             "the cut left %lld bytes, not %zu", (long long)st.st_size, kept);
    size_t lines = 0;
    while (lg_spool_pending(spool)) {
        lp_buf_t buf = {0};
        off_t end = 0;
        size_t n = lg_spool_read(spool, 7, &buf, &end);
        FZ_CHECK(n > 0, "pending but nothing read");
        size_t off = 0, len = 0, seen = 0;
        const char *line;
        while ((line = lg_spool_line(&buf, &off, &len)) != NULL) {
            seen++;
            lg_row_t *row = lg_row_decode(line, len, err);
            FZ_CHECK(!row || lg_row_value(row, 0), "a row without its request_id");
            lg_row_destroy(&row);
        }
        FZ_CHECK(seen == n, "%zu lines in a batch said to hold %zu", seen, n);
        lines += n;
        lg_spool_commit(spool, end);
        lp_buf_free(&buf);
    }
    FZ_CHECK(lines == whole, "read %zu lines of %zu", lines, whole);
    lg_spool_destroy(&spool);
    return 0;
}
