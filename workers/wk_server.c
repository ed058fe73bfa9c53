#define LP_LOG_MODULE "wk_server"
#include "wk_server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zmq.h>

#include "lp_json.h"
#include "lp_log.h"
#include "lp_loop.h"
#include "lp_map.h"
#include "lp_msg.h"
#include "lp_time.h"
#include "lp_zmq.h"
#include "wk_adapter.h"
#include "wk_http.h"
#include "wk_job.h"
#include "wk_mock.h"

/* Messages taken from the router per loop turn. */
#define WK_BATCH 256
/* Connect timeout cap: a provider that does not accept within this is treated as down. */
#define WK_CONNECT_TIMEOUT_MS 10000

struct wk_server {
    lp_cfg_t *cfg;
    void *zctx;
    void *router; /* DEALER to the router's backend */
    lp_loop_t *loop;
    wk_http_t *http;
    lp_map_t *jobs; /* request id -> wk_job_t (owned) */
    int capacity;
    char name[48];
    lp_timer_t heartbeat;
    lp_timer_t drain;
    int64_t router_expiry_ns;
    bool router_alive;
    bool draining;
};

static void s_send(wk_server_t *self, lp_msg_t **msg, const char *idstr)
{
    if (lp_msg_send(msg, self->router) == 0)
        return;
    rlog_warn(idstr, "cannot send %s to the router: %s", lp_cmd_name(lp_msg_cmd(*msg)),
              zmq_strerror(errno));
    lp_msg_destroy(msg);
}

static void s_job_free(wk_server_t *self, wk_job_t *job)
{
    if (job->easy) {
        wk_http_remove(self->http, job->easy);
        curl_easy_cleanup(job->easy);
    }
    lp_map_remove(self->jobs, job->id, LP_REQ_ID_LEN);
    curl_slist_free_all(job->headers);
    free(job->url);
    free(job->body);
    free(job->group);
    lp_buf_free(&job->resp);
    json_decref(job->req);
    free(job);
    if (self->draining && lp_map_size(self->jobs) == 0) {
        log_info("drained: every call finished");
        lp_loop_stop(self->loop);
    }
}

/* The deployment's base URL as it may be shown to clients: no credentials, no query. */
static char *s_public_base(const char *base)
{
    if (!base)
        return lp_strdup("");
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    char *out = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        curl_url_get(u, CURLUPART_PATH, &path, 0);
        out = lp_asprintf("%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "",
                          path && strcmp(path, "/") != 0 ? path : "");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return out ? out : lp_strdup("");
}

/* What every END and ERROR says about where the call went. */
static void s_describe(wk_job_t *job, json_t *meta)
{
    const lp_deployment_t *d = job->d;
    if (!d)
        return;
    char *base = s_public_base(d->api_base);
    json_object_set_new(meta, "deployment", json_string(d->id));
    json_object_set_new(meta, "provider", json_string(d->provider->name));
    json_object_set_new(meta, "provider_model", lp_json_text(d->provider_model));
    json_object_set_new(meta, "api_base", lp_json_text(base));
    free(base);
    json_object_set_new(meta, "worker", json_string(((wk_server_t *)job->owner)->name));
    if (job->start_ns) {
        int64_t now = lp_mono_ns();
        json_object_set_new(meta, "upstream_us", json_integer((now - job->start_ns) / 1000));
        if (job->first_byte_ns)
            json_object_set_new(meta, "ttfb_us",
                                json_integer((job->first_byte_ns - job->start_ns) / 1000));
    }
}

static void s_reply_fail(wk_server_t *self, wk_job_t *job, const wk_fail_t *fail)
{
    rlog_info(job->idstr, "attempt %d failed: %d %s", job->attempt, fail->status,
              fail->message);
    lp_msg_t *m = lp_msg_error(job->id, fail->status, fail->code, fail->message);
    json_t *meta = lp_msg_meta_rw(m);
    json_object_set_new(meta, "retryable", json_boolean(fail->retryable));
    if (fail->retry_after_ms >= 0)
        json_object_set_new(meta, "retry_after_ms", json_integer(fail->retry_after_ms));
    if (job->status)
        json_object_set_new(meta, "upstream_status", json_integer(job->status));
    s_describe(job, meta);
    s_send(self, &m, job->idstr);
}

static void s_reply_result(wk_server_t *self, wk_job_t *job, wk_result_t *res)
{
    lp_msg_t *m = lp_msg_new(LP_CMD_END, job->id);
    json_t *meta = lp_msg_meta_rw(m);
    json_object_set_new(meta, "status", json_integer(200));
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(res->prompt_tokens));
    json_object_set_new(usage, "completion_tokens", json_integer(res->completion_tokens));
    json_object_set_new(usage, "total_tokens", json_integer(res->total_tokens));
    json_object_set_new(meta, "usage", usage);
    const lp_deployment_t *d = job->d;
    if (d->input_cost_per_token >= 0 || d->output_cost_per_token >= 0) {
        double cost = LP_MAX(d->input_cost_per_token, 0) * (double)res->prompt_tokens +
                      LP_MAX(d->output_cost_per_token, 0) * (double)res->completion_tokens;
        json_object_set_new(meta, "cost", json_real(cost));
    }
    s_describe(job, meta);
    size_t len = 0;
    char *body = lp_json_dump(res->response, &len);
    lp_msg_give_body(m, body, len);
    json_decref(res->response);
    res->response = NULL;
    rlog_debug(job->idstr, "done: %lld+%lld tokens", res->prompt_tokens, res->completion_tokens);
    s_send(self, &m, job->idstr);
}

/* ---- libcurl callbacks ---- */

static size_t s_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    wk_job_t *job = arg;
    size_t n = size * nmemb;
    if (!job->first_byte_ns)
        job->first_byte_ns = lp_mono_ns();
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
    if (!job->first_byte_ns)
        job->first_byte_ns = lp_mono_ns();
    static const char ra[] = "retry-after:", ram[] = "retry-after-ms:";
    bool is_ms = n > sizeof ram - 1 && strncasecmp(data, ram, sizeof ram - 1) == 0;
    bool is_s = !is_ms && n > sizeof ra - 1 && strncasecmp(data, ra, sizeof ra - 1) == 0;
    if (is_ms || is_s) {
        char value[32];
        size_t skip = is_ms ? sizeof ram - 1 : sizeof ra - 1;
        size_t len = LP_MIN(n - skip, sizeof value - 1);
        memcpy(value, data + skip, len);
        value[len] = '\0';
        double v = strtod(value, NULL);
        if (v > 0 && v < 86400 * 1000.0)
            job->retry_after_ms = (long long)(is_ms ? v : v * 1000.0);
    }
    return n;
}

static void s_transport_fail(wk_job_t *job, CURLcode result, wk_fail_t *fail)
{
    const char *prov = job->d->provider->name;
    if (job->too_big) {
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

static void s_on_done(CURL *easy, CURLcode result, void *arg)
{
    wk_server_t *self = arg;
    wk_job_t *job = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
    if (!job)
        return;
    const wk_adapter_t *adapter = wk_adapter_for(job->d->provider->wire);
    wk_fail_t fail = {.retry_after_ms = -1};
    wk_result_t res = {0};
    if (result != CURLE_OK) {
        s_transport_fail(job, result, &fail);
        s_reply_fail(self, job, &fail);
    } else {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &job->status);
        if (job->status >= 400 || job->status < 200) {
            adapter->error(job, &fail);
            fail.retry_after_ms = job->retry_after_ms;
            s_reply_fail(self, job, &fail);
        } else if (adapter->respond(job, &res, &fail) < 0) {
            s_reply_fail(self, job, &fail);
        } else {
            s_reply_result(self, job, &res);
        }
    }
    s_job_free(self, job);
}

/* ---- jobs ---- */

static wk_call_t s_call_type(const char *s)
{
    if (s && strcmp(s, "embedding") == 0)
        return WK_CALL_EMBEDDING;
    if (s && strcmp(s, "completion") == 0)
        return WK_CALL_COMPLETION;
    return WK_CALL_CHAT;
}

static int s_start_call(wk_server_t *self, wk_job_t *job, const wk_adapter_t *adapter,
                        wk_fail_t *fail)
{
    const lp_deployment_t *d = job->d;
    if (d->provider->key_required && (!d->api_key || !*d->api_key))
        return wk_fail(fail, 500, "provider_key_missing", true,
                       "deployment %s of '%s' has no API key: set litellm_params.api_key or %s",
                       d->id, job->group, d->provider->key_env);
    if (adapter->prepare(job, fail) < 0)
        return -1;
    CURL *easy = curl_easy_init();
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
    job->start_ns = lp_mono_ns();
    if (wk_http_add(self->http, easy) < 0) {
        curl_easy_cleanup(easy);
        job->easy = NULL;
        return wk_fail(fail, 500, NULL, true, "cannot start the HTTP call");
    }
    rlog_debug(job->idstr, "calling %s deployment %s (attempt %d)", d->provider->name, d->id,
               job->attempt);
    return 0;
}

static void s_on_request(wk_server_t *self, lp_msg_t *msg)
{
    const uint8_t *id = lp_msg_req_id(msg);
    if (!id || lp_map_get(self->jobs, id, LP_REQ_ID_LEN)) {
        log_warn("dropping REQUEST without a fresh request id");
        return;
    }
    wk_job_t *job = lp_calloc(1, sizeof *job);
    job->owner = self;
    memcpy(job->id, id, LP_REQ_ID_LEN);
    lp_req_id_format(id, job->idstr);
    job->retry_after_ms = -1;
    lp_map_put(self->jobs, job->id, LP_REQ_ID_LEN, job);
    const char *group = lp_msg_meta_str(msg, "model");
    job->group = lp_strdup(group ? group : "");
    job->call = s_call_type(lp_msg_meta_str(msg, "call_type"));
    job->stream = lp_json_bool(lp_msg_meta(msg), "stream", false);
    job->attempt = (int)lp_msg_meta_int(msg, "attempt", 1);
    job->timeout_ms = lp_msg_meta_int(msg, "timeout_ms", 600000);
    job->stream_timeout_ms = lp_msg_meta_int(msg, "stream_timeout_ms", 0);
    if (job->timeout_ms <= 0)
        job->timeout_ms = 600000;
    wk_fail_t fail = {.retry_after_ms = -1};
    const char *dep = lp_msg_meta_str(msg, "deployment");
    job->d = dep ? lp_cfg_deployment(self->cfg, dep) : NULL;
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
    job->req = lp_json_parse(body, len, err);
    if (!json_is_object(job->req)) {
        wk_fail(&fail, 400, NULL, false, "request body is not a JSON object");
        goto fail;
    }
    const char *mock = wk_mock_text(job);
    if (mock) {
        wk_result_t res = {0};
        if (wk_mock_answer(job, mock, &res, &fail) < 0)
            goto fail;
        s_reply_result(self, job, &res);
        s_job_free(self, job);
        return;
    }
    const wk_adapter_t *adapter = wk_adapter_for(job->d->provider->wire);
    if (!adapter) {
        wk_fail(&fail, 501, "provider_not_supported", false,
                "provider %s/ is not supported by this build yet", job->d->provider->name);
        goto fail;
    }
    if (s_start_call(self, job, adapter, &fail) < 0)
        goto fail;
    return;
fail:
    s_reply_fail(self, job, &fail);
    s_job_free(self, job);
}

static void s_on_cancel(wk_server_t *self, lp_msg_t *msg)
{
    const uint8_t *id = lp_msg_req_id(msg);
    wk_job_t *job = id ? lp_map_get(self->jobs, id, LP_REQ_ID_LEN) : NULL;
    if (!job)
        return;
    rlog_info(job->idstr, "client gone: cancelling the call to %s", job->d->provider->name);
    wk_fail_t fail = {.retry_after_ms = -1};
    wk_fail(&fail, 499, "client_closed_request", false, "the client closed the request");
    s_reply_fail(self, job, &fail);
    s_job_free(self, job); /* removing the easy handle closes the provider connection */
}

/* ---- router link ---- */

static void s_announce(wk_server_t *self, lp_cmd_t cmd)
{
    lp_msg_t *m = lp_msg_new(cmd, NULL);
    json_t *meta = lp_msg_meta_rw(m);
    json_object_set_new(meta, "capacity", json_integer(self->draining ? 0 : self->capacity));
    json_object_set_new(meta, "name", json_string(self->name));
    json_object_set_new(meta, "active", json_integer((json_int_t)lp_map_size(self->jobs)));
    if (lp_msg_send(&m, self->router) < 0)
        lp_msg_destroy(&m);
}

static int s_on_router(lp_loop_t *loop, void *socket, void *arg)
{
    wk_server_t *self = arg;
    for (int i = 0; i < WK_BATCH; i++) {
        char err[LP_ERR_LEN];
        lp_msg_t *msg = lp_msg_recv(socket, false, err);
        if (!msg) {
            if (!err[0])
                break;
            log_warn("dropping malformed message from the router: %s", err);
            continue;
        }
        self->router_expiry_ns =
            lp_loop_now_ns(loop) + LP_HEARTBEAT_MS * LP_HEARTBEAT_LIVENESS * LP_NS_PER_MS;
        if (!self->router_alive) {
            self->router_alive = true;
            log_info("router is up");
        }
        switch (lp_msg_cmd(msg)) {
        case LP_CMD_REQUEST:
            if (self->draining) {
                /* Raced with our DISCONNECT: hand it back for another worker. */
                lp_msg_t *e = lp_msg_error(lp_msg_req_id(msg), 503, "worker_draining",
                                           "this worker is shutting down");
                json_object_set_new(lp_msg_meta_rw(e), "retryable", json_true());
                s_send(self, &e, "-");
            } else {
                s_on_request(self, msg);
            }
            break;
        case LP_CMD_CANCEL:
            s_on_cancel(self, msg);
            break;
        case LP_CMD_HEARTBEAT:
            break;
        default:
            log_warn("unexpected %s from the router", lp_cmd_name(lp_msg_cmd(msg)));
            break;
        }
        lp_msg_destroy(&msg);
    }
    return 0;
}

static int s_on_heartbeat(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    wk_server_t *self = arg;
    if (self->router_alive && lp_mono_ns() > self->router_expiry_ns) {
        self->router_alive = false;
        log_warn("router silent for %d ms; waiting for it to come back",
                 LP_HEARTBEAT_MS * LP_HEARTBEAT_LIVENESS);
    }
    /* Heartbeats carry the capacity, so a restarted router learns about us from them. */
    s_announce(self, LP_CMD_HEARTBEAT);
    lp_timer_start(loop, timer, LP_HEARTBEAT_MS, s_on_heartbeat, self);
    return 0;
}

static int s_on_drain_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(timer);
    wk_server_t *self = arg;
    log_warn("drain timeout: abandoning %zu call(s)", lp_map_size(self->jobs));
    lp_loop_stop(loop);
    return 0;
}

static int s_on_signal(lp_loop_t *loop, int signo, void *arg)
{
    wk_server_t *self = arg;
    if (signo == SIGHUP) {
        log_warn("SIGHUP: config reload is not implemented yet; restart workers to apply it");
        return 0;
    }
    if (signo != SIGINT && signo != SIGTERM)
        return 0;
    if (self->draining || lp_map_size(self->jobs) == 0) {
        log_info("signal %d: stopping", signo);
        lp_loop_stop(loop);
        return 0;
    }
    log_info("signal %d: draining %zu call(s)", signo, lp_map_size(self->jobs));
    self->draining = true;
    s_announce(self, LP_CMD_DISCONNECT);
    lp_timer_start(loop, &self->drain, WK_DRAIN_MS, s_on_drain_timeout, self);
    return 0;
}

wk_server_t *wk_server_new(lp_cfg_t **cfg, const char *router, int capacity, char *err)
{
    wk_server_t *self = lp_calloc(1, sizeof *self);
    self->cfg = *cfg;
    *cfg = NULL;
    self->capacity = capacity;
    char host[32] = "?";
    gethostname(host, sizeof host - 1);
    snprintf(self->name, sizeof self->name, "%d@%s", (int)getpid(), host);
    self->jobs = lp_map_new();
    self->zctx = zmq_ctx_new();
    self->loop = lp_loop_new();
    if (!self->zctx || !self->loop) {
        lp_err_set(err, "cannot create the ZeroMQ context or event loop");
        goto fail;
    }
    self->http = wk_http_new(self->loop, s_on_done, self);
    if (!self->http) {
        lp_err_set(err, "cannot create the libcurl multi handle");
        goto fail;
    }
    self->router = lp_zmq_socket(self->zctx, ZMQ_DEALER, router, false, false, err);
    if (!self->router)
        goto fail;
    if (lp_loop_add_socket(self->loop, self->router, s_on_router, self) < 0 ||
        lp_loop_handle_signals(self->loop, s_on_signal, self) < 0) {
        lp_err_set(err, "cannot register with the event loop");
        goto fail;
    }
    s_announce(self, LP_CMD_READY);
    lp_timer_start(self->loop, &self->heartbeat, LP_HEARTBEAT_MS, s_on_heartbeat, self);
    return self;
fail:
    wk_server_destroy(&self);
    return NULL;
}

static bool s_collect(const void *key, size_t len, void *value, void *arg)
{
    LP_UNUSED(key);
    LP_UNUSED(len);
    wk_job_t ***cursor = arg;
    *(*cursor)++ = value;
    return true;
}

void wk_server_destroy(wk_server_t **self_p)
{
    wk_server_t *self = *self_p;
    if (!self)
        return;
    if (self->jobs) {
        size_t n = lp_map_size(self->jobs);
        wk_job_t **all = lp_calloc(n ? n : 1, sizeof *all), **cursor = all;
        lp_map_each(self->jobs, s_collect, &cursor);
        self->draining = false;
        for (size_t i = 0; i < n; i++)
            s_job_free(self, all[i]);
        free(all);
    }
    wk_http_destroy(&self->http);
    lp_map_destroy(&self->jobs);
    lp_zmq_close(&self->router);
    lp_loop_destroy(&self->loop);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    lp_cfg_destroy(&self->cfg);
    free(self);
    *self_p = NULL;
}

/* One line naming the deployments that cannot be called for want of a key. */
static void s_log_missing_keys(const lp_cfg_t *cfg)
{
    lp_buf_t names = {0};
    for (size_t i = 0; i < cfg->ndeployments; i++) {
        const lp_deployment_t *d = &cfg->deployments[i];
        if (d->provider->key_required && !d->api_key && !d->mock_response)
            lp_buf_printf(&names, "%s%s (%s)", names.len ? ", " : "", d->model_name,
                          d->provider->key_env);
    }
    if (names.len)
        log_info("no API key yet for: %s", names.data);
    lp_buf_free(&names);
}

int wk_server_run(wk_server_t *self)
{
    log_info("worker %s ready: up to %d calls at once", self->name, self->capacity);
    s_log_missing_keys(self->cfg);
    int rc = lp_loop_run(self->loop);
    if (!self->draining)
        s_announce(self, LP_CMD_DISCONNECT);
    return rc;
}
