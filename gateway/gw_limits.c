#define LP_LOG_MODULE "gw_limits"
#include "gw_limits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_json.h"
#include "lp_log.h"
#include "lp_map.h"
#include "lp_redis.h"
#include "lp_time.h"

/* Counters one request can touch: key rpm, tpm, parallel, spend, and model rpm, tpm. */
#define S_MAX_COUNTERS 6
/* Seconds a minute counter outlives its minute; seconds a spend counter lives unused. */
#define S_WINDOW_TTL_S 120
#define S_SPEND_TTL_S  3600
/* Every so often the in-process counters that expired are dropped. */
#define S_PURGE_MS 60000

/* Check every counter, then reserve on all of them, atomically. Per counter: ARGV kind
 * (r requests, t tokens, p parallel, s spend), limit, amount, ttl seconds, floor, period.
 * Parallel counters are sorted sets of request ids scored by when they expire, so a gateway
 * that dies mid-request cannot leak a slot. Replies {1, values after...} or {0, index,
 * value}. Numbers travel as strings (Lua would truncate them to integers). */
static const char s_acquire_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"
    "local vals = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  local b = 1 + (i - 1) * 6\n"
    "  local kind, limit = ARGV[b + 1], tonumber(ARGV[b + 2])\n"
    "  local v\n"
    "  if kind == 'p' then\n"
    "    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)\n"
    "    v = redis.call('ZCARD', k)\n"
    "  elseif kind == 's' then\n"
    "    v = 0\n"
    "    if redis.call('HGET', k, 'p') == ARGV[b + 6] then\n"
    "      v = tonumber(redis.call('HGET', k, 'v')) or 0\n"
    "    end\n"
    "    local floor = tonumber(ARGV[b + 5])\n"
    "    if v < floor then v = floor end\n"
    "  else\n"
    "    v = tonumber(redis.call('GET', k)) or 0\n"
    "  end\n"
    "  if v >= limit then return {0, i, tostring(v)} end\n"
    "  vals[i] = v\n"
    "end\n"
    "for i, k in ipairs(KEYS) do\n"
    "  local b = 1 + (i - 1) * 6\n"
    "  local kind, ttl = ARGV[b + 1], tonumber(ARGV[b + 4])\n"
    "  local v = vals[i] + tonumber(ARGV[b + 3])\n"
    "  if kind == 'p' then\n"
    "    redis.call('ZADD', k, now + ttl, ARGV[1])\n"
    "  elseif kind == 's' then\n"
    "    redis.call('HSET', k, 'p', ARGV[b + 6], 'v', tostring(v))\n"
    "  else\n"
    "    redis.call('SET', k, tostring(v))\n"
    "  end\n"
    "  redis.call('EXPIRE', k, ttl)\n"
    "  vals[i] = tostring(v)\n"
    "end\n"
    "return {1, unpack(vals)}\n";

/* Turn reservations into real usage. Per counter: ARGV kind, delta, period. A counter that
 * expired meanwhile is left alone (its window is over). */
static const char s_settle_lua[] =
    "for i, k in ipairs(KEYS) do\n"
    "  local b = 1 + (i - 1) * 3\n"
    "  local kind, d = ARGV[b + 1], tonumber(ARGV[b + 2])\n"
    "  if kind == 'p' then\n"
    "    redis.call('ZREM', k, ARGV[1])\n"
    "  elseif kind == 's' then\n"
    "    if d ~= 0 and redis.call('HGET', k, 'p') == ARGV[b + 3] then\n"
    "      local v = (tonumber(redis.call('HGET', k, 'v')) or 0) + d\n"
    "      if v < 0 then v = 0 end\n"
    "      redis.call('HSET', k, 'v', tostring(v))\n"
    "    end\n"
    "  elseif d ~= 0 then\n"
    "    local cur = redis.call('GET', k)\n"
    "    if cur then\n"
    "      local v = tonumber(cur) + d\n"
    "      if v < 0 then v = 0 end\n"
    "      redis.call('SET', k, tostring(v), 'KEEPTTL')\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return 1\n";

typedef enum { S_REQUESTS = 'r', S_TOKENS = 't', S_PARALLEL = 'p', S_SPEND = 's' } s_kind_t;

typedef struct {
    s_kind_t kind;
    bool per_model;
    char name[160]; /* Redis key, and the in-process counter's name */
    double limit, amount, floor;
    long long ttl_s;
    char period[40]; /* spend: the budget period (budget_reset_at) */
    double value;    /* after the reservation */
} s_counter_t;

typedef struct {
    gw_limits_t *owner;
    uint8_t id[LP_REQ_ID_LEN];
    char idstr[LP_REQ_ID_STR_LEN];
    gw_req_t *req; /* NULL once the request is gone */
    void (*admit)(gw_req_t *req);
    s_counter_t c[S_MAX_COUNTERS];
    size_t n;
    bool waiting;  /* a Redis answer is due */
    bool reserved; /* the counters hold this request's share */
    bool in_redis; /* ... in Redis (else in process) */
} s_res_t;

typedef struct {
    double value;
    char period[40];
    int64_t expires_ns;
} s_local_t;

struct gw_limits {
    gw_server_t *srv;
    lp_redis_t *redis; /* the server's, or NULL */
    char acquire_sha[48], settle_sha[48];
    lp_map_t *reservations; /* request id -> s_res_t */
    lp_map_t *local;        /* counter name -> s_local_t */
    lp_timer_t purge;
};

/* ---- Redis connection ---- */

static void s_on_script(void *arg, const redisReply *reply, const char *why)
{
    LP_UNUSED(why);
    char *sha = arg;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len < 48)
        lp_strlcpy(sha, reply->str, 48);
}

/* Scripts are loaded once per connection; until the SHA is known, EVAL sends the text. */
static void s_load_scripts(gw_limits_t *self)
{
    const char *load[2][3] = {{"SCRIPT", "LOAD", s_acquire_lua}, {"SCRIPT", "LOAD", s_settle_lua}};
    char *sha[2] = {self->acquire_sha, self->settle_sha};
    for (int i = 0; i < 2; i++) {
        sha[i][0] = '\0';
        if (lp_redis_command(self->redis, s_on_script, sha[i], 3, load[i], NULL) < 0)
            return;
    }
}

void gw_limits_redis_up(gw_limits_t *self)
{
    s_load_scripts(self);
}

static int s_on_purge(lp_loop_t *loop, lp_timer_t *timer, void *arg);

gw_limits_t *gw_limits_new(gw_server_t *srv)
{
    gw_limits_t *self = lp_calloc(1, sizeof *self);
    self->srv = srv;
    self->redis = srv->redis;
    self->reservations = lp_map_new();
    self->local = lp_map_new();
    lp_timer_start(srv->loop, &self->purge, S_PURGE_MS, s_on_purge, self);
    return self;
}

static void s_free_each(void *v, void *a)
{
    LP_UNUSED(a);
    free(v);
}

void gw_limits_destroy(gw_limits_t **self_p)
{
    gw_limits_t *self = *self_p;
    if (!self)
        return;
    lp_timer_stop(self->srv->loop, &self->purge);
    lp_map_remove_if(self->reservations, NULL, NULL, s_free_each);
    lp_map_destroy(&self->reservations);
    lp_map_remove_if(self->local, NULL, NULL, s_free_each);
    lp_map_destroy(&self->local);
    free(self);
    *self_p = NULL;
}

/* ---- in-process counters: the same logic as the scripts ---- */

static double s_local_value(gw_limits_t *self, const s_counter_t *c, int64_t now)
{
    s_local_t *e = lp_map_get(self->local, c->name, strlen(c->name));
    double v = e && e->expires_ns > now ? e->value : 0;
    if (c->kind == S_SPEND) {
        if (!e || strcmp(e->period, c->period) != 0)
            v = 0;
        v = LP_MAX(v, c->floor);
    }
    return v;
}

static void s_local_set(gw_limits_t *self, const s_counter_t *c, double v, int64_t now)
{
    s_local_t *e = lp_map_get(self->local, c->name, strlen(c->name));
    if (!e) {
        e = lp_calloc(1, sizeof *e);
        lp_map_put(self->local, c->name, strlen(c->name), e);
    }
    e->value = v;
    lp_strlcpy(e->period, c->period, sizeof e->period);
    e->expires_ns = now + c->ttl_s * LP_NS_PER_S;
}

/* 0 when reserved, else the 1-based index of the counter at its limit (value in *at). */
static size_t s_local_acquire(gw_limits_t *self, s_res_t *r, double *at)
{
    int64_t now = lp_mono_ns();
    double v[S_MAX_COUNTERS];
    for (size_t i = 0; i < r->n; i++) {
        v[i] = s_local_value(self, &r->c[i], now);
        if (v[i] >= r->c[i].limit) {
            *at = v[i];
            return i + 1;
        }
    }
    for (size_t i = 0; i < r->n; i++) {
        r->c[i].value = v[i] + r->c[i].amount;
        s_local_set(self, &r->c[i], r->c[i].value, now);
    }
    return 0;
}

static void s_local_settle(gw_limits_t *self, s_res_t *r, const double *delta)
{
    int64_t now = lp_mono_ns();
    for (size_t i = 0; i < r->n; i++) {
        s_local_t *e = lp_map_get(self->local, r->c[i].name, strlen(r->c[i].name));
        if (!e || e->expires_ns <= now || strcmp(e->period, r->c[i].period) != 0)
            continue;
        e->value = LP_MAX(e->value + delta[i], 0);
    }
}

static bool s_expired(void *v, void *a)
{
    return ((s_local_t *)v)->expires_ns <= *(const int64_t *)a;
}

static int s_on_purge(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    gw_limits_t *self = arg;
    int64_t now = lp_mono_ns();
    lp_map_remove_if(self->local, s_expired, &now, s_free_each);
    lp_timer_start(loop, timer, S_PURGE_MS, s_on_purge, self);
    return 0;
}

/* ---- building a request's counters ---- */

static double s_limit(const json_t *row, const char *field)
{
    const json_t *v = json_object_get(row, field);
    return json_is_number(v) ? json_number_value(v) : -1;
}

/* A per-model limit: the column, or LiteLLM's place for it (metadata). */
static double s_model_limit(const json_t *row, const char *field, const char *group)
{
    const json_t *map = json_object_get(row, field);
    if (!json_is_object(map))
        map = json_object_get(json_object_get(row, "metadata"), field);
    return s_limit(map, group);
}

static void s_add(s_res_t *r, s_kind_t kind, double limit, double amount, long long ttl_s,
                  const char *fmt, ...) LP_PRINTF(6, 7);

static void s_add(s_res_t *r, s_kind_t kind, double limit, double amount, long long ttl_s,
                  const char *fmt, ...)
{
    if (limit < 0 || r->n >= S_MAX_COUNTERS)
        return;
    s_counter_t *c = &r->c[r->n++];
    c->kind = kind;
    c->limit = limit;
    c->amount = amount;
    c->ttl_s = ttl_s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
}

/* The counters req's key asks for (none for the master key or an unlimited key). Names put
 * the key's hash in braces (one Redis Cluster slot per key). */
static void s_counters(s_res_t *r, const gw_req_t *req, long long tokens, double cost,
                       long long ttl_ms)
{
    const json_t *row = req->key;
    const char *tok = req->key_hash, *group = req->group;
    long long minute = (long long)(lp_wall_ns() / LP_NS_PER_S / 60);
    s_add(r, S_REQUESTS, s_limit(row, "rpm_limit"), 1, S_WINDOW_TTL_S, "lp:{%s}:rpm:%lld", tok,
          minute);
    s_add(r, S_TOKENS, s_limit(row, "tpm_limit"), (double)tokens, S_WINDOW_TTL_S,
          "lp:{%s}:tpm:%lld", tok, minute);
    s_add(r, S_PARALLEL, s_limit(row, "max_parallel_requests"), 1, ttl_ms / 1000 + 5,
          "lp:{%s}:parallel", tok);
    size_t before = r->n;
    s_add(r, S_SPEND, s_limit(row, "max_budget"), cost, S_SPEND_TTL_S, "lp:{%s}:spend", tok);
    if (r->n > before) {
        s_counter_t *c = &r->c[before];
        c->floor = lp_json_num(row, "spend", 0);
        const char *period = lp_json_str(row, "budget_reset_at");
        lp_strlcpy(c->period, period ? period : "-", sizeof c->period);
    }
    before = r->n;
    s_add(r, S_REQUESTS, s_model_limit(row, "model_rpm_limit", group), 1, S_WINDOW_TTL_S,
          "lp:{%s}:rpm:%lld:%s", tok, minute, group);
    s_add(r, S_TOKENS, s_model_limit(row, "model_tpm_limit", group), (double)tokens, S_WINDOW_TTL_S,
          "lp:{%s}:tpm:%lld:%s", tok, minute, group);
    for (size_t i = before; i < r->n; i++)
        r->c[i].per_model = true;
}

/* ---- deciding ---- */

static void s_forget_res(gw_limits_t *self, s_res_t *r)
{
    lp_map_remove(self->reservations, r->id, LP_REQ_ID_LEN);
    free(r);
}

/* The first counter of kind (the key's own before a per-model one). */
static const s_counter_t *s_find(const s_res_t *r, s_kind_t kind)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->c[i].kind == kind)
            return &r->c[i];
    }
    return NULL;
}

/* The x-ratelimit-* headers' values. */
static void s_headers(const s_res_t *r, gw_req_t *req)
{
    const s_counter_t *rq = s_find(r, S_REQUESTS), *tk = s_find(r, S_TOKENS);
    if (rq) {
        req->rl_limit_requests = (long long)rq->limit;
        req->rl_remaining_requests = (long long)LP_MAX(rq->limit - rq->value, 0);
    }
    if (tk) {
        req->rl_limit_tokens = (long long)tk->limit;
        req->rl_remaining_tokens = (long long)LP_MAX(tk->limit - tk->value, 0);
    }
}

static void s_refuse(s_res_t *r, size_t index, double at)
{
    gw_req_t *req = r->req;
    s_counter_t *c = &r->c[index - 1];
    c->value = at;
    for (size_t i = 0; i < r->n; i++) {
        if (&r->c[i] != c)
            r->c[i].value = r->c[i].kind == S_SPEND ? r->c[i].floor : 0;
    }
    s_headers(r, req);
    if (c->kind == S_REQUESTS)
        req->rl_remaining_requests = 0;
    if (c->kind == S_TOKENS)
        req->rl_remaining_tokens = 0;
    if (c->kind == S_SPEND) {
        gw_req_fail(req, 400, "budget_exceeded", NULL,
                    "Budget has been exceeded! Current cost: %.6f, Max budget: %.6f", at, c->limit);
        return;
    }
    int64_t wall_s = lp_wall_ns() / LP_NS_PER_S;
    req->retry_after_s = c->kind == S_PARALLEL ? 1 : (int)(60 - wall_s % 60);
    static const struct {
        s_kind_t kind;
        const char *what, *field;
    } names[] = {{S_REQUESTS, "requests per minute", "rpm_limit"},
                 {S_TOKENS, "tokens per minute", "tpm_limit"},
                 {S_PARALLEL, "parallel requests", "max_parallel_requests"}};
    const char *what = "", *field = "";
    for (size_t i = 0; i < LP_ARRAY_LEN(names); i++) {
        if (names[i].kind == c->kind) {
            what = names[i].what;
            field = names[i].field;
        }
    }
    gw_req_fail(req, 429, "rate_limit_exceeded", NULL,
                "Rate limit exceeded for this key: %s%s%s (%s%s %.0f, in use %.0f). Retry after "
                "%d s.",
                what, c->per_model ? " on model " : "", c->per_model ? req->group : "",
                c->per_model ? "model_" : "", field, c->limit, at, req->retry_after_s);
}

/* The counters answered (index 0 = reserved). req is answered or sent on its way. */
static void s_decide(gw_limits_t *self, s_res_t *r, size_t index, double at)
{
    gw_req_t *req = r->req;
    req->limits_wait = NULL;
    if (index > 0) {
        s_refuse(r, index, at);
        s_forget_res(self, r);
        return;
    }
    r->reserved = true;
    s_headers(r, req);
    r->admit(req);
}

/* Redis cannot answer: count in process, or refuse when the operator wants limits exact. */
static void s_fallback(gw_limits_t *self, s_res_t *r)
{
    if (self->srv->stopping || self->srv->cfg->limits_fail_closed) {
        r->req->limits_wait = NULL;
        gw_req_fail(r->req, 503, "limits_unavailable", NULL,
                    self->srv->stopping
                        ? "the proxy is shutting down"
                        : "rate limits cannot be checked now (Redis is not reachable); "
                          "try again shortly");
        s_forget_res(self, r);
        return;
    }
    double at = 0;
    r->in_redis = false;
    s_decide(self, r, s_local_acquire(self, r, &at), at);
}

static const char *s_kind_name(s_kind_t kind)
{
    switch (kind) {
    case S_REQUESTS:
        return "r";
    case S_TOKENS:
        return "t";
    case S_PARALLEL:
        return "p";
    default:
        return "s";
    }
}

/* Arguments of a script call: EVALSHA sha|EVAL text, the keys, then ARGV. */
typedef struct {
    const char *argv[3 + S_MAX_COUNTERS * 7 + 1];
    char num[S_MAX_COUNTERS * 6][32];
    int argc, nnum;
} s_args_t;

/* A number as Redis reads it ("%.17g" prints whole numbers without a fraction). */
static const char *s_num(s_args_t *a, double v)
{
    char *s = a->num[a->nnum++];
    snprintf(s, sizeof a->num[0], "%.17g", v);
    return s;
}

static void s_script(s_args_t *a, const char *sha, const char *text, const s_res_t *r)
{
    a->argc = a->nnum = 0;
    a->argv[a->argc++] = sha[0] ? "EVALSHA" : "EVAL";
    a->argv[a->argc++] = sha[0] ? sha : text;
    a->argv[a->argc++] = s_num(a, (double)r->n);
    for (size_t i = 0; i < r->n; i++)
        a->argv[a->argc++] = r->c[i].name;
    a->argv[a->argc++] = r->idstr;
}

static void s_on_acquired(void *arg, const redisReply *reply, const char *why)
{
    s_res_t *r = arg;
    gw_limits_t *self = r->owner;
    r->waiting = false;
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
              reply->element[0]->type == REDIS_REPLY_INTEGER;
    if (!ok && reply && reply->type == REDIS_REPLY_ERROR && !strncmp(reply->str, "NOSCRIPT", 8))
        s_load_scripts(self);
    if (!ok && reply)
        log_warn("redis rate-limit script failed: %.200s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    if (!ok && !reply && why && strcmp(why, "closing") != 0)
        log_debug("redis rate-limit check lost: %s", why);
    if (!r->req) {
        /* The request went while Redis was answering: give back what was reserved. */
        if (ok && reply->element[0]->integer == 1) {
            r->reserved = true;
            r->in_redis = true;
            gw_limits_settle(self, r->id, 0, 0);
        } else {
            s_forget_res(self, r);
        }
        return;
    }
    gw_req_t *req = r->req;
    if (!ok) {
        s_fallback(self, r);
    } else if (reply->element[0]->integer == 1 && reply->elements == 1 + r->n) {
        for (size_t i = 0; i < r->n; i++)
            r->c[i].value = atof(reply->element[1 + i]->str ? reply->element[1 + i]->str : "0");
        s_decide(self, r, 0, 0);
    } else if (reply->elements == 3 && reply->element[1]->type == REDIS_REPLY_INTEGER) {
        long long index = reply->element[1]->integer;
        double at = reply->element[2]->str ? atof(reply->element[2]->str) : 0;
        s_decide(self, r, index >= 1 && (size_t)index <= r->n ? (size_t)index : 1, at);
    } else {
        s_fallback(self, r);
    }
    gw_req_resume(req);
}

bool gw_limits_acquire(gw_limits_t *self, gw_req_t *req, long long tokens, double cost,
                       long long ttl_ms, void (*admit)(gw_req_t *req))
{
    s_res_t probe = {0};
    s_counters(&probe, req, tokens, cost, ttl_ms);
    if (probe.n == 0) {
        admit(req); /* master key, or a key without limits: nothing to count */
        return true;
    }
    s_res_t *r = lp_calloc(1, sizeof *r);
    *r = probe;
    r->owner = self;
    r->req = req;
    r->admit = admit;
    memcpy(r->id, req->id, LP_REQ_ID_LEN);
    memcpy(r->idstr, req->idstr, sizeof r->idstr);
    lp_map_put(self->reservations, r->id, LP_REQ_ID_LEN, r);
    if (self->redis) {
        s_args_t a;
        s_script(&a, self->acquire_sha, s_acquire_lua, r);
        for (size_t i = 0; i < r->n; i++) {
            const s_counter_t *c = &r->c[i];
            a.argv[a.argc++] = s_kind_name(c->kind);
            a.argv[a.argc++] = s_num(&a, c->limit);
            a.argv[a.argc++] = s_num(&a, c->amount);
            a.argv[a.argc++] = s_num(&a, (double)c->ttl_s);
            a.argv[a.argc++] = s_num(&a, c->floor);
            a.argv[a.argc++] = c->period[0] ? c->period : "-";
        }
        if (lp_redis_command(self->redis, s_on_acquired, r, a.argc, a.argv, NULL) == 0) {
            r->waiting = true;
            r->in_redis = true;
            req->limits_wait = r;
            req->state = GW_REQ_HELD;
            return false;
        }
    }
    if (self->redis) {
        s_fallback(self, r);
        return true;
    }
    double at = 0;
    s_decide(self, r, s_local_acquire(self, r, &at), at);
    return true;
}

void gw_limits_forget(gw_limits_t *self, gw_req_t *req)
{
    LP_UNUSED(self);
    s_res_t *r = req->limits_wait;
    if (r)
        r->req = NULL;
    req->limits_wait = NULL;
}

static void s_on_settled(void *arg, const redisReply *reply, const char *why)
{
    LP_UNUSED(arg);
    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_warn("redis rate-limit settle failed: %.200s", reply->str);
    else if (!reply && why && strcmp(why, "closing") != 0)
        log_debug("redis rate-limit settle lost: %s", why);
}

void gw_limits_settle(gw_limits_t *self, const uint8_t *id, long long tokens, double cost)
{
    s_res_t *r = lp_map_get(self->reservations, id, LP_REQ_ID_LEN);
    if (!r)
        return;
    if (r->waiting) {
        r->req = NULL; /* released when Redis answers */
        return;
    }
    double delta[S_MAX_COUNTERS];
    for (size_t i = 0; i < r->n; i++) {
        const s_counter_t *c = &r->c[i];
        delta[i] = c->kind == S_TOKENS     ? (double)tokens - c->amount
                   : c->kind == S_SPEND    ? cost - c->amount
                   : c->kind == S_PARALLEL ? -1
                                           : 0;
    }
    if (r->reserved && !r->in_redis) {
        s_local_settle(self, r, delta);
    } else if (r->reserved && self->redis) {
        s_args_t a;
        s_script(&a, self->settle_sha, s_settle_lua, r);
        for (size_t i = 0; i < r->n; i++) {
            a.argv[a.argc++] = s_kind_name(r->c[i].kind);
            a.argv[a.argc++] = s_num(&a, delta[i]);
            a.argv[a.argc++] = r->c[i].period[0] ? r->c[i].period : "-";
        }
        if (lp_redis_command(self->redis, s_on_settled, NULL, a.argc, a.argv, NULL) < 0)
            log_debug("redis down: settle of %s left to the counters' expiry", r->idstr);
    }
    s_forget_res(self, r);
}

void gw_limits_reset_spend(gw_limits_t *self, const char *token)
{
    char name[160];
    snprintf(name, sizeof name, "lp:{%s}:spend", token);
    free(lp_map_remove(self->local, name, strlen(name)));
    if (self->redis) {
        const char *argv[2] = {"DEL", name};
        if (lp_redis_command(self->redis, s_on_settled, NULL, 2, argv, NULL) < 0)
            log_warn("redis down: the shared spend counter of a key keeps its value until it "
                     "expires");
    }
}
