#include "wk_sse.h"

#include <string.h>

/* Process one complete line. */
static int s_line(wk_sse_t *self, wk_sse_fn *fn, void *arg)
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
        if (self->data.len + vlen + 1 > WK_SSE_MAX_EVENT)
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

int wk_sse_feed(wk_sse_t *self, const char *data, size_t len, wk_sse_fn *fn, void *arg)
{
    size_t i = 0;
    if (!self->started && len > 0) {
        static const char bom[] = "\xEF\xBB\xBF";
        if (len >= 3 && memcmp(data, bom, 3) == 0)
            i = 3;
        self->started = true;
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
        if (self->line.len + (j - i) > WK_SSE_MAX_EVENT)
            return -1;
        lp_buf_append(&self->line, data + i, j - i);
        i = j;
    }
    return 0;
}

bool wk_sse_pending(const wk_sse_t *self)
{
    return self->line.len > 0 || self->has_data;
}

void wk_sse_free(wk_sse_t *self)
{
    lp_buf_free(&self->line);
    lp_buf_free(&self->data);
}
