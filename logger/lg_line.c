#include "lg_line.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_str(const lp_mview_t *rec, const char *key, const char *def)
{
    const char *v = lp_mview_str(rec, key);
    return v && *v ? v : def;
}

/* Strings from records go to a terminal: no control characters, no unbounded length. */
static void s_put(lp_buf_t *out, const char *s, size_t max)
{
    size_t n = 0;
    for (; *s && n < max; s++, n++) {
        unsigned char c = (unsigned char)*s;
        char ch = c < 0x20 || c == 0x7f ? '?' : (char)c;
        lp_buf_append(out, &ch, 1);
    }
}

void lg_line_format(const lp_mview_t *rec, const char *json, lg_format_t format, bool colour,
                    lp_buf_t *out)
{
    if (format == LG_FORMAT_JSON) {
        lp_buf_puts(out, json ? json : "{}");
        lp_buf_puts(out, "\n");
        return;
    }
    long long status = lp_mview_int(rec, "http_status", 0);
    const char *on = "", *off = "";
    if (colour) {
        on = status >= 500 ? "\033[31m" : status >= 400 ? "\033[33m" : "\033[32m";
        off = "\033[0m";
    }
    s_put(out, s_str(rec, "endTime", "-"), 40);
    lp_buf_printf(out, " %s%3lld%s ", on, status, off);
    s_put(out, s_str(rec, "model_group", "-"), 120);
    const char *provider = s_str(rec, "custom_llm_provider", NULL);
    if (provider) {
        lp_buf_puts(out, " -> ");
        s_put(out, provider, 40);
        lp_buf_puts(out, "/");
        s_put(out, s_str(rec, "model", "-"), 120);
    }
    lp_buf_printf(out, " %.1fms", lp_mview_num(rec, "duration_ms", 0));
    double ttft = lp_mview_num(rec, "ttft_ms", NAN);
    if (!isnan(ttft) && lp_mview_bool(rec, "stream", false))
        lp_buf_printf(out, " ttft=%.1fms", ttft);
    lp_buf_printf(out, " in=%lld out=%lld $%.6f", lp_mview_int(rec, "prompt_tokens", 0),
                  lp_mview_int(rec, "completion_tokens", 0), lp_mview_num(rec, "spend", 0));
    const char *key = s_str(rec, "api_key", "-");
    lp_buf_puts(out, " key=");
    s_put(out, key, 8);
    lp_buf_printf(out, " try=%lld", lp_mview_int(rec, "attempts", 0));
    if (lp_mview_bool(rec, "cache_hit", false))
        lp_buf_puts(out, " cache=hit");
    if (lp_mview_bool(rec, "client_gone", false))
        lp_buf_puts(out, " client=gone");
    const char *err = s_str(rec, "error_code", NULL);
    if (err) {
        lp_buf_puts(out, " err=");
        s_put(out, err, 60);
    }
    lp_buf_puts(out, " req=");
    s_put(out, s_str(rec, "request_id", "-"), 40);
    lp_buf_puts(out, "\n");
}
