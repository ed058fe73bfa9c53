#include "rt_balance.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lp_time.h"

typedef struct {
    int inflight;
    double latency_us; /* moving average; valid when has_latency */
    bool has_latency;
    int64_t window; /* minute number of the counters below */
    long long requests;
    long long tokens;
    int64_t fail_window; /* minute number of fails */
    int fails;
    int64_t cooldown_until_ns;
} s_state_t;

struct rt_balance {
    const lp_cfg_t *cfg;
    rt_strategy_t strategy;
    s_state_t *st;
    uint64_t rng;
    /* Scratch space for a pick, one slot per deployment (allocated once). */
    int *fresh, *usable;
    double *key;
};

double rt_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

bool rt_strategy_parse(const char *name, rt_strategy_t *out)
{
    static const struct {
        const char *name;
        rt_strategy_t s;
    } names[] = {
        {"simple-shuffle", RT_SHUFFLE},        {"least-busy", RT_LEAST_BUSY},
        {"latency-based-routing", RT_LATENCY}, {"usage-based-routing", RT_USAGE},
        {"usage-based-routing-v2", RT_USAGE},
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].s;
            return true;
        }
    }
    return false;
}

rt_balance_t *rt_balance_new(const lp_cfg_t *cfg, rt_strategy_t strategy, uint64_t seed)
{
    rt_balance_t *self = lp_calloc(1, sizeof *self);
    self->cfg = cfg;
    self->strategy = strategy;
    size_t n = cfg->ndeployments ? cfg->ndeployments : 1;
    self->st = lp_calloc(n, sizeof *self->st);
    self->fresh = lp_calloc(n, sizeof *self->fresh);
    self->usable = lp_calloc(n, sizeof *self->usable);
    self->key = lp_calloc(n, sizeof *self->key);
    self->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
    return self;
}

void rt_balance_destroy(rt_balance_t **self_p)
{
    rt_balance_t *self = *self_p;
    if (!self)
        return;
    free(self->st);
    free(self->fresh);
    free(self->usable);
    free(self->key);
    free(self);
    *self_p = NULL;
}

/* Roll the per-minute counters forward. */
static s_state_t *s_state(rt_balance_t *self, int idx, int64_t now_ns)
{
    s_state_t *s = &self->st[idx];
    int64_t window = now_ns / RT_WINDOW_NS;
    if (s->window != window) {
        s->window = window;
        s->requests = 0;
        s->tokens = 0;
    }
    return s;
}

static bool s_tried(const int *tried, size_t n, int idx)
{
    for (size_t i = 0; i < n; i++) {
        if (tried[i] == idx)
            return true;
    }
    return false;
}

typedef enum { W_WEIGHT, W_RPM, W_TPM, W_UNIFORM } s_basis_t;

static double s_weight(const lp_deployment_t *d, s_basis_t basis)
{
    switch (basis) {
    case W_WEIGHT:
        return d->weight;
    case W_RPM:
        return (double)d->rpm;
    case W_TPM:
        return (double)d->tpm;
    default:
        return 1;
    }
}

/* Weighted random pick among the candidates (LiteLLM's simple-shuffle). */
static int s_shuffle(rt_balance_t *self, const int *cand, size_t n)
{
    bool has[3] = {false, false, false};
    for (size_t i = 0; i < n; i++) {
        const lp_deployment_t *d = &self->cfg->deployments[cand[i]];
        has[W_WEIGHT] |= d->weight > 0;
        has[W_RPM] |= d->rpm > 0;
        has[W_TPM] |= d->tpm > 0;
    }
    s_basis_t basis = has[W_WEIGHT] ? W_WEIGHT
                      : has[W_RPM]  ? W_RPM
                      : has[W_TPM]  ? W_TPM
                                    : W_UNIFORM;
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += s_weight(&self->cfg->deployments[cand[i]], basis);
    double r = rt_random(&self->rng) * total;
    int last = -1;
    for (size_t i = 0; i < n; i++) {
        double w = s_weight(&self->cfg->deployments[cand[i]], basis);
        if (w <= 0)
            continue;
        last = cand[i];
        if (r < w)
            return cand[i];
        r -= w;
    }
    /* Only zero weights (a group where no deployment has one of them): uniform. */
    return last >= 0 ? last : cand[(size_t)(rt_random(&self->rng) * (double)n)];
}

/* The candidate with the smallest key; ties broken at random so equals share the load. */
static int s_min(rt_balance_t *self, const int *cand, size_t n, const double *key)
{
    double best = 0;
    int pick = -1;
    size_t ties = 0;
    for (size_t i = 0; i < n; i++) {
        if (pick < 0 || key[i] < best) {
            best = key[i];
            pick = cand[i];
            ties = 1;
        } else if (key[i] == best && rt_random(&self->rng) * (double)++ties < 1.0) {
            pick = cand[i]; /* reservoir sampling among equals */
        }
    }
    return pick;
}

static int s_choose(rt_balance_t *self, const int *cand, size_t n, int64_t now_ns)
{
    double *key = self->key;
    switch (self->strategy) {
    case RT_LEAST_BUSY:
        for (size_t i = 0; i < n; i++)
            key[i] = self->st[cand[i]].inflight;
        return s_min(self, cand, n, key);
    case RT_LATENCY:
        if (rt_random(&self->rng) < RT_EXPLORE)
            return cand[(size_t)(rt_random(&self->rng) * (double)n)];
        /* Never measured: try it first (its latency is unknown, assume the best). */
        for (size_t i = 0; i < n; i++)
            key[i] = self->st[cand[i]].has_latency ? self->st[cand[i]].latency_us : -1;
        return s_min(self, cand, n, key);
    case RT_USAGE:
        for (size_t i = 0; i < n; i++)
            key[i] = (double)s_state(self, cand[i], now_ns)->tokens;
        return s_min(self, cand, n, key);
    default:
        return s_shuffle(self, cand, n);
    }
}

/* Keep only the candidates of the best `order` tier (1 first; deployments without an order
 * come after every ordered one), as LiteLLM's order does. */
static size_t s_best_tier(const lp_cfg_t *cfg, int *cand, size_t n)
{
    int best = INT_MAX;
    for (size_t i = 0; i < n; i++) {
        int o = cfg->deployments[cand[i]].order;
        best = LP_MIN(best, o > 0 ? o : INT_MAX);
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        int o = cfg->deployments[cand[i]].order;
        if ((o > 0 ? o : INT_MAX) == best)
            cand[kept++] = cand[i];
    }
    return kept;
}

int rt_balance_pick(rt_balance_t *self, const char *group, const int *tried, size_t ntried,
                    int64_t now_ns, rt_pick_t *why, int64_t *retry_ms)
{
    const lp_cfg_t *cfg = self->cfg;
    int *fresh = self->fresh, *usable = self->usable;
    size_t nfresh = 0, nusable = 0, ngroup = 0, ncooling = 0;
    int64_t soonest = 0;
    for (size_t i = 0; i < cfg->ndeployments; i++) {
        const lp_deployment_t *d = &cfg->deployments[i];
        if (strcmp(d->model_name, group) != 0)
            continue;
        ngroup++;
        s_state_t *s = s_state(self, (int)i, now_ns);
        if (s->cooldown_until_ns > now_ns) {
            int64_t left = s->cooldown_until_ns - now_ns;
            if (!ncooling++ || left < soonest)
                soonest = left;
            continue;
        }
        if ((d->rpm > 0 && s->requests >= d->rpm) || (d->tpm > 0 && s->tokens >= d->tpm))
            continue;
        usable[nusable++] = (int)i;
        if (!s_tried(tried, ntried, (int)i))
            fresh[nfresh++] = (int)i;
    }
    if (nfresh)
        return s_choose(self, fresh, s_best_tier(cfg, fresh, nfresh), now_ns);
    if (nusable)
        return s_choose(self, usable, s_best_tier(cfg, usable, nusable), now_ns);
    *why = ngroup == 0 ? RT_PICK_NO_GROUP : ncooling == ngroup ? RT_PICK_COOLING : RT_PICK_LIMITED;
    *retry_ms = ncooling ? (soonest + LP_NS_PER_MS - 1) / LP_NS_PER_MS : 0;
    if (*why == RT_PICK_LIMITED)
        *retry_ms = (RT_WINDOW_NS - now_ns % RT_WINDOW_NS) / LP_NS_PER_MS;
    return -1;
}

/* A deployment removed by a reload has no state any more. */
static bool s_valid(const rt_balance_t *self, int idx)
{
    return idx >= 0 && (size_t)idx < self->cfg->ndeployments;
}

void rt_balance_adopt(rt_balance_t *self, const rt_balance_t *old)
{
    for (size_t i = 0; i < self->cfg->ndeployments; i++) {
        const lp_deployment_t *d = lp_cfg_deployment(old->cfg, self->cfg->deployments[i].id);
        if (d)
            self->st[i] = old->st[d - old->cfg->deployments];
    }
    self->rng = old->rng;
}

void rt_balance_started(rt_balance_t *self, int idx, int64_t now_ns)
{
    if (!s_valid(self, idx))
        return;
    s_state_t *s = s_state(self, idx, now_ns);
    s->inflight++;
    s->requests++;
}

void rt_balance_released(rt_balance_t *self, int idx)
{
    if (s_valid(self, idx) && self->st[idx].inflight > 0)
        self->st[idx].inflight--;
}

void rt_balance_succeeded(rt_balance_t *self, int idx, int64_t now_ns, long long tokens,
                          long long latency_us)
{
    rt_balance_released(self, idx);
    if (!s_valid(self, idx))
        return;
    s_state_t *s = s_state(self, idx, now_ns);
    s->tokens += tokens > 0 ? tokens : 0;
    if (latency_us >= 0) {
        s->latency_us = s->has_latency ? RT_LATENCY_ALPHA * (double)latency_us +
                                             (1 - RT_LATENCY_ALPHA) * s->latency_us
                                       : (double)latency_us;
        s->has_latency = true;
    }
}

/* Statuses that say the deployment, not the request, is the problem. */
static bool s_counts_as_failure(int status)
{
    return status == 429 || status >= 500 || status == 408 || status == 401 || status == 404;
}

void rt_balance_failed(rt_balance_t *self, int idx, int64_t now_ns, int status,
                       long long retry_after_ms)
{
    rt_balance_released(self, idx);
    if (!s_valid(self, idx) || !s_counts_as_failure(status))
        return;
    s_state_t *s = &self->st[idx];
    int64_t cooldown_ns = (int64_t)(self->cfg->cooldown_time_s * 1e9);
    if (status == 429 && retry_after_ms > 0) {
        int64_t ns = LP_MIN(retry_after_ms * LP_NS_PER_MS, cooldown_ns);
        s->cooldown_until_ns = LP_MAX(s->cooldown_until_ns, now_ns + ns);
    }
    int64_t window = now_ns / RT_WINDOW_NS;
    if (s->fail_window != window) {
        s->fail_window = window;
        s->fails = 0;
    }
    if (++s->fails > self->cfg->allowed_fails) {
        s->cooldown_until_ns = LP_MAX(s->cooldown_until_ns, now_ns + cooldown_ns);
        s->fails = 0;
    }
}

int rt_balance_inflight(const rt_balance_t *self, int idx)
{
    return s_valid(self, idx) ? self->st[idx].inflight : 0;
}

bool rt_balance_cooling(const rt_balance_t *self, int idx, int64_t now_ns)
{
    return s_valid(self, idx) && self->st[idx].cooldown_until_ns > now_ns;
}
