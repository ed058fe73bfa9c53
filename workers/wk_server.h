/* wk_server: the worker daemon. A DEALER socket to the router's backend and libcurl's multi
 * handle share one event loop: REQUESTs become provider calls through the adapter of the
 * deployment's provider, finished calls go back as END (or ERROR) with usage and timings.
 * The worker announces its capacity (READY, then every HEARTBEAT), so the router never gives
 * it more calls than it runs at once. SIGTERM drains: DISCONNECT, finish in-flight calls,
 * exit. */
#ifndef WK_SERVER_H
#define WK_SERVER_H

#include "lp_cfg.h"
#include "lp_loop.h"
#include "lp_msg.h"
#include "lp_util.h"
#include "wk_http.h"
#include "wk_job.h"
#include "lp_price.h"

/* Calls one worker runs at once unless --max-calls says otherwise. */
#define WK_DEFAULT_CAPACITY 256
/* Longest a stopping worker waits for its in-flight calls. */
#define WK_DRAIN_MS 30000

typedef struct wk_server wk_server_t;

/* A worker connected to the router's backend endpoint; takes the config and the price
 * table. NULL + err. */
wk_server_t *wk_server_new(lp_cfg_t **cfg, lp_prices_t **prices, const char *router, int capacity,
                           char *err);
/* Free; in-flight calls are aborted. NULL-safe, nulls the pointer. */
void wk_server_destroy(wk_server_t **self_p);
/* Run until stopped; 0 on a clean stop. */
int wk_server_run(wk_server_t *self, const char *config_path);

/* ---- services for wk_call (the job module), not for other callers ---- */

/* Send a message to the router (logged and dropped when the link is full). */
void wk_server_send(wk_server_t *self, lp_msg_t **msg, const char *idstr);
/* Register / forget a running job (keyed by its request id). */
void wk_server_track(wk_server_t *self, wk_job_t *job);
void wk_server_untrack(wk_server_t *self, wk_job_t *job);
lp_loop_t *wk_server_loop(wk_server_t *self);
wk_http_t *wk_server_http(wk_server_t *self);
lp_cfg_t *wk_server_cfg(const wk_server_t *self);
const char *wk_server_name(const wk_server_t *self);
lp_prices_t *wk_server_prices(wk_server_t *self);

#endif
