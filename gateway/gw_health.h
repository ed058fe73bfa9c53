/* gw_health: GET /health, as LiteLLM answers it. One cheap call per deployment (max_tokens
 * 1 for chat, a one-word input for embeddings), each pinned to its deployment through the
 * router and run by the workers like any call, all at once; the answer lists healthy and
 * unhealthy endpoints (model, api_base, and for the unhealthy ones the error), never a key.
 * `?model=<group>` checks one group. */
#ifndef GW_HEALTH_H
#define GW_HEALTH_H

#include <stdbool.h>

#include "gw_req.h"

/* How long one health check may take (LiteLLM's health_check_timeout default is 60 s). */
#define GW_HEALTH_TIMEOUT_MS 60000

typedef struct gw_health gw_health_t;

/* The /health handler: sends the checks and leaves req waiting (or answers at once when
 * there is nothing to check or the router is unreachable). */
void gw_health_start(gw_req_t *req);
/* A router message for a health check: true when it was one (the message is consumed). */
bool gw_health_reply(gw_server_t *srv, lp_msg_t **msg);
/* Forget req's checks (its request is being freed); late answers are then dropped. */
void gw_health_destroy(gw_health_t **self_p);

#endif
