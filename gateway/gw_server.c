#define LP_LOG_MODULE "gw_server"
#include "gw_server.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <zmq.h>

#include "gw_cache.h"
#include "gw_conn.h"
#include "gw_health.h"
#include "gw_http.h"
#include "gw_keys.h"
#include "gw_limits.h"
#include "gw_metrics.h"
#include "gw_outbox.h"
#include "gw_record.h"
#include "gw_req.h"
#include "gw_routes.h"
#include "lp_crypto.h"
#include "lp_daemon.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_msg.h"
#include "lp_price.h"
#include "lp_redis.h"
#include "lp_time.h"
#include "lp_zmq.h"

/* Messages taken from a link per loop turn. */
#define GW_BATCH 256
/* Start-up: ask for the router and logger this often, this many times at most. */
#define GW_HELLO_MS  10
#define GW_HELLO_MAX 500
/* Longest a stopping gateway waits for requests in flight. */
#define GW_DRAIN_MS 30000
/* MHD_run passes per loop turn while MHD reports work pending. */
#define GW_MHD_SPINS 8
/* How long a stopping gateway waits for loggers to acknowledge its last usage records. */
#define GW_OUTBOX_DRAIN_MS 5000

static int64_t s_liveness_ns(void)
{
    return (int64_t)LP_HEARTBEAT_MS * LP_HEARTBEAT_LIVENESS * LP_NS_PER_MS;
}

/* A message from the router for one request: the start of a stream, a piece of it, or the
 * last word (END/ERROR), which also completes the record of a request already given up. */
/* Bytes for a streaming client (a CHUNK, or a HEAD's first bytes): cached, counted, queued. */
static void s_stream_bytes(gw_req_t *req, lp_msg_t **chunk)
{
    size_t len = 0;
    const char *bytes = lp_msg_body(*chunk, &len);
    if (req->cache)
        gw_cache_stream_bytes(req, bytes, len);
    gw_stream_count(&req->out, bytes, len);
    gw_stream_push(&req->out, chunk);
}

static void s_on_reply(gw_server_t *self, lp_msg_t **msg)
{
    const uint8_t *id = lp_msg_req_id(*msg);
    gw_req_t *req = id ? lp_map_get(self->inflight, id, LP_REQ_ID_LEN) : NULL;
    lp_cmd_t cmd = lp_msg_cmd(*msg);
    if (!req) {
        if (gw_health_reply(self, msg) || gw_keys_reply(self->keys, msg))
            return;
        if ((cmd == LP_CMD_END || cmd == LP_CMD_ERROR) && gw_pending_final(self, msg))
            return;
        char idstr[LP_REQ_ID_STR_LEN];
        log_debug("late %s for %s dropped", lp_cmd_name(cmd), lp_msg_req_id_str(*msg, idstr));
        return;
    }
    switch (cmd) {
    case LP_CMD_HEAD: {
        if (req->state != GW_REQ_WAITING)
            return;
        /* Its body, when it has one, is the stream's first bytes: queued like a CHUNK's. */
        lp_msg_t *first = NULL;
        size_t len = 0;
        lp_msg_body(*msg, &len);
        if (len) {
            first = lp_msg_new(LP_CMD_CHUNK, NULL);
            lp_msg_move_body(first, *msg); /* only the HEAD's meta is read later */
        }
        gw_req_stream_begin(req, msg);
        if (first)
            s_stream_bytes(req, &first);
        gw_arm_deadline(req);
        gw_req_resume(req);
        return;
    }
    case LP_CMD_CHUNK:
        if (!req->streaming)
            return;
        s_stream_bytes(req, msg);
        gw_arm_deadline(req);
        gw_req_resume(req);
        return;
    default:
        break;
    }
    lp_map_remove(self->inflight, req->id, LP_REQ_ID_LEN);
    lp_timer_stop(self->loop, &req->deadline);
    if (req->on_reply) {
        req->on_reply(req, msg);
    } else if (!req->streaming) {
        gw_req_answer_reply(req, msg);
        gw_cache_answered(self->cache, req);
        gw_record_once(req, true); /* before the answer is written: a kill loses neither */
    } else {
        size_t len = 0;
        const void *body = lp_msg_body(*msg, &len);
        if (cmd == LP_CMD_END) {
            /* The worker's last bytes (terminator or error event), moved, not copied: only
             * the END's meta is read later. */
            gw_cache_stream_bytes(req, body, len);
            lp_msg_t *bytes = lp_msg_new(LP_CMD_CHUNK, NULL);
            lp_msg_move_body(bytes, *msg);
            gw_stream_push(&req->out, &bytes);
        } else {
            gw_req_stream_error(req, body, len); /* the worker died mid-stream */
        }
        lp_msg_destroy(&req->reply);
        req->reply = *msg;
        *msg = NULL;
        if (req->out.head)
            lp_msg_keep(req->reply); /* held while a slow client drains what is queued */
        req->out.done = true;
        gw_cache_answered(self->cache, req);
        gw_record_once(req, true);
    }
    gw_req_resume(req);
}

/* Give up on every request the router has (router lost, or shutting down). */
static void s_fail_inflight(gw_server_t *self, int status, const char *code, const char *why)
{
    size_t n = 0;
    void **all = lp_map_values(self->inflight, NULL, NULL, &n);
    for (size_t i = 0; i < n; i++)
        gw_abandon(all[i], status, code, why);
    free(all);
}

static int s_on_router(lp_loop_t *loop, void *socket, void *arg)
{
    gw_server_t *self = arg;
    for (int i = 0; i < GW_BATCH; i++) {
        char err[LP_ERR_LEN];
        lp_msg_t *msg = lp_msg_recv(socket, false, err);
        if (!msg) {
            if (!err[0])
                break;
            log_warn("dropping malformed message from the router: %s", err);
            continue;
        }
        switch (lp_msg_cmd(msg)) {
        case LP_CMD_HEARTBEAT:
            if (!self->router_alive)
                log_info("router is up");
            self->router_alive = true;
            self->router_expiry_ns = lp_loop_now_ns(loop) + s_liveness_ns();
            self->workers = lp_msg_meta_int(msg, "workers", 0);
            if (lp_msg_meta_has(msg, "deployments"))
                gw_metrics_router(self->metrics, lp_msg_meta(msg));
            break;
        case LP_CMD_HEAD:
        case LP_CMD_CHUNK:
        case LP_CMD_END:
        case LP_CMD_ERROR:
            s_on_reply(self, &msg);
            break;
        default:
            log_debug("unexpected %s from the router", lp_cmd_name(lp_msg_cmd(msg)));
            break;
        }
        lp_msg_destroy(&msg);
    }
    return 0;
}

static int s_on_logger(lp_loop_t *loop, void *socket, void *arg)
{
    gw_server_t *self = arg;
    for (int i = 0; i < GW_BATCH; i++) {
        char err[LP_ERR_LEN];
        lp_msg_t *msg = lp_msg_recv(socket, false, err);
        if (!msg) {
            if (!err[0])
                break;
            log_warn("dropping malformed message from the logger: %s", err);
            continue;
        }
        lp_cmd_t cmd = lp_msg_cmd(msg);
        if (cmd == LP_CMD_END || cmd == LP_CMD_ERROR) {
            s_on_reply(self, &msg); /* the answer to a read (spend logs) */
        } else if (cmd == LP_CMD_ACK) {
            size_t len = 0;
            const void *ids = lp_msg_body(msg, &len);
            gw_outbox_ack(self->outbox, ids, len);
            if (self->closing && gw_outbox_size(self->outbox) == 0)
                lp_loop_stop(loop);
        } else if (lp_msg_cmd(msg) == LP_CMD_HEARTBEAT) {
            self->logger_alive = true;
            self->logger_expiry_ns = lp_loop_now_ns(loop) + s_liveness_ns();
            const char *db = lp_msg_meta_str(msg, "db");
            lp_strlcpy(self->db_state, db ? db : "unknown", sizeof self->db_state);
        }
        lp_msg_destroy(&msg);
    }
    return 0;
}

/* A heartbeat; with stats, the router answers with its per-deployment figures too. */
static void s_ping(void *socket, bool stats)
{
    lp_msg_t *hb = lp_msg_new(LP_CMD_HEARTBEAT, NULL);
    if (stats)
        json_object_set_new(lp_msg_meta_rw(hb), "stats", json_true());
    if (lp_msg_send(&hb, socket) < 0)
        lp_msg_destroy(&hb);
}

/* At start, ask the router and the logger every GW_HELLO_MS until both answered (and the
 * router has workers), so the gateway is ready within milliseconds, not a heartbeat. */
static int s_on_hello(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    gw_server_t *self = arg;
    bool router_ready = self->router_alive && self->workers > 0;
    if ((router_ready && self->logger_alive) || ++self->hellos > GW_HELLO_MAX)
        return 0;
    if (!router_ready)
        s_ping(self->router, true);
    if (!self->logger_alive)
        s_ping(self->logger, false);
    lp_timer_start(loop, timer, GW_HELLO_MS, s_on_hello, self);
    return 0;
}

static int s_on_heartbeat(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    gw_server_t *self = arg;
    int64_t now = lp_mono_ns();
    if (self->router_alive && now >= self->router_expiry_ns) {
        self->router_alive = false;
        log_warn("router silent for %lld ms: failing %zu request(s) in flight",
                 (long long)(s_liveness_ns() / LP_NS_PER_MS), lp_map_size(self->inflight));
        s_fail_inflight(self, 503, "router_unavailable",
                        "the proxy's router stopped answering; retry the request");
    }
    if (self->logger_alive && now >= self->logger_expiry_ns) {
        self->logger_alive = false;
        log_warn("logger silent; usage records queue until it is back");
    }
    s_ping(self->router, self->pings++ % 4 == 0);
    s_ping(self->logger, false);
    if (now - self->swept_ns >= LP_NS_PER_S) {
        self->swept_ns = now;
        gw_conn_sweep(self, now);
    }
    if (self->stopping && lp_map_size(self->inflight) == 0 && self->live == 0) {
        log_info("drained: no request in flight");
        lp_loop_stop(loop);
        return 0;
    }
    lp_timer_start(loop, timer, LP_HEARTBEAT_MS, s_on_heartbeat, self);
    return 0;
}

/* One libmicrohttpd pass. The usage records gathered so far go to ZeroMQ first: among them
 * those of answers this pass may write, so a gateway killed mid-write loses no record. */
static void s_httpd(gw_server_t *self)
{
    gw_outbox_flush(self->outbox);
    MHD_run(self->httpd);
}

static int s_on_httpd(lp_loop_t *loop, int fd, uint32_t events, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(fd);
    LP_UNUSED(events);
    s_httpd(arg);
    return 0;
}

static int s_on_httpd_timer(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    s_httpd(arg);
    return 0;
}

/* Before sleeping: MHD has work that no fd will announce (a resumed connection, a request
 * that finished sending, a suspension to complete) whenever MHD_get_timeout says 0, so run
 * it until it has none; its later deadlines (idle connection timeouts) become a loop timer. */
static int64_t s_run_httpd(gw_server_t *self, lp_loop_t *loop)
{
    for (int i = 0; i < GW_MHD_SPINS; i++) {
        MHD_UNSIGNED_LONG_LONG ms = 0;
        bool has = MHD_get_timeout(self->httpd, &ms) == MHD_YES;
        if (!self->resumed && !(has && ms == 0)) {
            if (has)
                lp_timer_start(loop, &self->httpd_timer, (int64_t)ms, s_on_httpd_timer, self);
            else
                lp_timer_stop(loop, &self->httpd_timer);
            return -1;
        }
        self->resumed = false;
        s_httpd(self);
    }
    return 0; /* still busy: poll without sleeping and come back */
}

static int64_t s_before_sleep(lp_loop_t *loop, void *arg)
{
    gw_server_t *self = arg;
    int64_t sleep_ms = s_run_httpd(self, loop);
    gw_outbox_flush(self->outbox); /* what the passes recorded: nothing waits past the turn */
    return sleep_ms;
}

static int s_on_drain_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(timer);
    gw_server_t *self = arg;
    log_warn("drain timeout: %zu request(s) still in flight", lp_map_size(self->inflight));
    lp_loop_stop(loop);
    return 0;
}

/* A reload is an admin action: it goes to the audit log (when there is a database). */
static void s_audit_reload(gw_server_t *self)
{
    uint8_t id[LP_REQ_ID_LEN];
    if (!self->cfg->database_url || lp_random_bytes(id, sizeof id) < 0)
        return;
    lp_msg_t *m = lp_msg_new(LP_CMD_QUERY, id);
    json_t *meta = lp_msg_meta_rw(m);
    json_object_set_new(meta, "kind", json_string("audit"));
    json_object_set_new(meta, "action", json_string("config_reloaded"));
    json_object_set_new(meta, "table_name", json_string("config"));
    json_object_set_new(meta, "object_id", lp_json_text(self->config_path));
    json_object_set_new(meta, "changed_by", json_string("SIGHUP"));
    json_t *groups = json_array();
    for (size_t i = 0; i < self->cfg->ngroups; i++)
        json_array_append_new(groups, lp_json_text(self->cfg->groups[i]));
    json_t *after = json_object();
    json_object_set_new(after, "model_groups", groups);
    json_object_set_new(after, "deployments", json_integer((json_int_t)self->cfg->ndeployments));
    json_object_set_new(meta, "updated_values", after);
    if (lp_msg_send(&m, self->logger) < 0) {
        lp_msg_destroy(&m);
        log_warn("the config reload could not be written to the audit log (no logger)");
    }
}

/* SIGHUP: model_list (the groups served), router and per-request settings and the master
 * key apply to new requests at once; requests in flight finish as they began. What was
 * built at start (listener, Redis, response cache, key cache, links) needs a restart. */
static void s_reload(gw_server_t *self)
{
    if (!self->config_path)
        return;
    lp_cfg_t *cfg = lp_daemon_reload(self->config_path);
    if (!cfg)
        return;
    char hash[LP_SHA256_HEX_LEN];
    lp_sha256_hex(cfg->master_key, strlen(cfg->master_key), hash);
    free(self->master_hash);
    self->master_hash = lp_strdup(hash);
    bool cache_changed =
        cfg->cache != self->cfg->cache ||
        !json_equal(cfg->cache_params ? cfg->cache_params : json_null(),
                    self->cfg->cache_params ? self->cfg->cache_params : json_null());
    lp_cfg_destroy(&self->cfg);
    self->cfg = cfg;
    log_info("SIGHUP: config reloaded: %zu model group(s)", cfg->ngroups);
    s_audit_reload(self);
    if (cache_changed)
        log_warn("SIGHUP: cache settings changed; they apply after a restart of the gateway");
}

static int s_on_signal(lp_loop_t *loop, int signo, void *arg)
{
    gw_server_t *self = arg;
    if (signo == SIGHUP) {
        s_reload(self);
        return 0;
    }
    if (lp_daemon_log_signal(signo) || (signo != SIGINT && signo != SIGTERM))
        return 0;
    if (self->stopping || (lp_map_size(self->inflight) == 0 && self->live == 0)) {
        log_info("signal %d: stopping", signo);
        lp_loop_stop(loop);
        return 0;
    }
    /* Stop accepting, let requests in flight finish. */
    self->stopping = true;
    MHD_socket listen_fd = MHD_quiesce_daemon(self->httpd);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    log_info("signal %d: draining %zu request(s)", signo, self->live);
    lp_timer_start(loop, &self->drain, GW_DRAIN_MS, s_on_drain_timeout, self);
    return 0;
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    LP_UNUSED(cls);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_debug("libmicrohttpd: %s", msg);
}

static void s_on_redis_state(void *arg, bool up, const char *why)
{
    gw_server_t *self = arg;
    const char *where = lp_redis_where(self->redis);
    if (up) {
        log_info("redis %s connected: rate limits, budgets and keys are shared", where);
        gw_limits_redis_up(self->limits);
    } else if (self->cfg->limits_fail_closed) {
        log_warn("redis %s unreachable (%s): keys with limits are refused until it is back "
                 "(limits_fail_closed)",
                 where, why);
    } else {
        log_warn("redis %s unreachable (%s): rate limits and budgets count in this process "
                 "until it is back",
                 where, why);
    }
}

/* Where the shared Redis is: REDIS_URL, else router_settings redis_host/port/password,
 * else litellm_settings.cache_params host/port/password (as LiteLLM configs name it).
 * NULL when none is set; the caller frees it. */
static char *s_redis_url(const lp_cfg_t *cfg)
{
    if (cfg->redis_url)
        return lp_strdup(cfg->redis_url);
    const char *host = cfg->redis_host, *password = cfg->redis_password;
    long long port = cfg->redis_port;
    if (!host) {
        host = lp_json_str(cfg->cache_params, "host");
        password = lp_json_str(cfg->cache_params, "password");
        const json_t *p = json_object_get(cfg->cache_params, "port");
        port = json_is_integer(p)  ? json_integer_value(p)
               : json_is_string(p) ? atoll(json_string_value(p))
                                   : 0;
    }
    if (!host || !*host)
        return NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%lld", port > 0 && port < 65536 ? port : 6379);
    CURLU *u = curl_url();
    char *url = NULL;
    if (u && curl_url_set(u, CURLUPART_SCHEME, "redis", CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_HOST, host, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_PORT, portstr, 0) == CURLUE_OK &&
        (!password || !*password ||
         curl_url_set(u, CURLUPART_PASSWORD, password, CURLU_URLENCODE) == CURLUE_OK)) {
        char *text = NULL;
        if (curl_url_get(u, CURLUPART_URL, &text, 0) == CURLUE_OK) {
            url = lp_strdup(text);
            explicit_bzero(text, strlen(text));
            curl_free(text);
        }
    }
    curl_url_cleanup(u);
    return url ? url : lp_strdup("redis://invalid-redis-host-setting");
}

gw_server_t *gw_server_new(lp_cfg_t **cfg, lp_prices_t **prices, const gw_listen_t *listen,
                           const char *router, const char *logger, char *err)
{
    gw_server_t *self = lp_calloc(1, sizeof *self);
    self->max_connections = listen->max_connections;
    self->cfg = *cfg;
    *cfg = NULL;
    self->prices = *prices;
    *prices = NULL;
    self->httpd_fd = -1;
    self->started_wall_ns = lp_wall_ns();
    self->router_expiry_ns = lp_mono_ns() + s_liveness_ns();
    lp_strlcpy(self->db_state, "unknown", sizeof self->db_state);
    char hash[LP_SHA256_HEX_LEN];
    lp_sha256_hex(self->cfg->master_key, strlen(self->cfg->master_key), hash);
    self->master_hash = lp_strdup(hash);
    self->inflight = lp_map_new();
    self->pending = lp_map_new();
    self->metrics = gw_metrics_new();
    self->keys = gw_keys_new(self, (int64_t)(self->cfg->key_cache_ttl_s * 1000.0));
    self->health = lp_map_new();
    self->zctx = zmq_ctx_new();
    self->loop = lp_loop_new();
    if (!self->zctx || !self->loop) {
        lp_err_set(err, "cannot create the ZeroMQ context or event loop");
        goto fail;
    }
    char *redis_url = s_redis_url(self->cfg);
    if (redis_url) {
        self->redis =
            lp_redis_new(self->loop, redis_url, GW_REDIS_TIMEOUT_MS, s_on_redis_state, self, err);
        lp_free_secret(redis_url);
        if (!self->redis)
            goto fail;
    }
    self->limits = gw_limits_new(self);
    self->cache = gw_cache_new(self, err);
    if (!self->cache && err[0])
        goto fail;
    /* immediate: with no router connected a request fails at once instead of queueing. */
    self->router = lp_zmq_socket(self->zctx, ZMQ_DEALER, router, false, true, err);
    if (!self->router)
        goto fail;
    /* immediate: with no logger connected a record stays in the outbox instead of piling up
     * (as duplicates) in ZeroMQ's queue. */
    self->logger = lp_zmq_socket(self->zctx, ZMQ_DEALER, logger, false, true, err);
    if (!self->logger)
        goto fail;
    self->outbox = gw_outbox_new(self->loop, self->logger);
    self->httpd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, (uint16_t)listen->port, NULL,
        NULL, gw_http_access, self, MHD_OPTION_NOTIFY_COMPLETED, gw_http_completed, self,
        MHD_OPTION_NOTIFY_CONNECTION, gw_conn_notify, self, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)GW_CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)GW_CONNECTION_MEMORY, MHD_OPTION_CONNECTION_LIMIT,
        listen->max_connections + GW_CONNECTION_SLACK, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        listen->max_per_ip, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_EXTERNAL_LOGGER,
        s_mhd_log, self, MHD_OPTION_END);
    if (!self->httpd) {
        lp_err_set(err, "cannot listen on port %d: %s", listen->port, strerror(errno));
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->httpd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info) {
        lp_err_set(err, "libmicrohttpd has no epoll fd");
        goto fail;
    }
    self->httpd_fd = info->epoll_fd;
    if (lp_loop_add_fd(self->loop, self->httpd_fd, EPOLLIN, s_on_httpd, self) < 0 ||
        lp_loop_add_socket(self->loop, self->router, s_on_router, self) < 0 ||
        lp_loop_add_socket(self->loop, self->logger, s_on_logger, self) < 0 ||
        lp_loop_handle_signals(self->loop, s_on_signal, self) < 0) {
        lp_err_set(err, "cannot register with the event loop");
        goto fail;
    }
    lp_loop_set_before_sleep(self->loop, s_before_sleep, self);
    s_ping(self->router, true);
    s_ping(self->logger, false);
    lp_timer_start(self->loop, &self->heartbeat, LP_HEARTBEAT_MS, s_on_heartbeat, self);
    lp_timer_start(self->loop, &self->hello, GW_HELLO_MS, s_on_hello, self);
    return self;
fail:
    gw_server_destroy(&self);
    return NULL;
}

void gw_server_destroy(gw_server_t **self_p)
{
    gw_server_t *self = *self_p;
    if (!self)
        return;
    /* Requests held for Redis hear "closing" and are answered 503. */
    self->stopping = true;
    lp_redis_destroy(&self->redis);
    if (self->httpd) {
        /* MHD must not be stopped with suspended connections: answer and resume them. */
        s_fail_inflight(self, 503, "shutting_down", "the proxy is shutting down");
        MHD_run(self->httpd);
        if (self->loop && self->httpd_fd >= 0)
            lp_loop_remove_fd(self->loop, self->httpd_fd);
        MHD_stop_daemon(self->httpd);
    }
    if (self->loop) {
        lp_timer_stop(self->loop, &self->heartbeat);
        lp_timer_stop(self->loop, &self->hello);
        lp_timer_stop(self->loop, &self->drain);
        lp_timer_stop(self->loop, &self->httpd_timer);
    }
    if (self->pending && self->loop)
        gw_pending_flush(self);
    if (self->outbox)
        gw_outbox_flush(self->outbox); /* the records made just now go as they always did */
    lp_map_destroy(&self->pending);
    lp_map_destroy(&self->health);
    lp_map_destroy(&self->inflight);
    if (self->outbox && gw_outbox_size(self->outbox))
        log_warn("%zu usage record(s) never acknowledged by a logger are lost",
                 gw_outbox_size(self->outbox));
    gw_outbox_destroy(&self->outbox);
    gw_metrics_destroy(&self->metrics);
    gw_keys_destroy(&self->keys);
    gw_limits_destroy(&self->limits);
    gw_cache_destroy(&self->cache);
    lp_prices_destroy(&self->prices);
    lp_zmq_close(&self->router);
    lp_zmq_close(&self->logger);
    lp_loop_destroy(&self->loop);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    lp_cfg_destroy(&self->cfg);
    free(self->master_hash);
    free(self->config_path);
    free(self);
    *self_p = NULL;
}

static int s_on_closing_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(timer);
    LP_UNUSED(arg);
    lp_loop_stop(loop);
    return 0;
}

int gw_server_run(gw_server_t *self, const char *config_path)
{
    free(self->config_path);
    self->config_path = config_path ? lp_strdup(config_path) : NULL;
    log_info("listening on port %d: %zu model group(s)", gw_server_port(self), self->cfg->ngroups);
    int rc = lp_loop_run(self->loop);
    /* Answered requests' records must reach a logger before we go: keep the loop (not the
     * listener) running until they are acknowledged, for a while. */
    if (rc == 0 && gw_outbox_size(self->outbox) > 0) {
        MHD_socket listen_fd = MHD_quiesce_daemon(self->httpd);
        if (listen_fd != MHD_INVALID_SOCKET)
            close(listen_fd);
        self->closing = true;
        log_info("waiting for %zu usage record(s) to be acknowledged",
                 gw_outbox_size(self->outbox));
        lp_timer_start(self->loop, &self->drain, GW_OUTBOX_DRAIN_MS, s_on_closing_timeout, self);
        rc = lp_loop_run(self->loop);
    }
    return rc;
}

int gw_server_port(const gw_server_t *self)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->httpd, MHD_DAEMON_INFO_BIND_PORT);
    return info ? (int)info->port : -1;
}
