#include "lp_sse.h"

#include <string.h>

/* Process one complete line. */
static int s_line(lp_sse_t *self, lp_sse_fn *fn, void *arg)
{
    const char *l = self->line.data ? self->line.data : "";
    size_t n = self->line.len;
    if (n == 0) {
        /* Blank line: dispatch. */
        int rc = 0;
        if (self->has_data) {
            self->events++;
            rc = fn(self->event, self->data.data ? self->data.data : "", self->data.len, arg);
        }
        lp_buf_reset(&self->data);
        self->has_data = false;
        self->event[0] = '\0';
        return rc;
    }
    if (l[0] == ':')
        return 0;
    const char *colon = memchr(l, ':', n);
    size_t flen = colon ? (size_t)(colon - l) : n;
    const char *value = colon ? colon + 1 : l + n;
    if (colon && *value == ' ')
        value++;
    size_t vlen = (size_t)(l + n - value);
    if (flen == 4 && memcmp(l, "data", 4) == 0) {
        if (self->data.len + vlen + 1 > LP_SSE_MAX_EVENT)
            return -1;
        if (self->has_data)
            lp_buf_append(&self->data, "\n", 1);
        lp_buf_append(&self->data, value, vlen);
        self->has_data = true;
    } else if (flen == 5 && memcmp(l, "event", 5) == 0) {
        size_t m = LP_MIN(vlen, sizeof self->event - 1);
        memcpy(self->event, value, m);
        self->event[m] = '\0';
    }
    /* id, retry and unknown fields are ignored. */
    return 0;
}

int lp_sse_feed(lp_sse_t *self, const char *data, size_t len, lp_sse_fn *fn, void *arg)
{
    size_t i = 0;
    /* An optional UTF-8 BOM opens the stream; it may arrive split too. */
    static const char bom[] = "\xEF\xBB\xBF";
    while (!self->started && i < len) {
        if (data[i] == bom[self->bom_seen]) {
            i++;
            self->started = ++self->bom_seen == 3;
            continue;
        }
        self->started = true; /* not a BOM: the bytes taken for one are text */
        lp_buf_append(&self->line, bom, self->bom_seen);
    }
    while (i < len) {
        char c = data[i];
        if (c == '\n' && self->last_cr) {
            self->last_cr = false;
            i++;
            continue;
        }
        self->last_cr = false;
        if (c == '\r' || c == '\n') {
            self->last_cr = c == '\r';
            if (s_line(self, fn, arg) < 0)
                return -1;
            lp_buf_reset(&self->line);
            i++;
            continue;
        }
        /* Copy the run of ordinary bytes at once. */
        size_t j = i;
        while (j < len && data[j] != '\r' && data[j] != '\n')
            j++;
        if (self->line.len + (j - i) > LP_SSE_MAX_EVENT)
            return -1;
        lp_buf_append(&self->line, data + i, j - i);
        i = j;
    }
    return 0;
}

bool lp_sse_pending(const lp_sse_t *self)
{
    return self->line.len > 0 || self->has_data;
}

void lp_sse_free(lp_sse_t *self)
{
    lp_buf_free(&self->line);
    lp_buf_free(&self->data);
}
