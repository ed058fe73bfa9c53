#define LP_LOG_MODULE "gw_routes"
#include "gw_routes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zmq.h>

#include "gw_cache.h"
#include "gw_check.h"
#include "gw_health.h"
#include "gw_keyadm.h"
#include "gw_limits.h"
#include "gw_metrics.h"
#include "gw_record.h"
#include "lp_crypto.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_price.h"
#include "lp_redis.h"
#include "lp_time.h"
#include "lp_version.h"

/* How long a streaming request's parallel slot lasts should its gateway die. */
#define GW_STREAM_SLOT_MS (3600 * 1000LL)
/* Longest `user` value kept for the spend record. */
#define GW_USER_MAX 256

static void s_answer_json(gw_req_t *req, int status, json_t *value)
{
    size_t len = 0;
    char *body = lp_json_dump(value, &len);
    json_decref(value);
    gw_req_answer(req, status, body, len);
}

static void s_liveliness(gw_req_t *req)
{
    s_answer_json(req, 200, json_string("I'm alive!"));
}

static bool s_alive(int64_t expiry_ns)
{
    return lp_mono_ns() < expiry_ns;
}

static void s_readiness(gw_req_t *req)
{
    gw_server_t *srv = req->srv;
    bool router = srv->router_alive && s_alive(srv->router_expiry_ns);
    bool logger = srv->logger_alive && s_alive(srv->logger_expiry_ns);
    bool ready = router && srv->workers > 0;
    char now[LP_ISO_LEN];
    lp_iso8601(lp_wall_ns(), now, sizeof now);
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string(ready ? "healthy" : "unhealthy"));
    json_object_set_new(o, "router", json_string(router ? "connected" : "unreachable"));
    json_object_set_new(o, "workers", json_integer(router ? srv->workers : 0));
    json_object_set_new(o, "logger", json_string(logger ? "connected" : "unreachable"));
    json_object_set_new(o, "db",
                        json_string(!srv->cfg->database_url ? "not configured"
                                    : logger                ? srv->db_state
                                                            : "unknown"));
    json_object_set_new(o, "cache",
                        srv->cache ? json_string(gw_cache_type(srv->cache)) : json_null());
    json_object_set_new(o, "redis",
                        json_string(!srv->redis               ? "not configured"
                                    : lp_redis_up(srv->redis) ? "connected"
                                                              : "unreachable"));
    json_object_set_new(o, "litellm_version", json_string(LP_VERSION));
    json_object_set_new(o, "last_updated", json_string(now));
    s_answer_json(req, ready ? 200 : 503, o);
}

/* A key with a models list may use only those groups ("all-proxy-models" or [] = all). */
static bool s_may_use(const gw_req_t *req, const char *group)
{
    const json_t *models = json_object_get(req->key, "models");
    if (!json_is_array(models) || json_array_size(models) == 0)
        return true;
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        const char *name = json_string_value(m);
        if (name && (!strcmp(name, group) || !strcmp(name, "all-proxy-models")))
            return true;
    }
    return false;
}

static void s_models(gw_req_t *req)
{
    const lp_cfg_t *cfg = req->srv->cfg;
    json_t *data = json_array();
    for (size_t i = 0; i < cfg->ngroups; i++) {
        if (!s_may_use(req, cfg->groups[i]))
            continue;
        json_t *m = json_object();
        json_object_set_new(m, "id", json_string(cfg->groups[i]));
        json_object_set_new(m, "object", json_string("model"));
        json_object_set_new(m, "created",
                            json_integer((json_int_t)(req->srv->started_wall_ns / LP_NS_PER_S)));
        json_object_set_new(m, "owned_by", json_string("openai"));
        json_array_append_new(data, m);
    }
    json_t *o = json_object();
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(o, "data", data);
    s_answer_json(req, 200, o);
}

static bool s_is_json_type(const char *ct)
{
    if (!ct)
        return true; /* curl without -H, many scripts: the body decides */
    while (*ct == ' ')
        ct++;
    static const char json_type[] = "application/json";
    if (strncasecmp(ct, json_type, sizeof json_type - 1) != 0)
        return false;
    const char *rest = ct + sizeof json_type - 1;
    if (*rest != '\0' && *rest != ';' && *rest != ' ')
        return false;
    /* JSON is UTF-8 (RFC 8259): another charset is not JSON we can read. */
    const char *cs = strcasestr(rest, "charset=");
    if (!cs)
        return true;
    cs += 8;
    if (*cs == '"')
        cs++;
    return strncasecmp(cs, "utf-8", 5) == 0 || strncasecmp(cs, "utf8", 4) == 0;
}

static const char *s_call_name(gw_call_t call)
{
    switch (call) {
    case GW_CALL_COMPLETION:
        return "completion";
    case GW_CALL_EMBEDDING:
        return "embedding";
    case GW_CALL_MESSAGES:
        return "messages";
    case GW_CALL_COUNT_TOKENS:
        return "count_tokens";
    default:
        return "chat";
    }
}

/* Per-attempt timeout from the x-litellm-timeout header (seconds), 0 when absent. */
static long long s_client_timeout_ms(gw_req_t *req)
{
    const char *h = gw_req_header(req, "x-litellm-timeout");
    double s = 0;
    if (!h || lp_parse_double(h, &s) < 0 || s <= 0 || s > 86400)
        return 0;
    return (long long)(s * 1000.0);
}

static bool s_model_allowed(gw_req_t *req)
{
    if (s_may_use(req, req->group))
        return true;
    char *allowed = lp_json_dump(json_object_get(req->key, "models"), NULL);
    gw_req_fail(req, 400, "model_not_allowed", "model",
                "This key is not allowed to use model=%.200s. Allowed models: %.600s", req->group,
                allowed);
    free(allowed);
    return false;
}

/* The most the call could cost on any deployment of its group. */
static double s_cost_estimate(const gw_req_t *req, long long prompt, long long completion)
{
    const lp_cfg_t *cfg = req->srv->cfg;
    double most = 0;
    for (size_t i = 0; i < cfg->ndeployments; i++) {
        const lp_deployment_t *d = &cfg->deployments[i];
        if (strcmp(d->model_name, req->group) != 0)
            continue;
        bool known = false, first = false;
        most = LP_MAX(most, lp_price_cost(req->srv->prices, d, prompt, completion, &known, &first));
    }
    return most;
}

/* The longest the call may take: every attempt, plus slack. */
static long long s_deadline_ms(const gw_req_t *req, long long timeout_ms)
{
    const lp_cfg_t *cfg = req->srv->cfg;
    double per_try = timeout_ms > 0 ? (double)timeout_ms : cfg->timeout_s * 1000.0;
    return (long long)(per_try * (cfg->num_retries + 1)) + GW_DEADLINE_SLACK_MS;
}

/* Not answered from the cache: the call goes upstream. */
static void s_upstream(gw_req_t *req)
{
    json_t *meta = req->aux;
    req->aux = NULL;
    json_decref(req->json);
    req->json = NULL;
    gw_forward(req, meta);
}

/* The key's limits let the call go: the cache may answer it. */
static void s_admit(gw_req_t *req)
{
    gw_cache_check(req->srv->cache, req, req->json, s_upstream);
}

static void s_model_call(gw_req_t *req)
{
    if (!s_is_json_type(gw_req_header(req, "Content-Type"))) {
        gw_req_fail(req, 415, "unsupported_media_type", NULL,
                    "send the request body as JSON with 'Content-Type: application/json'");
        return;
    }
    char err[LP_ERR_LEN];
    json_t *body = lp_json_parse(req->body.data ? req->body.data : "", req->body.len, err);
    if (!body) {
        gw_req_fail(req, 400, "invalid_json", NULL, "invalid JSON in request body: %s", err);
        return;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        gw_req_fail(req, 400, "invalid_json", NULL, "the request body must be a JSON object");
        return;
    }
    const char *model = lp_json_str(body, "model");
    if (!model || !*model) {
        json_decref(body);
        gw_req_fail(req, 400, NULL, "model", "model is required");
        return;
    }
    if (!lp_cfg_has_group(req->srv->cfg, model)) {
        gw_req_fail(req, 400, "model_not_found", "model",
                    "Invalid model name passed in model=%.200s. Call /v1/models to view "
                    "available models.",
                    model);
        json_decref(body);
        return;
    }
    req->group = lp_strdup(model);
    const char *user = lp_json_str(body, "user");
    if (user)
        req->user = lp_strndup(user, GW_USER_MAX);
    json_t *stream = json_object_get(body, "stream");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
        json_decref(body);
        gw_req_fail(req, 400, NULL, "stream", "stream must be true or false");
        return;
    }
    req->stream =
        json_is_true(stream) && req->call != GW_CALL_EMBEDDING && req->call != GW_CALL_COUNT_TOKENS;
    if (!gw_check_body(req, body) || !s_model_allowed(req)) {
        json_decref(body);
        return;
    }
    json_t *meta = json_object();
    json_object_set_new(meta, "model", json_string(req->group));
    json_object_set_new(meta, "call_type", json_string(s_call_name(req->call)));
    json_object_set_new(meta, "stream", json_boolean(req->stream));
    long long timeout = s_client_timeout_ms(req);
    if (timeout > 0)
        json_object_set_new(meta, "timeout_ms", json_integer(timeout));
    if (GW_ANTHROPIC(req->call)) {
        /* For Anthropic deployments, which get the request as the client wrote it. */
        static const char *hdrs[][2] = {{"anthropic-version", "anthropic_version"},
                                        {"anthropic-beta", "anthropic_beta"}};
        for (size_t i = 0; i < LP_ARRAY_LEN(hdrs); i++) {
            const char *v = gw_req_header(req, hdrs[i][0]);
            if (v && strlen(v) < 256)
                json_object_set_new(meta, hdrs[i][1], lp_json_text(v));
        }
    }
    if (req->call == GW_CALL_COUNT_TOKENS) {
        /* Counting costs nothing: no limits, no cache. */
        json_decref(body);
        gw_forward(req, meta);
        return;
    }
    /* What the call may use at most, reserved against the key's limits until it settles. */
    long long prompt = (long long)(req->body.len / 4) + 1, completion = 0;
    if (req->call != GW_CALL_EMBEDDING) {
        completion = lp_json_int(body, "max_completion_tokens",
                                 lp_json_int(body, "max_tokens", GW_RESERVE_TOKENS));
        completion = LP_MAX(completion, 0);
    }
    req->prompt_guess = prompt;
    req->json = body;
    req->aux = meta;
    /* A parallel slot outlives its request only if this gateway dies: a stream may run
     * long (its deadline restarts with every chunk). */
    long long slot_ms = req->stream ? GW_STREAM_SLOT_MS : s_deadline_ms(req, timeout);
    gw_limits_acquire(req->srv->limits, req, prompt + completion,
                      s_cost_estimate(req, prompt, completion), slot_ms, s_admit);
}

static int s_on_deadline(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    gw_req_t *req = arg;
    gw_abandon(req, 504, "gateway_timeout",
               req->streaming              ? "the stream stalled: no data from the proxy in time"
               : req->call == GW_CALL_NONE ? "no answer from the proxy's logger in time"
                                           : "no answer from the proxy's router in time");
    return 0;
}

void gw_arm_deadline(gw_req_t *req)
{
    lp_timer_start(req->srv->loop, &req->deadline, req->attempt_ms + GW_DEADLINE_SLACK_MS,
                   s_on_deadline, req);
}

void gw_send_job(gw_req_t *req, lp_cmd_t cmd, json_t *meta, void *socket, long long deadline_ms)
{
    gw_server_t *srv = req->srv;
    const char *peer = socket == srv->router ? "router" : "logger";
    lp_msg_t *m = lp_msg_new(cmd, req->id);
    json_object_update(lp_msg_meta_rw(m), meta);
    json_decref(meta);
    size_t len = 0;
    char *body = lp_buf_steal(&req->body, &len);
    lp_msg_give_body(m, body, len); /* the body now belongs to ZeroMQ: no copy */
    if (lp_msg_send(&m, socket) < 0) {
        rlog_warn(req->idstr, "cannot reach the %s: %s", peer, zmq_strerror(errno));
        lp_msg_destroy(&m);
        gw_req_fail(req, 503, socket == srv->router ? "router_unavailable" : "logger_unavailable",
                    NULL, "the proxy's %s is not reachable; try again shortly", peer);
        return;
    }
    lp_map_put(srv->inflight, req->id, LP_REQ_ID_LEN, req);
    lp_timer_start(srv->loop, &req->deadline, deadline_ms, s_on_deadline, req);
    req->sent_ns = lp_mono_ns();
    req->state = GW_REQ_WAITING;
}

void gw_forward(gw_req_t *req, json_t *meta)
{
    gw_server_t *srv = req->srv;
    if (lp_mono_ns() >= srv->router_expiry_ns) {
        json_decref(meta);
        gw_req_fail(req, 503, "router_unavailable", NULL,
                    "the proxy's router is not answering; try again shortly");
        return;
    }
    long long timeout = lp_json_int(meta, "timeout_ms", 0);
    req->attempt_ms = timeout > 0 ? timeout : (long long)(srv->cfg->timeout_s * 1000.0);
    gw_send_job(req, LP_CMD_REQUEST, meta, srv->router, s_deadline_ms(req, timeout));
    rlog_debug(req->idstr, "forwarded %s for %s", s_call_name(req->call), req->group);
}

void gw_abandon(gw_req_t *req, int status, const char *code, const char *message)
{
    gw_server_t *srv = req->srv;
    bool waiting = req->state == GW_REQ_WAITING;
    bool streaming = req->streaming && !req->out.done;
    if (!waiting && !streaming)
        return;
    lp_map_remove(srv->inflight, req->id, LP_REQ_ID_LEN);
    lp_timer_stop(srv->loop, &req->deadline);
    if (req->call != GW_CALL_NONE) {
        lp_msg_t *cancel = lp_msg_new(LP_CMD_CANCEL, req->id);
        if (lp_msg_send(&cancel, srv->router) < 0)
            lp_msg_destroy(&cancel);
        /* The worker answers a CANCEL with the usage so far; the record waits for it. */
        gw_pending_open(srv, req->id);
    }
    rlog_warn(req->idstr, "%d %s", status, message);
    if (waiting) {
        gw_req_fail(req, status, code, NULL, "%s", message);
    } else {
        if (!req->client_gone) {
            size_t len = 0;
            char *err = lp_error_body(status, NULL, code, NULL, message, &len);
            gw_req_stream_error(req, err, len);
            free(err);
        }
        req->out.done = true;
        req->status = status;
    }
    gw_req_resume(req);
}

void gw_client_gone(gw_req_t *req)
{
    req->client_gone = true;
    gw_abandon(req, 499, "client_closed_request", "the client closed the connection");
}

/* GET /spend/logs: the logger reads the rows (only it holds a database connection). Filters
 * as LiteLLM names them; api_key may be the key itself or its sha256. */
static void s_spend_logs(gw_req_t *req)
{
    gw_server_t *srv = req->srv;
    if (!srv->cfg->database_url) {
        gw_req_fail(req, 400, "database_not_configured", NULL,
                    "spend logs need a database: set DATABASE_URL");
        return;
    }
    json_t *meta = json_object();
    json_object_set_new(meta, "kind", json_string("spend_logs"));
    static const struct {
        const char *arg, *key;
    } filters[] = {{"api_key", "api_key"}, {"request_id", "request_id"}, {"user_id", "user"},
                   {"model", "model"},     {"start_date", "start_date"}, {"end_date", "end_date"}};
    for (size_t i = 0; i < LP_ARRAY_LEN(filters); i++) {
        const char *v =
            MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, filters[i].arg);
        if (!v || !*v)
            continue;
        bool date = strstr(filters[i].arg, "date") != NULL;
        long long y, mo, d;
        char rest;
        if (date && (sscanf(v, "%4lld-%2lld-%2lld%c", &y, &mo, &d, &rest) != 3 || mo < 1 ||
                     mo > 12 || d < 1 || d > 31)) {
            json_decref(meta);
            gw_req_fail(req, 400, NULL, filters[i].arg, "%s must be a date YYYY-MM-DD",
                        filters[i].arg);
            return;
        }
        char hash[LP_SHA256_HEX_LEN];
        if (strcmp(filters[i].arg, "api_key") == 0 && lp_str_prefix(v, "sk-")) {
            lp_sha256_hex(v, strlen(v), hash);
            v = hash;
        }
        json_object_set_new(meta, filters[i].key, lp_json_text(v));
    }
    const char *limit = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "limit");
    long long n = 100;
    if (limit && lp_parse_ll(limit, 1, 1000, &n) < 0) {
        json_decref(meta);
        gw_req_fail(req, 400, NULL, "limit", "limit must be a number from 1 to 1000");
        return;
    }
    json_object_set_new(meta, "limit", json_integer(n));
    gw_send_job(req, LP_CMD_QUERY, meta, srv->logger, GW_QUERY_TIMEOUT_MS);
}

/* The test call's answer: {"status": "success", "result": <the provider's answer>}; a
 * failure is the proxy's error as it came. */
static void s_on_tested(gw_req_t *req, lp_msg_t **reply)
{
    if (lp_msg_cmd(*reply) != LP_CMD_END) {
        gw_req_answer_reply(req, reply);
        return;
    }
    size_t len = 0;
    const char *body = lp_msg_body(*reply, &len);
    json_t *result = json_loadb(body, len, 0, NULL);
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "result", result ? result : json_null());
    lp_msg_destroy(reply);
    s_answer_json(req, 200, o);
}

/* POST /health/test_connection: one cheap call with litellm_params as a model_list entry
 * would have them, before they go into the config. The params live only for that call. */
static void s_test_connection(gw_req_t *req)
{
    char err[LP_ERR_LEN];
    json_t *body = lp_json_parse(req->body.data ? req->body.data : "", req->body.len, err);
    const json_t *params = json_object_get(body, "litellm_params");
    const char *mode = lp_json_str(body, "mode");
    if (!json_is_object(params) || !lp_json_str(params, "model")) {
        json_decref(body);
        gw_req_fail(req, 400, NULL, "litellm_params",
                    "litellm_params is required: an object with at least model, as in "
                    "model_list");
        return;
    }
    if (mode && strcmp(mode, "chat") && strcmp(mode, "completion") && strcmp(mode, "embedding")) {
        json_decref(body);
        gw_req_fail(req, 400, NULL, "mode", "mode must be chat, completion or embedding");
        return;
    }
    json_t *meta = json_object();
    json_object_set_new(meta, "model", json_string("test-connection"));
    json_object_set_new(meta, "call_type", json_string(mode ? mode : "chat"));
    json_object_set_new(meta, "test", json_true());
    json_object_set_new(meta, "stream", json_false());
    json_decref(body);
    req->group = lp_strdup("test-connection");
    req->on_reply = s_on_tested;
    gw_forward(req, meta);
}

/* GET /audit/logs: admin actions, newest first (LiteLLM_AuditLog, through the logger). */
static void s_audit_logs(gw_req_t *req)
{
    gw_server_t *srv = req->srv;
    if (!srv->cfg->database_url) {
        gw_req_fail(req, 400, "database_not_configured", NULL,
                    "the audit log needs a database: set DATABASE_URL");
        return;
    }
    json_t *meta = json_object();
    json_object_set_new(meta, "kind", json_string("audit_list"));
    static const char *filters[] = {"object_id",  "action",     "table_name",
                                    "changed_by", "start_date", "end_date"};
    for (size_t i = 0; i < LP_ARRAY_LEN(filters); i++) {
        const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, filters[i]);
        if (!v || !*v)
            continue;
        long long y, mo, d;
        char rest;
        if (strstr(filters[i], "date") &&
            (sscanf(v, "%4lld-%2lld-%2lld%c", &y, &mo, &d, &rest) != 3 || mo < 1 || mo > 12 ||
             d < 1 || d > 31)) {
            json_decref(meta);
            gw_req_fail(req, 400, NULL, filters[i], "%s must be a date YYYY-MM-DD", filters[i]);
            return;
        }
        json_object_set_new(meta, filters[i], lp_json_text(v));
    }
    long long page = 1, size = 100;
    const char *p = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "page");
    const char *z = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "page_size");
    if ((p && lp_parse_ll(p, 1, 1000000, &page) < 0) || (z && lp_parse_ll(z, 1, 1000, &size) < 0)) {
        json_decref(meta);
        gw_req_fail(req, 400, NULL, NULL, "page must be >= 1 and page_size from 1 to 1000");
        return;
    }
    json_object_set_new(meta, "limit", json_integer(size));
    json_object_set_new(meta, "offset", json_integer((page - 1) * size));
    gw_send_job(req, LP_CMD_QUERY, meta, srv->logger, GW_QUERY_TIMEOUT_MS);
}

static const gw_route_t s_routes[] = {
    {"GET", "/health/liveliness", GW_ACCESS_PUBLIC, GW_CALL_NONE, s_liveliness},
    {"GET", "/health/liveness", GW_ACCESS_PUBLIC, GW_CALL_NONE, s_liveliness},
    {"GET", "/health/readiness", GW_ACCESS_PUBLIC, GW_CALL_NONE, s_readiness},
    {"GET", "/health", GW_ACCESS_ADMIN, GW_CALL_NONE, gw_health_start},
    {"POST", "/health/test_connection", GW_ACCESS_ADMIN, GW_CALL_NONE, s_test_connection},
    {"GET", "/spend/logs", GW_ACCESS_ADMIN, GW_CALL_NONE, s_spend_logs},
    {"GET", "/audit/logs", GW_ACCESS_ADMIN, GW_CALL_NONE, s_audit_logs},
    {"GET", "/metrics", GW_ACCESS_METRICS, GW_CALL_NONE, gw_metrics_serve},
    {"GET", "/models", GW_ACCESS_KEY, GW_CALL_NONE, s_models},
    {"GET", "/v1/models", GW_ACCESS_KEY, GW_CALL_NONE, s_models},
    {"POST", "/chat/completions", GW_ACCESS_KEY, GW_CALL_CHAT, s_model_call},
    {"POST", "/v1/chat/completions", GW_ACCESS_KEY, GW_CALL_CHAT, s_model_call},
    {"POST", "/completions", GW_ACCESS_KEY, GW_CALL_COMPLETION, s_model_call},
    {"POST", "/v1/completions", GW_ACCESS_KEY, GW_CALL_COMPLETION, s_model_call},
    {"POST", "/embeddings", GW_ACCESS_KEY, GW_CALL_EMBEDDING, s_model_call},
    {"POST", "/v1/embeddings", GW_ACCESS_KEY, GW_CALL_EMBEDDING, s_model_call},
    {"POST", "/v1/messages", GW_ACCESS_KEY, GW_CALL_MESSAGES, s_model_call},
    {"POST", "/v1/messages/count_tokens", GW_ACCESS_KEY, GW_CALL_COUNT_TOKENS, s_model_call},
    {"POST", "/key/generate", GW_ACCESS_ADMIN, GW_CALL_NONE, gw_key_generate},
    {"POST", "/key/update", GW_ACCESS_ADMIN, GW_CALL_NONE, gw_key_update},
    {"POST", "/key/delete", GW_ACCESS_ADMIN, GW_CALL_NONE, gw_key_delete},
    {"POST", "/key/block", GW_ACCESS_ADMIN, GW_CALL_NONE, gw_key_block},
    {"POST", "/key/unblock", GW_ACCESS_ADMIN, GW_CALL_NONE, gw_key_unblock},
    {"GET", "/key/info", GW_ACCESS_KEY, GW_CALL_NONE, gw_key_info},
    {"GET", "/key/list", GW_ACCESS_ADMIN, GW_CALL_NONE, gw_key_list},
};

const gw_route_t *gw_route_find(const char *method, const char *path, bool *known_path)
{
    *known_path = false;
    for (size_t i = 0; i < LP_ARRAY_LEN(s_routes); i++) {
        if (strcmp(s_routes[i].path, path) != 0)
            continue;
        *known_path = true;
        if (strcmp(s_routes[i].method, method) == 0)
            return &s_routes[i];
    }
    return NULL;
}
