#define LP_LOG_MODULE "gw_keys"
#include "gw_keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "lp_crypto.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_map.h"
#include "lp_redis.h"
#include "lp_time.h"

typedef struct s_entry s_entry_t;

struct s_entry {
    char token[LP_SHA256_HEX_LEN];
    json_t *row;         /* the database row; NULL when the key does not exist */
    bool known;          /* row (or its absence) came from the database at least once */
    int64_t fresh_until; /* monotonic ns */
    bool loading;
    uint8_t lookup_id[LP_REQ_ID_LEN];
    lp_timer_t timer; /* lookup deadline */
    gw_req_t **waiting;
    size_t nwaiting;
    gw_keys_t *owner;
};

struct gw_keys {
    gw_server_t *srv;
    int64_t ttl_ms;
    lp_map_t *entries; /* token -> s_entry_t */
    lp_map_t *lookups; /* lookup id -> s_entry_t */
};

gw_keys_t *gw_keys_new(gw_server_t *srv, int64_t ttl_ms)
{
    gw_keys_t *self = lp_calloc(1, sizeof *self);
    self->srv = srv;
    self->ttl_ms = ttl_ms > 0 ? ttl_ms : GW_KEY_TTL_MS;
    self->entries = lp_map_new();
    self->lookups = lp_map_new();
    return self;
}

static void s_free(void *v, void *a)
{
    gw_keys_t *self = a;
    s_entry_t *e = v;
    lp_timer_stop(self->srv->loop, &e->timer);
    json_decref(e->row);
    free(e->waiting);
    free(e);
}

void gw_keys_destroy(gw_keys_t **self_p)
{
    gw_keys_t *self = *self_p;
    if (!self)
        return;
    lp_map_remove_if(self->entries, NULL, self, s_free);
    lp_map_destroy(&self->entries);
    lp_map_destroy(&self->lookups);
    free(self);
    *self_p = NULL;
}

/* An entry nothing waits on and whose row is stale. */
static bool s_dead(void *v, void *a)
{
    LP_UNUSED(a);
    const s_entry_t *e = v;
    return !e->loading && e->nwaiting == 0 && e->fresh_until < lp_mono_ns();
}

/* Keep the cache bounded: presented keys that do not exist must not grow it forever. */
static void s_purge(gw_keys_t *self)
{
    lp_map_remove_if(self->entries, s_dead, self, s_free);
}

static s_entry_t *s_entry(gw_keys_t *self, const char *token)
{
    s_entry_t *e = lp_map_get(self->entries, token, strlen(token));
    if (!e && lp_map_size(self->entries) >= GW_KEYS_MAX)
        s_purge(self);
    if (!e) {
        e = lp_calloc(1, sizeof *e);
        lp_strlcpy(e->token, token, sizeof e->token);
        e->owner = self;
        lp_map_put(self->entries, e->token, strlen(e->token), e);
    }
    return e;
}

/* "2025-01-01T00:00:00" (the database's timestamp) as Unix seconds, -1 if unparsable. */
static long long s_epoch(const char *ts)
{
    struct tm tm = {0};
    if (!ts || !strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm))
        return -1;
    return (long long)timegm(&tm);
}

/* The checks every use of a key makes (model and budget checks come with the request). */
static void s_decide(gw_req_t *req, s_entry_t *e)
{
    if (!e->row) {
        gw_req_fail(req, 401, "invalid_api_key", NULL, "Authentication Error: invalid API key.");
        return;
    }
    if (json_is_true(json_object_get(e->row, "blocked"))) {
        gw_req_fail(req, 401, "key_blocked", NULL,
                    "Authentication Error: this key is blocked; ask the proxy admin.");
        return;
    }
    long long exp = s_epoch(lp_json_str(e->row, "expires"));
    if (exp >= 0 && exp <= (long long)time(NULL)) {
        gw_req_fail(req, 401, "key_expired", NULL,
                    "Authentication Error: this key expired at %s UTC.",
                    lp_json_str(e->row, "expires"));
        return;
    }
    json_decref(req->key);
    req->key = json_incref(e->row);
    memcpy(req->key_hash, e->token, LP_SHA256_HEX_LEN);
    req->authed = true;
}

static int s_on_lookup_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg);

/* Ask the logger for the row. */
static bool s_lookup_db(gw_keys_t *self, s_entry_t *e)
{
    if (lp_random_bytes(e->lookup_id, sizeof e->lookup_id) < 0)
        return false;
    lp_msg_t *m = lp_msg_new(LP_CMD_QUERY, e->lookup_id);
    json_t *meta = lp_msg_meta_rw(m);
    json_object_set_new(meta, "kind", json_string("key_get"));
    json_object_set_new(meta, "token", json_string(e->token));
    if (lp_msg_send(&m, self->srv->logger) < 0) {
        lp_msg_destroy(&m);
        return false;
    }
    e->loading = true;
    lp_map_put(self->lookups, e->lookup_id, LP_REQ_ID_LEN, e);
    if (!lp_timer_active(&e->timer))
        lp_timer_start(self->srv->loop, &e->timer, GW_KEY_LOOKUP_MS, s_on_lookup_timeout, e);
    return true;
}

static void s_settle(gw_keys_t *self, s_entry_t *e, bool ok);
static bool s_take_row(gw_keys_t *self, s_entry_t *e, const char *text, size_t len);

/* Redis answered the cache read: a row is as good as the database's; else ask the logger. */
static void s_on_cached(void *arg, const redisReply *reply, const char *why)
{
    LP_UNUSED(why);
    s_entry_t *e = arg;
    gw_keys_t *self = e->owner;
    if (reply && reply->type == REDIS_REPLY_STRING && s_take_row(self, e, reply->str, reply->len)) {
        s_settle(self, e, true);
        return;
    }
    if (!s_lookup_db(self, e))
        s_settle(self, e, false);
}

/* The key's name in Redis' shared cache. */
static void s_cache_name(const char *token, char *out, size_t size)
{
    snprintf(out, size, "lp:key:%s", token);
}

/* Look the row up: in Redis' shared cache when there is one, else (or on a miss) the
 * database through the logger. */
static bool s_lookup(gw_keys_t *self, s_entry_t *e)
{
    if (self->srv->redis && lp_redis_up(self->srv->redis)) {
        char name[96];
        s_cache_name(e->token, name, sizeof name);
        const char *argv[2] = {"GET", name};
        if (lp_redis_command(self->srv->redis, s_on_cached, e, 2, argv, NULL) == 0) {
            e->loading = true;
            lp_timer_start(self->srv->loop, &e->timer, GW_KEY_LOOKUP_MS, s_on_lookup_timeout, e);
            return true;
        }
    }
    return s_lookup_db(self, e);
}

static void s_on_cache_write(void *arg, const redisReply *reply, const char *why)
{
    LP_UNUSED(arg);
    LP_UNUSED(why);
    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_debug("redis key cache write failed: %.200s", reply->str);
}

/* Share a row read from the database with the other gateways, for the same ttl. */
static void s_cache_write(gw_keys_t *self, const s_entry_t *e)
{
    if (!self->srv->redis || !e->row)
        return;
    char name[96], ttl[32];
    s_cache_name(e->token, name, sizeof name);
    snprintf(ttl, sizeof ttl, "%lld", (long long)LP_MAX(self->ttl_ms / 1000, 1));
    size_t len = 0;
    char *text = lp_json_dump(e->row, &len);
    const char *argv[5] = {"SET", name, text, "EX", ttl};
    size_t lens[5] = {3, strlen(name), len, 2, strlen(ttl)};
    if (lp_redis_command(self->srv->redis, s_on_cache_write, NULL, 5, argv, lens) < 0)
        log_debug("redis down: key row not shared");
    free(text);
}

/* A lookup ended (row, no row, or failure): decide every waiting request. */
static void s_settle(gw_keys_t *self, s_entry_t *e, bool ok)
{
    e->loading = false;
    if (lp_map_get(self->lookups, e->lookup_id, LP_REQ_ID_LEN) == e)
        lp_map_remove(self->lookups, e->lookup_id, LP_REQ_ID_LEN);
    lp_timer_stop(self->srv->loop, &e->timer);
    gw_req_t **waiting = e->waiting;
    size_t n = e->nwaiting;
    e->waiting = NULL;
    e->nwaiting = 0;
    for (size_t i = 0; i < n; i++) {
        gw_req_t *req = waiting[i];
        req->key_pending = false;
        req->key_wait = NULL;
        if (ok || e->known)
            s_decide(req, e); /* a failed refresh keeps the last known row */
        else
            gw_req_fail(req, 503, "key_store_unavailable", NULL,
                        "cannot check this key now (the key database is not reachable); "
                        "try again shortly");
        gw_req_resume(req);
    }
    free(waiting);
}

static int s_on_lookup_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    s_entry_t *e = arg;
    log_warn("key lookup timed out");
    if (e->known)
        e->fresh_until = lp_mono_ns() + e->owner->ttl_ms * LP_NS_PER_MS;
    s_settle(e->owner, e, false);
    return 0;
}

bool gw_keys_resolve(gw_keys_t *self, gw_req_t *req, const char *token)
{
    s_entry_t *e = s_entry(self, token);
    int64_t now = lp_mono_ns();
    if (e->known && now < e->fresh_until) {
        s_decide(req, e);
        return true;
    }
    if (!e->loading && !s_lookup(self, e)) {
        /* No logger to ask: a known key keeps working; an unknown one cannot be checked. */
        if (e->known) {
            s_decide(req, e);
        } else {
            gw_req_fail(req, 503, "key_store_unavailable", NULL,
                        "cannot check this key now (the key database is not reachable); try "
                        "again shortly");
        }
        return true;
    }
    e->waiting = lp_realloc(e->waiting, (e->nwaiting + 1) * sizeof *e->waiting);
    e->waiting[e->nwaiting++] = req;
    req->key_pending = true;
    req->key_wait = e;
    return false;
}

/* A row (or JSON null: no such key) read from the database or Redis: cache it. */
static bool s_take_row(gw_keys_t *self, s_entry_t *e, const char *text, size_t len)
{
    char err[LP_ERR_LEN];
    json_t *row = lp_json_parse(text, len, err);
    if (!json_is_object(row) && !json_is_null(row)) {
        json_decref(row);
        return false;
    }
    json_decref(e->row);
    e->row = json_is_object(row) ? row : NULL;
    if (!e->row)
        json_decref(row);
    e->known = true;
    int64_t ttl = e->row ? self->ttl_ms : GW_KEY_MISS_TTL_MS;
    e->fresh_until = lp_mono_ns() + ttl * LP_NS_PER_MS;
    return true;
}

bool gw_keys_reply(gw_keys_t *self, lp_msg_t **msg)
{
    const uint8_t *id = lp_msg_req_id(*msg);
    s_entry_t *e = id ? lp_map_get(self->lookups, id, LP_REQ_ID_LEN) : NULL;
    if (!e)
        return false;
    bool ok = false;
    if (lp_msg_cmd(*msg) == LP_CMD_END) {
        size_t len = 0;
        const char *body = lp_msg_body(*msg, &len);
        ok = s_take_row(self, e, body, len);
        if (ok)
            s_cache_write(self, e);
    }
    if (!ok && e->known)
        e->fresh_until = lp_mono_ns() + self->ttl_ms * LP_NS_PER_MS;
    if (!ok)
        log_warn("key lookup failed: the key database is not reachable");
    s_settle(self, e, ok);
    lp_msg_destroy(msg);
    return true;
}

void gw_keys_forget(gw_keys_t *self, gw_req_t *req)
{
    LP_UNUSED(self);
    s_entry_t *e = req->key_wait;
    if (!e)
        return;
    for (size_t i = 0; i < e->nwaiting; i++) {
        if (e->waiting[i] == req) {
            e->waiting[i] = e->waiting[--e->nwaiting];
            break;
        }
    }
    req->key_wait = NULL;
    req->key_pending = false;
}

void gw_keys_evict(gw_keys_t *self, const char *token)
{
    s_entry_t *e = lp_map_get(self->entries, token, strlen(token));
    if (e && !e->loading)
        e->fresh_until = 0;
    if (self->srv->redis) {
        char name[96];
        s_cache_name(token, name, sizeof name);
        const char *argv[2] = {"DEL", name};
        if (lp_redis_command(self->srv->redis, s_on_cache_write, NULL, 2, argv, NULL) < 0)
            log_warn("redis down: other gateways keep the key's old row until it expires "
                     "(user_api_key_cache_ttl)");
    }
}
