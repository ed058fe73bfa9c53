/* rt_balance: the router's view of every deployment (calls in flight, latency, this minute's
 * requests and tokens, recent failures, cooldown) and the routing strategies that read it
 * (router_settings.routing_strategy):
 *   simple-shuffle   random, weighted by weight, else rpm, else tpm, else uniform (default)
 *   least-busy       fewest calls in flight
 *   latency-based-routing  lowest moving-average latency (time to first byte for streams),
 *                    with RT_EXPLORE of picks at random so a recovered deployment is seen
 *   usage-based-routing(-v2)  lowest tokens used this minute
 * Every strategy skips deployments cooling down or already at their rpm/tpm for this minute,
 * and prefers deployments the job has not tried yet. */
#ifndef RT_BALANCE_H
#define RT_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_cfg.h"
#include "lp_util.h"

/* Share of latency-based picks made at random (exploration). */
#define RT_EXPLORE 0.1
/* Weight of a new latency sample in the moving average. */
#define RT_LATENCY_ALPHA 0.3
/* Length of the usage and failure windows (LiteLLM counts per minute). */
#define RT_WINDOW_NS (60LL * 1000000000LL)

typedef enum { RT_SHUFFLE = 0, RT_LEAST_BUSY, RT_LATENCY, RT_USAGE } rt_strategy_t;

/* Why no deployment could be picked. */
typedef enum {
    RT_PICK_OK = 0,
    RT_PICK_NO_GROUP, /* the group has no deployment */
    RT_PICK_COOLING,  /* every deployment is cooling down */
    RT_PICK_LIMITED,  /* every deployment is at its rpm/tpm (or cooling) */
} rt_pick_t;

typedef struct rt_balance rt_balance_t;

/* State for cfg's deployments (borrowed; must outlive the balancer). seed: PRNG seed. */
rt_balance_t *rt_balance_new(const lp_cfg_t *cfg, rt_strategy_t strategy, uint64_t seed);
/* Free; NULL-safe, nulls the pointer. */
void rt_balance_destroy(rt_balance_t **self_p);
/* After a reload: take over old's state (calls in flight, latency, counters, cooldowns) for
 * every deployment both configs have (same id). Indexes of deployments a reload removed are
 * ignored by every call below. */
void rt_balance_adopt(rt_balance_t *self, const rt_balance_t *old);
/* The strategy for a routing_strategy name; false when the name is unknown. */
bool rt_strategy_parse(const char *name, rt_strategy_t *out);

/* Pick a deployment of group (index into cfg->deployments), or -1 with the reason in *why
 * and, when cooling, the time until the first deployment is back in *retry_ms. */
int rt_balance_pick(rt_balance_t *self, const char *group, const int *tried, size_t ntried,
                    int64_t now_ns, rt_pick_t *why, int64_t *retry_ms);
/* An attempt started on deployment idx. */
void rt_balance_started(rt_balance_t *self, int idx, int64_t now_ns);
/* It succeeded: tokens used, latency (total, or time to first byte for streams) in us. */
void rt_balance_succeeded(rt_balance_t *self, int idx, int64_t now_ns, long long tokens,
                          long long latency_us);
/* It failed with a client-facing status. Failures that say the deployment is unwell (429,
 * 5xx, 408, 401, 404) count towards router_settings.allowed_fails per minute; past it the
 * deployment cools down for cooldown_time. A 429 with retry-after cools it at once for that
 * long (at most cooldown_time). */
void rt_balance_failed(rt_balance_t *self, int idx, int64_t now_ns, int status,
                       long long retry_after_ms);
/* It ended without an outcome (cancelled, worker lost). */
void rt_balance_released(rt_balance_t *self, int idx);
/* Calls in flight on deployment idx (for tests and health output). */
int rt_balance_inflight(const rt_balance_t *self, int idx);
/* True while deployment idx is cooling down. */
bool rt_balance_cooling(const rt_balance_t *self, int idx, int64_t now_ns);
/* Next value of the xorshift64* generator; uniform in [0, 1). */
double rt_random(uint64_t *state);

#endif
