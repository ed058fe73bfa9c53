#include "gw_metrics.h"

#include <stdlib.h>
#include <string.h>

#include "gw_outbox.h"
#include "lp_buf.h"
#include "lp_json.h"
#include "lp_map.h"
#include "lp_time.h"

/* Histogram bounds in seconds (the last bucket is +Inf). */
static const double s_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define S_NB (sizeof s_bounds / sizeof s_bounds[0])

typedef struct {
    unsigned long long buckets[S_NB + 1];
    unsigned long long count;
    double sum;
} s_hist_t;

/* Figures per model group. */
typedef struct {
    char *group;
    s_hist_t duration, ttft;
    unsigned long long prompt_tokens, completion_tokens, cache_hits;
    double spend;
} s_group_t;

/* Requests per (group, deployment, status). */
typedef struct {
    char *group, *model_id;
    int status;
    unsigned long long count;
} s_count_t;

struct gw_metrics {
    lp_map_t *groups; /* group -> s_group_t */
    lp_map_t *counts; /* "group\n model_id\n status" -> s_count_t */
    json_t *router;   /* the router's last figures */
};

gw_metrics_t *gw_metrics_new(void)
{
    gw_metrics_t *self = lp_calloc(1, sizeof *self);
    self->groups = lp_map_new();
    self->counts = lp_map_new();
    return self;
}

static bool s_free_group(const void *k, size_t l, void *v, void *a)
{
    LP_UNUSED(k);
    LP_UNUSED(l);
    LP_UNUSED(a);
    s_group_t *g = v;
    free(g->group);
    free(g);
    return true;
}

static bool s_free_count(const void *k, size_t l, void *v, void *a)
{
    LP_UNUSED(k);
    LP_UNUSED(l);
    LP_UNUSED(a);
    s_count_t *c = v;
    free(c->group);
    free(c->model_id);
    free(c);
    return true;
}

void gw_metrics_destroy(gw_metrics_t **self_p)
{
    gw_metrics_t *self = *self_p;
    if (!self)
        return;
    lp_map_each(self->groups, s_free_group, NULL);
    lp_map_each(self->counts, s_free_count, NULL);
    lp_map_destroy(&self->groups);
    lp_map_destroy(&self->counts);
    json_decref(self->router);
    free(self);
    *self_p = NULL;
}

static void s_hist_add(s_hist_t *h, double seconds)
{
    size_t i = 0;
    while (i < S_NB && seconds > s_bounds[i])
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum += seconds;
}

void gw_metrics_observe(gw_metrics_t *self, const gw_record_t *rec)
{
    const char *group = rec->model_group ? rec->model_group : "";
    const char *model_id = rec->deployment[GW_REC_MODEL_ID] ? rec->deployment[GW_REC_MODEL_ID] : "";
    int status = rec->http_status;
    char *key = lp_asprintf("%s\n%s\n%d", group, model_id, status);
    s_count_t *c = lp_map_get(self->counts, key, strlen(key));
    if (!c) {
        c = lp_calloc(1, sizeof *c);
        c->group = lp_strdup(group);
        c->model_id = lp_strdup(model_id);
        c->status = status;
        lp_map_put(self->counts, key, strlen(key), c);
    }
    c->count++;
    free(key);
    s_group_t *g = lp_map_get(self->groups, group, strlen(group));
    if (!g) {
        g = lp_calloc(1, sizeof *g);
        g->group = lp_strdup(group);
        lp_map_put(self->groups, group, strlen(group), g);
    }
    s_hist_add(&g->duration, (double)rec->duration_ns / 1e9);
    if (rec->stream && rec->ttft_us >= 0)
        s_hist_add(&g->ttft, (double)rec->ttft_us / 1e6);
    g->prompt_tokens += (unsigned long long)rec->prompt_tokens;
    g->completion_tokens += (unsigned long long)rec->completion_tokens;
    g->spend += rec->spend;
    g->cache_hits += rec->cache_hit ? 1 : 0;
}

void gw_metrics_router(gw_metrics_t *self, const json_t *stats)
{
    json_decref(self->router);
    self->router = json_deep_copy(stats);
}

/* A label value as Prometheus wants it: backslash, quote and newline escaped. */
static void s_label(lp_buf_t *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            lp_buf_printf(out, "\\%c", *v);
        else if (*v == '\n')
            lp_buf_puts(out, "\\n");
        else
            lp_buf_append(out, v, 1);
    }
}

static void s_head(lp_buf_t *out, const char *name, const char *type, const char *help)
{
    lp_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef struct {
    lp_buf_t *out;
    int what; /* which family is being written */
} s_walk_t;

static void s_hist(lp_buf_t *out, const char *name, const char *group, const s_hist_t *h)
{
    unsigned long long cum = 0;
    for (size_t i = 0; i <= S_NB; i++) {
        cum += h->buckets[i];
        lp_buf_printf(out, "%s_bucket{model_group=\"", name);
        s_label(out, group);
        if (i < S_NB)
            lp_buf_printf(out, "\",le=\"%g\"} %llu\n", s_bounds[i], cum);
        else
            lp_buf_printf(out, "\",le=\"+Inf\"} %llu\n", cum);
    }
    lp_buf_printf(out, "%s_sum{model_group=\"", name);
    s_label(out, group);
    lp_buf_printf(out, "\"} %.6f\n%s_count{model_group=\"", h->sum, name);
    s_label(out, group);
    lp_buf_printf(out, "\"} %llu\n", h->count);
}

static bool s_write_group(const void *k, size_t l, void *v, void *a)
{
    LP_UNUSED(k);
    LP_UNUSED(l);
    s_walk_t *w = a;
    s_group_t *g = v;
    lp_buf_t *out = w->out;
    switch (w->what) {
    case 0:
        s_hist(out, "llmproxy_request_duration_seconds", g->group, &g->duration);
        break;
    case 1:
        s_hist(out, "llmproxy_time_to_first_token_seconds", g->group, &g->ttft);
        break;
    case 2:
        lp_buf_puts(out, "llmproxy_tokens_total{model_group=\"");
        s_label(out, g->group);
        lp_buf_printf(out, "\",type=\"prompt\"} %llu\n", g->prompt_tokens);
        lp_buf_puts(out, "llmproxy_tokens_total{model_group=\"");
        s_label(out, g->group);
        lp_buf_printf(out, "\",type=\"completion\"} %llu\n", g->completion_tokens);
        break;
    case 3:
        lp_buf_puts(out, "llmproxy_spend_usd_total{model_group=\"");
        s_label(out, g->group);
        lp_buf_printf(out, "\"} %.10g\n", g->spend);
        break;
    default:
        lp_buf_puts(out, "llmproxy_cache_hits_total{model_group=\"");
        s_label(out, g->group);
        lp_buf_printf(out, "\"} %llu\n", g->cache_hits);
        break;
    }
    return true;
}

static bool s_write_count(const void *k, size_t l, void *v, void *a)
{
    LP_UNUSED(k);
    LP_UNUSED(l);
    lp_buf_t *out = a;
    s_count_t *c = v;
    lp_buf_puts(out, "llmproxy_requests_total{model_group=\"");
    s_label(out, c->group);
    lp_buf_puts(out, "\",model_id=\"");
    s_label(out, c->model_id);
    lp_buf_printf(out, "\",status=\"%d\"} %llu\n", c->status, c->count);
    return true;
}

static void s_gauge(lp_buf_t *out, const char *name, const char *help, double v)
{
    s_head(out, name, "gauge", help);
    lp_buf_printf(out, "%s %.10g\n", name, v);
}

static void s_counter(lp_buf_t *out, const char *name, const char *help, unsigned long long v)
{
    s_head(out, name, "counter", help);
    lp_buf_printf(out, "%s %llu\n", name, v);
}

static void s_router(lp_buf_t *out, const gw_server_t *srv, const json_t *r)
{
    bool up = lp_mono_ns() < srv->router_expiry_ns && srv->router_alive;
    s_gauge(out, "llmproxy_router_up", "1 when the router answers heartbeats", up ? 1 : 0);
    s_gauge(out, "llmproxy_workers", "Workers connected to the router",
            (double)lp_json_int(r, "workers", 0));
    s_gauge(out, "llmproxy_worker_credits", "Calls the workers can still take",
            (double)lp_json_int(r, "credits", 0));
    s_gauge(out, "llmproxy_router_queue_depth", "Jobs waiting in the router for a worker",
            (double)lp_json_int(r, "queued", 0));
    json_t *deps = json_object_get(r, "deployments");
    s_head(out, "llmproxy_deployment_in_flight", "gauge", "Calls in flight per deployment");
    size_t i;
    json_t *d;
    json_array_foreach(deps, i, d)
    {
        lp_buf_puts(out, "llmproxy_deployment_in_flight{model_group=\"");
        s_label(out, lp_json_str(d, "group") ? lp_json_str(d, "group") : "");
        lp_buf_puts(out, "\",model_id=\"");
        s_label(out, lp_json_str(d, "id") ? lp_json_str(d, "id") : "");
        lp_buf_printf(out, "\"} %lld\n", lp_json_int(d, "inflight", 0));
    }
    s_head(out, "llmproxy_deployment_cooling", "gauge",
           "1 while a deployment rests after failures (cooldown)");
    json_array_foreach(deps, i, d)
    {
        lp_buf_puts(out, "llmproxy_deployment_cooling{model_group=\"");
        s_label(out, lp_json_str(d, "group") ? lp_json_str(d, "group") : "");
        lp_buf_puts(out, "\",model_id=\"");
        s_label(out, lp_json_str(d, "id") ? lp_json_str(d, "id") : "");
        lp_buf_printf(out, "\"} %d\n", lp_json_bool(d, "cooling", false) ? 1 : 0);
    }
}

void gw_metrics_serve(gw_req_t *req)
{
    gw_server_t *srv = req->srv;
    gw_metrics_t *self = srv->metrics;
    lp_buf_t out = {0};
    s_head(&out, "llmproxy_requests_total", "counter",
           "Model requests finished, by model group, deployment and HTTP status");
    lp_map_each(self->counts, s_write_count, &out);
    static const struct {
        const char *name, *type, *help;
    } families[] = {
        {"llmproxy_request_duration_seconds", "histogram", "Time from request to answer"},
        {"llmproxy_time_to_first_token_seconds", "histogram",
         "Time from request to the provider's first byte, streams"},
        {"llmproxy_tokens_total", "counter", "Tokens used"},
        {"llmproxy_spend_usd_total", "counter", "Cost in USD"},
        {"llmproxy_cache_hits_total", "counter", "Answers served from the response cache"},
    };
    for (int f = 0; f < (int)LP_ARRAY_LEN(families); f++) {
        s_head(&out, families[f].name, families[f].type, families[f].help);
        s_walk_t w = {&out, f};
        lp_map_each(self->groups, s_write_group, &w);
    }
    s_gauge(&out, "llmproxy_requests_in_flight", "Requests waiting on the router or streaming",
            (double)lp_map_size(srv->inflight));
    s_gauge(&out, "llmproxy_client_connections", "HTTP client connections open",
            (double)srv->connections);
    s_counter(&out, "llmproxy_slow_connections_closed_total",
              "Connections closed for sending their headers or body too slowly",
              (unsigned long long)srv->slow_cut);
    const gw_outbox_stats_t *os = gw_outbox_stats(srv->outbox);
    s_gauge(&out, "llmproxy_usage_records_pending",
            "Usage records sent to a logger and not yet acknowledged",
            (double)gw_outbox_size(srv->outbox));
    s_counter(&out, "llmproxy_usage_records_acked_total", "Usage records loggers acknowledged",
              (unsigned long long)os->acked);
    s_counter(&out, "llmproxy_usage_records_resent_total",
              "Usage records sent again after a missing acknowledgement",
              (unsigned long long)os->resent);
    s_counter(&out, "llmproxy_usage_records_dropped_total",
              "Usage records dropped because the outbox was full", (unsigned long long)os->dropped);
    s_router(&out, srv, self->router);
    size_t len = 0;
    char *body = lp_buf_steal(&out, &len);
    req->content_type = "text/plain; version=0.0.4; charset=utf-8";
    gw_req_answer(req, 200, body, len);
}
