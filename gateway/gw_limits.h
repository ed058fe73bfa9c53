/* gw_limits: what a virtual key may spend, per minute and in total. A key's rpm_limit,
 * tpm_limit, max_parallel_requests, model_rpm_limit/model_tpm_limit ({group: n}) and
 * max_budget are counters that a request reserves before it goes upstream and settles when
 * its usage record is complete:
 *   requests  +1 in the current minute (key and key+model)
 *   tokens    + estimated prompt tokens + max_tokens (or GW_RESERVE_TOKENS), settled to the
 *             real total_tokens
 *   parallel  the request's id, until it ends (or its deadline, should a gateway die)
 *   spend     + the estimated cost, settled to the real cost; starts from the database's
 *             spend of the key in the current budget period
 * A request is admitted while every counter is below its limit; the check and the
 * reservation are one step (a Lua script in Redis, or the same logic in process), so
 * concurrent requests and several gateways sharing one Redis cannot overshoot a limit by
 * more than the last admitted request. Without REDIS_URL the counters live in this process.
 * When Redis is unreachable, the gateway counts in process and warns once per outage; with
 * general_settings.limits_fail_closed it refuses limited keys with 503 instead. */
#ifndef GW_LIMITS_H
#define GW_LIMITS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "gw_req.h"

/* Completion tokens reserved when a request does not say max_tokens. */
#define GW_RESERVE_TOKENS 256

typedef struct gw_limits gw_limits_t;

/* Limits for srv, counting in srv->redis when there is one, else in process. */
gw_limits_t *gw_limits_new(gw_server_t *srv);
void gw_limits_destroy(gw_limits_t **self_p);
/* Redis (re)connected: load the scripts. */
void gw_limits_redis_up(gw_limits_t *self);

/* Reserve req's share of its key's limits: tokens and cost are the estimates, ttl_ms how
 * long the request may live. Calls admit(req) once it may go on; otherwise answers req (429
 * over a rate limit, 400 over budget, 503 when limits cannot be checked and fail closed).
 * Returns false while req waits for Redis (state GW_REQ_HELD, resumed after). */
bool gw_limits_acquire(gw_limits_t *self, gw_req_t *req, long long tokens, double cost,
                       long long ttl_ms, void (*admit)(gw_req_t *req));
/* req is going away: a Redis answer still due for it is ignored (its reservation is
 * released when it comes). */
void gw_limits_forget(gw_limits_t *self, gw_req_t *req);
/* The request id's usage is final: turn its reservation into the real tokens and cost. */
void gw_limits_settle(gw_limits_t *self, const uint8_t *id, long long tokens, double cost);
/* Forget what is counted of a key's spend (its spend or budget was changed by an admin). */
void gw_limits_reset_spend(gw_limits_t *self, const char *token);

#endif
