/* gw_routes: the HTTP endpoints. Each handler runs once the request body is complete and
 * either answers at once (health, models, validation errors) or forwards the request to the
 * router and leaves it suspended until the answer comes back. */
#ifndef GW_ROUTES_H
#define GW_ROUTES_H

#include <stdbool.h>

#include "gw_req.h"

/* Who may call a route. */
typedef enum {
    GW_ACCESS_PUBLIC,  /* anyone */
    GW_ACCESS_KEY,     /* any valid key (master or virtual) */
    GW_ACCESS_ADMIN,   /* the master key only */
    GW_ACCESS_METRICS, /* public, or the master key with require_auth_for_metrics_endpoint */
} gw_access_t;

struct gw_route {
    const char *method;
    const char *path;
    gw_access_t access;
    gw_call_t call; /* model call type, or GW_CALL_NONE */
    void (*handle)(gw_req_t *req);
};

/* The route for method + path (exact match), or NULL. *known_path is set when the path
 * exists with another method (405 rather than 404). */
const gw_route_t *gw_route_find(const char *method, const char *path, bool *known_path);

/* How long a read from the logger (spend logs) may take. */
#define GW_QUERY_TIMEOUT_MS 30000

/* Send req's body as a `cmd` message with meta (taken) on socket (router or logger), and
 * mark req waiting for its END/ERROR until deadline_ms; on a send failure req is answered
 * 503 instead. */
void gw_send_job(gw_req_t *req, lp_cmd_t cmd, json_t *meta, void *socket, long long deadline_ms);
/* Send a REQUEST built from req to the router and mark req waiting (the caller suspends
 * the connection). On failure req is answered with 503 instead. meta is taken. */
void gw_forward(gw_req_t *req, json_t *meta);
/* Restart a streaming request's deadline: the per-attempt timeout from now. */
void gw_arm_deadline(gw_req_t *req);
/* Give up on a request the router still has: tell the router to drop it (the worker aborts
 * the provider call) and answer the client with an error, or end its stream with an error
 * event. */
void gw_abandon(gw_req_t *req, int status, const char *code, const char *message);
/* The client hung up while its answer was pending: cancel upstream; the usage record waits
 * for the worker's last word (gw_pending). */
void gw_client_gone(gw_req_t *req);

#endif
