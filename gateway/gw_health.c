#define LP_LOG_MODULE "gw_health"
#include "gw_health.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "lp_crypto.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_time.h"

typedef struct {
    uint8_t id[LP_REQ_ID_LEN];
    const lp_deployment_t *d;
    bool done;
    bool healthy;
    char *error; /* owned; the provider's words, already scrubbed by the worker */
} s_check_t;

struct gw_health {
    gw_server_t *srv;
    gw_req_t *req;
    lp_cfg_t *cfg; /* the checks point into it (a reference: a reload may replace it) */
    s_check_t *checks;
    size_t n, done;
    lp_timer_t timer;
};

static void s_forget(gw_health_t *self)
{
    for (size_t i = 0; i < self->n; i++)
        lp_map_remove(self->srv->health, self->checks[i].id, LP_REQ_ID_LEN);
}

void gw_health_destroy(gw_health_t **self_p)
{
    gw_health_t *self = *self_p;
    if (!self)
        return;
    lp_timer_stop(self->srv->loop, &self->timer);
    s_forget(self);
    for (size_t i = 0; i < self->n; i++)
        free(self->checks[i].error);
    free(self->checks);
    lp_cfg_destroy(&self->cfg);
    free(self);
    *self_p = NULL;
}

/* The endpoint as LiteLLM lists it: model and api_base, nothing secret. */
static json_t *s_endpoint(const s_check_t *c)
{
    json_t *e = json_object();
    json_object_set_new(e, "model", lp_json_text(c->d->model));
    json_object_set_new(e, "model_name", lp_json_text(c->d->model_name));
    json_object_set_new(e, "model_id", lp_json_text(c->d->id));
    if (c->d->api_base && !c->d->mock_response) {
        /* The worker strips credentials from bases it reports; the config copy may hold
         * them, so only the scheme, host and path go out. */
        const char *base = c->d->api_base;
        const char *at = strchr(base, '@');
        const char *scheme = strstr(base, "://");
        if (at && scheme && at > scheme) {
            char *clean = lp_asprintf("%.*s%s", (int)(scheme + 3 - base), base, at + 1);
            json_object_set_new(e, "api_base", lp_json_text(clean));
            free(clean);
        } else {
            json_object_set_new(e, "api_base", lp_json_text(base));
        }
    }
    if (c->error)
        json_object_set_new(e, "error", lp_json_text(c->error));
    return e;
}

static void s_answer(gw_health_t *self)
{
    json_t *healthy = json_array(), *unhealthy = json_array();
    for (size_t i = 0; i < self->n; i++)
        json_array_append_new(self->checks[i].healthy ? healthy : unhealthy,
                              s_endpoint(&self->checks[i]));
    json_t *o = json_object();
    json_object_set_new(o, "healthy_count", json_integer((json_int_t)json_array_size(healthy)));
    json_object_set_new(o, "unhealthy_count", json_integer((json_int_t)json_array_size(unhealthy)));
    json_object_set_new(o, "healthy_endpoints", healthy);
    json_object_set_new(o, "unhealthy_endpoints", unhealthy);
    size_t len = 0;
    char *body = lp_json_dump(o, &len);
    json_decref(o);
    gw_req_t *req = self->req;
    s_forget(self);
    gw_req_answer(req, 200, body, len);
    gw_req_resume(req);
}

static int s_on_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    gw_health_t *self = arg;
    for (size_t i = 0; i < self->n; i++) {
        if (!self->checks[i].done)
            self->checks[i].error = lp_asprintf("no answer within %d ms", GW_HEALTH_TIMEOUT_MS);
    }
    s_answer(self);
    return 0;
}

/* The smallest request that exercises the deployment. */
static char *s_probe_body(const lp_deployment_t *d, size_t *len)
{
    json_t *b = json_object();
    json_object_set_new(b, "model", json_string(d->model_name));
    if (d->mode == LP_MODE_EMBEDDING) {
        json_object_set_new(b, "input", json_string("ping"));
    } else {
        json_t *msgs = json_array();
        json_t *m = json_object();
        json_object_set_new(m, "role", json_string("user"));
        json_object_set_new(m, "content", json_string("ping"));
        json_array_append_new(msgs, m);
        json_object_set_new(b, "messages", msgs);
        json_object_set_new(b, "max_tokens", json_integer(1));
    }
    char *text = lp_json_dump(b, len);
    json_decref(b);
    return text;
}

static bool s_send_check(gw_server_t *srv, s_check_t *c)
{
    if (lp_random_bytes(c->id, sizeof c->id) < 0)
        return false;
    lp_msg_t *m = lp_msg_new(LP_CMD_REQUEST, c->id);
    json_t *meta = lp_msg_meta_rw(m);
    json_object_set_new(meta, "model", json_string(c->d->model_name));
    json_object_set_new(meta, "call_type",
                        json_string(c->d->mode == LP_MODE_EMBEDDING ? "embedding" : "chat"));
    json_object_set_new(meta, "stream", json_false());
    json_object_set_new(meta, "deployment", json_string(c->d->id));
    json_object_set_new(meta, "timeout_ms", json_integer(GW_HEALTH_TIMEOUT_MS));
    json_object_set_new(meta, "health", json_true());
    size_t len = 0;
    char *body = s_probe_body(c->d, &len);
    lp_msg_give_body(m, body, len);
    if (lp_msg_send(&m, srv->router) < 0) {
        lp_msg_destroy(&m);
        return false;
    }
    return true;
}

void gw_health_start(gw_req_t *req)
{
    gw_server_t *srv = req->srv;
    const lp_cfg_t *cfg = srv->cfg;
    const char *model = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "model");
    if (model && !lp_cfg_has_group(cfg, model)) {
        gw_req_fail(req, 400, "model_not_found", "model", "no model group '%.200s'", model);
        return;
    }
    if (lp_mono_ns() >= srv->router_expiry_ns) {
        gw_req_fail(req, 503, "router_unavailable", NULL,
                    "the proxy's router is not answering; try again shortly");
        return;
    }
    gw_health_t *self = lp_calloc(1, sizeof *self);
    self->srv = srv;
    self->req = req;
    self->cfg = lp_cfg_ref(srv->cfg);
    self->checks = lp_calloc(cfg->ndeployments ? cfg->ndeployments : 1, sizeof *self->checks);
    for (size_t i = 0; i < cfg->ndeployments; i++) {
        const lp_deployment_t *d = &cfg->deployments[i];
        if (model && strcmp(d->model_name, model) != 0)
            continue;
        s_check_t *c = &self->checks[self->n++];
        c->d = d;
        if (!s_send_check(srv, c)) {
            c->done = true;
            c->error = lp_asprintf("the proxy's router is not reachable");
            self->done++;
            continue;
        }
        lp_map_put(srv->health, c->id, LP_REQ_ID_LEN, self);
    }
    req->health = self;
    if (self->done == self->n) {
        s_answer(self);
        req->state = GW_REQ_ANSWERED;
        return;
    }
    lp_timer_start(srv->loop, &self->timer, GW_HEALTH_TIMEOUT_MS + 1000, s_on_timeout, self);
    req->state = GW_REQ_WAITING;
}

bool gw_health_reply(gw_server_t *srv, lp_msg_t **msg)
{
    const uint8_t *id = lp_msg_req_id(*msg);
    gw_health_t *self = id ? lp_map_get(srv->health, id, LP_REQ_ID_LEN) : NULL;
    if (!self)
        return false;
    lp_cmd_t cmd = lp_msg_cmd(*msg);
    if (cmd != LP_CMD_END && cmd != LP_CMD_ERROR)
        return true; /* HEAD/CHUNK cannot come for a non-streaming check */
    lp_map_remove(srv->health, id, LP_REQ_ID_LEN);
    for (size_t i = 0; i < self->n; i++) {
        s_check_t *c = &self->checks[i];
        if (c->done || memcmp(c->id, id, LP_REQ_ID_LEN) != 0)
            continue;
        c->done = true;
        c->healthy = cmd == LP_CMD_END;
        if (!c->healthy) {
            size_t len = 0;
            const char *body = lp_msg_body(*msg, &len);
            json_t *e = json_loadb(body, len, 0, NULL);
            const char *text = lp_json_str(json_object_get(e, "error"), "message");
            c->error = lp_strdup(text ? text : "failed");
            json_decref(e);
        }
        self->done++;
        break;
    }
    lp_msg_destroy(msg);
    if (self->done == self->n) {
        lp_timer_stop(srv->loop, &self->timer);
        s_answer(self);
    }
    return true;
}
