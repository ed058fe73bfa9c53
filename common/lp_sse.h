/* lp_sse: an incremental parser of server-sent events (html.spec.whatwg.org "server-sent
 * events"), for provider streams in the workers and the gateway's cache of streamed answers:
 * bytes arrive in any split; lines end in LF, CRLF or CR; `data:` lines of one event are
 * joined with LF; `event:` names it; lines starting with ':' are comments; a blank line
 * dispatches the event. Events are bounded in size so a peer cannot make us buffer without
 * limit. */
#ifndef LP_SSE_H
#define LP_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "lp_buf.h"
#include "lp_util.h"

/* Longest event accepted (all data lines together). */
#define LP_SSE_MAX_EVENT (4 * 1024 * 1024)

/* One event: name ("" when none) and data (NUL-terminated, LF-joined lines).
 * Return 0 to go on, -1 to stop parsing (the error is the callback's). */
typedef int(lp_sse_fn)(const char *event, const char *data, size_t len, void *arg);

typedef struct {
    lp_buf_t line;  /* current line, without its terminator */
    lp_buf_t data;  /* data of the current event */
    char event[64]; /* name of the current event */
    bool has_data;
    bool last_cr;           /* the previous byte was CR: a following LF belongs to it */
    bool started;           /* past the optional UTF-8 BOM */
    unsigned char bom_seen; /* bytes of the BOM matched so far */
    size_t events;
} lp_sse_t;

/* Feed bytes; calls fn per complete event. -1 when an event is too large or fn stopped. */
LP_MUSTCHECK int lp_sse_feed(lp_sse_t *self, const char *data, size_t len, lp_sse_fn *fn,
                             void *arg);
/* True when bytes of an unfinished event (or line) are still buffered. */
bool lp_sse_pending(const lp_sse_t *self);
/* Free the buffers (the struct itself is embedded by its owner). */
void lp_sse_free(lp_sse_t *self);

#endif
