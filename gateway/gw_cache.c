#define LP_LOG_MODULE "gw_cache"
#include "gw_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lp_clientside.h"
#include "lp_crypto.h"
#include "lp_jscan.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_map.h"
#include "lp_redis.h"
#include "lp_sse.h"
#include "lp_time.h"

/* Longest namespace accepted. */
#define S_NS_MAX 128
/* Redis key: namespace + ":{" + sha256 + "}". */
#define S_NAME_MAX (S_NS_MAX + LP_SHA256_HEX_LEN + 8)

/* ---- the local LRU ---- */

typedef struct s_node s_node_t;
struct s_node {
    s_node_t *prev, *next; /* most recently used first */
    char *name;
    char *value;
    size_t len;
    int64_t expires_ns;
};

typedef struct {
    lp_map_t *map; /* name -> s_node_t */
    s_node_t *head, *tail;
    size_t bytes, max_bytes, items, max_items;
} s_lru_t;

static void s_lru_unlink(s_lru_t *l, s_node_t *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

static void s_lru_front(s_lru_t *l, s_node_t *n)
{
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    l->head = n;
    if (!l->tail)
        l->tail = n;
}

static size_t s_node_size(const s_node_t *n)
{
    return sizeof *n + strlen(n->name) + 1 + n->len + 1;
}

static void s_lru_drop(s_lru_t *l, s_node_t *n)
{
    s_lru_unlink(l, n);
    lp_map_remove(l->map, n->name, strlen(n->name));
    l->bytes -= s_node_size(n);
    l->items--;
    free(n->name);
    free(n->value);
    free(n);
}

/* The value of name if present and fresh (it becomes the most recently used). */
static const s_node_t *s_lru_get(s_lru_t *l, const char *name)
{
    s_node_t *n = lp_map_get(l->map, name, strlen(name));
    if (!n)
        return NULL;
    if (n->expires_ns <= lp_mono_ns()) {
        s_lru_drop(l, n);
        return NULL;
    }
    s_lru_unlink(l, n);
    s_lru_front(l, n);
    return n;
}

static void s_lru_put(s_lru_t *l, const char *name, const char *value, size_t len, long long ttl_s)
{
    s_node_t *old = lp_map_get(l->map, name, strlen(name));
    if (old)
        s_lru_drop(l, old);
    s_node_t *n = lp_calloc(1, sizeof *n);
    n->name = lp_strdup(name);
    n->value = lp_strndup(value, len);
    n->len = len;
    n->expires_ns = lp_mono_ns() + ttl_s * LP_NS_PER_S;
    if (s_node_size(n) > l->max_bytes) {
        free(n->name);
        free(n->value);
        free(n);
        return;
    }
    lp_map_put(l->map, n->name, strlen(n->name), n);
    s_lru_front(l, n);
    l->bytes += s_node_size(n);
    l->items++;
    while (l->tail && (l->bytes > l->max_bytes || l->items > l->max_items))
        s_lru_drop(l, l->tail);
}

static void s_lru_free(s_lru_t *l)
{
    while (l->head)
        s_lru_drop(l, l->head);
    lp_map_destroy(&l->map);
}

/* ---- the cache ---- */

enum { S_CHAT = 1, S_COMPLETION = 2, S_EMBEDDING = 4, S_MESSAGES = 8 };

struct gw_cache {
    gw_server_t *srv;
    lp_redis_t *redis; /* NULL for type local */
    s_lru_t lru;
    char ns[S_NS_MAX + 1];
    long long ttl_s;
    unsigned calls; /* S_* call types cached */
    bool global;    /* scope: global (entries shared by every caller) */
};

/* One embedding input of a request. */
typedef struct {
    char name[S_NAME_MAX];
    json_t *cached; /* the cached embedding, or NULL (sent upstream) */
} s_item_t;

struct gw_cache_req {
    gw_cache_t *owner;
    gw_req_t *req;
    void (*miss)(gw_req_t *req);
    char key[LP_SHA256_HEX_LEN];
    char name[S_NAME_MAX];
    bool no_store, hit;
    bool pending; /* Redis owes an answer (c is its callback's argument until then) */
    bool waiting; /* req waits for that answer */
    long long ttl_s;
    double max_age_s; /* accept entries at most this old; < 0 = any */
    int include_usage;
    lp_buf_t sse; /* stream bytes the client saw */
    bool sse_overflow;
    s_item_t *items; /* embeddings: one per input */
    size_t nitems;
    lp_timer_t timer; /* the Redis read's deadline */
};

static const struct {
    const char *name;
    unsigned bit;
} s_call_types[] = {
    {"acompletion", S_CHAT},
    {"completion", S_CHAT},
    {"atext_completion", S_COMPLETION},
    {"text_completion", S_COMPLETION},
    {"aembedding", S_EMBEDDING},
    {"embedding", S_EMBEDDING},
    {"anthropic_messages", S_MESSAGES},
};

gw_cache_t *gw_cache_new(gw_server_t *srv, char *err)
{
    err[0] = '\0';
    const lp_cfg_t *cfg = srv->cfg;
    if (!cfg->cache)
        return NULL;
    const json_t *p = cfg->cache_params;
    const char *type = lp_json_str(p, "type");
    if (!type)
        type = srv->redis ? "redis" : "local";
    if (strcmp(type, "redis") != 0 && strcmp(type, "local") != 0) {
        lp_err_set(err,
                   "litellm_settings.cache_params.type '%.40s' is not supported (redis or "
                   "local)",
                   type);
        return NULL;
    }
    if (!strcmp(type, "redis") && !srv->redis) {
        lp_err_set(err, "litellm_settings.cache_params.type redis needs REDIS_URL (or "
                        "cache_params host/port/password)");
        return NULL;
    }
    const char *ns = lp_json_str(p, "namespace");
    if (ns && (!*ns || strlen(ns) > S_NS_MAX)) {
        lp_err_set(err, "litellm_settings.cache_params.namespace must be 1 to %d characters",
                   S_NS_MAX);
        return NULL;
    }
    const char *scope = lp_json_str(p, "scope");
    if (scope && strcmp(scope, "global") != 0 && strcmp(scope, "tenant") != 0) {
        lp_err_set(err, "litellm_settings.cache_params.scope must be tenant or global");
        return NULL;
    }
    gw_cache_t *self = lp_calloc(1, sizeof *self);
    self->srv = srv;
    self->redis = !strcmp(type, "redis") ? srv->redis : NULL;
    lp_strlcpy(self->ns, ns ? ns : "litellm_caching", sizeof self->ns);
    self->ttl_s = lp_json_int(p, "ttl", GW_CACHE_TTL_S);
    if (self->ttl_s <= 0)
        self->ttl_s = GW_CACHE_TTL_S;
    self->global = scope && !strcmp(scope, "global");
    const json_t *types = json_object_get(p, "supported_call_types");
    if (json_is_array(types)) {
        size_t i;
        json_t *t;
        json_array_foreach(types, i, t)
        {
            for (size_t k = 0; k < LP_ARRAY_LEN(s_call_types); k++) {
                if (json_is_string(t) && !strcmp(json_string_value(t), s_call_types[k].name))
                    self->calls |= s_call_types[k].bit;
            }
        }
    } else {
        self->calls = S_CHAT | S_COMPLETION | S_EMBEDDING | S_MESSAGES;
    }
    self->lru.map = lp_map_new();
    double mb = lp_json_num(p, "max_size_mb", GW_CACHE_LOCAL_MB);
    self->lru.max_bytes = (size_t)(LP_MAX(mb, 1) * 1024 * 1024);
    self->lru.max_items =
        (size_t)LP_MAX(lp_json_int(p, "max_size_in_memory", GW_CACHE_LOCAL_ITEMS), 1);
    log_info("response cache: %s, namespace %s, ttl %llds, scope %s", type, self->ns, self->ttl_s,
             self->global ? "global" : "tenant");
    return self;
}

void gw_cache_destroy(gw_cache_t **self_p)
{
    gw_cache_t *self = *self_p;
    if (!self)
        return;
    s_lru_free(&self->lru);
    free(self);
    *self_p = NULL;
}

const char *gw_cache_type(const gw_cache_t *self)
{
    return self->redis ? "redis" : "local";
}

/* ---- keys ---- */

/* Request fields that cannot change the answer (the workers never send them upstream, or
 * they only shape how it is delivered). */
static bool s_irrelevant(const char *field)
{
    static const char *fields[] = {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "litellm_metadata",
        "cache",
        "caching",
        "timeout",
        "stream_timeout",
        "request_timeout",
        "num_retries",
        "fallbacks",
        "tags",
        "context_window_fallbacks",
        "api_key",
        "api_base",
        "base_url",
        "extra_headers",
        "no-log",
        "guardrails",
        "ttl",
        "proxy_server_request",
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(fields); i++) {
        if (!strcmp(fields[i], field))
            return true;
    }
    return false;
}

/* sha256 of namespace, tenant, group, call type and the canonical body (item: the one
 * embedding input, in place of "input"), and the Redis/local name of the entry. */
static void s_key(const gw_cache_t *self, const gw_req_t *req, const json_t *body, const char *ns,
                  const json_t *item, char *key, char *name)
{
    json_t *material = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        if (!s_irrelevant(k) && !(item && !strcmp(k, "input")))
            json_object_set(material, k, v);
    }
    if (item)
        json_object_set(material, "input", (json_t *)item);
    /* An Anthropic stream is stored as the events it was: apart from the JSON answers. */
    if (req->call == GW_CALL_MESSAGES && req->stream)
        json_object_set_new(material, "stream", json_true());
    char tenant[128] = "";
    if (!self->global) {
        const char *team = lp_json_str(req->key, "team_id");
        if (team)
            snprintf(tenant, sizeof tenant, "team:%.100s", team);
        else
            snprintf(tenant, sizeof tenant, "key:%s", req->key_hash);
    }
    char *canon = json_dumps(material, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(material);
    lp_buf_t b = {0};
    lp_buf_printf(&b, "%s%c%s%c%s%c%d%c", ns, 0, tenant, 0, req->group, 0, (int)req->call, 0);
    lp_buf_append(&b, canon ? canon : "", canon ? strlen(canon) : 0);
    free(canon);
    lp_sha256_hex(b.data, b.len, key);
    lp_buf_free(&b);
    snprintf(name, S_NAME_MAX, "%s:{%s}", ns, key);
}

/* ---- per-request controls ---- */

static unsigned s_call_bit(gw_call_t call)
{
    switch (call) {
    case GW_CALL_CHAT:
        return S_CHAT;
    case GW_CALL_COMPLETION:
        return S_COMPLETION;
    case GW_CALL_EMBEDDING:
        return S_EMBEDDING;
    case GW_CALL_MESSAGES:
        return S_MESSAGES;
    default:
        return 0;
    }
}

/* Cache-Control: no-cache, no-store, max-age=N / s-maxage=N. */
static void s_cache_control(const char *h, bool *no_cache, bool *no_store, double *max_age)
{
    while (h && *h) {
        while (*h == ' ' || *h == ',')
            h++;
        size_t n = strcspn(h, ",");
        if (!strncasecmp(h, "no-cache", 8))
            *no_cache = true;
        else if (!strncasecmp(h, "no-store", 8))
            *no_store = true;
        else if (!strncasecmp(h, "max-age=", 8))
            *max_age = atof(h + 8);
        else if (!strncasecmp(h, "s-maxage=", 9))
            *max_age = atof(h + 9);
        h += n;
    }
}

/* ---- hits ---- */

/* A chunk of the replayed stream: the stored answer's id, created and model. */
static json_t *s_chunk_head(const json_t *resp, bool chat)
{
    json_t *chunk = json_object();
    json_object_set(chunk, "id", json_object_get(resp, "id"));
    json_object_set_new(chunk, "object",
                        json_string(chat ? "chat.completion.chunk" : "text_completion"));
    json_object_set(chunk, "created", json_object_get(resp, "created"));
    json_object_set(chunk, "model", json_object_get(resp, "model"));
    return chunk;
}

/* Append chunk (taken) as one SSE event. */
static void s_put_event(lp_buf_t *out, json_t *chunk)
{
    char *text = lp_json_dump(chunk, NULL);
    lp_buf_printf(out, "data: %s\n\n", text);
    free(text);
    json_decref(chunk);
}

/* A stored chat/text completion replayed as the SSE stream the client asked for. */
static char *s_as_stream(const json_t *resp, bool chat, bool include_usage, size_t *len)
{
    lp_buf_t out = {0};
    const json_t *choices = json_object_get(resp, "choices");
    size_t i;
    json_t *c;
    json_array_foreach(choices, i, c)
    {
        json_t *chunk = s_chunk_head(resp, chat);
        json_t *choice = json_object();
        json_object_set_new(choice, "index", json_integer((json_int_t)i));
        if (chat) {
            json_t *delta = json_deep_copy(json_object_get(c, "message"));
            if (!json_is_object(delta)) {
                json_decref(delta);
                delta = json_object();
            }
            json_t *calls = json_object_get(delta, "tool_calls");
            size_t k;
            json_t *call;
            json_array_foreach(calls, k, call)
            {
                if (json_is_object(call))
                    json_object_set_new(call, "index", json_integer((json_int_t)k));
            }
            json_object_set_new(choice, "delta", delta);
        } else {
            json_object_set(choice, "text", json_object_get(c, "text"));
        }
        json_object_set(choice, "finish_reason", json_object_get(c, "finish_reason"));
        json_t *list = json_array();
        json_array_append_new(list, choice);
        json_object_set_new(chunk, "choices", list);
        s_put_event(&out, chunk);
    }
    if (include_usage && json_object_get(resp, "usage")) {
        json_t *chunk = s_chunk_head(resp, chat);
        json_object_set_new(chunk, "choices", json_array());
        json_object_set(chunk, "usage", json_object_get(resp, "usage"));
        s_put_event(&out, chunk);
    }
    lp_buf_printf(&out, "data: [DONE]\n\n");
    return lp_buf_steal(&out, len);
}

/* Answer req with a stored completion. */
static void s_serve(gw_cache_req_t *c, const json_t *resp)
{
    gw_req_t *req = c->req;
    c->hit = true;
    size_t len = 0;
    char *body;
    if (req->stream) {
        body = s_as_stream(resp, req->call == GW_CALL_CHAT, c->include_usage > 0, &len);
        req->content_type = "text/event-stream";
    } else {
        body = lp_json_dump(resp, &len);
    }
    gw_req_answer(req, 200, body, len);
    rlog_debug(req->idstr, "cache hit %s", c->key);
}

/* A stored Anthropic event stream replayed as it was. */
static void s_serve_events(gw_cache_req_t *c, const json_t *events)
{
    c->hit = true;
    size_t len = json_string_length(events);
    char *body = lp_strndup(json_string_value(events), len);
    c->req->content_type = "text/event-stream";
    gw_req_answer(c->req, 200, body, len);
}

/* The stored entry as found: answer req when it is usable (fresh enough). */
static bool s_take(gw_cache_req_t *c, const char *text, size_t len)
{
    char err[LP_ERR_LEN];
    json_t *entry = lp_json_parse(text, len, err);
    double created = lp_json_num(entry, "created", 0);
    const json_t *resp = json_object_get(entry, "response");
    const json_t *events = json_object_get(entry, "events");
    bool fresh = c->max_age_s < 0 || (double)lp_wall_ns() / 1e9 - created <= c->max_age_s;
    bool ok = fresh && (json_is_object(resp) || json_is_string(events));
    if (ok && json_is_string(events))
        s_serve_events(c, events);
    else if (ok)
        s_serve(c, resp);
    json_decref(entry);
    return ok;
}

/* ---- embeddings, one input at a time ---- */

/* An embedding item's entry, when fresh enough. */
static json_t *s_item_value(const gw_cache_req_t *c, const char *text, size_t len)
{
    char err[LP_ERR_LEN];
    json_t *entry = lp_json_parse(text, len, err);
    double created = lp_json_num(entry, "created", 0);
    json_t *emb = json_object_get(entry, "embedding");
    json_t *out = NULL;
    if (emb && (c->max_age_s < 0 || (double)lp_wall_ns() / 1e9 - created <= c->max_age_s))
        out = json_incref(emb);
    json_decref(entry);
    return out;
}

/* Every input is cached: answer from them alone. */
static void s_serve_items(gw_cache_req_t *c)
{
    gw_req_t *req = c->req;
    c->hit = true;
    json_t *data = json_array();
    for (size_t i = 0; i < c->nitems; i++) {
        json_t *d = json_object();
        json_object_set_new(d, "object", json_string("embedding"));
        json_object_set_new(d, "index", json_integer((json_int_t)i));
        json_object_set(d, "embedding", c->items[i].cached);
        json_array_append_new(data, d);
    }
    json_t *resp = json_object();
    json_object_set_new(resp, "object", json_string("list"));
    json_object_set_new(resp, "data", data);
    json_object_set_new(resp, "model", json_string(req->group));
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(0));
    json_object_set_new(usage, "total_tokens", json_integer(0));
    json_object_set_new(resp, "usage", usage);
    size_t len = 0;
    char *body = lp_json_dump(resp, &len);
    json_decref(resp);
    gw_req_answer(req, 200, body, len);
}

/* Some inputs are cached: send only the others (the body is rewritten). */
static void s_send_rest(gw_cache_req_t *c, const json_t *body)
{
    gw_req_t *req = c->req;
    size_t missing = 0;
    for (size_t i = 0; i < c->nitems; i++)
        missing += c->items[i].cached == NULL;
    if (missing == c->nitems) {
        c->miss(req);
        return;
    }
    json_t *copy = json_copy((json_t *)body);
    json_t *input = json_array();
    const json_t *orig = json_object_get(body, "input");
    for (size_t i = 0; i < c->nitems; i++) {
        if (!c->items[i].cached)
            json_array_append(input, json_array_get(orig, i));
    }
    json_object_set_new(copy, "input", input);
    size_t len = 0;
    char *text = lp_json_dump(copy, &len);
    json_decref(copy);
    lp_buf_free(&req->body);
    lp_buf_append(&req->body, text, len);
    free(text);
    rlog_debug(req->idstr, "embedding cache: %zu of %zu input(s) cached", c->nitems - missing,
               c->nitems);
    c->miss(req);
}

/* The inputs' entries were looked up: answer from them alone, or send the rest upstream. */
static void s_items_found(gw_cache_req_t *c, const json_t *body)
{
    bool all = true;
    for (size_t i = 0; i < c->nitems; i++)
        all &= c->items[i].cached != NULL;
    if (all)
        s_serve_items(c);
    else
        s_send_rest(c, body);
}

/* ---- lookups ---- */

static void s_finish_lookup(gw_cache_req_t *c, const redisReply *reply);

static void s_on_read(void *arg, const redisReply *reply, const char *why)
{
    LP_UNUSED(why);
    gw_cache_req_t *c = arg;
    c->pending = false;
    if (!c->req) {
        free(c); /* the request went away meanwhile */
        return;
    }
    if (!c->waiting)
        return; /* too late: the request went upstream at the deadline */
    c->waiting = false;
    lp_timer_stop(c->owner->srv->loop, &c->timer);
    s_finish_lookup(c, reply);
}

static int s_on_wait_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    gw_cache_req_t *c = arg;
    c->waiting = false;
    c->no_store = true; /* Redis is slow: do not pile writes on it either */
    s_finish_lookup(c, NULL);
    return 0;
}

/* The entries came (reply NULL: none, or Redis failed): answer or go upstream. */
static void s_finish_lookup(gw_cache_req_t *c, const redisReply *reply)
{
    gw_req_t *req = c->req;
    const json_t *body = req->json;
    if (c->items) {
        for (size_t i = 0; i < c->nitems; i++) {
            const redisReply *r = reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements
                                      ? reply->element[i]
                                      : NULL;
            if (r && r->type == REDIS_REPLY_STRING)
                c->items[i].cached = s_item_value(c, r->str, r->len);
        }
        s_items_found(c, body);
    } else if (!(reply && reply->type == REDIS_REPLY_STRING && s_take(c, reply->str, reply->len))) {
        c->miss(req);
    }
    gw_req_resume(req);
}

/* The embedding inputs of body, one item each (a list of token ids is one input). */
static size_t s_inputs(const json_t *input, const json_t **out, size_t max)
{
    if (!json_is_array(input) || json_is_integer(json_array_get(input, 0))) {
        out[0] = input;
        return 1;
    }
    size_t n = LP_MIN(json_array_size(input), max);
    for (size_t i = 0; i < n; i++)
        out[i] = json_array_get(input, i);
    return n;
}

void gw_cache_check(gw_cache_t *self, gw_req_t *req, const json_t *body,
                    void (*miss)(gw_req_t *req))
{
    /* A client's own upstream or key is not the group's: never shared, never stored. */
    if (!self || !(self->calls & s_call_bit(req->call)) || lp_clientside_asked(body)) {
        miss(req);
        return;
    }
    bool no_cache = false, no_store = false;
    double max_age = -1;
    const json_t *ctl = json_object_get(body, "cache");
    no_cache = lp_json_bool(ctl, "no-cache", false);
    no_store = lp_json_bool(ctl, "no-store", false);
    max_age = lp_json_num(ctl, "s-maxage", -1);
    s_cache_control(gw_req_header(req, "Cache-Control"), &no_cache, &no_store, &max_age);
    const char *ns = lp_json_str(ctl, "namespace");
    if (!ns || !*ns || strlen(ns) > S_NS_MAX)
        ns = self->ns;
    if (no_cache && no_store) {
        miss(req);
        return;
    }
    gw_cache_req_t *c = lp_calloc(1, sizeof *c);
    c->owner = self;
    c->req = req;
    c->miss = miss;
    c->no_store = no_store;
    c->ttl_s = lp_json_int(ctl, "ttl", self->ttl_s);
    if (c->ttl_s <= 0)
        c->ttl_s = self->ttl_s;
    c->max_age_s = max_age;
    c->include_usage =
        lp_json_bool(json_object_get(body, "stream_options"), "include_usage", false);
    req->cache = c;
    size_t n = 1;
    const json_t *inputs[GW_CACHE_MAX_INPUTS];
    const json_t *input = json_object_get(body, "input");
    if (req->call == GW_CALL_EMBEDDING && json_array_size(input) > GW_CACHE_MAX_INPUTS) {
        gw_cache_forget(req); /* too many inputs to look up one by one: not cached */
        miss(req);
        return;
    }
    if (req->call == GW_CALL_EMBEDDING) {
        n = s_inputs(input, inputs, GW_CACHE_MAX_INPUTS);
        c->items = lp_calloc(n, sizeof *c->items);
        c->nitems = n;
        char key[LP_SHA256_HEX_LEN];
        for (size_t i = 0; i < n; i++)
            s_key(self, req, body, ns, inputs[i], key, c->items[i].name);
    }
    s_key(self, req, body, ns, NULL, c->key, c->name);
    if (no_cache) {
        miss(req);
        return;
    }
    if (!self->redis) {
        if (c->items) {
            for (size_t i = 0; i < n; i++) {
                const s_node_t *e = s_lru_get(&self->lru, c->items[i].name);
                if (e)
                    c->items[i].cached = s_item_value(c, e->value, e->len);
            }
            s_items_found(c, body);
            return;
        }
        const s_node_t *e = s_lru_get(&self->lru, c->name);
        if (!e || !s_take(c, e->value, e->len))
            miss(req);
        return;
    }
    const char *argv[1 + GW_CACHE_MAX_INPUTS];
    int argc = 0;
    argv[argc++] = c->items ? "MGET" : "GET";
    if (c->items) {
        for (size_t i = 0; i < n; i++)
            argv[argc++] = c->items[i].name;
    } else {
        argv[argc++] = c->name;
    }
    if (lp_redis_command(self->redis, s_on_read, c, argc, argv, NULL) < 0) {
        c->no_store = true; /* Redis is down: go upstream, store nothing */
        miss(req);
        return;
    }
    c->pending = c->waiting = true;
    lp_timer_start(self->srv->loop, &c->timer, GW_CACHE_WAIT_MS, s_on_wait_timeout, c);
    req->state = GW_REQ_HELD;
}

/* ---- storing ---- */

static void s_on_write(void *arg, const redisReply *reply, const char *why)
{
    LP_UNUSED(arg);
    LP_UNUSED(why);
    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_debug("cache write refused: %.200s", reply->str);
}

static void s_put(gw_cache_t *self, const char *name, const char *value, size_t len,
                  long long ttl_s)
{
    if (!self->redis) {
        s_lru_put(&self->lru, name, value, len, ttl_s);
        return;
    }
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", ttl_s);
    const char *argv[5] = {"SET", name, value, "EX", ttl};
    size_t lens[5] = {3, strlen(name), len, 2, strlen(ttl)};
    if (lp_redis_command(self->redis, s_on_write, NULL, 5, argv, lens) < 0)
        log_debug("redis down: answer not cached");
}

/* {"created": now, "response": <body>} without re-encoding the body. */
static void s_put_response(gw_cache_req_t *c, const char *body, size_t len)
{
    lp_buf_t e = {0};
    lp_buf_printf(&e, "{\"created\":%.3f,\"response\":", (double)lp_wall_ns() / 1e9);
    lp_buf_append(&e, body, len);
    lp_buf_append(&e, "}", 1);
    s_put(c->owner, c->name, e.data, e.len, c->ttl_s);
    lp_buf_free(&e);
}

/* ---- a streamed answer assembled back into one response ---- */

typedef struct {
    lp_buf_t content, reasoning;
    json_t *finish;
    json_t *calls; /* [{id, type, function: {name, arguments}}] with arguments in bufs */
    lp_buf_t *args;
    size_t nargs;
    bool has_content, has_reasoning;
} s_choice_t;

typedef struct {
    bool chat;
    json_t *first; /* id, created, model */
    json_t *usage;
    s_choice_t *choices;
    size_t nchoices;
    bool done, bad;
} s_asm_t;

static s_choice_t *s_asm_choice(s_asm_t *a, size_t index)
{
    if (index >= 64)
        return NULL;
    if (index >= a->nchoices) {
        a->choices = lp_realloc(a->choices, (index + 1) * sizeof *a->choices);
        memset(a->choices + a->nchoices, 0, (index + 1 - a->nchoices) * sizeof *a->choices);
        a->nchoices = index + 1;
    }
    return &a->choices[index];
}

static void s_asm_tool(s_choice_t *ch, const json_t *d)
{
    size_t k = (size_t)lp_json_int(d, "index", 0);
    if (k >= 128)
        return;
    if (!ch->calls)
        ch->calls = json_array();
    while (json_array_size(ch->calls) <= k) {
        json_t *call = json_object();
        json_object_set_new(call, "function", json_object());
        json_array_append_new(ch->calls, call);
        ch->args = lp_realloc(ch->args, (ch->nargs + 1) * sizeof *ch->args);
        memset(&ch->args[ch->nargs++], 0, sizeof *ch->args);
    }
    json_t *call = json_array_get(ch->calls, k);
    if (json_is_string(json_object_get(d, "id")))
        json_object_set(call, "id", json_object_get(d, "id"));
    if (json_is_string(json_object_get(d, "type")))
        json_object_set(call, "type", json_object_get(d, "type"));
    const json_t *fn = json_object_get(d, "function");
    const char *name = lp_json_str(fn, "name");
    if (name)
        json_object_set_new(json_object_get(call, "function"), "name", json_string(name));
    const char *args = lp_json_str(fn, "arguments");
    if (args)
        lp_buf_append(&ch->args[k], args, strlen(args));
}

static int s_asm_event(const char *event, const char *data, size_t len, void *arg)
{
    LP_UNUSED(event);
    s_asm_t *a = arg;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        a->done = true;
        return 0;
    }
    char err[LP_ERR_LEN];
    json_t *chunk = lp_json_parse(data, len, err);
    if (!json_is_object(chunk) || json_object_get(chunk, "error")) {
        a->bad = true; /* an error event: this answer is not stored */
        json_decref(chunk);
        return -1;
    }
    if (!a->first)
        a->first = json_incref(chunk);
    if (json_is_object(json_object_get(chunk, "usage"))) {
        json_decref(a->usage);
        a->usage = json_incref(json_object_get(chunk, "usage"));
    }
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(chunk, "choices"), i, c)
    {
        s_choice_t *ch = s_asm_choice(a, (size_t)lp_json_int(c, "index", (json_int_t)i));
        if (!ch)
            continue;
        const json_t *delta = a->chat ? json_object_get(c, "delta") : c;
        const char *text = lp_json_str(delta, a->chat ? "content" : "text");
        if (text) {
            lp_buf_append(&ch->content, text, strlen(text));
            ch->has_content = true;
        }
        const char *reasoning = lp_json_str(delta, "reasoning_content");
        if (reasoning) {
            lp_buf_append(&ch->reasoning, reasoning, strlen(reasoning));
            ch->has_reasoning = true;
        }
        size_t k;
        json_t *d;
        json_array_foreach(json_object_get(delta, "tool_calls"), k, d)
        {
            s_asm_tool(ch, d);
        }
        const json_t *fin = json_object_get(c, "finish_reason");
        if (json_is_string(fin)) {
            json_decref(ch->finish);
            ch->finish = json_incref((json_t *)fin);
        }
    }
    json_decref(chunk);
    return 0;
}

static json_t *s_buf_string(const lp_buf_t *b)
{
    return json_stringn(b->data ? b->data : "", b->len);
}

/* The response a non-streaming call would have given. */
static json_t *s_asm_response(s_asm_t *a, const json_t *usage)
{
    json_t *resp = json_object();
    json_object_set(resp, "id", json_object_get(a->first, "id"));
    json_object_set_new(resp, "object",
                        json_string(a->chat ? "chat.completion" : "text_completion"));
    json_object_set(resp, "created", json_object_get(a->first, "created"));
    json_object_set(resp, "model", json_object_get(a->first, "model"));
    json_t *choices = json_array();
    for (size_t i = 0; i < a->nchoices; i++) {
        s_choice_t *ch = &a->choices[i];
        json_t *c = json_object();
        json_object_set_new(c, "index", json_integer((json_int_t)i));
        if (a->chat) {
            json_t *m = json_object();
            json_object_set_new(m, "role", json_string("assistant"));
            json_object_set_new(m, "content",
                                ch->has_content ? s_buf_string(&ch->content) : json_null());
            if (ch->has_reasoning)
                json_object_set_new(m, "reasoning_content", s_buf_string(&ch->reasoning));
            if (ch->calls) {
                for (size_t k = 0; k < ch->nargs; k++)
                    json_object_set_new(json_object_get(json_array_get(ch->calls, k), "function"),
                                        "arguments", s_buf_string(&ch->args[k]));
                json_object_set(m, "tool_calls", ch->calls);
            }
            json_object_set_new(c, "message", m);
        } else {
            json_object_set_new(c, "text", s_buf_string(&ch->content));
        }
        json_object_set(c, "finish_reason", ch->finish ? ch->finish : json_null());
        json_array_append_new(choices, c);
    }
    json_object_set_new(resp, "choices", choices);
    if (a->usage || usage)
        json_object_set(resp, "usage", a->usage ? a->usage : (json_t *)usage);
    return resp;
}

static void s_asm_free(s_asm_t *a)
{
    for (size_t i = 0; i < a->nchoices; i++) {
        s_choice_t *ch = &a->choices[i];
        lp_buf_free(&ch->content);
        lp_buf_free(&ch->reasoning);
        json_decref(ch->finish);
        json_decref(ch->calls);
        for (size_t k = 0; k < ch->nargs; k++)
            lp_buf_free(&ch->args[k]);
        free(ch->args);
    }
    free(a->choices);
    json_decref(a->first);
    json_decref(a->usage);
}

/* A stream the client received whole: store it as the response it adds up to. */
static void s_store_stream(gw_cache_req_t *c, const json_t *usage)
{
    s_asm_t a = {.chat = c->req->call == GW_CALL_CHAT};
    lp_sse_t sse = {0};
    int rc = lp_sse_feed(&sse, c->sse.data ? c->sse.data : "", c->sse.len, s_asm_event, &a);
    bool complete = rc == 0 && !lp_sse_pending(&sse) && a.done && !a.bad && a.first;
    lp_sse_free(&sse);
    if (complete) {
        json_t *resp = s_asm_response(&a, usage);
        size_t len = 0;
        char *text = lp_json_dump(resp, &len);
        json_decref(resp);
        s_put_response(c, text, len);
        free(text);
    }
    s_asm_free(&a);
}

/* An Anthropic stream is kept as the events the client got, when it ended with message_stop
 * and had no error event. */
static void s_store_events(gw_cache_req_t *c)
{
    const char *data = c->sse.data ? c->sse.data : "";
    if (!memmem(data, c->sse.len, "event: message_stop", 19) ||
        memmem(data, c->sse.len, "event: error", 12))
        return;
    json_t *entry = json_object();
    json_object_set_new(entry, "created", json_real((double)lp_wall_ns() / 1e9));
    json_object_set_new(entry, "events", json_stringn(data, c->sse.len));
    size_t len = 0;
    char *text = lp_json_dump(entry, &len);
    json_decref(entry);
    s_put(c->owner, c->name, text, len, c->ttl_s);
    free(text);
}

/* Some inputs were answered from the cache and the provider's answer for the others cannot
 * be merged with them: the client must not get a list with items missing. */
static void s_merge_failed(gw_cache_req_t *c, const char *why)
{
    bool partial = false;
    for (size_t i = 0; i < c->nitems; i++)
        partial |= c->items[i].cached != NULL;
    if (!partial)
        return; /* the provider's answer covers every input: it goes as it is */
    log_warn("embeddings answer not merged with the cached items: %s", why);
    size_t n = 0;
    char *text = lp_error_body(502, NULL, "invalid_upstream_response", NULL,
                               "the provider's embeddings could not be merged with the cached "
                               "ones",
                               &n);
    gw_req_answer(c->req, 502, text, n);
}

/* Store the fresh embeddings one by one and answer with every input, in order. */
static void s_merge_items(gw_cache_req_t *c)
{
    gw_req_t *req = c->req;
    size_t len = 0;
    const char *body = lp_msg_body(req->reply, &len);
    char err[LP_ERR_LEN];
    json_t *resp = lp_json_parse(body, len, err);
    json_t *data = json_object_get(resp, "data");
    if (!json_is_array(data)) {
        s_merge_failed(c, resp ? "no data list" : "not JSON the gateway reads");
        json_decref(resp);
        return;
    }
    /* The i-th returned item answers the i-th input not cached. */
    size_t returned = 0;
    json_t *merged = json_array();
    char created[48];
    snprintf(created, sizeof created, "%.3f", (double)lp_wall_ns() / 1e9);
    for (size_t i = 0; i < c->nitems; i++) {
        json_t *emb = c->items[i].cached;
        if (!emb) {
            json_t *fresh = NULL;
            size_t k;
            json_t *d;
            json_array_foreach(data, k, d)
            {
                if ((size_t)lp_json_int(d, "index", (json_int_t)k) == returned)
                    fresh = json_object_get(d, "embedding");
            }
            returned++;
            if (!fresh) {
                json_decref(merged);
                json_decref(resp);
                s_merge_failed(c, "an input has no embedding");
                return;
            }
            emb = fresh;
            if (!c->no_store) {
                char *value = lp_json_dump(emb, NULL);
                lp_buf_t e = {0};
                lp_buf_printf(&e, "{\"created\":%s,\"embedding\":%s}", created, value);
                s_put(c->owner, c->items[i].name, e.data, e.len, c->ttl_s);
                lp_buf_free(&e);
                free(value);
            }
        }
        json_t *d = json_object();
        json_object_set_new(d, "object", json_string("embedding"));
        json_object_set_new(d, "index", json_integer((json_int_t)i));
        json_object_set(d, "embedding", emb);
        json_array_append_new(merged, d);
    }
    bool partial = false;
    for (size_t i = 0; i < c->nitems; i++)
        partial |= c->items[i].cached != NULL;
    if (partial) {
        json_object_set_new(resp, "data", merged);
        size_t n = 0;
        char *text = lp_json_dump(resp, &n);
        gw_req_answer(req, req->status, text, n); /* the reply stays for the record */
    } else {
        json_decref(merged);
    }
    json_decref(resp);
}

void gw_cache_stream_bytes(gw_req_t *req, const void *data, size_t len)
{
    gw_cache_req_t *c = req->cache;
    if (!c || c->no_store || c->sse_overflow)
        return;
    if (c->sse.len + len > GW_CACHE_STREAM_MAX) {
        c->sse_overflow = true;
        lp_buf_free(&c->sse);
        return;
    }
    lp_buf_append(&c->sse, data, len);
}

void gw_cache_answered(gw_cache_t *self, gw_req_t *req)
{
    gw_cache_req_t *c = req->cache;
    if (!self || !c || c->hit || !req->reply || lp_msg_cmd(req->reply) != LP_CMD_END)
        return;
    long long status = lp_msg_meta_int(req->reply, "status", 0);
    if (status != 200)
        return;
    if (c->items) {
        s_merge_items(c);
        return;
    }
    if (c->no_store)
        return;
    if (req->streaming && req->call == GW_CALL_MESSAGES) {
        if (!c->sse_overflow)
            s_store_events(c);
        return;
    }
    if (req->streaming) {
        if (!c->sse_overflow)
            s_store_stream(c, json_object_get(lp_msg_meta(req->reply), "usage"));
        return;
    }
    size_t len = 0;
    const char *body = lp_msg_body(req->reply, &len);
    size_t blank = lp_jscan_blanks(body, len); /* a provider's answer keeps its spacing */
    if (blank < len && body[blank] == '{')
        s_put_response(c, body, len);
}

bool gw_cache_hit(const gw_req_t *req)
{
    return req->cache && req->cache->hit;
}

const char *gw_cache_key(const gw_req_t *req)
{
    return gw_cache_hit(req) ? req->cache->key : NULL;
}

void gw_cache_forget(gw_req_t *req)
{
    gw_cache_req_t *c = req->cache;
    if (!c)
        return;
    req->cache = NULL;
    lp_buf_free(&c->sse);
    for (size_t i = 0; i < c->nitems; i++)
        json_decref(c->items[i].cached);
    free(c->items);
    c->items = NULL;
    c->nitems = 0;
    lp_timer_stop(c->owner->srv->loop, &c->timer);
    c->waiting = false;
    if (c->pending) {
        c->req = NULL; /* Redis still owes an answer to c: c is freed then */
        return;
    }
    free(c);
}
