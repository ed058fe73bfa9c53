#define LP_LOG_MODULE "gw_record"
#include "gw_record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "lp_json.h"
#include "lp_log.h"
#include "lp_time.h"

static const char *s_call_type(gw_call_t call)
{
    switch (call) {
    case GW_CALL_COMPLETION:
        return "atext_completion";
    case GW_CALL_EMBEDDING:
        return "aembedding";
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

json_t *gw_record_build(const gw_req_t *req, bool delivered)
{
    json_t *rec = json_object();
    const json_t *meta = req->reply ? lp_msg_meta(req->reply) : NULL;
    int64_t end_ns = req->answer_ns ? req->answer_ns : lp_mono_ns();
    int64_t duration_ns = end_ns - req->start_ns;
    json_object_set_new(rec, "request_id", json_string(req->idstr));
    json_object_set_new(rec, "call_type", json_string(s_call_type(req->call)));
    json_object_set_new(rec, "api_key", json_string(req->key_hash));
    json_object_set_new(rec, "model_group", req->group ? json_string(req->group) : json_null());
    s_copy(rec, "model", meta, "provider_model");
    s_copy(rec, "model_id", meta, "deployment");
    s_copy(rec, "custom_llm_provider", meta, "provider");
    s_copy(rec, "api_base", meta, "api_base");
    s_copy(rec, "worker", meta, "worker");
    json_object_set_new(rec, "user", req->user ? lp_json_text(req->user) : json_null());
    const json_t *usage = json_object_get(meta, "usage");
    json_object_set_new(rec, "prompt_tokens", json_integer(lp_json_int(usage, "prompt_tokens", 0)));
    json_object_set_new(rec, "completion_tokens",
                        json_integer(lp_json_int(usage, "completion_tokens", 0)));
    json_object_set_new(rec, "total_tokens", json_integer(lp_json_int(usage, "total_tokens", 0)));
    json_object_set_new(rec, "spend", json_real(lp_json_num(meta, "cost", 0)));
    s_time(rec, "startTime", req->start_wall_ns);
    s_time(rec, "endTime", req->start_wall_ns + duration_ns);
    long long ttfb_us = lp_json_int(meta, "ttfb_us", -1);
    long long upstream_us = lp_json_int(meta, "upstream_us", -1);
    if (req->stream && ttfb_us >= 0 && req->sent_ns)
        s_time(rec, "completionStartTime",
               req->start_wall_ns + (req->sent_ns - req->start_ns) + ttfb_us * 1000);
    else
        s_time(rec, "completionStartTime", req->start_wall_ns + duration_ns);
    bool ok = req->status >= 200 && req->status < 300 && delivered;
    json_object_set_new(rec, "status", json_string(ok ? "success" : "failure"));
    json_object_set_new(rec, "http_status", json_integer(req->status));
    s_copy(rec, "error_code", req->status >= 400 ? meta : NULL, "code");
    if (req->status >= 400 && !meta) {
        /* Refused by the gateway itself: the code is in the local error body. */
        json_t *body = req->local ? json_loadb(req->local, req->local_len, 0, NULL) : NULL;
        const char *code = lp_json_str(json_object_get(body, "error"), "code");
        json_object_set_new(rec, "error_code", code ? json_string(code) : json_null());
        json_decref(body);
    }
    json_object_set_new(rec, "attempts", json_integer(lp_json_int(meta, "attempts", 0)));
    json_object_set_new(rec, "retries", json_integer(lp_json_int(meta, "retries", 0)));
    json_object_set_new(rec, "duration_ms", json_real((double)duration_ns / 1e6));
    json_object_set_new(rec, "upstream_ms",
                        upstream_us >= 0 ? json_real((double)upstream_us / 1e3) : json_null());
    json_object_set_new(rec, "ttft_ms",
                        ttfb_us >= 0 ? json_real((double)ttfb_us / 1e3) : json_null());
    json_object_set_new(rec, "cache_hit", json_false());
    json_object_set_new(rec, "client_gone", json_boolean(!delivered));
    return rec;
}

void gw_record_send(gw_req_t *req, bool delivered)
{
    gw_server_t *srv = req->srv;
    json_t *rec = gw_record_build(req, delivered);
    size_t len = 0;
    char *text = lp_json_dump(rec, &len);
    json_decref(rec);
    lp_msg_t *m = lp_msg_new(LP_CMD_RECORD, req->id);
    lp_msg_give_body(m, text, len);
    if (lp_msg_send(&m, srv->logger) == 0) {
        srv->stats.records_sent++;
        return;
    }
    lp_msg_destroy(&m);
    /* Counted and reported, never silent; the logger link's queue holds LP_ZMQ_HWM records. */
    if (srv->stats.records_dropped++ % 1000 == 0)
        rlog_warn(req->idstr, "usage record dropped: logger link full (%s); %llu dropped so far",
                  zmq_strerror(errno), (unsigned long long)srv->stats.records_dropped);
}
