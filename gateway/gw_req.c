#define LP_LOG_MODULE "gw_req"
#include "gw_req.h"

#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "gw_cache.h"
#include "gw_health.h"
#include "gw_keys.h"
#include "gw_limits.h"
#include "gw_routes.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_time.h"
#include "lp_version.h"

gw_req_t *gw_req_new(gw_server_t *srv, struct MHD_Connection *conn)
{
    gw_req_t *self = lp_calloc(1, sizeof *self);
    self->srv = srv;
    srv->live++;
    self->conn = conn;
    self->start_ns = lp_mono_ns();
    self->start_wall_ns = lp_wall_ns();
    /* Request ids only need to be unique; if the CSPRNG fails, time and address are. */
    if (lp_random_bytes(self->id, sizeof self->id) < 0) {
        int64_t t = self->start_wall_ns;
        uintptr_t p = (uintptr_t)self;
        memcpy(self->id, &t, sizeof t);
        memcpy(self->id + 8, &p, sizeof p < 8 ? sizeof p : 8);
    }
    self->id[6] = (uint8_t)((self->id[6] & 0x0f) | 0x40);
    self->id[8] = (uint8_t)((self->id[8] & 0x3f) | 0x80);
    lp_req_id_format(self->id, self->idstr);
    self->content_type = "application/json";
    self->watch_fd = -1;
    self->rl_limit_requests = self->rl_remaining_requests = -1;
    self->rl_limit_tokens = self->rl_remaining_tokens = -1;
    return self;
}

static void s_unwatch(gw_req_t *self)
{
    lp_timer_stop(self->srv->loop, &self->watch_timer);
    if (self->watch_fd >= 0) {
        lp_loop_remove_fd(self->srv->loop, self->watch_fd);
        self->watch_fd = -1;
    }
}

void gw_req_destroy(gw_req_t **self_p)
{
    gw_req_t *self = *self_p;
    if (!self)
        return;
    self->srv->live--;
    lp_timer_stop(self->srv->loop, &self->deadline);
    s_unwatch(self);
    gw_stream_free(&self->out);
    gw_health_destroy(&self->health);
    gw_keys_forget(self->srv->keys, self);
    gw_limits_forget(self->srv->limits, self);
    gw_cache_forget(self);
    json_decref(self->json);
    json_decref(self->key);
    json_decref(self->aux);
    lp_msg_destroy(&self->head);
    lp_buf_free(&self->body);
    free(self->group);
    free(self->user);
    lp_msg_destroy(&self->reply);
    free(self->local);
    free(self);
    *self_p = NULL;
}

void gw_req_answer(gw_req_t *self, int status, char *body, size_t len)
{
    free(self->local);
    self->status = status;
    self->local = body;
    self->local_len = len;
    self->state = GW_REQ_ANSWERED;
    self->answer_ns = lp_mono_ns();
}

void gw_req_fail(gw_req_t *self, int status, const char *code, const char *param, const char *fmt,
                 ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = 0;
    char *body = lp_error_body(status, NULL, code, param, msg, &len);
    gw_req_answer(self, status, body, len);
}

void gw_req_answer_reply(gw_req_t *self, lp_msg_t **reply)
{
    lp_msg_destroy(&self->reply);
    self->reply = *reply;
    *reply = NULL;
    long long status = lp_msg_meta_int(self->reply, "status", 502);
    self->status = status >= 100 && status <= 599 ? (int)status : 502;
    self->state = GW_REQ_ANSWERED;
    self->answer_ns = lp_mono_ns();
}

const char *gw_req_header(gw_req_t *self, const char *name)
{
    return MHD_lookup_connection_value(self->conn, MHD_HEADER_KIND, name);
}

/* Add a header unless the value could break the header block (it comes from config or a
 * provider, never trusted to be clean). */
static void s_header(struct MHD_Response *r, const char *name, const char *value)
{
    if (!value || strpbrk(value, "\r\n"))
        return;
    if (MHD_add_response_header(r, name, value) == MHD_NO)
        log_debug("header %s refused by libmicrohttpd", name);
}

/* A whole-number header. */
static void s_header_num(struct MHD_Response *r, const char *name, long long v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", v);
    s_header(r, name, buf);
}

/* Microseconds as milliseconds with three decimals (integers only: no floating-point
 * formatting on every answer). */
#define S_MS_FMT "%lld.%03lld"
#define S_MS(us) (long long)(us) / 1000, (long long)(us) % 1000

static void s_header_ms(struct MHD_Response *r, const char *name, long long us)
{
    char buf[32];
    snprintf(buf, sizeof buf, S_MS_FMT, S_MS(LP_MAX(us, 0)));
    s_header(r, name, buf);
}

/* Server-Timing: where the time went, hop by hop (ms). gateway is the time spent here (total
 * less the round trip through the router), router the wait before the answering attempt was
 * dispatched, worker the worker's own time, upstream-ttfb and upstream the provider's (for
 * a stream, until its first bytes). gateway + router + worker + upstream <= total. */
static void s_server_timing(gw_req_t *self, struct MHD_Response *r, lp_msg_t *from,
                            long long total_us)
{
    char buf[256];
    size_t n = 0;
    if (self->sent_ns && self->answer_ns >= self->sent_ns) {
        long long trip_us = (self->answer_ns - self->sent_ns) / 1000;
        n += (size_t)snprintf(buf + n, sizeof buf - n, "gateway;dur=" S_MS_FMT ", ",
                              S_MS(LP_MAX(total_us - trip_us, 0)));
    }
    static const struct {
        const char *name, *key;
    } parts[] = {{"router", "router_us"},
                 {"worker", "worker_us"},
                 {"upstream-ttfb", "ttfb_us"},
                 {"upstream", "upstream_us"}};
    for (size_t i = 0; i < LP_ARRAY_LEN(parts) && n < sizeof buf; i++) {
        long long us = lp_msg_meta_int(from, parts[i].key, -1);
        if (us >= 0)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s;dur=" S_MS_FMT ", ", parts[i].name,
                                  S_MS(us));
    }
    if (n < sizeof buf)
        snprintf(buf + n, sizeof buf - n, "total;dur=" S_MS_FMT, S_MS(total_us));
    s_header(r, "server-timing", buf);
}

/* The x-litellm-* headers LiteLLM clients read: where the call went, what it cost, and
 * how much of the time was the proxy's own (for a stream: until its first byte). */
static void s_model_headers(gw_req_t *self, struct MHD_Response *r, lp_msg_t *from,
                            long long total_us)
{
    /* The group that served it: the one asked for, or the fallback that answered. */
    const char *group = lp_msg_meta_str(from, "group");
    s_header(r, "x-litellm-model-group", group ? group : self->group);
    if (!from)
        return;
    s_header(r, "x-litellm-model-id", lp_msg_meta_str(from, "deployment"));
    s_header(r, "x-litellm-model-api-base", lp_msg_meta_str(from, "api_base"));
    s_header_num(r, "x-litellm-attempted-retries", lp_msg_meta_int(from, "retries", 0));
    s_header_num(r, "x-litellm-attempted-fallbacks", lp_msg_meta_int(from, "fallbacks", 0));
    double cost = lp_msg_meta_num(from, "cost", NAN);
    if (!isnan(cost)) {
        char buf[48];
        snprintf(buf, sizeof buf, "%.10g", cost);
        s_header(r, "x-litellm-response-cost", buf);
    }
    s_server_timing(self, r, from, total_us);
    long long retry_ms = lp_msg_meta_int(from, "retry_after_ms", -1);
    if (retry_ms >= 0 && (self->status == 429 || self->status == 503))
        s_header_num(r, "retry-after", (retry_ms + 999) / 1000);
}

static void s_send_credit(gw_req_t *self)
{
    lp_msg_t *m = lp_msg_new(LP_CMD_CREDIT, self->id);
    json_object_set_new(lp_msg_meta_rw(m), "bytes", json_integer((json_int_t)self->out.unacked));
    self->out.unacked = 0;
    if (lp_msg_send(&m, self->srv->router) < 0)
        lp_msg_destroy(&m);
}

/* MHD's content reader for streams: hand over what is queued; when nothing is, suspend
 * until the next CHUNK (returning 0 with the connection suspended, as MHD asks). */
static ssize_t s_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    LP_UNUSED(pos);
    gw_req_t *self = cls;
    size_t n = gw_stream_read(&self->out, buf, max);
    if (self->out.unacked >= GW_CREDIT_STEP && !self->out.done)
        s_send_credit(self);
    if (n > 0)
        return (ssize_t)n;
    if (self->out.done)
        return MHD_CONTENT_READER_END_OF_STREAM;
    gw_req_suspend(self);
    return 0;
}

static struct MHD_Response *s_response(gw_req_t *self)
{
    if (self->streaming) {
        self->content_type = "text/event-stream";
        return MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, GW_STREAM_BLOCK, s_reader, self,
                                                 NULL);
    }
    const void *data = self->local;
    size_t len = self->local_len;
    if (self->reply && !self->local)
        data = lp_msg_body(self->reply, &len);
    /* The buffer lives in this request until MHD reports it complete: no copy. */
    return MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
}

/* The caller's key limits, as OpenAI names them (they replace the provider's). */
static void s_limit_headers(gw_req_t *self, struct MHD_Response *r)
{
    static const char *names[] = {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                                  "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens"};
    long long values[] = {self->rl_limit_requests, self->rl_remaining_requests,
                          self->rl_limit_tokens, self->rl_remaining_tokens};
    for (size_t i = 0; i < LP_ARRAY_LEN(names); i++) {
        if (values[i] >= 0)
            s_header_num(r, names[i], values[i]);
    }
    if (self->retry_after_s > 0)
        s_header_num(r, "retry-after", self->retry_after_s);
}

/* An error for a /v1/messages client: {"type":"error","error":{"type","message"}}. */
static void s_anthropic_error(gw_req_t *self)
{
    size_t len = self->local_len;
    const char *data = self->local;
    if (self->reply && !self->local)
        data = lp_msg_body(self->reply, &len);
    json_t *body = json_loadb(data ? data : "", len, 0, NULL);
    const char *msg = lp_json_str(json_object_get(body, "error"), "message");
    size_t n = 0;
    char *text = lp_anthropic_error_body(self->status, msg ? msg : "error", &n);
    json_decref(body);
    free(self->local);
    self->local = text;
    self->local_len = n;
}

enum MHD_Result gw_req_queue(gw_req_t *self)
{
    if (GW_ANTHROPIC(self->call) && self->status >= 400 && !self->streaming)
        s_anthropic_error(self);
    struct MHD_Response *r = s_response(self);
    if (!r)
        return MHD_NO;
    long long total_us = (lp_mono_ns() - self->start_ns) / 1000;
    s_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, self->content_type);
    s_header(r, "x-litellm-call-id", self->idstr);
    s_header(r, "x-litellm-version", LP_VERSION);
    s_header_ms(r, "x-litellm-response-duration-ms", total_us);
    /* The worker's word (for a stream, its HEAD) says where the call went and how long the
     * provider took; every answer says what the proxy itself took. */
    lp_msg_t *from = self->streaming ? self->head : self->reply;
    long long upstream_us = lp_msg_meta_int(from, "upstream_us", 0);
    s_header_ms(r, "x-litellm-overhead-duration-ms", total_us - LP_MAX(upstream_us, 0));
    if (self->call != GW_CALL_NONE)
        s_model_headers(self, r, from, total_us);
    if (self->status == 401)
        s_header(r, "www-authenticate", "Bearer");
    s_limit_headers(self, r);
    if (gw_cache_key(self))
        s_header(r, "x-litellm-cache-key", gw_cache_key(self));
    if (self->streaming) {
        s_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        s_header(r, "x-accel-buffering", "no");
    }
    if (self->close)
        s_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    /* A 503 says when to come back, if nothing more precise did. */
    if (self->status == 503 && !MHD_get_response_header(r, "retry-after"))
        s_header(r, "retry-after", "1");
    enum MHD_Result ok = MHD_queue_response(self->conn, (unsigned)self->status, r);
    MHD_destroy_response(r);
    self->state = GW_REQ_QUEUED;
    return ok;
}

static int s_on_client_fd(lp_loop_t *loop, int fd, uint32_t events, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(fd);
    LP_UNUSED(events);
    gw_req_t *self = arg;
    s_unwatch(self);
    gw_client_gone(self);
    return 0;
}

/* A suspension that lasts: watch the client's socket for a hang-up (EPOLLRDHUP: the peer
 * closed its side; our own epoll set, next to MHD's), so its upstream work stops. */
static int s_on_watch_timer(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(timer);
    gw_req_t *self = arg;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(self->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (self->suspended && info &&
        lp_loop_add_fd(loop, info->connect_fd, EPOLLRDHUP, s_on_client_fd, self) == 0)
        self->watch_fd = info->connect_fd;
    return 0;
}

void gw_req_suspend(gw_req_t *self)
{
    if (self->suspended)
        return;
    MHD_suspend_connection(self->conn);
    self->suspended = true;
    /* Most answers come sooner: they cost no epoll_ctl pair. */
    lp_timer_start(self->srv->loop, &self->watch_timer, GW_WATCH_AFTER_MS, s_on_watch_timer, self);
}

void gw_req_resume(gw_req_t *self)
{
    if (!self->suspended)
        return;
    s_unwatch(self);
    self->suspended = false;
    MHD_resume_connection(self->conn);
    self->srv->resumed = true;
}

void gw_req_stream_begin(gw_req_t *self, lp_msg_t **head)
{
    lp_msg_destroy(&self->head);
    self->head = *head;
    *head = NULL;
    lp_msg_keep(self->head); /* held for the stream's life */
    self->streaming = true;
    self->status = 200;
    self->state = GW_REQ_ANSWERED;
    self->answer_ns = lp_mono_ns();
}

void gw_req_stream_error(gw_req_t *self, const void *error_json, size_t len)
{
    if (GW_ANTHROPIC(self->call)) {
        json_t *body = json_loadb(error_json, len, 0, NULL);
        const char *msg = lp_json_str(json_object_get(body, "error"), "message");
        size_t n = 0;
        char *text = lp_anthropic_error_body(self->status >= 400 ? self->status : 502,
                                             msg ? msg : "error", &n);
        json_decref(body);
        gw_stream_push_copy(&self->out, "event: error\ndata: ", 19);
        gw_stream_push_copy(&self->out, text, n);
        gw_stream_push_copy(&self->out, "\n\n", 2);
        free(text);
        return;
    }
    gw_stream_push_copy(&self->out, "data: ", 6);
    gw_stream_push_copy(&self->out, error_json, len);
    gw_stream_push_copy(&self->out, "\n\n", 2);
}
