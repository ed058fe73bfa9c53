/* gw_stream: the bytes of a streamed answer waiting between the router and libmicrohttpd.
 * CHUNK messages are queued as they came, and read out into MHD's buffer by the content
 * reader. One queued behind another is kept (lp_msg_keep: its bytes copied), so that a
 * client that stops reading does not make every waiting chunk hold one of libzmq's receive
 * buffers. The queue is bounded by the worker's credit window (WK_STREAM_WINDOW): the gateway
 * acknowledges bytes as MHD takes them (CREDIT), and the worker stops reading from the
 * provider while the client is behind. */
#ifndef GW_STREAM_H
#define GW_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "lp_msg.h"

/* Bytes MHD takes before the gateway sends a CREDIT for them (a quarter of the window). */
#define GW_CREDIT_STEP (64 * 1024)

typedef struct gw_chunk gw_chunk_t;

typedef struct {
    gw_chunk_t *head, *tail;
    size_t off;     /* read position in head's body */
    size_t queued;  /* bytes waiting */
    size_t unacked; /* bytes read since the last CREDIT */
    size_t total;   /* bytes read in all */
    size_t events;  /* data events relayed from the worker ([DONE] aside) */
    bool done;      /* nothing more will be queued */
} gw_stream_t;

/* Queue the body of msg (taken). */
void gw_stream_push(gw_stream_t *self, lp_msg_t **msg);
/* Queue a copy of bytes (error events built in the gateway). */
void gw_stream_push_copy(gw_stream_t *self, const void *data, size_t len);
/* Copy up to max queued bytes into buf; returns how many. */
size_t gw_stream_read(gw_stream_t *self, char *buf, size_t max);
/* Count the data events in bytes relayed from the worker: a token each, roughly, which is
 * what a stream cut before its usage arrived is billed (gw_record). */
void gw_stream_count(gw_stream_t *self, const char *bytes, size_t len);
/* Drop everything queued (the struct is embedded by its owner). */
void gw_stream_free(gw_stream_t *self);

#endif
