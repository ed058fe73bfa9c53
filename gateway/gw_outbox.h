/* gw_outbox: usage records sent to a logger and not yet acknowledged. The records of one
 * loop turn go out together, one RECORD whose body holds them one after the other (gw_outbox_flush
 * at the end of the turn, before the loop sleeps). A record stays here until a logger ACKs it
 * (loggers ACK only once the record is in their synced spool), and is sent again when no ACK came
 * within GW_RESEND_MS: to whichever logger is connected, since the DEALER link spreads records over
 * all of them. A record may thus arrive twice; the logger's insert is idempotent on request_id. The
 * outbox is bounded (GW_OUTBOX_MAX): past it, new records are dropped, counted and reported (the
 * loggers have been away a long time). */
#ifndef GW_OUTBOX_H
#define GW_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "lp_loop.h"

/* Records held at most while no logger acknowledges. */
#define GW_OUTBOX_MAX 100000
/* A record not acknowledged within this is sent again. */
#define GW_RESEND_MS 3000
/* How often the outbox looks for records to send again. */
#define GW_OUTBOX_TICK_MS 500

typedef struct gw_outbox gw_outbox_t;

typedef struct {
    uint64_t sent;    /* records handed over for the first time */
    uint64_t resent;  /* sends after a missing ACK */
    uint64_t acked;   /* records a logger acknowledged */
    uint64_t dropped; /* records refused because the outbox was full */
} gw_outbox_stats_t;

/* An outbox sending on socket (a DEALER to the loggers). */
gw_outbox_t *gw_outbox_new(lp_loop_t *loop, void *socket);
/* Free, forgetting what was not acknowledged (logged by the caller). */
void gw_outbox_destroy(gw_outbox_t **self_p);
/* Keep the record `id` (taken: a MessagePack map, lp_meta_encode) and add it to this turn's
 * batch. */
void gw_outbox_send(gw_outbox_t *self, const uint8_t *id, char *record, size_t len);
/* Hand this turn's batch to ZeroMQ. */
void gw_outbox_flush(gw_outbox_t *self);
/* A logger's ACK body: request ids (16 bytes each) now durable. */
void gw_outbox_ack(gw_outbox_t *self, const void *ids, size_t len);
/* Records not yet acknowledged. */
size_t gw_outbox_size(const gw_outbox_t *self);
const gw_outbox_stats_t *gw_outbox_stats(const gw_outbox_t *self);

#endif
