#include "wk_adapter.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_json.h"

const wk_adapter_t *wk_adapter_for(lp_wire_t wire)
{
    switch (wire) {
    case LP_WIRE_OPENAI:
        return &wk_openai_adapter;
    case LP_WIRE_ANTHROPIC:
        return &wk_anthropic_adapter;
    case LP_WIRE_GEMINI:
        return &wk_gemini_adapter;
    case LP_WIRE_VOYAGE:
        return &wk_voyage_adapter;
    case LP_WIRE_TEI:
        return &wk_tei_adapter;
    default:
        return NULL;
    }
}

int wk_fail(wk_fail_t *fail, int status, const char *code, bool retryable, const char *fmt, ...)
{
    fail->status = status;
    fail->code = code;
    fail->retryable = retryable;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail->message, sizeof fail->message, fmt, ap);
    va_end(ap);
    return -1;
}

void wk_fail_from_status(wk_fail_t *fail, long s)
{
    fail->code = NULL;
    if (s == 429) {
        fail->status = 429;
        fail->retryable = true;
    } else if (s == 503 || s == 529) {
        fail->status = 503;
        fail->retryable = true;
    } else if (s >= 500) {
        fail->status = 502;
        fail->retryable = true;
    } else if (s == 408 || s == 409) {
        fail->status = (int)s;
        fail->retryable = true;
    } else if (s >= 400) {
        fail->status = (int)s;
        fail->retryable = false;
    } else {
        fail->status = 502;
        fail->retryable = true;
    }
}

static bool s_key_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* Replace text[at, at+len) with "***". */
static void s_mask(char *text, size_t at, size_t len)
{
    size_t total = strlen(text);
    memmove(text + at + 3, text + at + len, total - at - len + 1);
    memcpy(text + at, "***", 3);
}

void wk_scrub(char *text, const char *api_key)
{
    if (api_key && strlen(api_key) >= 4) {
        char *p;
        while ((p = strstr(text, api_key)))
            s_mask(text, (size_t)(p - text), strlen(api_key));
    }
    /* Anything shaped like a provider or proxy key, even partially echoed. */
    static const char *prefixes[] = {"sk-", "AIza", "gsk_", "csk-", "pa-"};
    for (size_t i = 0; i < LP_ARRAY_LEN(prefixes); i++) {
        size_t plen = strlen(prefixes[i]);
        char *p = text;
        while ((p = strstr(p, prefixes[i]))) {
            size_t n = plen;
            while (s_key_char(p[n]) || p[n] == '*' || p[n] == '.')
                n++;
            if (n - plen >= 6) {
                s_mask(p, plen, n - plen);
                p += plen + 3;
            } else {
                p += plen;
            }
        }
    }
}

void wk_header(struct curl_slist **list, const char *name, const char *value)
{
    char *line = lp_asprintf("%s: %s", name, value);
    struct curl_slist *l = curl_slist_append(*list, line);
    lp_free_secret(line); /* it may hold a key */
    lp_assert(l != NULL);
    *list = l;
}

void wk_bearer(wk_job_t *job)
{
    const char *key = job->d->api_key;
    if (!key || !*key || strcmp(key, "none") == 0)
        return;
    char *auth = lp_asprintf("Bearer %s", key);
    wk_header(&job->headers, "Authorization", auth);
    lp_free_secret(auth);
}

int wk_unsupported(const wk_job_t *job, const char *param, wk_fail_t *fail)
{
    if (job->drop_params)
        return 0;
    wk_fail(fail, 400, "unsupported_params", false,
            "%s does not support the parameter '%s'; remove it or set "
            "litellm_settings.drop_params: true to drop it",
            job->d->provider->name, param);
    return -1;
}

bool wk_is_proxy_field(const char *key)
{
    static const char *fields[] = {"mock_response",
                                   "metadata",
                                   "litellm_metadata",
                                   "cache",
                                   "caching",
                                   "fallbacks",
                                   "context_window_fallbacks",
                                   "num_retries",
                                   "api_key",
                                   "api_base",
                                   "base_url",
                                   "custom_host",
                                   "api_version",
                                   "timeout",
                                   "stream_timeout",
                                   "tags",
                                   "guardrails",
                                   "ttl",
                                   "no-log",
                                   "mock_timeout",
                                   "mock_testing_fallbacks",
                                   "mock_testing_rate_limit_error",
                                   "user_config",
                                   "proxy_server_request",
                                   "litellm_logging_obj",
                                   "drop_params",
                                   "custom_llm_provider",
                                   "extra_headers"};
    for (size_t i = 0; i < LP_ARRAY_LEN(fields); i++) {
        if (strcmp(fields[i], key) == 0)
            return true;
    }
    return false;
}

bool wk_is_call_param(const char *key)
{
    static const char *params[] = {
        "extra_headers",       "drop_params",         "organization",
        "num_retries",         "region_name",         "tags",
        "custom_llm_provider", "use_in_pass_through", "merge_reasoning_content_in_choices"};
    for (size_t i = 0; i < LP_ARRAY_LEN(params); i++) {
        if (strcmp(params[i], key) == 0)
            return true;
    }
    return false;
}

json_t *wk_upstream_body(const wk_job_t *job)
{
    json_t *body = json_object();
    const char *key;
    json_t *value;
    json_object_foreach(job->req, key, value)
    {
        if (!wk_is_proxy_field(key))
            json_object_set(body, key, value);
    }
    json_object_foreach(job->d->params, key, value)
    {
        if (!wk_is_call_param(key) && !json_object_get(body, key))
            json_object_set(body, key, value);
    }
    json_object_set_new(body, "model", json_string(job->d->provider_model));
    return body;
}

void wk_extra_headers(const wk_job_t *job, struct curl_slist **list)
{
    json_t *extra = json_object_get(job->d->params, "extra_headers");
    const char *key;
    json_t *value;
    json_object_foreach(extra, key, value)
    {
        const char *v = json_string_value(value);
        /* Config-supplied, but never let a value end a header line early. */
        if (v && !strpbrk(v, "\r\n") && !strpbrk(key, "\r\n:"))
            wk_header(list, key, v);
    }
}

long long wk_estimate_tokens(size_t bytes)
{
    return bytes ? (long long)((bytes + 3) / 4) : 0;
}

/* Text bytes inside a content value: a string, or the "text" of each part. */
static size_t s_content_bytes(const json_t *content)
{
    if (json_is_string(content))
        return json_string_length(content);
    size_t n = 0, i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        n += json_is_string(part) ? json_string_length(part)
                                  : json_string_length(json_object_get(part, "text"));
    }
    return n;
}

size_t wk_prompt_bytes(const json_t *req)
{
    size_t n = 0, i;
    json_t *msg;
    json_array_foreach(json_object_get(req, "messages"), i, msg)
    {
        n += s_content_bytes(json_object_get(msg, "content"));
    }
    n += s_content_bytes(json_object_get(req, "prompt"));
    n += s_content_bytes(json_object_get(req, "input"));
    return n;
}

void wk_sse_emit(lp_buf_t *out, const json_t *value)
{
    lp_buf_puts(out, "data: ");
    lp_json_dump_to(out, value);
    lp_buf_puts(out, "\n\n");
}

static void s_one_line(lp_buf_t *out, size_t from)
{
    for (char *p = out->data + from; (p = strpbrk(p, "\r\n")) != NULL;)
        *p = ' ';
}

size_t wk_sse_relay_start(lp_buf_t *out, const char *name)
{
    if (name) {
        size_t at = out->len;
        lp_buf_printf(out, "event: %s", name);
        s_one_line(out, at);
        lp_buf_puts(out, "\n");
    }
    lp_buf_puts(out, "data: ");
    return out->len;
}

void wk_sse_relay_end(lp_buf_t *out, size_t from)
{
    s_one_line(out, from);
    lp_buf_puts(out, "\n\n");
}

void wk_stream_usage(const wk_job_t *job, long long *prompt, long long *completion,
                     long long *total)
{
    if (job->have_usage) {
        *prompt = job->usage_prompt;
        *completion = job->usage_completion;
        *total = job->usage_total ? job->usage_total : *prompt + *completion;
        return;
    }
    *prompt = wk_estimate_tokens(wk_prompt_bytes(job->req));
    *completion = wk_estimate_tokens(job->content_bytes);
    *total = *prompt + *completion;
}
