/* gw_conn: the gateway's client connections, as libmicrohttpd's connection notifications
 * report them. It counts them (past --max-connections a new one is marked, and its requests
 * are answered 503 and closed) and enforces the deadlines libmicrohttpd's inactivity timeout
 * cannot, since any byte resets that timer:
 *
 * - a request's headers must be complete within GW_CONNECTION_TIMEOUT_S of the connection
 *   becoming ready (opened, or done with its previous request), so headers trickled a byte
 *   at a time do not hold a connection for ever;
 * - a body must arrive at GW_BODY_MIN_RATE bytes/s on average once GW_BODY_GRACE_S have
 *   passed since its headers.
 *
 * A connection past its deadline is shut down (shutdown(2) on its socket); libmicrohttpd
 * sees the client leave and closes it the usual way. */
#ifndef GW_CONN_H
#define GW_CONN_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_server.h"

#define GW_BODY_GRACE_S  10
#define GW_BODY_MIN_RATE 1024

typedef struct gw_conn gw_conn_t;

/* MHD_NotifyConnectionCallback; cls is the gw_server_t. */
void gw_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                    enum MHD_ConnectionNotificationCode toe);
/* The record of conn (NULL only if libmicrohttpd did not report it). */
gw_conn_t *gw_conn_of(struct MHD_Connection *conn);
/* True when the connection came past --max-connections. */
bool gw_conn_over_cap(const gw_conn_t *self);
/* A request's headers are in: its body may follow. */
void gw_conn_headers(gw_conn_t *self);
/* n bytes of the body came. */
void gw_conn_body(gw_conn_t *self, size_t n);
/* The body is complete: the request is being served (no deadline while it is). */
void gw_conn_serving(gw_conn_t *self);
/* The request is finished: the connection waits for the next one's headers. */
void gw_conn_ready(gw_conn_t *self);
/* Shut down connections past a deadline (the server calls it about once a second). */
void gw_conn_sweep(gw_server_t *srv, int64_t now_ns);

#endif
