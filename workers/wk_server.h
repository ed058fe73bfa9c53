/* wk_server: the worker daemon. A DEALER socket to the router's backend and libcurl's multi
 * handle share one event loop: REQUESTs become provider calls through the adapter of the
 * deployment's provider, finished calls go back as END (or ERROR) with usage and timings.
 * The worker announces its capacity (READY, then every HEARTBEAT), so the router never gives
 * it more calls than it runs at once. SIGTERM drains: DISCONNECT, finish in-flight calls,
 * exit. */
#ifndef WK_SERVER_H
#define WK_SERVER_H

#include "lp_cfg.h"
#include "lp_util.h"

/* Calls one worker runs at once unless --max-calls says otherwise. */
#define WK_DEFAULT_CAPACITY 256
/* Longest a stopping worker waits for its in-flight calls. */
#define WK_DRAIN_MS 30000

typedef struct wk_server wk_server_t;

/* A worker connected to the router's backend endpoint; takes the config. NULL + err. */
wk_server_t *wk_server_new(lp_cfg_t **cfg, const char *router, int capacity, char *err);
/* Free; in-flight calls are aborted. NULL-safe, nulls the pointer. */
void wk_server_destroy(wk_server_t **self_p);
/* Run until stopped; 0 on a clean stop. */
int wk_server_run(wk_server_t *self);

#endif
