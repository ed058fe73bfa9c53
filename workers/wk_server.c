#define LP_LOG_MODULE "wk_server"
#include "wk_server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "lp_buf.h"
#include "lp_clientside.h"
#include "lp_daemon.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_map.h"
#include "lp_time.h"
#include "lp_zmq.h"
#include "wk_call.h"

/* Messages taken from the router per loop turn. */
#define WK_BATCH 256

struct wk_server {
    lp_cfg_t *cfg;     /* for new calls; a call holds a reference to the one it began with */
    char *config_path; /* reread on SIGHUP */
    lp_prices_t *prices;
    void *zctx;
    void *router; /* DEALER to the router's backend */
    lp_loop_t *loop;
    wk_http_t *http;
    lp_map_t *jobs; /* request id -> wk_job_t (owned through wk_call) */
    int capacity;
    char name[48];
    lp_timer_t heartbeat;
    lp_timer_t drain;
    int64_t router_expiry_ns;
    bool router_alive;
    bool draining;
};

void wk_server_send(wk_server_t *self, lp_msg_t **msg, const char *idstr)
{
    if (lp_msg_send(msg, self->router) == 0)
        return;
    rlog_warn(idstr, "cannot send %s to the router: %s", lp_cmd_name(lp_msg_cmd(*msg)),
              zmq_strerror(errno));
    lp_msg_destroy(msg);
}

void wk_server_track(wk_server_t *self, wk_job_t *job)
{
    lp_map_put(self->jobs, job->id, LP_REQ_ID_LEN, job);
}

void wk_server_untrack(wk_server_t *self, wk_job_t *job)
{
    lp_map_remove(self->jobs, job->id, LP_REQ_ID_LEN);
    if (self->draining && lp_map_size(self->jobs) == 0) {
        log_info("drained: every call finished");
        lp_loop_stop(self->loop);
    }
}

lp_loop_t *wk_server_loop(wk_server_t *self)
{
    return self->loop;
}

wk_http_t *wk_server_http(wk_server_t *self)
{
    return self->http;
}

lp_cfg_t *wk_server_cfg(const wk_server_t *self)
{
    return self->cfg;
}

const char *wk_server_name(const wk_server_t *self)
{
    return self->name;
}

lp_prices_t *wk_server_prices(wk_server_t *self)
{
    return self->prices;
}

static void s_on_done(CURL *easy, CURLcode result, void *arg)
{
    LP_UNUSED(arg);
    wk_job_t *job = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
    if (job)
        wk_call_done(job, result);
}

static wk_job_t *s_job(wk_server_t *self, lp_msg_t *msg)
{
    const uint8_t *id = lp_msg_req_id(msg);
    return id ? lp_map_get(self->jobs, id, LP_REQ_ID_LEN) : NULL;
}

static void s_on_request(wk_server_t *self, lp_msg_t *msg)
{
    if (!lp_msg_req_id(msg) || s_job(self, msg)) {
        log_warn("dropping REQUEST without a fresh request id");
        return;
    }
    if (self->draining) {
        /* Raced with our DISCONNECT: hand it back for another worker. */
        lp_msg_t *e = lp_msg_error(lp_msg_req_id(msg), 503, "worker_draining",
                                   "this worker is shutting down");
        json_object_set_new(lp_msg_meta_rw(e), "retryable", json_true());
        wk_server_send(self, &e, "-");
        return;
    }
    wk_call_start(self, msg);
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
        wk_job_t *job;
        switch (lp_msg_cmd(msg)) {
        case LP_CMD_REQUEST:
            s_on_request(self, msg);
            break;
        case LP_CMD_CANCEL:
            job = s_job(self, msg);
            if (job)
                wk_call_cancel(job);
            break;
        case LP_CMD_CREDIT:
            job = s_job(self, msg);
            if (job)
                wk_call_credit(job, lp_msg_meta_int(msg, "bytes", 0));
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

static int s_on_signal(lp_loop_t *loop, int signo, void *arg)
{
    wk_server_t *self = arg;
    if (signo == SIGHUP) {
        /* New calls use the new deployments at once; calls in flight hold the config they
         * started with (lp_cfg_ref) until they end. */
        lp_cfg_t *cfg = self->config_path ? lp_daemon_reload(self->config_path) : NULL;
        if (cfg) {
            lp_public_bases(cfg);
            lp_cfg_destroy(&self->cfg);
            self->cfg = cfg;
            log_info("SIGHUP: config reloaded: %zu deployment(s)", cfg->ndeployments);
            s_log_missing_keys(cfg);
        }
        return 0;
    }
    if (lp_daemon_log_signal(signo) || (signo != SIGINT && signo != SIGTERM))
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

wk_server_t *wk_server_new(lp_cfg_t **cfg, lp_prices_t **prices, const char *router, int capacity,
                           char *err)
{
    wk_server_t *self = lp_calloc(1, sizeof *self);
    self->cfg = *cfg;
    *cfg = NULL;
    lp_public_bases(self->cfg);
    self->prices = *prices;
    *prices = NULL;
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

void wk_server_destroy(wk_server_t **self_p)
{
    wk_server_t *self = *self_p;
    if (!self)
        return;
    if (self->jobs) {
        size_t n = 0;
        void **all = lp_map_values(self->jobs, NULL, NULL, &n);
        self->draining = false;
        for (size_t i = 0; i < n; i++)
            wk_call_free(all[i]);
        free(all);
    }
    if (self->loop) {
        lp_timer_stop(self->loop, &self->heartbeat);
        lp_timer_stop(self->loop, &self->drain);
    }
    wk_http_destroy(&self->http);
    lp_map_destroy(&self->jobs);
    lp_zmq_close(&self->router);
    lp_loop_destroy(&self->loop);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    lp_cfg_destroy(&self->cfg);
    free(self->config_path);
    lp_prices_destroy(&self->prices);
    free(self);
    *self_p = NULL;
}

int wk_server_run(wk_server_t *self, const char *config_path)
{
    free(self->config_path);
    self->config_path = config_path ? lp_strdup(config_path) : NULL;
    log_info("worker %s ready: up to %d calls at once", self->name, self->capacity);
    s_log_missing_keys(self->cfg);
    int rc = lp_loop_run(self->loop);
    if (!self->draining)
        s_announce(self, LP_CMD_DISCONNECT);
    return rc;
}
