#define LP_LOG_MODULE "gw_record"
#include "gw_record.h"

#include <stdlib.h>
#include <string.h>

#include "gw_cache.h"
#include "gw_limits.h"
#include "gw_metrics.h"
#include "gw_outbox.h"
#include "lp_crypto.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_msg.h"
#include "lp_price.h"
#include "lp_time.h"

static const char *s_call_type(gw_call_t call)
{
    switch (call) {
    case GW_CALL_COMPLETION:
        return "atext_completion";
    case GW_CALL_EMBEDDING:
        return "aembedding";
    case GW_CALL_MESSAGES:
        return "anthropic_messages";
    default:
        return "acompletion";
    }
}

/* Record fields that name the deployment, and where the worker's meta has them. */
static const char *s_deployment_fields[GW_REC_DEPLOYMENT_FIELDS][2] = {
    [GW_REC_MODEL] = {"model", "provider_model"},
    [GW_REC_MODEL_ID] = {"model_id", "deployment"},
    [GW_REC_PROVIDER] = {"custom_llm_provider", "provider"},
    [GW_REC_API_BASE] = {"api_base", "api_base"},
    [GW_REC_WORKER] = {"worker", "worker"}};

/* Replace *field with a copy of a meta's string member (NULL when absent). */
static void s_copy(char **field, lp_msg_t *msg, const char *from)
{
    const char *v = lp_msg_meta_str(msg, from);
    free(*field);
    *field = v ? lp_strdup(v) : NULL;
}

void gw_record_apply(gw_record_t *rec, lp_msg_t *msg)
{
    /* msg NULL (answered by the gateway itself): zeros and nulls, never missing fields. */
    for (size_t i = 0; i < LP_ARRAY_LEN(s_deployment_fields); i++)
        s_copy(&rec->deployment[i], msg, s_deployment_fields[i][1]);
    rec->prompt_tokens = lp_msg_meta_sub_int(msg, "usage", "prompt_tokens", 0);
    rec->completion_tokens = lp_msg_meta_sub_int(msg, "usage", "completion_tokens", 0);
    rec->total_tokens = lp_msg_meta_sub_int(msg, "usage", "total_tokens", 0);
    rec->usage_estimated = lp_msg_meta_bool(msg, "usage_estimated", false);
    rec->spend = lp_msg_meta_num(msg, "cost", 0);
    rec->attempts = lp_msg_meta_int(msg, "attempts", 0);
    rec->retries = lp_msg_meta_int(msg, "retries", 0);
    rec->fallbacks = lp_msg_meta_int(msg, "fallbacks", 0);
    rec->upstream_us = lp_msg_meta_int(msg, "upstream_us", -1);
    rec->ttft_us = lp_msg_meta_int(msg, "ttfb_us", -1);
    rec->router_us = lp_msg_meta_int(msg, "router_us", -1);
    rec->worker_us = lp_msg_meta_int(msg, "worker_us", -1);
}

/* A stream whose worker died never got its usage: bill what the client saw, a token per
 * relayed event and the prompt as reserved, at the deployment's price, marked estimated. */
static void s_estimate_cut_stream(const gw_req_t *req, gw_record_t *rec, lp_msg_t *msg)
{
    if (!req->streaming || !req->out.events || lp_msg_meta_has(msg, "usage"))
        return;
    long long prompt = req->prompt_guess, completion = (long long)req->out.events;
    rec->prompt_tokens = prompt;
    rec->completion_tokens = completion;
    rec->total_tokens = prompt + completion;
    rec->usage_estimated = true;
    /* The router's error knows no deployment; the worker's HEAD named it. */
    for (size_t i = 0; i < LP_ARRAY_LEN(s_deployment_fields); i++)
        if (!rec->deployment[i])
            s_copy(&rec->deployment[i], req->head, s_deployment_fields[i][1]);
    const char *id = lp_msg_meta_str(req->head, "deployment");
    const lp_deployment_t *d = id ? lp_cfg_deployment(req->srv->cfg, id) : NULL;
    bool known = false, first = false;
    if (d)
        rec->spend = lp_price_cost(req->srv->prices, d, prompt, completion, &known, &first);
}

/* The error code of an answer the gateway made itself: in its error body. */
static char *s_local_code(const gw_req_t *req)
{
    json_t *body = json_loadb(req->local, req->local_len, 0, NULL);
    const char *code = lp_json_str(json_object_get(body, "error"), "code");
    char *copy = code ? lp_strdup(code) : NULL;
    json_decref(body);
    return copy;
}

gw_record_t *gw_record_new(const gw_req_t *req, bool delivered)
{
    gw_record_t *rec = lp_calloc(1, sizeof *rec);
    /* The worker's last word (END/ERROR); for a stream, its HEAD until the END comes. */
    lp_msg_t *from = req->reply ? req->reply : req->head;
    int64_t end_ns = lp_mono_ns();
    if (!req->streaming && req->answer_ns)
        end_ns = req->answer_ns;
    rec->duration_ns = end_ns - req->start_ns;
    memcpy(rec->request_id, req->idstr, sizeof rec->request_id);
    rec->call_type = s_call_type(req->call);
    memcpy(rec->api_key, req->key_hash, sizeof rec->api_key);
    /* The group that served the request (a fallback's, when one answered). */
    const char *group = lp_msg_meta_str(from, "group");
    group = group ? group : req->group;
    rec->model_group = group ? lp_strdup(group) : NULL;
    rec->requested_group = req->group ? lp_strdup(req->group) : NULL;
    rec->user = req->user ? lp_strdup(req->user) : NULL;
    rec->stream = req->stream;
    gw_record_apply(rec, from);
    s_estimate_cut_stream(req, rec, from);
    rec->start_ns = req->start_wall_ns;
    rec->end_ns = req->start_wall_ns + rec->duration_ns;
    if (req->stream && rec->ttft_us >= 0 && req->sent_ns)
        rec->completion_ns =
            req->start_wall_ns + (req->sent_ns - req->start_ns) + rec->ttft_us * 1000;
    else
        rec->completion_ns = rec->end_ns;
    int status = req->status;
    if (req->reply && req->streaming)
        status = (int)lp_msg_meta_int(req->reply, "status", status);
    if (req->client_gone)
        status = 499;
    rec->success = status >= 200 && status < 300 && delivered;
    rec->http_status = status;
    if (req->client_gone)
        rec->error_code = lp_strdup("client_closed_request");
    else if (status >= 400 && !req->reply && req->local)
        rec->error_code = s_local_code(req); /* refused by the gateway itself */
    else if (status >= 400)
        s_copy(&rec->error_code, from, "code");
    /* The gateway's own share: from the first byte until the request left for the router. */
    rec->gateway_ns =
        req->sent_ns && req->answer_ns >= req->sent_ns ? req->sent_ns - req->start_ns : -1;
    rec->cache_hit = gw_cache_hit(req);
    if (rec->cache_hit) {
        rec->cache_key = lp_strdup(gw_cache_key(req));
        rec->spend = 0;
    }
    rec->client_gone = req->client_gone || !delivered;
    return rec;
}

void gw_record_destroy(gw_record_t **self_p)
{
    gw_record_t *rec = *self_p;
    if (!rec)
        return;
    free(rec->model_group);
    free(rec->requested_group);
    free(rec->user);
    for (size_t i = 0; i < LP_ARRAY_LEN(rec->deployment); i++)
        free(rec->deployment[i]);
    free(rec->error_code);
    free(rec->cache_key);
    free(rec);
    *self_p = NULL;
}

static void s_time(lp_mapw_t *w, const char *key, int64_t wall_ns)
{
    char buf[LP_ISO_LEN];
    lp_iso8601(wall_ns, buf, sizeof buf);
    lp_mapw_str(w, key, buf);
}

/* Milliseconds from microseconds, nil when unknown. */
static void s_ms(lp_mapw_t *w, const char *key, long long us)
{
    if (us >= 0)
        lp_mapw_real(w, key, (double)us / 1e3);
    else
        lp_mapw_nil(w, key);
}

/* The record as the logger reads it (PROTOCOL.md, RECORD). */
static char *s_pack(const gw_record_t *rec, size_t *len)
{
    lp_mapw_t w = {0};
    lp_mapw_str(&w, "request_id", rec->request_id);
    lp_mapw_str(&w, "call_type", rec->call_type);
    lp_mapw_str(&w, "api_key", rec->api_key);
    lp_mapw_str(&w, "model_group", rec->model_group);
    lp_mapw_str(&w, "requested_group", rec->requested_group);
    lp_mapw_str(&w, "user", rec->user);
    lp_mapw_bool(&w, "stream", rec->stream);
    for (size_t i = 0; i < LP_ARRAY_LEN(s_deployment_fields); i++)
        lp_mapw_str(&w, s_deployment_fields[i][0], rec->deployment[i]);
    lp_mapw_int(&w, "prompt_tokens", rec->prompt_tokens);
    lp_mapw_int(&w, "completion_tokens", rec->completion_tokens);
    lp_mapw_int(&w, "total_tokens", rec->total_tokens);
    lp_mapw_bool(&w, "usage_estimated", rec->usage_estimated);
    lp_mapw_real(&w, "spend", rec->spend);
    lp_mapw_int(&w, "attempts", rec->attempts);
    lp_mapw_int(&w, "retries", rec->retries);
    lp_mapw_int(&w, "fallbacks", rec->fallbacks);
    s_ms(&w, "upstream_ms", rec->upstream_us);
    s_ms(&w, "ttft_ms", rec->ttft_us);
    s_ms(&w, "router_ms", rec->router_us);
    s_ms(&w, "worker_ms", rec->worker_us);
    s_time(&w, "startTime", rec->start_ns);
    s_time(&w, "endTime", rec->end_ns);
    s_time(&w, "completionStartTime", rec->completion_ns);
    lp_mapw_str(&w, "status", rec->success ? "success" : "failure");
    lp_mapw_int(&w, "http_status", rec->http_status);
    lp_mapw_str(&w, "error_code", rec->error_code);
    lp_mapw_real(&w, "duration_ms", (double)rec->duration_ns / 1e6);
    if (rec->gateway_ns >= 0)
        lp_mapw_real(&w, "gateway_ms", (double)rec->gateway_ns / 1e6);
    lp_mapw_bool(&w, "cache_hit", rec->cache_hit);
    if (rec->cache_key)
        lp_mapw_str(&w, "cache_key", rec->cache_key);
    lp_mapw_bool(&w, "client_gone", rec->client_gone);
    return lp_mapw_finish(&w, len);
}

/* The record is final: the key's reservation becomes its real usage, and the record goes
 * to the logger. */
static void s_send(gw_server_t *srv, const uint8_t *id, const gw_record_t *rec)
{
    gw_limits_settle(srv->limits, id, rec->total_tokens, rec->spend);
    size_t len = 0;
    char *packed = s_pack(rec, &len);
    gw_outbox_send(srv->outbox, id, packed, len);
}

/* ---- pending records ---- */

typedef struct {
    gw_server_t *srv;
    uint8_t id[LP_REQ_ID_LEN];
    gw_record_t *rec; /* set when the request completed */
    lp_msg_t *final;  /* set when the worker's last word came */
    lp_timer_t timer;
} s_pending_t;

static void s_pending_close(s_pending_t *p)
{
    if (p->rec) {
        if (p->final)
            gw_record_apply(p->rec, p->final);
        s_send(p->srv, p->id, p->rec);
        gw_record_destroy(&p->rec);
    }
    lp_timer_stop(p->srv->loop, &p->timer);
    lp_map_remove(p->srv->pending, p->id, LP_REQ_ID_LEN);
    lp_msg_destroy(&p->final);
    free(p);
}

static int s_on_pending_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    s_pending_close(arg);
    return 0;
}

void gw_pending_open(gw_server_t *srv, const uint8_t *id)
{
    if (lp_map_get(srv->pending, id, LP_REQ_ID_LEN))
        return;
    s_pending_t *p = lp_calloc(1, sizeof *p);
    p->srv = srv;
    memcpy(p->id, id, LP_REQ_ID_LEN);
    lp_map_put(srv->pending, p->id, LP_REQ_ID_LEN, p);
    lp_timer_start(srv->loop, &p->timer, GW_PENDING_MS, s_on_pending_timeout, p);
}

bool gw_pending_final(gw_server_t *srv, lp_msg_t **msg)
{
    const uint8_t *id = lp_msg_req_id(*msg);
    s_pending_t *p = id ? lp_map_get(srv->pending, id, LP_REQ_ID_LEN) : NULL;
    if (!p)
        return false;
    lp_msg_destroy(&p->final);
    p->final = *msg;
    *msg = NULL;
    if (p->rec)
        s_pending_close(p);
    return true;
}

void gw_pending_flush(gw_server_t *srv)
{
    size_t n = 0;
    void **all = lp_map_values(srv->pending, NULL, NULL, &n);
    for (size_t i = 0; i < n; i++)
        s_pending_close(all[i]);
    free(all);
}

static void s_record_send(gw_req_t *req, bool delivered)
{
    gw_server_t *srv = req->srv;
    gw_record_t *rec = gw_record_new(req, delivered);
    gw_metrics_observe(srv->metrics, rec);
    s_pending_t *p = lp_map_get(srv->pending, req->id, LP_REQ_ID_LEN);
    if (p && !p->rec) {
        p->rec = rec;
        if (p->final)
            s_pending_close(p);
        return;
    }
    s_send(srv, req->id, rec);
    gw_record_destroy(&rec);
}

void gw_record_once(gw_req_t *req, bool delivered)
{
    if (req->recorded || req->call == GW_CALL_NONE || req->call == GW_CALL_COUNT_TOKENS ||
        !req->authed)
        return;
    req->recorded = true;
    s_record_send(req, delivered);
}
