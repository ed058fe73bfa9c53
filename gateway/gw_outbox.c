#define LP_LOG_MODULE "gw_outbox"
#include "gw_outbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "lp_buf.h"
#include "lp_log.h"
#include "lp_map.h"
#include "lp_msg.h"
#include "lp_time.h"

/* Records sent again per tick at most, so a returning logger is not flooded at once. */
#define GW_RESEND_BATCH 5000
/* A batch this big goes out at once instead of at the end of the turn. */
#define GW_BATCH_BYTES (256 * 1024)

typedef struct s_entry {
    struct s_entry *prev, *next; /* oldest send first */
    uint8_t id[LP_REQ_ID_LEN];
    char *record; /* MessagePack map */
    size_t len;
    int64_t sent_ns;
} s_entry_t;

struct gw_outbox {
    lp_loop_t *loop;
    void *socket;
    lp_map_t *entries; /* id -> s_entry_t */
    s_entry_t *head, *tail;
    lp_timer_t tick;
    lp_buf_t batch; /* records of this turn, one after the other, not yet handed to ZeroMQ */
    gw_outbox_stats_t stats;
};

static void s_unlink(gw_outbox_t *self, s_entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        self->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        self->tail = e->prev;
    e->prev = e->next = NULL;
}

static void s_append(gw_outbox_t *self, s_entry_t *e)
{
    e->prev = self->tail;
    e->next = NULL;
    if (self->tail)
        self->tail->next = e;
    else
        self->head = e;
    self->tail = e;
}

/* Send the records gathered since the last flush as one RECORD; false when no logger can
 * take it now (they stay in the outbox and go again after GW_RESEND_MS). */
static bool s_flush(gw_outbox_t *self)
{
    if (!self->batch.len)
        return true;
    lp_msg_t *m = lp_msg_new(LP_CMD_RECORD, NULL);
    size_t len = 0;
    char *records = lp_buf_steal(&self->batch, &len);
    lp_msg_give_body(m, records, len);
    if (lp_msg_send(&m, self->socket) == 0)
        return true;
    lp_msg_destroy(&m);
    return false;
}

/* Add one record to the batch going out at the end of the turn (or now, when it is big). */
static bool s_push(gw_outbox_t *self, s_entry_t *e)
{
    e->sent_ns = lp_mono_ns();
    lp_buf_append(&self->batch, e->record, e->len);
    return self->batch.len < GW_BATCH_BYTES || s_flush(self);
}

static int s_on_tick(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    gw_outbox_t *self = arg;
    int64_t cutoff = lp_mono_ns() - (int64_t)GW_RESEND_MS * LP_NS_PER_MS;
    for (int i = 0; i < GW_RESEND_BATCH && self->head && self->head->sent_ns < cutoff; i++) {
        s_entry_t *e = self->head;
        s_unlink(self, e);
        s_append(self, e);
        /* The first goes alone: with no logger connected the tick stops there. */
        if (!s_push(self, e) || (i == 0 && !s_flush(self)))
            break; /* no logger connected: try again next tick */
        self->stats.resent++;
    }
    s_flush(self);
    lp_timer_start(loop, timer, GW_OUTBOX_TICK_MS, s_on_tick, self);
    return 0;
}

gw_outbox_t *gw_outbox_new(lp_loop_t *loop, void *socket)
{
    gw_outbox_t *self = lp_calloc(1, sizeof *self);
    self->loop = loop;
    self->socket = socket;
    self->entries = lp_map_new();
    lp_timer_start(loop, &self->tick, GW_OUTBOX_TICK_MS, s_on_tick, self);
    return self;
}

void gw_outbox_destroy(gw_outbox_t **self_p)
{
    gw_outbox_t *self = *self_p;
    if (!self)
        return;
    lp_timer_stop(self->loop, &self->tick);
    while (self->head) {
        s_entry_t *e = self->head;
        s_unlink(self, e);
        free(e->record);
        free(e);
    }
    lp_map_destroy(&self->entries);
    lp_buf_free(&self->batch);
    free(self);
    *self_p = NULL;
}

void gw_outbox_send(gw_outbox_t *self, const uint8_t *id, char *record, size_t len)
{
    if (lp_map_size(self->entries) >= GW_OUTBOX_MAX ||
        lp_map_get(self->entries, id, LP_REQ_ID_LEN)) {
        free(record);
        if (self->stats.dropped++ % 1000 == 0)
            log_error("usage record dropped: %d records wait for a logger's acknowledgement; "
                      "%llu dropped so far",
                      GW_OUTBOX_MAX, (unsigned long long)self->stats.dropped);
        return;
    }
    s_entry_t *e = lp_calloc(1, sizeof *e);
    memcpy(e->id, id, LP_REQ_ID_LEN);
    e->record = record;
    e->len = len;
    lp_map_put(self->entries, e->id, LP_REQ_ID_LEN, e);
    s_append(self, e);
    self->stats.sent++;
    if (!s_push(self, e))
        log_debug("no logger connected: records kept for later (%zu waiting)",
                  lp_map_size(self->entries));
}

void gw_outbox_flush(gw_outbox_t *self)
{
    if (!s_flush(self))
        log_debug("no logger connected: records kept for later (%zu waiting)",
                  lp_map_size(self->entries));
}

void gw_outbox_ack(gw_outbox_t *self, const void *ids, size_t len)
{
    const uint8_t *p = ids;
    for (size_t off = 0; off + LP_REQ_ID_LEN <= len; off += LP_REQ_ID_LEN) {
        s_entry_t *e = lp_map_remove(self->entries, p + off, LP_REQ_ID_LEN);
        if (!e)
            continue; /* acknowledged twice (it was sent twice) */
        s_unlink(self, e);
        free(e->record);
        free(e);
        self->stats.acked++;
    }
}

size_t gw_outbox_size(const gw_outbox_t *self)
{
    return lp_map_size(self->entries);
}

const gw_outbox_stats_t *gw_outbox_stats(const gw_outbox_t *self)
{
    return &self->stats;
}
