#define LP_LOG_MODULE "gw_record"
#include "gw_record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "gw_cache.h"
#include "gw_limits.h"
#include "gw_metrics.h"
#include "gw_outbox.h"
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

static void s_time(json_t *rec, const char *key, int64_t wall_ns)
{
    char buf[LP_ISO_LEN];
    lp_iso8601(wall_ns, buf, sizeof buf);
    json_object_set_new(rec, key, json_string(buf));
}

/* Copy a string member of the worker's meta into the record (null when absent). */
static void s_copy(json_t *rec, const char *key, const json_t *meta, const char *from)
{
    const char *v = lp_json_str(meta, from);
    json_object_set_new(rec, key, v ? lp_json_text(v) : json_null());
}

/* Record fields that name the deployment, and where the worker's meta has them. */
static const char *s_deployment_fields[][2] = {{"model", "provider_model"},
                                               {"model_id", "deployment"},
                                               {"custom_llm_provider", "provider"},
                                               {"api_base", "api_base"},
                                               {"worker", "worker"}};

void gw_record_apply(json_t *rec, const json_t *meta)
{
    /* meta NULL (answered by the gateway itself): zeros and nulls, never missing fields. */
    for (size_t i = 0; i < LP_ARRAY_LEN(s_deployment_fields); i++)
        s_copy(rec, s_deployment_fields[i][0], meta, s_deployment_fields[i][1]);
    const json_t *usage = json_object_get(meta, "usage");
    json_object_set_new(rec, "prompt_tokens", json_integer(lp_json_int(usage, "prompt_tokens", 0)));
    json_object_set_new(rec, "completion_tokens",
                        json_integer(lp_json_int(usage, "completion_tokens", 0)));
    json_object_set_new(rec, "total_tokens", json_integer(lp_json_int(usage, "total_tokens", 0)));
    json_object_set_new(rec, "usage_estimated",
                        json_boolean(lp_json_bool(meta, "usage_estimated", false)));
    json_object_set_new(rec, "spend", json_real(lp_json_num(meta, "cost", 0)));
    json_object_set_new(rec, "attempts", json_integer(lp_json_int(meta, "attempts", 0)));
    json_object_set_new(rec, "retries", json_integer(lp_json_int(meta, "retries", 0)));
    json_object_set_new(rec, "fallbacks", json_integer(lp_json_int(meta, "fallbacks", 0)));
    long long upstream_us = lp_json_int(meta, "upstream_us", -1);
    long long ttfb_us = lp_json_int(meta, "ttfb_us", -1);
    json_object_set_new(rec, "upstream_ms",
                        upstream_us >= 0 ? json_real((double)upstream_us / 1e3) : json_null());
    json_object_set_new(rec, "ttft_ms",
                        ttfb_us >= 0 ? json_real((double)ttfb_us / 1e3) : json_null());
    static const char *hops[][2] = {{"router_us", "router_ms"}, {"worker_us", "worker_ms"}};
    for (size_t i = 0; i < LP_ARRAY_LEN(hops); i++) {
        long long us = lp_json_int(meta, hops[i][0], -1);
        json_object_set_new(rec, hops[i][1], us >= 0 ? json_real((double)us / 1e3) : json_null());
    }
}

/* A stream whose worker died never got its usage: bill what the client saw, a token per
 * relayed event and the prompt as reserved, at the deployment's price, marked estimated. */
static void s_estimate_cut_stream(const gw_req_t *req, json_t *rec, const json_t *meta)
{
    if (!req->streaming || !req->out.events || json_object_get(meta, "usage"))
        return;
    long long prompt = req->prompt_guess, completion = (long long)req->out.events;
    json_object_set_new(rec, "prompt_tokens", json_integer(prompt));
    json_object_set_new(rec, "completion_tokens", json_integer(completion));
    json_object_set_new(rec, "total_tokens", json_integer(prompt + completion));
    json_object_set_new(rec, "usage_estimated", json_true());
    /* The router's error knows no deployment; the worker's HEAD named it. */
    const json_t *head = req->head ? lp_msg_meta(req->head) : NULL;
    for (size_t i = 0; i < LP_ARRAY_LEN(s_deployment_fields); i++)
        if (json_is_null(json_object_get(rec, s_deployment_fields[i][0])))
            s_copy(rec, s_deployment_fields[i][0], head, s_deployment_fields[i][1]);
    const char *id = lp_json_str(head, "deployment");
    const lp_deployment_t *d = id ? lp_cfg_deployment(req->srv->cfg, id) : NULL;
    bool known = false, first = false;
    if (d)
        json_object_set_new(
            rec, "spend",
            json_real(lp_price_cost(req->srv->prices, d, prompt, completion, &known, &first)));
}

json_t *gw_record_build(const gw_req_t *req, bool delivered)
{
    json_t *rec = json_object();
    /* The worker's last word (END/ERROR); for a stream, its HEAD until the END comes. */
    const json_t *meta = req->reply  ? lp_msg_meta(req->reply)
                         : req->head ? lp_msg_meta(req->head)
                                     : NULL;
    int64_t end_ns = lp_mono_ns();
    if (!req->streaming && req->answer_ns)
        end_ns = req->answer_ns;
    int64_t duration_ns = end_ns - req->start_ns;
    json_object_set_new(rec, "request_id", json_string(req->idstr));
    json_object_set_new(rec, "call_type", json_string(s_call_type(req->call)));
    json_object_set_new(rec, "api_key", json_string(req->key_hash));
    /* The group that served the request (a fallback's, when one answered). */
    const char *group = lp_json_str(meta, "group");
    group = group ? group : req->group;
    json_object_set_new(rec, "model_group", group ? json_string(group) : json_null());
    json_object_set_new(rec, "requested_group", req->group ? json_string(req->group) : json_null());
    json_object_set_new(rec, "user", req->user ? lp_json_text(req->user) : json_null());
    json_object_set_new(rec, "stream", json_boolean(req->stream));
    gw_record_apply(rec, meta);
    s_estimate_cut_stream(req, rec, meta);
    s_time(rec, "startTime", req->start_wall_ns);
    s_time(rec, "endTime", req->start_wall_ns + duration_ns);
    long long ttfb_us = lp_json_int(meta, "ttfb_us", -1);
    if (req->stream && ttfb_us >= 0 && req->sent_ns)
        s_time(rec, "completionStartTime",
               req->start_wall_ns + (req->sent_ns - req->start_ns) + ttfb_us * 1000);
    else
        s_time(rec, "completionStartTime", req->start_wall_ns + duration_ns);
    int status = req->status;
    if (req->reply && req->streaming)
        status = (int)lp_msg_meta_int(req->reply, "status", status);
    if (req->client_gone)
        status = 499;
    bool ok = status >= 200 && status < 300 && delivered;
    json_object_set_new(rec, "status", json_string(ok ? "success" : "failure"));
    json_object_set_new(rec, "http_status", json_integer(status));
    s_copy(rec, "error_code", status >= 400 ? meta : NULL, "code");
    if (req->client_gone) {
        json_object_set_new(rec, "error_code", json_string("client_closed_request"));
    } else if (status >= 400 && !req->reply && req->local) {
        /* Refused by the gateway itself: the code is in the local error body. */
        json_t *body = json_loadb(req->local, req->local_len, 0, NULL);
        const char *code = lp_json_str(json_object_get(body, "error"), "code");
        json_object_set_new(rec, "error_code", code ? json_string(code) : json_null());
        json_decref(body);
    }
    json_object_set_new(rec, "duration_ms", json_real((double)duration_ns / 1e6));
    /* The gateway's own share: from the first byte until the request left for the router. */
    if (req->sent_ns && req->answer_ns >= req->sent_ns) {
        int64_t own = (req->sent_ns - req->start_ns);
        json_object_set_new(rec, "gateway_ms", json_real((double)own / 1e6));
    }
    bool hit = gw_cache_hit(req);
    json_object_set_new(rec, "cache_hit", json_boolean(hit));
    if (hit) {
        json_object_set_new(rec, "cache_key", json_string(gw_cache_key(req)));
        json_object_set_new(rec, "spend", json_real(0));
    }
    json_object_set_new(rec, "client_gone", json_boolean(req->client_gone || !delivered));
    return rec;
}

/* The record is final: the key's reservation becomes its real usage, and the record goes
 * to the logger. */
static void s_send(gw_server_t *srv, const uint8_t *id, json_t *rec)
{
    gw_limits_settle(srv->limits, id, lp_json_int(rec, "total_tokens", 0),
                     lp_json_num(rec, "spend", 0));
    size_t len = 0;
    char *packed = lp_meta_encode(rec, &len); /* the logger reads it as it reads a meta */
    gw_outbox_send(srv->outbox, id, packed, len);
}

/* ---- pending records ---- */

typedef struct {
    gw_server_t *srv;
    uint8_t id[LP_REQ_ID_LEN];
    json_t *rec;     /* set when the request completed */
    lp_msg_t *final; /* set when the worker's last word came */
    lp_timer_t timer;
} s_pending_t;

static void s_pending_close(s_pending_t *p)
{
    if (p->rec) {
        if (p->final)
            gw_record_apply(p->rec, lp_msg_meta(p->final));
        s_send(p->srv, p->id, p->rec);
        json_decref(p->rec);
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
    json_t *rec = gw_record_build(req, delivered);
    gw_metrics_observe(srv->metrics, rec);
    s_pending_t *p = lp_map_get(srv->pending, req->id, LP_REQ_ID_LEN);
    if (p && !p->rec) {
        p->rec = rec;
        if (p->final)
            s_pending_close(p);
        return;
    }
    s_send(srv, req->id, rec);
    json_decref(rec);
}

void gw_record_once(gw_req_t *req, bool delivered)
{
    if (req->recorded || req->call == GW_CALL_NONE || req->call == GW_CALL_COUNT_TOKENS ||
        !req->authed)
        return;
    req->recorded = true;
    s_record_send(req, delivered);
}
