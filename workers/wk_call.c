#define LP_LOG_MODULE "wk_call"
#include "wk_call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "lp_clientside.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_price.h"
#include "lp_time.h"
#include "wk_adapter.h"
#include "wk_messages.h"
#include "wk_mock.h"
#include "wk_server.h"

/* Connect timeout cap: a provider that does not accept within this is treated as down. */
#define WK_CONNECT_TIMEOUT_MS 10000

static wk_server_t *s_srv(const wk_job_t *job)
{
    return job->owner;
}

void wk_call_free(wk_job_t *job)
{
    wk_server_t *srv = s_srv(job);
    lp_timer_stop(wk_server_loop(srv), &job->stream_timer);
    wk_http_release(wk_server_http(srv), &job->easy);
    wk_server_untrack(srv, job);
    curl_slist_free_all(job->headers);
    free(job->url);
    free(job->body);
    free(job->group);
    lp_buf_free(&job->model_member);
    lp_buf_free(&job->resp);
    lp_buf_free(&job->out);
    lp_sse_free(&job->sse);
    wk_messages_stream_destroy(&job->mstream);
    free(job->anthropic_version);
    free(job->anthropic_beta);
    json_decref(job->req);
    lp_clientside_deployment_free(&job->own);
    lp_cfg_destroy(&job->cfg);
    free(job);
}

/* What every HEAD, END and ERROR says about where the call went and how long it took. */
static void s_describe(wk_job_t *job, lp_mapw_t *w)
{
    const lp_deployment_t *d = job->d;
    if (!d)
        return;
    lp_mapw_str(w, "deployment", d->id);
    lp_mapw_str(w, "provider", d->provider->name);
    lp_mapw_str(w, "provider_model", d->provider_model);
    lp_mapw_str(w, "worker", wk_server_name(s_srv(job)));
    if (job->own) /* the client's upstream: its outcome says nothing of the deployment */
        lp_mapw_bool(w, "clientside", true);
    if (!job->mocked)
        lp_mapw_str(w, "api_base", d->public_base ? d->public_base : "");
    int64_t now = lp_mono_ns();
    int64_t upstream_us = job->start_ns ? (now - job->start_ns) / 1000 : 0;
    if (job->start_ns) {
        lp_mapw_int(w, "upstream_us", upstream_us);
        if (job->first_byte_ns)
            lp_mapw_int(w, "ttfb_us", (job->first_byte_ns - job->start_ns) / 1000);
    }
    /* The worker's own share: the job's time here less the provider's. */
    if (job->recv_ns)
        lp_mapw_int(w, "worker_us", LP_MAX((now - job->recv_ns) / 1000 - upstream_us, 0));
}

/* Usage and its cost. */
static void s_usage_meta(const wk_job_t *job, lp_mapw_t *w, long long p, long long c, long long t,
                         bool estimated)
{
    lp_mapw_map(w, "usage", 3);
    lp_mapw_int(w, "prompt_tokens", p);
    lp_mapw_int(w, "completion_tokens", c);
    lp_mapw_int(w, "total_tokens", t);
    lp_mapw_bool(w, "usage_estimated", estimated);
    bool known = false, first_miss = false;
    double cost = lp_price_cost(wk_server_prices(s_srv(job)), job->d, p, c, &known, &first_miss);
    if (first_miss && !job->mocked)
        log_warn("no price for %s/%s (deployment %s of '%s'): its calls are logged at zero "
                 "cost; add it to the price table or set input_cost_per_token",
                 job->d->provider->name, job->d->provider_model, job->d->id, job->d->model_name);
    lp_mapw_real(w, "cost", cost);
}

/* Stream usage (the provider's or estimated) with its cost. */
static void s_stream_usage_meta(const wk_job_t *job, lp_mapw_t *w)
{
    long long p, c, t;
    wk_stream_usage(job, &p, &c, &t);
    s_usage_meta(job, w, p, c, t, !job->have_usage);
}

/* ERROR for a job that sent nothing to the client yet (the router may retry it). */
static void s_reply_fail(wk_job_t *job, const wk_fail_t *fail)
{
    rlog_info(job->idstr, "attempt %d failed: %d %s", job->attempt, fail->status, fail->message);
    lp_msg_t *m = lp_msg_new(LP_CMD_ERROR, job->id);
    size_t len = 0;
    char *body = lp_error_body(fail->status, NULL, fail->code, NULL, fail->message, &len);
    lp_msg_give_body(m, body, len);
    lp_mapw_t w = {0};
    lp_mapw_int(&w, "status", fail->status);
    if (fail->code)
        lp_mapw_str(&w, "code", fail->code);
    /* A client's own upstream is not retried elsewhere: it chose it. */
    lp_mapw_bool(&w, "retryable", fail->retryable && !job->own);
    if (fail->retry_after_ms >= 0)
        lp_mapw_int(&w, "retry_after_ms", fail->retry_after_ms);
    if (job->status)
        lp_mapw_int(&w, "upstream_status", job->status);
    if (job->head_sent)
        s_stream_usage_meta(job, &w);
    s_describe(job, &w);
    lp_msg_set_meta(m, &w);
    wk_server_send(s_srv(job), &m, job->idstr);
}

static void s_reply_result(wk_job_t *job, wk_result_t *res)
{
    if (job->messages && !job->passthrough && !job->count_tokens) {
        if (!res->response) { /* the adapter's bytes: read them to translate them */
            char err[LP_ERR_LEN];
            res->response = lp_json_parse(res->body.data, res->body.len, err);
            lp_buf_free(&res->body);
            if (!res->response) {
                wk_fail_t fail = {.retry_after_ms = -1};
                wk_fail(&fail, 502, "invalid_upstream_response", true,
                        "%s returned a completion that cannot be read: %s", job->d->provider->name,
                        err);
                s_reply_fail(job, &fail);
                return;
            }
        }
        json_t *msg = wk_messages_from_chat(res->response);
        json_decref(res->response);
        res->response = msg;
    }
    lp_msg_t *m = lp_msg_new(LP_CMD_END, job->id);
    lp_mapw_t w = {0};
    lp_mapw_int(&w, "status", 200);
    s_usage_meta(job, &w, res->prompt_tokens, res->completion_tokens, res->total_tokens, false);
    s_describe(job, &w);
    lp_msg_set_meta(m, &w);
    size_t len = 0;
    char *body = res->response ? lp_json_dump(res->response, &len) : lp_buf_steal(&res->body, &len);
    lp_msg_give_body(m, body, len);
    json_decref(res->response);
    res->response = NULL;
    rlog_debug(job->idstr, "done: %lld+%lld tokens", res->prompt_tokens, res->completion_tokens);
    wk_server_send(s_srv(job), &m, job->idstr);
}

/* ---- streams ---- */

/* The stream's HEAD, carrying the first bytes for the client when there are some (one
 * message less on the way to the first token). */
static void s_send_head(wk_job_t *job, lp_buf_t *first)
{
    lp_msg_t *m = lp_msg_new(LP_CMD_HEAD, job->id);
    lp_mapw_t w = {0};
    lp_mapw_int(&w, "status", 200);
    s_describe(job, &w);
    lp_msg_set_meta(m, &w);
    if (first && first->len) {
        size_t len = 0;
        char *bytes = lp_buf_steal(first, &len);
        lp_msg_give_body(m, bytes, len);
        job->unacked += len;
    }
    wk_server_send(s_srv(job), &m, job->idstr);
    job->head_sent = true;
}

static int s_on_stream_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg);

/* (Re)arm the time allowed until the next provider byte. */
static void s_stream_timer(wk_job_t *job)
{
    if (job->stream_timeout_ms > 0)
        lp_timer_start(wk_server_loop(s_srv(job)), &job->stream_timer, job->stream_timeout_ms,
                       s_on_stream_timeout, job);
}

/* A /v1/messages stream to a non-Anthropic provider: the chunks the adapter produced are
 * re-told as Anthropic events. */
static void s_translate(wk_job_t *job)
{
    if (!job->messages || job->passthrough || job->out.len == 0)
        return;
    lp_buf_t events = {0};
    wk_messages_stream(&job->mstream, &job->out, &events);
    lp_buf_free(&job->out);
    job->out = events;
}

/* Send what the adapter produced: in the HEAD the first time, then as one CHUNK. */
static void s_flush(wk_job_t *job)
{
    s_translate(job);
    if (job->out.len == 0)
        return;
    if (!job->head_sent) {
        s_send_head(job, &job->out);
        return;
    }
    lp_msg_t *m = lp_msg_new(LP_CMD_CHUNK, job->id);
    size_t len = 0;
    char *bytes = lp_buf_steal(&job->out, &len);
    lp_msg_give_body(m, bytes, len);
    job->unacked += len;
    wk_server_send(s_srv(job), &m, job->idstr);
}

/* The stream ends badly. Before the HEAD it is an ordinary (maybe retryable) ERROR; after
 * it the client's stream ends with an error event and no terminator, in an END that carries
 * the usage so far. */
static void s_stream_fail(wk_job_t *job, const wk_fail_t *fail)
{
    if (!job->head_sent) {
        job->out.len = 0;
        s_reply_fail(job, fail);
        return;
    }
    rlog_warn(job->idstr, "stream broke after the first byte: %d %s", fail->status, fail->message);
    s_translate(job);
    if (job->messages) {
        wk_messages_error_event(&job->out, fail->status, fail->message);
    } else {
        size_t elen = 0;
        char *err = lp_error_body(fail->status, NULL, fail->code, NULL, fail->message, &elen);
        lp_buf_puts(&job->out, "data: ");
        lp_buf_append(&job->out, err, elen);
        lp_buf_puts(&job->out, "\n\n");
        free(err);
    }
    lp_msg_t *m = lp_msg_new(LP_CMD_END, job->id);
    lp_mapw_t w = {0};
    lp_mapw_int(&w, "status", fail->status);
    char code[16];
    snprintf(code, sizeof code, "%d", fail->status);
    lp_mapw_str(&w, "code", fail->code ? fail->code : code);
    lp_mapw_bool(&w, "stream_error", true);
    s_stream_usage_meta(job, &w);
    s_describe(job, &w);
    lp_msg_set_meta(m, &w);
    size_t len = 0;
    char *bytes = lp_buf_steal(&job->out, &len);
    lp_msg_give_body(m, bytes, len);
    wk_server_send(s_srv(job), &m, job->idstr);
}

static void s_stream_ok(wk_job_t *job)
{
    s_translate(job);
    if (!job->head_sent)
        s_send_head(job, NULL);
    lp_msg_t *m = lp_msg_new(LP_CMD_END, job->id);
    lp_mapw_t w = {0};
    lp_mapw_int(&w, "status", 200);
    s_stream_usage_meta(job, &w);
    s_describe(job, &w);
    lp_msg_set_meta(m, &w);
    size_t len = 0;
    char *bytes = lp_buf_steal(&job->out, &len);
    lp_msg_give_body(m, bytes, len);
    wk_server_send(s_srv(job), &m, job->idstr);
}

/* Remember why the stream broke; the transfer is aborted and wk_call_done reports it. */
static void s_mark_failed(wk_job_t *job, const wk_fail_t *fail)
{
    if (job->failed)
        return;
    job->failed = true;
    job->stream_fail_status = fail->status;
    job->stream_fail_code = fail->code;
    job->stream_fail_retryable = fail->retryable;
    lp_strlcpy(job->stream_fail_msg, fail->message, sizeof job->stream_fail_msg);
}

typedef struct {
    wk_job_t *job;
    const wk_adapter_t *adapter;
    wk_fail_t *fail;
} s_event_ctx_t;

static int s_on_event(const char *event, const char *data, size_t len, void *arg)
{
    s_event_ctx_t *ctx = arg;
    return ctx->adapter->stream_event(ctx->job, event, data, len, &ctx->job->out, ctx->fail);
}

/* Provider stream bytes: parsed into events, re-framed, sent on. Past the credit window the
 * transfer pauses (curl keeps the bytes and offers them again on resume). */
static size_t s_stream_body(wk_job_t *job, char *data, size_t n)
{
    if (job->unacked >= WK_STREAM_WINDOW) {
        /* The client is behind, not the provider: stream_timeout waits while paused. */
        job->paused = true;
        lp_timer_stop(wk_server_loop(s_srv(job)), &job->stream_timer);
        return CURL_WRITEFUNC_PAUSE;
    }
    const wk_adapter_t *adapter = wk_adapter_for(job->d->provider->wire);
    wk_fail_t fail = {.retry_after_ms = -1};
    s_event_ctx_t ctx = {job, adapter, &fail};
    if (lp_sse_feed(&job->sse, data, n, s_on_event, &ctx) < 0) {
        if (!fail.status)
            wk_fail(&fail, 502, "upstream_stream_too_large", false,
                    "%s sent a stream event larger than %d MiB", job->d->provider->name,
                    LP_SSE_MAX_EVENT >> 20);
        s_flush(job);
        s_mark_failed(job, &fail);
        return 0; /* abort the transfer */
    }
    s_flush(job);
    s_stream_timer(job);
    return n;
}

/* ---- libcurl callbacks ---- */

static size_t s_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    wk_job_t *job = arg;
    size_t n = size * nmemb;
    if (!job->first_byte_ns)
        job->first_byte_ns = lp_mono_ns();
    if (job->stream) {
        if (!job->status)
            curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &job->status);
        if (job->status >= 200 && job->status < 300)
            return s_stream_body(job, data, n);
    }
    if (job->resp.len + n > WK_MAX_RESPONSE) {
        job->too_big = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    lp_buf_append(&job->resp, data, n);
    return n;
}

/* Keep the provider's retry-after (seconds, or OpenAI's retry-after-ms). */
static size_t s_on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    wk_job_t *job = arg;
    size_t n = size * nmemb;
    static const char ra[] = "retry-after:", ram[] = "retry-after-ms:";
    bool is_ms = n > sizeof ram - 1 && strncasecmp(data, ram, sizeof ram - 1) == 0;
    bool is_s = !is_ms && n > sizeof ra - 1 && strncasecmp(data, ra, sizeof ra - 1) == 0;
    if (is_ms || is_s) {
        char value[32];
        size_t skip = is_ms ? sizeof ram - 1 : sizeof ra - 1;
        size_t len = LP_MIN(n - skip, sizeof value - 1);
        memcpy(value, data + skip, len);
        value[len] = '\0';
        char *end = NULL;
        double v = strtod(value, &end);
        if (!is_ms && end == value) {
            /* retry-after may also be an HTTP date. */
            time_t when = curl_getdate(value, NULL);
            v = when > 0 ? (double)(when - time(NULL)) : 0;
        }
        if (v > 0 && v < 86400 * 1000.0)
            job->retry_after_ms = (long long)(is_ms ? v : v * 1000.0);
    }
    return n;
}

static void s_transport_fail(wk_job_t *job, CURLcode result, wk_fail_t *fail)
{
    const char *prov = job->d->provider->name;
    if (job->blocked && result == CURLE_COULDNT_CONNECT) {
        wk_fail(fail, 400, "parameter_not_allowed", false,
                "api_base resolves to a loopback, link-local, multicast or unspecified address: "
                "the proxy does not call it for a client");
    } else if (job->too_big) {
        wk_fail(fail, 502, "upstream_response_too_large", false,
                "%s answered with more than %d MiB", prov, WK_MAX_RESPONSE >> 20);
    } else if (result == CURLE_OPERATION_TIMEDOUT) {
        wk_fail(fail, 408, "timeout", true, "%s did not answer within %lld ms", prov,
                job->timeout_ms);
    } else if (result == CURLE_COULDNT_CONNECT || result == CURLE_COULDNT_RESOLVE_HOST) {
        wk_fail(fail, 502, "upstream_unreachable", true, "cannot connect to %s: %s", prov,
                curl_easy_strerror(result));
    } else {
        wk_fail(fail, 502, "upstream_error", true, "call to %s failed: %s", prov,
                curl_easy_strerror(result));
    }
}

static void s_stream_done(wk_job_t *job, CURLcode result, const wk_adapter_t *adapter)
{
    wk_fail_t fail = {.retry_after_ms = -1};
    if (job->failed) {
        wk_fail(&fail, job->stream_fail_status, job->stream_fail_code, job->stream_fail_retryable,
                "%s", job->stream_fail_msg);
        s_stream_fail(job, &fail);
    } else if (result != CURLE_OK) {
        s_transport_fail(job, result, &fail);
        s_stream_fail(job, &fail);
    } else if (job->status < 200 || job->status >= 300) {
        adapter->error(job, &fail);
        fail.retry_after_ms = job->retry_after_ms;
        s_stream_fail(job, &fail);
    } else if (adapter->stream_end(job, &job->out, &fail) < 0) {
        s_stream_fail(job, &fail);
    } else {
        s_stream_ok(job);
    }
}

void wk_call_done(wk_job_t *job, CURLcode result)
{
    const wk_adapter_t *adapter = wk_adapter_for(job->d->provider->wire);
    curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &job->status);
    if (job->stream) {
        s_stream_done(job, result, adapter);
        wk_call_free(job);
        return;
    }
    wk_fail_t fail = {.retry_after_ms = -1};
    wk_result_t res = {0};
    if (result != CURLE_OK) {
        s_transport_fail(job, result, &fail);
        s_reply_fail(job, &fail);
    } else if (job->status >= 400 || job->status < 200) {
        adapter->error(job, &fail);
        fail.retry_after_ms = job->retry_after_ms;
        s_reply_fail(job, &fail);
    } else if (adapter->respond(job, &res, &fail) < 0) {
        s_reply_fail(job, &fail);
    } else {
        s_reply_result(job, &res);
    }
    wk_call_free(job);
}

static int s_on_stream_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    wk_job_t *job = arg;
    wk_fail_t fail = {.retry_after_ms = -1};
    wk_fail(&fail, 408, "stream_timeout", !job->head_sent,
            "%s sent nothing for %lld ms (stream_timeout)", job->d->provider->name,
            job->stream_timeout_ms);
    s_stream_fail(job, &fail);
    wk_call_free(job); /* removing the handle closes the provider connection */
    return 0;
}

/* ---- start ---- */

static wk_call_t s_call_type(wk_job_t *job, const char *s)
{
    if (s && strcmp(s, "embedding") == 0)
        return WK_CALL_EMBEDDING;
    if (s && strcmp(s, "completion") == 0)
        return WK_CALL_COMPLETION;
    job->count_tokens = s && strcmp(s, "count_tokens") == 0;
    job->messages = job->count_tokens || (s && strcmp(s, "messages") == 0);
    return WK_CALL_CHAT;
}

/* /v1/messages: an Anthropic deployment gets the request as it is; any other gets it as a
 * chat request (the answer is turned back on the way out). count_tokens is answered here
 * with an estimate unless Anthropic can count. 1 when answered here, -1 on a bad request. */
static int s_messages_start(wk_job_t *job, bool mocked, wk_fail_t *fail)
{
    job->passthrough = !mocked && job->d->provider->wire == LP_WIRE_ANTHROPIC;
    if (job->count_tokens && !job->passthrough) {
        wk_result_t res = {.response = json_object()};
        json_object_set_new(res.response, "input_tokens",
                            json_integer(wk_messages_estimate(job->req)));
        job->mocked = mocked;
        s_reply_result(job, &res);
        return 1;
    }
    if (job->passthrough)
        return 0;
    json_t *chat = wk_messages_to_chat(job->req, fail);
    if (!chat)
        return -1;
    json_decref(job->req);
    job->req = chat;
    return 0;
}

/* Streams read slowly when the client is slow: a small receive buffer keeps the bytes a
 * paused stream leaves in the kernel small too, so the provider feels the back-pressure. */
static int s_stream_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    LP_UNUSED(arg);
    if (purpose == CURLSOCKTYPE_IPCXN) {
        int size = WK_STREAM_RCVBUF;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    return CURL_SOCKOPT_OK;
}

/* A host the client chose is connected to only at an address lp_clientside allows. */
static curl_socket_t s_guarded_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    LP_UNUSED(purpose);
    wk_job_t *job = arg;
    if (lp_clientside_blocked(&addr->addr)) {
        job->blocked = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* The request's own api_base / api_key, as lp_clientside allows them on the deployment. */
static int s_clientside(wk_job_t *job, wk_fail_t *fail)
{
    lp_clientside_req_t asked;
    char why[LP_ERR_LEN];
    int rc = lp_clientside_check(job->cfg, job->d, job->req, &asked, why);
    if (rc < 0)
        return wk_fail(fail, 400, "parameter_not_allowed", false, "%s", why);
    if (rc > 0) {
        job->own = lp_clientside_deployment(job->d, &asked);
        job->d = job->own;
        job->client_base = asked.base != NULL;
    }
    return 0;
}

static int s_start_transfer(wk_job_t *job, const wk_adapter_t *adapter, wk_fail_t *fail)
{
    const lp_deployment_t *d = job->d;
    if (d->provider->key_required && (!d->api_key || !*d->api_key))
        return wk_fail(fail, 500, "provider_key_missing", true,
                       "deployment %s of '%s' has no API key: set litellm_params.api_key or %s",
                       d->id, job->group, d->provider->key_env);
    if (adapter->prepare(job, fail) < 0)
        return -1;
    CURL *easy = wk_http_easy(wk_server_http(s_srv(job)));
    if (!easy)
        return wk_fail(fail, 500, NULL, true, "cannot create an HTTP client handle");
    job->easy = easy;
    long long connect_ms = LP_MIN(job->timeout_ms, WK_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(easy, CURLOPT_URL, job->url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, job->headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, job->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->body_len);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)job->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, job);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, job);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, job);
    if (job->client_base) {
        /* A fresh connection, so the address check cannot be skipped by reuse, and no proxy
         * from the environment, which would make the check see the proxy's address. */
        curl_easy_setopt(easy, CURLOPT_PROXY, "");
        curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, s_guarded_socket);
        curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, job);
        curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
    }
    if (job->stream) {
        curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, s_stream_sockopt);
        /* Stream events are small: a smaller read buffer than curl's 16 KiB keeps the memory
         * of thousands of open streams down. */
        curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, (long)WK_STREAM_BUFFER);
    }
    job->start_ns = lp_mono_ns();
    if (wk_http_add(wk_server_http(s_srv(job)), easy) < 0) {
        wk_http_release(wk_server_http(s_srv(job)), &job->easy);
        return wk_fail(fail, 500, NULL, true, "cannot start the HTTP call");
    }
    if (job->stream)
        s_stream_timer(job);
    rlog_debug(job->idstr, "calling %s deployment %s (attempt %d)", d->provider->name, d->id,
               job->attempt);
    return 0;
}

/* A mock answer, as a response or as a stream. */
static int s_mock(wk_job_t *job, const char *text, wk_fail_t *fail)
{
    job->mocked = true;
    job->start_ns = 0;
    if (!job->stream) {
        wk_result_t res = {0};
        if (wk_mock_answer(job, text, &res, fail) < 0)
            return -1;
        s_reply_result(job, &res);
        return 0;
    }
    if (wk_mock_stream(job, text, &job->out, fail) < 0)
        return -1;
    s_stream_ok(job);
    return 0;
}

/* /health/test_connection: the deployment is the body's litellm_params, loaded as a one-entry
 * config that lives only as long as this call; the request is the cheapest of its mode. */
static int s_test_start(wk_job_t *job, lp_msg_t *msg, wk_fail_t *fail)
{
    size_t len = 0;
    const char *body = lp_msg_body(msg, &len);
    char err[LP_ERR_LEN];
    json_t *req = lp_json_parse(body, len, err);
    const json_t *params = json_object_get(req, "litellm_params");
    const char *mode = lp_json_str(req, "mode");
    mode = mode ? mode : "chat";
    json_t *entry = json_object();
    json_object_set_new(entry, "model_name", json_string("test-connection"));
    json_object_set(entry, "litellm_params", params ? (json_t *)params : json_null());
    json_t *info = json_object();
    json_object_set_new(info, "mode", lp_json_text(mode));
    json_object_set_new(entry, "model_info", info);
    json_t *list = json_array();
    json_array_append_new(list, entry);
    json_t *general = json_object();
    json_object_set_new(general, "master_key", json_string(job->cfg->master_key));
    json_t *doc = json_object();
    json_object_set_new(doc, "model_list", list);
    json_object_set_new(doc, "general_settings", general);
    char *text = lp_json_dump(doc, NULL);
    json_decref(doc);
    json_decref(req);
    lp_cfg_t *cfg = lp_cfg_load_string(text, "litellm_params", err);
    lp_free_secret(text); /* it held the keys */
    if (!cfg)
        return wk_fail(fail, 400, "invalid_litellm_params", false, "%s", err);
    lp_public_bases(cfg);
    lp_cfg_destroy(&job->cfg);
    job->cfg = cfg;
    job->d = &cfg->deployments[0];
    free(job->group);
    job->group = lp_strdup("test-connection");
    job->req = json_object();
    json_object_set_new(job->req, "model", json_string("test-connection"));
    if (cfg->deployments[0].mode == LP_MODE_EMBEDDING) {
        job->call = WK_CALL_EMBEDDING;
        json_object_set_new(job->req, "input", json_string("ping"));
    } else if (job->call == WK_CALL_COMPLETION) {
        json_object_set_new(job->req, "prompt", json_string("ping"));
        json_object_set_new(job->req, "max_tokens", json_integer(1));
    } else {
        json_t *m = json_object();
        json_object_set_new(m, "role", json_string("user"));
        json_object_set_new(m, "content", json_string("ping"));
        json_t *msgs = json_array();
        json_array_append_new(msgs, m);
        json_object_set_new(job->req, "messages", msgs);
        json_object_set_new(job->req, "max_tokens", json_integer(1));
    }
    return 0;
}

void wk_call_start(wk_server_t *srv, lp_msg_t *msg)
{
    const uint8_t *id = lp_msg_req_id(msg);
    wk_job_t *job = lp_calloc(1, sizeof *job);
    job->recv_ns = lp_mono_ns();
    job->owner = srv;
    memcpy(job->id, id, LP_REQ_ID_LEN);
    lp_req_id_format(id, job->idstr);
    job->retry_after_ms = -1;
    job->tool_block = -1;
    wk_server_track(srv, job);
    const char *group = lp_msg_meta_str(msg, "model");
    job->group = lp_strdup(group ? group : "");
    job->call = s_call_type(job, lp_msg_meta_str(msg, "call_type"));
    const char *av = lp_msg_meta_str(msg, "anthropic_version");
    const char *ab = lp_msg_meta_str(msg, "anthropic_beta");
    job->anthropic_version = av ? lp_strdup(av) : NULL;
    job->anthropic_beta = ab ? lp_strdup(ab) : NULL;
    job->stream = lp_msg_meta_bool(msg, "stream", false);
    job->cfg = lp_cfg_ref(wk_server_cfg(srv));
    job->drop_params = job->cfg->drop_params;
    job->attempt = (int)lp_msg_meta_int(msg, "attempt", 1);
    job->timeout_ms = lp_msg_meta_int(msg, "timeout_ms", 600000);
    job->stream_timeout_ms = lp_msg_meta_int(msg, "stream_timeout_ms", 0);
    if (job->timeout_ms <= 0)
        job->timeout_ms = 600000;
    wk_fail_t fail = {.retry_after_ms = -1};
    if (lp_msg_meta_bool(msg, "test", false)) {
        if (s_test_start(job, msg, &fail) < 0)
            goto fail;
    }
    const char *dep = lp_msg_meta_str(msg, "deployment");
    if (!job->d)
        job->d = dep ? lp_cfg_deployment(job->cfg, dep) : NULL;
    if (!job->d) {
        /* The router's config names a deployment this worker's config lacks. */
        wk_fail(&fail, 503, "unknown_deployment", true,
                "this worker has no deployment %s: are the router and workers on the same "
                "config?",
                dep ? dep : "(none)");
        goto fail;
    }
    size_t len = 0;
    const char *body = lp_msg_body(msg, &len);
    char err[LP_ERR_LEN];
    if (!job->req)
        job->req = lp_json_parse(body, len, err);
    if (!json_is_object(job->req)) {
        wk_fail(&fail, 400, NULL, false, "request body is not a JSON object");
        goto fail;
    }
    if (s_clientside(job, &fail) < 0)
        goto fail;
    if (json_is_boolean(json_object_get(job->d->params, "drop_params")))
        job->drop_params = json_is_true(json_object_get(job->d->params, "drop_params"));
    const char *mock = wk_mock_text(job);
    if (job->messages) {
        int rc = s_messages_start(job, mock != NULL, &fail);
        if (rc < 0)
            goto fail;
        if (rc > 0) {
            wk_call_free(job);
            return;
        }
        mock = wk_mock_text(job); /* the request may have been replaced */
    }
    if (mock) {
        if (s_mock(job, mock, &fail) < 0)
            goto fail;
        wk_call_free(job);
        return;
    }
    const wk_adapter_t *adapter = wk_adapter_for(job->d->provider->wire);
    if (!adapter) {
        wk_fail(&fail, 501, "provider_not_supported", false,
                "provider %s/ is not supported by this build yet", job->d->provider->name);
        goto fail;
    }
    if (s_start_transfer(job, adapter, &fail) < 0)
        goto fail;
    return;
fail:
    s_reply_fail(job, &fail);
    wk_call_free(job);
}

void wk_call_cancel(wk_job_t *job)
{
    rlog_info(job->idstr, "client gone: cancelling the call to %s", job->d->provider->name);
    wk_fail_t fail = {.retry_after_ms = -1};
    wk_fail(&fail, 499, "client_closed_request", false, "the client closed the request");
    s_reply_fail(job, &fail);
    wk_call_free(job); /* removing the easy handle closes the provider connection */
}

void wk_call_credit(wk_job_t *job, long long bytes)
{
    if (bytes <= 0)
        return;
    job->unacked = (size_t)bytes >= job->unacked ? 0 : job->unacked - (size_t)bytes;
    if (job->paused && job->unacked < WK_STREAM_WINDOW && job->easy) {
        job->paused = false;
        s_stream_timer(job);
        wk_http_unpause(wk_server_http(s_srv(job)), job->easy);
    }
}
