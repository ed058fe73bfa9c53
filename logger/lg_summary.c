#include "lg_summary.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_json.h"
#include "lp_map.h"
#include "lp_time.h"

typedef struct {
    char *group;
    unsigned long long requests, errors, seen, ttft_seen;
    unsigned long long prompt, completion;
    double spend;
    /* The proxy's own time (gateway + router + worker) and the provider's, summed in ms. */
    double proxy_ms, upstream_ms;
    unsigned long long timed;
    double *lat;  /* ms, reservoir of LG_SUMMARY_SAMPLES */
    double *ttft; /* ms */
    size_t nlat, nttft;
} s_group_t;

struct lg_summary {
    lp_map_t *groups;
    uint64_t rng;
};

lg_summary_t *lg_summary_new(void)
{
    lg_summary_t *self = lp_calloc(1, sizeof *self);
    self->groups = lp_map_new();
    self->rng = 0x2545F4914F6CDD1DULL;
    return self;
}

static bool s_free(const void *k, size_t l, void *v, void *a)
{
    LP_UNUSED(k);
    LP_UNUSED(l);
    LP_UNUSED(a);
    s_group_t *g = v;
    free(g->group);
    free(g->lat);
    free(g->ttft);
    free(g);
    return true;
}

void lg_summary_destroy(lg_summary_t **self_p)
{
    lg_summary_t *self = *self_p;
    if (!self)
        return;
    lp_map_each(self->groups, s_free, NULL);
    lp_map_destroy(&self->groups);
    free(self);
    *self_p = NULL;
}

static uint64_t s_rand(lg_summary_t *self)
{
    self->rng ^= self->rng << 13;
    self->rng ^= self->rng >> 7;
    self->rng ^= self->rng << 17;
    return self->rng;
}

/* Keep a uniform sample of the interval's values (reservoir sampling). */
static void s_sample(lg_summary_t *self, double *arr, size_t *n, unsigned long long seen, double v)
{
    if (*n < LG_SUMMARY_SAMPLES) {
        arr[(*n)++] = v;
        return;
    }
    uint64_t j = s_rand(self) % seen;
    if (j < LG_SUMMARY_SAMPLES)
        arr[j] = v;
}

void lg_summary_add(lg_summary_t *self, const lp_mview_t *rec)
{
    const char *group = lp_mview_str(rec, "model_group");
    group = group ? group : "-";
    s_group_t *g = lp_map_get(self->groups, group, strlen(group));
    if (!g) {
        g = lp_calloc(1, sizeof *g);
        g->group = lp_strdup(group);
        g->lat = lp_calloc(LG_SUMMARY_SAMPLES, sizeof *g->lat);
        g->ttft = lp_calloc(LG_SUMMARY_SAMPLES, sizeof *g->ttft);
        lp_map_put(self->groups, group, strlen(group), g);
    }
    g->requests++;
    if (lp_mview_int(rec, "http_status", 0) >= 400)
        g->errors++;
    g->prompt += (unsigned long long)lp_mview_int(rec, "prompt_tokens", 0);
    g->completion += (unsigned long long)lp_mview_int(rec, "completion_tokens", 0);
    g->spend += lp_mview_num(rec, "spend", 0);
    g->seen++;
    s_sample(self, g->lat, &g->nlat, g->seen, lp_mview_num(rec, "duration_ms", 0));
    double upstream = lp_mview_num(rec, "upstream_ms", NAN);
    if (!isnan(upstream)) {
        g->timed++;
        g->upstream_ms += upstream;
        g->proxy_ms += lp_mview_num(rec, "gateway_ms", 0) + lp_mview_num(rec, "router_ms", 0) +
                       lp_mview_num(rec, "worker_ms", 0);
    }
    double ttft = lp_mview_num(rec, "ttft_ms", NAN);
    if (lp_mview_bool(rec, "stream", false) && !isnan(ttft)) {
        g->ttft_seen++;
        s_sample(self, g->ttft, &g->nttft, g->ttft_seen, ttft);
    }
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of n sorted values (nearest rank). */
static double s_quantile(const double *v, size_t n, double q)
{
    if (!n)
        return 0;
    size_t rank = (size_t)(q * (double)n + 0.5);
    return v[rank >= 1 ? LP_MIN(rank - 1, n - 1) : 0];
}

typedef struct {
    lp_buf_t *out;
    double interval_s;
    lg_format_t format;
    char stamp[LP_ISO_LEN];
} s_walk_t;

static bool s_write(const void *k, size_t l, void *v, void *a)
{
    LP_UNUSED(k);
    LP_UNUSED(l);
    s_walk_t *w = a;
    s_group_t *g = v;
    qsort(g->lat, g->nlat, sizeof *g->lat, s_cmp);
    qsort(g->ttft, g->nttft, sizeof *g->ttft, s_cmp);
    double p50 = s_quantile(g->lat, g->nlat, 0.5), p99 = s_quantile(g->lat, g->nlat, 0.99);
    double t50 = s_quantile(g->ttft, g->nttft, 0.5);
    if (w->format == LG_FORMAT_JSON) {
        json_t *o = json_object();
        json_object_set_new(o, "summary", json_true());
        json_object_set_new(o, "time", json_string(w->stamp));
        json_object_set_new(o, "interval_s", json_real(w->interval_s));
        json_object_set_new(o, "model_group", lp_json_text(g->group));
        json_object_set_new(o, "requests", json_integer((json_int_t)g->requests));
        json_object_set_new(o, "errors", json_integer((json_int_t)g->errors));
        json_object_set_new(o, "p50_ms", json_real(p50));
        json_object_set_new(o, "p99_ms", json_real(p99));
        if (g->nttft)
            json_object_set_new(o, "ttft_p50_ms", json_real(t50));
        if (g->timed) {
            json_object_set_new(o, "proxy_avg_ms", json_real(g->proxy_ms / (double)g->timed));
            json_object_set_new(o, "upstream_avg_ms", json_real(g->upstream_ms / (double)g->timed));
        }
        json_object_set_new(o, "prompt_tokens", json_integer((json_int_t)g->prompt));
        json_object_set_new(o, "completion_tokens", json_integer((json_int_t)g->completion));
        json_object_set_new(o, "spend", json_real(g->spend));
        char *text = lp_json_dump(o, NULL);
        lp_buf_puts(w->out, text);
        lp_buf_puts(w->out, "\n");
        free(text);
        json_decref(o);
    } else {
        lp_buf_printf(w->out, "%s summary %.0fs model=", w->stamp, w->interval_s);
        for (const char *c = g->group; *c; c++) {
            char ch = (unsigned char)*c < 0x20 ? '?' : *c;
            lp_buf_append(w->out, &ch, 1);
        }
        lp_buf_printf(w->out, " requests=%llu errors=%llu p50=%.1fms p99=%.1fms", g->requests,
                      g->errors, p50, p99);
        if (g->nttft)
            lp_buf_printf(w->out, " ttft_p50=%.1fms", t50);
        if (g->timed)
            lp_buf_printf(w->out, " proxy_avg=%.3fms upstream_avg=%.1fms",
                          g->proxy_ms / (double)g->timed, g->upstream_ms / (double)g->timed);
        lp_buf_printf(w->out, " in=%llu out=%llu $%.6f\n", g->prompt, g->completion, g->spend);
    }
    return true;
}

void lg_summary_flush(lg_summary_t *self, double interval_s, lg_format_t format, lp_buf_t *out)
{
    s_walk_t w = {out, interval_s, format, ""};
    lp_iso8601(lp_wall_ns(), w.stamp, sizeof w.stamp);
    lp_map_each(self->groups, s_write, &w);
    lp_map_each(self->groups, s_free, NULL);
    lp_map_destroy(&self->groups);
    self->groups = lp_map_new();
}
