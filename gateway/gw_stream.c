#include "gw_stream.h"

#include <stdlib.h>
#include <string.h>

struct gw_chunk {
    gw_chunk_t *next;
    lp_msg_t *msg;
};

/* Queue msg; own: its bytes are its own already (not received). */
static void s_push(gw_stream_t *self, lp_msg_t **msg, bool own)
{
    size_t len = 0;
    lp_msg_body(*msg, &len);
    if (len == 0) {
        lp_msg_destroy(msg);
        return;
    }
    /* A received chunk queued behind another may wait long (a client that stopped reading):
     * it must not hold libzmq's 8 KiB receive buffer, or a window of small events would
     * hold ~40 times its bytes. */
    if (self->head && !own)
        lp_msg_keep(*msg);
    gw_chunk_t *c = lp_calloc(1, sizeof *c);
    c->msg = *msg;
    *msg = NULL;
    if (self->tail)
        self->tail->next = c;
    else
        self->head = c;
    self->tail = c;
    self->queued += len;
}

void gw_stream_push(gw_stream_t *self, lp_msg_t **msg)
{
    s_push(self, msg, false);
}

void gw_stream_push_copy(gw_stream_t *self, const void *data, size_t len)
{
    lp_msg_t *m = lp_msg_new(LP_CMD_CHUNK, NULL);
    lp_msg_set_body(m, data, len);
    s_push(self, &m, true);
}

size_t gw_stream_read(gw_stream_t *self, char *buf, size_t max)
{
    size_t n = 0;
    while (n < max && self->head) {
        size_t len = 0;
        const char *body = lp_msg_body(self->head->msg, &len);
        size_t take = LP_MIN(max - n, len - self->off);
        memcpy(buf + n, body + self->off, take);
        n += take;
        self->off += take;
        if (self->off == len) {
            gw_chunk_t *c = self->head;
            self->head = c->next;
            if (!self->head)
                self->tail = NULL;
            lp_msg_destroy(&c->msg);
            free(c);
            self->off = 0;
        }
    }
    self->queued -= n;
    self->unacked += n;
    self->total += n;
    return n;
}

void gw_stream_count(gw_stream_t *self, const char *bytes, size_t len)
{
    static const char tag[] = "data: ", done[] = "data: [DONE]";
    const char *p = bytes, *end = bytes + len;
    while ((p = memmem(p, (size_t)(end - p), tag, sizeof tag - 1)) != NULL) {
        if ((p == bytes || p[-1] == '\n') &&
            !((size_t)(end - p) >= sizeof done - 1 && memcmp(p, done, sizeof done - 1) == 0))
            self->events++;
        p += sizeof tag - 1;
    }
}

void gw_stream_free(gw_stream_t *self)
{
    while (self->head) {
        gw_chunk_t *c = self->head;
        self->head = c->next;
        lp_msg_destroy(&c->msg);
        free(c);
    }
    self->tail = NULL;
    self->queued = self->off = 0;
}
