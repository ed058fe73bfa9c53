#define LP_LOG_MODULE "rt_server"
#include "rt_server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "lp_crypto.h"
#include "lp_daemon.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_loop.h"
#include "lp_map.h"
#include "lp_msg.h"
#include "lp_time.h"
#include "lp_zmq.h"
#include "rt_job.h"
#include "rt_pool.h"
#include "rt_balance.h"

/* Messages handled per socket per loop turn, so one busy side cannot starve the other. */
#define RT_BATCH 256

struct rt_server {
    lp_cfg_t *cfg;
    void *zctx;
    void *frontend; /* ROUTER, gateways connect */
    void *backend;  /* ROUTER, workers connect */
    lp_loop_t *loop;
    rt_pool_t *pool;
    lp_map_t *jobs;           /* request id -> rt_job_t (owned) */
    lp_map_t *gateways;       /* gateway identity -> int64_t last seen (owned) */
    int64_t frontend_read_ns; /* when the frontend was last read to the end */
    rt_jobq_t queue;
    lp_timer_t heartbeat;
    rt_balance_t *balance;
    char *config_path; /* reread on SIGHUP */
};

static void s_dispatch(rt_server_t *self, rt_job_t *job);

static void s_job_free(rt_server_t *self, rt_job_t *job)
{
    lp_timer_stop(self->loop, &job->timer);
    rt_jobq_remove(&self->queue, job);
    lp_map_remove(self->jobs, job->id, LP_REQ_ID_LEN);
    rt_job_destroy(&job);
}

/* Tell the worker running job to abort the provider call (it answers with the usage so
 * far, and the job's credit comes back with that last word). */
static void s_cancel_worker(rt_server_t *self, rt_job_t *job)
{
    if (!job->worker)
        return;
    lp_msg_t *cancel = lp_msg_new(LP_CMD_CANCEL, job->id);
    lp_msg_set_identity(cancel, job->worker->identity, job->worker->idlen);
    if (lp_msg_send(&cancel, self->backend) < 0)
        lp_msg_destroy(&cancel);
}

/* Send a message to the gateway that owns job; a vanished gateway cancels the job's call. */
static void s_to_gateway(rt_server_t *self, rt_job_t *job, lp_msg_t **msg)
{
    lp_msg_set_identity(*msg, job->gw, job->gwlen);
    if (lp_msg_send(msg, self->frontend) == 0)
        return;
    lp_cmd_t cmd = lp_msg_cmd(*msg);
    rlog_warn(job->idstr, "gateway unreachable (%s), dropping %s", zmq_strerror(errno),
              lp_cmd_name(cmd));
    lp_msg_destroy(msg);
    if (!job->cancelled && cmd != LP_CMD_END && cmd != LP_CMD_ERROR)
        s_cancel_worker(self, job);
    job->cancelled = true;
}

/* What the router did, added to a HEAD, END or ERROR on its way to the gateway (appended to
 * the worker's meta, not re-encoded): attempts, retries, fallbacks, the group that answered
 * and the router's share of the time, from the request's arrival to the dispatch of the
 * attempt that answered (queueing, back-offs and earlier attempts), for Server-Timing. */
static void s_route_meta(const rt_job_t *job, lp_msg_t *msg)
{
    lp_msg_meta_add(msg, "attempts", json_integer(job->attempts));
    lp_msg_meta_add(msg, "retries", json_integer(job->retries));
    lp_msg_meta_add(msg, "fallbacks", json_integer(job->fallbacks));
    lp_msg_meta_add(msg, "group", json_string(job->group));
    if (job->dispatched_ns)
        lp_msg_meta_add(msg, "router_us",
                        json_integer((job->dispatched_ns - job->received_ns) / 1000));
}

/* Relay the job's last word (END or ERROR) with what the router did, and free the job. A
 * cancelled job's last word goes too: it carries the usage the gateway records. */
static void s_finish(rt_server_t *self, rt_job_t *job, lp_msg_t **msg)
{
    s_route_meta(job, *msg);
    s_to_gateway(self, job, msg);
    lp_msg_destroy(msg);
    s_job_free(self, job);
}

/* End a job with an error the router itself decided (no worker answer to relay). */
static void s_fail(rt_server_t *self, rt_job_t *job, int status, const char *code,
                   const char *message)
{
    rlog_info(job->idstr, "failing request: %d %s", status, message);
    lp_msg_t *err = lp_msg_error(job->id, status, code, message);
    s_finish(self, job, &err);
}

static int s_on_queue_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    rt_job_t *job = arg;
    rt_server_t *self = job->owner;
    s_fail(self, job, 503, "no_worker_available",
           "no worker is available to take the request; try again shortly");
    return 0;
}

static void s_enqueue(rt_server_t *self, rt_job_t *job)
{
    if (self->queue.len >= RT_QUEUE_MAX) {
        s_fail(self, job, 503, "router_queue_full",
               "the proxy is overloaded (router queue full); try again shortly");
        return;
    }
    rt_jobq_push(&self->queue, job);
    lp_timer_start(self->loop, &job->timer, RT_QUEUE_WAIT_MS, s_on_queue_timeout, job);
}

/* Give waiting jobs to workers while anyone has credit. */
static void s_drain_queue(rt_server_t *self)
{
    while (self->queue.head && rt_pool_credits(self->pool) > 0) {
        rt_job_t *job = rt_jobq_pop(&self->queue);
        lp_timer_stop(self->loop, &job->timer);
        s_dispatch(self, job);
    }
}

static long long s_ms(double seconds)
{
    return (long long)(seconds * 1000.0 + 0.5);
}

/* An attempt's timeout: the configured one, or the client's when it asked for less. */
static long long s_timeout_ms(rt_job_t *job, double configured_s)
{
    long long client = lp_msg_meta_int(job->request, "timeout_ms", 0);
    long long ms = s_ms(configured_s);
    return client > 0 && client < ms ? client : ms;
}

/* Build the worker's copy of the request: the gateway's meta plus what the router decided;
 * the body is shared, not copied. */
static lp_msg_t *s_attempt_msg(rt_server_t *self, rt_job_t *job, const lp_deployment_t *d)
{
    lp_msg_t *m = lp_msg_new(LP_CMD_REQUEST, job->id);
    lp_msg_meta_copy(m, job->request);
    lp_msg_meta_add(m, "model", json_string(job->group));
    lp_msg_meta_add(m, "deployment", json_string(d->id));
    lp_msg_meta_add(m, "attempt", json_integer(job->attempts + 1));
    double timeout = d->timeout_s > 0 ? d->timeout_s : self->cfg->timeout_s;
    lp_msg_meta_add(m, "timeout_ms", json_integer(s_timeout_ms(job, timeout)));
    double st = d->stream_timeout_s > 0 ? d->stream_timeout_s : self->cfg->stream_timeout_s;
    if (st > 0)
        lp_msg_meta_add(m, "stream_timeout_ms", json_integer(s_ms(st)));
    lp_msg_share_body(m, job->request);
    return m;
}

/* The groups to fall back to after the asked group failed with this error: on a context
 * length error context_window_fallbacks (else fallbacks); on a provider or availability
 * failure fallbacks, else default_fallbacks; never on the client's own mistakes. */
static const json_t *s_fallback_list(rt_server_t *self, rt_job_t *job, int status, const char *code,
                                     bool upstream)
{
    const lp_cfg_t *cfg = self->cfg;
    bool context = code && strcmp(code, "context_length_exceeded") == 0;
    bool provider_fault = status == 429 || status >= 500 || status == 408 ||
                          (upstream && (status == 401 || status == 403 || status == 404));
    if (!context && !provider_fault)
        return NULL;
    const json_t *sources[] = {context ? cfg->context_window_fallbacks : NULL, cfg->fallbacks};
    for (size_t s = 0; s < LP_ARRAY_LEN(sources); s++) {
        size_t i;
        json_t *entry;
        json_array_foreach(sources[s], i, entry)
        {
            json_t *list = json_object_get(entry, job->asked);
            if (json_is_array(list))
                return list;
        }
    }
    return json_is_array(cfg->default_fallbacks) && !context ? cfg->default_fallbacks : NULL;
}

/* Move the job to its next fallback group; false when there is none left. */
static bool s_next_fallback(rt_server_t *self, rt_job_t *job, int status, const char *code,
                            bool upstream)
{
    if (job->pinned || job->test || job->cancelled || job->started)
        return false;
    if (!job->fallback_list)
        job->fallback_list =
            json_incref((json_t *)s_fallback_list(self, job, status, code, upstream));
    while (job->fallback_list && job->fallback_next < json_array_size(job->fallback_list) &&
           job->fallbacks < RT_MAX_FALLBACKS) {
        const char *g = json_string_value(json_array_get(job->fallback_list, job->fallback_next++));
        if (!g || strcmp(g, job->group) == 0 || !lp_cfg_has_group(self->cfg, g))
            continue;
        rlog_info(job->idstr, "falling back from %s to %s", job->group, g);
        job->group = g;
        job->fallbacks++;
        job->group_retries = 0;
        job->ntried = 0;
        return true;
    }
    return false;
}

static void s_dispatch(rt_server_t *self, rt_job_t *job);
static void s_worker_lost(rt_server_t *self, rt_worker_t *w);

/* No deployment of the group can take the job now: fall back, or say why. */
static void s_unavailable(rt_server_t *self, rt_job_t *job, rt_pick_t why, int64_t retry_ms)
{
    int status = why == RT_PICK_NO_GROUP ? 400 : why == RT_PICK_COOLING ? 503 : 429;
    if (why != RT_PICK_NO_GROUP && s_next_fallback(self, job, status, NULL, false)) {
        s_dispatch(self, job);
        return;
    }
    char msg[LP_ERR_LEN];
    const char *code;
    if (why == RT_PICK_NO_GROUP) {
        snprintf(msg, sizeof msg, "no deployment for model '%.100s' in the router's config",
                 job->group);
        code = "model_not_found";
    } else if (why == RT_PICK_COOLING) {
        snprintf(msg, sizeof msg,
                 "No deployments available for model '%.100s': every deployment is cooling "
                 "down after failures; retry in %lld ms",
                 job->group, (long long)retry_ms);
        code = "no_healthy_deployment";
    } else {
        snprintf(msg, sizeof msg,
                 "No deployments available for model '%.100s': every deployment is at its "
                 "rpm/tpm limit; retry in %lld ms",
                 job->group, (long long)retry_ms);
        code = "deployment_rate_limited";
    }
    lp_msg_t *err = lp_msg_error(job->id, status, code, msg);
    if (retry_ms > 0)
        lp_msg_meta_add(err, "retry_after_ms", json_integer(retry_ms));
    s_finish(self, job, &err);
}

/* Send the job's next attempt to a worker, or queue it until one has credit. */
/* A /health/test_connection job: to any worker, no deployment (its params are in the body,
 * which the router never reads). */
static void s_dispatch_test(rt_server_t *self, rt_job_t *job)
{
    for (;;) {
        rt_worker_t *w = rt_pool_pick(self->pool);
        if (!w) {
            s_enqueue(self, job);
            return;
        }
        lp_msg_t *m = lp_msg_new(LP_CMD_REQUEST, job->id);
        lp_msg_meta_copy(m, job->request);
        lp_msg_meta_add(m, "timeout_ms", json_integer(s_timeout_ms(job, self->cfg->timeout_s)));
        lp_msg_share_body(m, job->request);
        lp_msg_set_identity(m, w->identity, w->idlen);
        if (lp_msg_send(&m, self->backend) < 0) {
            lp_msg_destroy(&m);
            s_worker_lost(self, w); /* its other jobs go elsewhere or fail */
            continue;
        }
        job->worker = w;
        w->inflight++;
        job->attempts++;
        job->dispatched_ns = lp_mono_ns();
        return;
    }
}

static void s_dispatch(rt_server_t *self, rt_job_t *job)
{
    if (job->cancelled) {
        s_job_free(self, job);
        return;
    }
    if (job->test) {
        s_dispatch_test(self, job);
        return;
    }
    int idx = -1;
    int64_t now = lp_mono_ns();
    if (job->pinned) {
        const lp_deployment_t *d = lp_cfg_deployment(self->cfg, job->pinned);
        idx = d ? (int)(d - self->cfg->deployments) : -1;
        if (idx < 0) {
            s_fail(self, job, 404, "deployment_not_found", "no such deployment");
            return;
        }
    } else {
        rt_pick_t why = RT_PICK_OK;
        int64_t retry_ms = 0;
        idx = rt_balance_pick(self->balance, job->group, job->tried, job->ntried, now, &why,
                              &retry_ms);
        if (idx < 0) {
            s_unavailable(self, job, why, retry_ms);
            return;
        }
    }
    for (;;) {
        rt_worker_t *w = rt_pool_pick(self->pool);
        if (!w) {
            s_enqueue(self, job);
            return;
        }
        const lp_deployment_t *d = &self->cfg->deployments[idx];
        lp_msg_t *m = s_attempt_msg(self, job, d);
        lp_msg_set_identity(m, w->identity, w->idlen);
        if (lp_msg_send(&m, self->backend) < 0) {
            /* The worker's connection is gone; forget it and pick again. */
            log_warn("worker %s unreachable (%s); removing it", w->name, zmq_strerror(errno));
            lp_msg_destroy(&m);
            s_worker_lost(self, w); /* its other jobs go elsewhere or fail */
            continue;
        }
        job->worker = w;
        w->inflight++;
        job->deployment = idx;
        job->dispatched_ns = lp_mono_ns();
        rt_balance_started(self->balance, idx, now);
        if (job->ntried < RT_MAX_TRIES)
            job->tried[job->ntried++] = idx;
        job->attempts++;
        rlog_debug(job->idstr, "attempt %d: model=%s deployment=%s worker=%s", job->attempts,
                   job->group, d->id, w->name);
        return;
    }
}

static int s_on_backoff(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    rt_job_t *job = arg;
    s_dispatch(job->owner, job);
    return 0;
}

/* ---- frontend: gateways ---- */

static void s_reply_heartbeat(rt_server_t *self, lp_msg_t *ping)
{
    lp_msg_t *pong = lp_msg_new(LP_CMD_HEARTBEAT, NULL);
    lp_msg_move_identity(pong, ping);
    json_t *meta = lp_msg_meta_rw(pong);
    json_object_set_new(meta, "workers", json_integer((json_int_t)rt_pool_size(self->pool)));
    json_object_set_new(meta, "credits", json_integer(rt_pool_credits(self->pool)));
    json_object_set_new(meta, "queued", json_integer((json_int_t)self->queue.len));
    if (lp_msg_meta_bool(ping, "stats", false)) {
        json_t *deps = json_array();
        int64_t now = lp_mono_ns();
        for (size_t i = 0; i < self->cfg->ndeployments; i++) {
            const lp_deployment_t *d = &self->cfg->deployments[i];
            json_t *o = json_object();
            json_object_set_new(o, "id", json_string(d->id));
            json_object_set_new(o, "group", json_string(d->model_name));
            json_object_set_new(o, "inflight",
                                json_integer(rt_balance_inflight(self->balance, (int)i)));
            json_object_set_new(o, "cooling",
                                json_boolean(rt_balance_cooling(self->balance, (int)i, now)));
            json_array_append_new(deps, o);
        }
        json_object_set_new(meta, "deployments", deps);
    }
    if (lp_msg_send(&pong, self->frontend) < 0)
        lp_msg_destroy(&pong);
}

static void s_on_request(rt_server_t *self, lp_msg_t **msg)
{
    if (!lp_msg_req_id(*msg) || !lp_msg_meta_str(*msg, "model")) {
        log_warn("dropping REQUEST without request id or model");
        return;
    }
    size_t gwlen;
    const void *gw = lp_msg_identity(*msg, &gwlen);
    if (lp_map_get(self->jobs, lp_msg_req_id(*msg), LP_REQ_ID_LEN)) {
        log_warn("dropping REQUEST with a request id already in flight");
        return;
    }
    rt_job_t *job = rt_job_new(msg, gw, gwlen, self);
    lp_map_put(self->jobs, job->id, LP_REQ_ID_LEN, job);
    s_dispatch(self, job);
}

/* Stop a job: a queued or waiting one goes at once, a running one when its worker has
 * answered the CANCEL (so its credit is counted back). */
static void s_cancel_job(rt_server_t *self, rt_job_t *job)
{
    job->cancelled = true;
    if (!job->worker) {
        s_job_free(self, job);
        return;
    }
    /* Keep the job until the worker's last word so its credit is counted back. */
    s_cancel_worker(self, job);
}

static void s_on_cancel(rt_server_t *self, lp_msg_t *msg)
{
    const uint8_t *id = lp_msg_req_id(msg);
    rt_job_t *job = id ? lp_map_get(self->jobs, id, LP_REQ_ID_LEN) : NULL;
    if (!job)
        return;
    rlog_debug(job->idstr, "cancelled by the gateway");
    s_cancel_job(self, job);
}

/* Every message from a gateway says it is alive. */
static void s_gateway_seen(rt_server_t *self, lp_msg_t *msg)
{
    size_t idlen;
    const void *identity = lp_msg_identity(msg, &idlen);
    if (!identity)
        return;
    int64_t *seen = lp_map_get(self->gateways, identity, idlen);
    if (!seen) {
        seen = lp_calloc(1, sizeof *seen);
        lp_map_put(self->gateways, identity, idlen, seen);
    }
    *seen = lp_mono_ns();
}

typedef struct {
    rt_server_t *self;
    int64_t cutoff;
} s_silence_t;

/* A job whose gateway was last heard from before the cutoff. */
static bool s_orphaned(void *v, void *a)
{
    const s_silence_t *s = a;
    const rt_job_t *job = v;
    const int64_t *seen = lp_map_get(s->self->gateways, job->gw, job->gwlen);
    return !job->cancelled && seen && *seen < s->cutoff;
}

/* A gateway silent for a minute past the cutoff: forgotten. */
static bool s_forgotten(void *v, void *a)
{
    return *(const int64_t *)v < ((const s_silence_t *)a)->cutoff - 60 * LP_NS_PER_S;
}

static void s_free_value(void *v, void *a)
{
    LP_UNUSED(a);
    free(v);
}

/* A gateway that went silent (killed, not stopped) cannot take its answers: stop its jobs so
 * no provider call runs on for nobody, and no retry starts. Silence counts from the last time
 * the frontend was read to the end, so a router that fell behind (a reload, a busy CPU)
 * never takes its own backlog for dead gateways. */
static void s_reap_orphans(rt_server_t *self)
{
    s_silence_t s = {self, self->frontend_read_ns - (int64_t)RT_GATEWAY_SILENT_MS * LP_NS_PER_MS};
    size_t n = 0;
    void **jobs = lp_map_values(self->jobs, s_orphaned, &s, &n);
    for (size_t i = 0; i < n; i++) {
        rt_job_t *job = jobs[i];
        rlog_warn(job->idstr, "its gateway went silent: cancelling the call");
        s_cancel_job(self, job);
    }
    free(jobs);
    lp_map_remove_if(self->gateways, s_forgotten, &s, s_free_value);
}

/* The gateway consumed stream bytes: pass the credit to the worker running the job. */
static void s_on_credit(rt_server_t *self, lp_msg_t **msg)
{
    const uint8_t *id = lp_msg_req_id(*msg);
    rt_job_t *job = id ? lp_map_get(self->jobs, id, LP_REQ_ID_LEN) : NULL;
    if (!job || !job->worker)
        return;
    lp_msg_set_identity(*msg, job->worker->identity, job->worker->idlen);
    if (lp_msg_send(msg, self->backend) < 0)
        rlog_debug(job->idstr, "credit not delivered: %s", zmq_strerror(errno));
}

static int s_on_frontend(lp_loop_t *loop, void *socket, void *arg)
{
    LP_UNUSED(loop);
    rt_server_t *self = arg;
    for (int i = 0; i < RT_BATCH; i++) {
        char err[LP_ERR_LEN];
        lp_msg_t *msg = lp_msg_recv(socket, true, err);
        if (!msg) {
            if (!err[0]) {
                self->frontend_read_ns = lp_mono_ns(); /* nothing from a gateway waits */
                break;
            }
            log_warn("frontend: dropping malformed message: %s", err);
            continue;
        }
        s_gateway_seen(self, msg);
        switch (lp_msg_cmd(msg)) {
        case LP_CMD_HEARTBEAT:
            s_reply_heartbeat(self, msg);
            break;
        case LP_CMD_REQUEST:
            s_on_request(self, &msg);
            break;
        case LP_CMD_CANCEL:
            s_on_cancel(self, msg);
            break;
        case LP_CMD_CREDIT:
            s_on_credit(self, &msg);
            break;
        default:
            log_warn("frontend: unexpected %s", lp_cmd_name(lp_msg_cmd(msg)));
            break;
        }
        lp_msg_destroy(&msg);
    }
    return 0;
}

/* ---- backend: workers ---- */

/* A worker announced itself (READY, or a HEARTBEAT after this router restarted). */
static rt_worker_t *s_worker_join(rt_server_t *self, lp_msg_t *msg)
{
    size_t idlen;
    const void *id = lp_msg_identity(msg, &idlen);
    long long capacity = lp_msg_meta_int(msg, "capacity", 0);
    if (capacity <= 0 || capacity > 1000000) {
        log_warn("worker announced capacity %lld; ignoring it", capacity);
        return NULL;
    }
    const char *name = lp_msg_meta_str(msg, "name");
    rt_worker_t *w = rt_pool_get(self->pool, id, idlen);
    if (!w) {
        w = rt_pool_add(self->pool, id, idlen, (int)capacity, name ? name : "?");
        log_info("worker %s joined (capacity %lld, %zu workers)", w->name, capacity,
                 rt_pool_size(self->pool));
    }
    w->capacity = (int)capacity;
    w->draining = false;
    return w;
}

/* Finish the worker's part of a job: the credit comes back. */
static void s_release(rt_server_t *self, rt_job_t *job)
{
    if (job->worker && job->worker->inflight > 0)
        job->worker->inflight--;
    job->worker = NULL;
    LP_UNUSED(self);
}

static bool s_should_retry(rt_server_t *self, rt_job_t *job, lp_msg_t *msg)
{
    if (job->cancelled || job->started || job->pinned || job->test)
        return false;
    if (!lp_msg_meta_bool(msg, "retryable", false))
        return false;
    return job->group_retries < self->cfg->num_retries;
}

/* How long to wait before retrying. A rate limit honours the provider's retry-after (at
 * least router_settings.retry_after); another deployment of the group that this job has not
 * tried is used at once (LiteLLM retries generic errors immediately); the same deployment
 * again only after an exponential back-off. -1 = not worth waiting. */
static long long s_backoff_ms(rt_server_t *self, rt_job_t *job, lp_msg_t *msg)
{
    long long status = lp_msg_meta_int(msg, "status", 0);
    long long ra = lp_msg_meta_int(msg, "retry_after_ms", -1);
    long long exp = RT_BACKOFF_BASE_MS << LP_MIN(job->group_retries, 6);
    if (status == 429 && ra >= 0) {
        long long ms = LP_MAX(ra, s_ms(self->cfg->retry_after_s));
        return ms > RT_BACKOFF_MAX_MS ? -1 : ms;
    }
    rt_pick_t why;
    int64_t retry_ms = 0;
    int idx = rt_balance_pick(self->balance, job->group, job->tried, job->ntried, lp_mono_ns(),
                              &why, &retry_ms);
    bool fresh = idx >= 0;
    for (size_t i = 0; fresh && i < job->ntried; i++)
        fresh = job->tried[i] != idx;
    if (fresh)
        return 0;
    return LP_MAX(exp, s_ms(self->cfg->retry_after_s));
}

/* The attempt's outcome, for the deployment's health and the strategies. */
static void s_account(rt_server_t *self, rt_job_t *job, lp_msg_t *msg)
{
    if (job->deployment < 0)
        return;
    int64_t now = lp_mono_ns();
    long long status = lp_msg_meta_int(msg, "status", 0);
    const char *code = lp_msg_meta_str(msg, "code");
    if (lp_msg_meta_bool(msg, "clientside", false)) {
        /* The client's own upstream or key: no verdict on the deployment either way. */
        rt_balance_released(self->balance, job->deployment);
    } else if (lp_msg_cmd(msg) == LP_CMD_END && status < 400) {
        long long latency = lp_msg_meta_int(msg, job->stream ? "ttfb_us" : "upstream_us", -1);
        long long tokens = lp_msg_meta_sub_int(msg, "usage", "total_tokens", 0);
        rt_balance_succeeded(self->balance, job->deployment, now, tokens, latency);
    } else if (status == 499 || (code && (strcmp(code, "worker_draining") == 0 ||
                                          strcmp(code, "unknown_deployment") == 0))) {
        rt_balance_released(self->balance, job->deployment); /* not the deployment's fault */
    } else {
        rt_balance_failed(self->balance, job->deployment, now, (int)status,
                          lp_msg_meta_int(msg, "retry_after_ms", -1));
    }
}

static void s_on_reply(rt_server_t *self, rt_worker_t *w, lp_msg_t **msg)
{
    const uint8_t *id = lp_msg_req_id(*msg);
    rt_job_t *job = id ? lp_map_get(self->jobs, id, LP_REQ_ID_LEN) : NULL;
    lp_cmd_t cmd = lp_msg_cmd(*msg);
    if (!job || job->worker != w) {
        /* A reply for a job moved away from this worker or already finished. */
        if ((cmd == LP_CMD_END || cmd == LP_CMD_ERROR) && !job)
            log_debug("late %s from worker %s", lp_cmd_name(cmd), w->name);
        return;
    }
    if (cmd == LP_CMD_HEAD || cmd == LP_CMD_CHUNK) {
        job->started = true;
        if (cmd == LP_CMD_HEAD) {
            /* The stream's headers go now: say what the router did so far. */
            s_route_meta(job, *msg);
        }
        if (!job->cancelled)
            s_to_gateway(self, job, msg);
        return;
    }
    s_release(self, job);
    s_account(self, job, *msg);
    if (cmd == LP_CMD_ERROR) {
        long long wait = s_should_retry(self, job, *msg) ? s_backoff_ms(self, job, *msg) : -1;
        long long status = lp_msg_meta_int(*msg, "status", 0);
        const char *code = lp_msg_meta_str(*msg, "code");
        if (wait >= 0) {
            job->retries++;
            job->group_retries++;
            rlog_info(job->idstr, "attempt %d failed (%lld %s); retrying in %lld ms", job->attempts,
                      status, code ? code : "-", wait);
            if (wait == 0)
                s_dispatch(self, job);
            else
                lp_timer_start(self->loop, &job->timer, wait, s_on_backoff, job);
            s_drain_queue(self);
            return;
        }
        bool upstream = lp_msg_meta_has(*msg, "upstream_status");
        if (s_next_fallback(self, job, (int)status, code, upstream)) {
            s_dispatch(self, job);
            s_drain_queue(self);
            return;
        }
    }
    s_finish(self, job, msg);
    s_drain_queue(self);
}

static bool s_on_worker(void *v, void *a)
{
    return ((const rt_job_t *)v)->worker == a;
}

/* A worker is gone (silent past its liveness, or unreachable): jobs that sent nothing to the
 * client move to another worker once (a request that kills every worker it touches must not
 * kill them all); the others end with a clean error. */
static void s_worker_lost(rt_server_t *self, rt_worker_t *w)
{
    log_warn("worker %s lost with %d job(s) in flight", w->name, w->inflight);
    size_t n = 0;
    void **jobs = lp_map_values(self->jobs, s_on_worker, w, &n);
    rt_pool_remove(self->pool, w);
    for (size_t i = 0; i < n; i++) {
        rt_job_t *job = jobs[i];
        job->worker = NULL;
        if (job->deployment >= 0)
            rt_balance_released(self->balance, job->deployment);
        if (job->cancelled) {
            s_job_free(self, job);
        } else if (!job->started && job->worker_losses == 0) {
            job->worker_losses++;
            rlog_info(job->idstr, "re-dispatching after losing a worker");
            s_dispatch(self, job);
        } else {
            s_fail(self, job, 502, "upstream_worker_lost",
                   job->started ? "the worker serving this stream stopped"
                                : "the worker serving this request stopped twice");
        }
    }
    free(jobs);
}

static int s_on_backend(lp_loop_t *loop, void *socket, void *arg)
{
    rt_server_t *self = arg;
    int64_t expiry = lp_loop_now_ns(loop) + LP_HEARTBEAT_MS * LP_HEARTBEAT_LIVENESS * LP_NS_PER_MS;
    for (int i = 0; i < RT_BATCH; i++) {
        char err[LP_ERR_LEN];
        lp_msg_t *msg = lp_msg_recv(socket, true, err);
        if (!msg) {
            if (!err[0])
                break;
            log_warn("backend: dropping malformed message: %s", err);
            continue;
        }
        size_t idlen;
        const void *id = lp_msg_identity(msg, &idlen);
        rt_worker_t *w = rt_pool_get(self->pool, id, idlen);
        lp_cmd_t cmd = lp_msg_cmd(msg);
        if (cmd == LP_CMD_READY || (cmd == LP_CMD_HEARTBEAT && !w)) {
            w = s_worker_join(self, msg);
            if (w)
                s_drain_queue(self);
        }
        if (!w) {
            if (cmd != LP_CMD_HEARTBEAT)
                log_debug("backend: %s from an unknown worker", lp_cmd_name(cmd));
            lp_msg_destroy(&msg);
            continue;
        }
        w->expiry_ns = expiry;
        switch (cmd) {
        case LP_CMD_HEAD:
        case LP_CMD_CHUNK:
        case LP_CMD_END:
        case LP_CMD_ERROR:
            s_on_reply(self, w, &msg);
            break;
        case LP_CMD_DISCONNECT:
            log_info("worker %s is draining", w->name);
            w->draining = true;
            break;
        default:
            break;
        }
        lp_msg_destroy(&msg);
    }
    return 0;
}

/* Heartbeat every worker and retire the silent ones. */
static int s_on_heartbeat(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    rt_server_t *self = arg;
    int64_t now = lp_mono_ns();
    for (size_t i = 0; i < rt_pool_size(self->pool);) {
        rt_worker_t *w = rt_pool_at(self->pool, i);
        if (w->expiry_ns < now) {
            s_worker_lost(self, w);
            continue; /* the slot now holds another worker */
        }
        lp_msg_t *hb = lp_msg_new(LP_CMD_HEARTBEAT, NULL);
        lp_msg_set_identity(hb, w->identity, w->idlen);
        if (lp_msg_send(&hb, self->backend) < 0)
            lp_msg_destroy(&hb);
        i++;
    }
    s_reap_orphans(self);
    lp_timer_start(loop, timer, LP_HEARTBEAT_MS, s_on_heartbeat, self);
    return 0;
}

/* Deployment index idx of old as an index of cfg (same id), or -1 when cfg dropped it. */
static int s_remap(const lp_cfg_t *old, const lp_cfg_t *cfg, int idx)
{
    if (idx < 0 || (size_t)idx >= old->ndeployments)
        return -1;
    const lp_deployment_t *d = lp_cfg_deployment(cfg, old->deployments[idx].id);
    return d ? (int)(d - cfg->deployments) : -1;
}

typedef struct {
    const lp_cfg_t *old, *cfg;
} s_reload_t;

static bool s_remap_job(const void *k, size_t l, void *v, void *a)
{
    LP_UNUSED(k);
    LP_UNUSED(l);
    const s_reload_t *r = a;
    rt_job_t *job = v;
    job->deployment = s_remap(r->old, r->cfg, job->deployment);
    for (size_t i = 0; i < job->ntried; i++)
        job->tried[i] = s_remap(r->old, r->cfg, job->tried[i]);
    return true;
}

/* SIGHUP: the new model_list and router_settings apply to new attempts at once; jobs in
 * flight keep going (their deployments are found again by id, state carries over). A bad
 * file changes nothing. */
static void s_reload(rt_server_t *self)
{
    if (!self->config_path)
        return;
    lp_cfg_t *cfg = lp_daemon_reload(self->config_path);
    if (!cfg)
        return;
    rt_strategy_t strategy = RT_SHUFFLE;
    (void)rt_strategy_parse(cfg->routing_strategy, &strategy); /* validated by the load */
    rt_balance_t *balance = rt_balance_new(cfg, strategy, 0);
    rt_balance_adopt(balance, self->balance);
    s_reload_t r = {self->cfg, cfg};
    lp_map_each(self->jobs, s_remap_job, &r);
    rt_balance_destroy(&self->balance);
    self->balance = balance;
    lp_cfg_destroy(&self->cfg);
    self->cfg = cfg;
    log_info("SIGHUP: config reloaded: %zu model group(s) over %zu deployment(s), %s", cfg->ngroups,
             cfg->ndeployments, cfg->routing_strategy);
}

static int s_on_signal(lp_loop_t *loop, int signo, void *arg)
{
    rt_server_t *self = arg;
    if (signo == SIGHUP) {
        s_reload(self);
        return 0;
    }
    if (lp_daemon_log_signal(signo))
        return 0;
    log_info("signal %d: stopping", signo);
    lp_loop_stop(loop);
    return 0;
}

rt_server_t *rt_server_new(lp_cfg_t **cfg, const char *frontend, const char *backend, char *err)
{
    rt_server_t *self = lp_calloc(1, sizeof *self);
    self->cfg = *cfg;
    *cfg = NULL;
    self->pool = rt_pool_new();
    self->jobs = lp_map_new();
    self->gateways = lp_map_new();
    uint64_t seed = 0;
    if (lp_random_bytes(&seed, sizeof seed) < 0 || seed == 0)
        seed = (uint64_t)lp_wall_ns() | 1;
    rt_strategy_t strategy = RT_SHUFFLE;
    if (!rt_strategy_parse(self->cfg->routing_strategy, &strategy))
        log_warn("routing_strategy '%s' is unknown; using simple-shuffle",
                 self->cfg->routing_strategy);
    self->balance = rt_balance_new(self->cfg, strategy, seed);
    self->zctx = zmq_ctx_new();
    self->loop = lp_loop_new();
    if (!self->zctx || !self->loop) {
        lp_err_set(err, "cannot create the ZeroMQ context or event loop");
        goto fail;
    }
    self->frontend = lp_zmq_socket(self->zctx, ZMQ_ROUTER, frontend, true, false, err);
    if (!self->frontend)
        goto fail;
    self->backend = lp_zmq_socket(self->zctx, ZMQ_ROUTER, backend, true, false, err);
    if (!self->backend)
        goto fail;
    if (lp_loop_add_socket(self->loop, self->frontend, s_on_frontend, self) < 0 ||
        lp_loop_add_socket(self->loop, self->backend, s_on_backend, self) < 0 ||
        lp_loop_handle_signals(self->loop, s_on_signal, self) < 0) {
        lp_err_set(err, "cannot register sockets with the event loop");
        goto fail;
    }
    lp_timer_start(self->loop, &self->heartbeat, LP_HEARTBEAT_MS, s_on_heartbeat, self);
    return self;
fail:
    rt_server_destroy(&self);
    return NULL;
}

static void s_free_job(void *v, void *a)
{
    rt_server_t *self = a;
    rt_job_t *job = v;
    lp_timer_stop(self->loop, &job->timer);
    job->queued = false;
    rt_job_destroy(&job);
}

void rt_server_destroy(rt_server_t **self_p)
{
    rt_server_t *self = *self_p;
    if (!self)
        return;
    if (self->jobs && self->loop)
        lp_map_remove_if(self->jobs, NULL, self, s_free_job);
    lp_map_destroy(&self->jobs);
    if (self->gateways)
        lp_map_remove_if(self->gateways, NULL, NULL, s_free_value);
    lp_map_destroy(&self->gateways);
    rt_pool_destroy(&self->pool);
    rt_balance_destroy(&self->balance);
    lp_zmq_close(&self->frontend);
    lp_zmq_close(&self->backend);
    lp_loop_destroy(&self->loop);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    lp_cfg_destroy(&self->cfg);
    free(self->config_path);
    free(self);
    *self_p = NULL;
}

int rt_server_run(rt_server_t *self, const char *config_path)
{
    free(self->config_path);
    self->config_path = config_path ? lp_strdup(config_path) : NULL;
    log_info("routing %zu model group(s) over %zu deployment(s)", self->cfg->ngroups,
             self->cfg->ndeployments);
    return lp_loop_run(self->loop);
}
