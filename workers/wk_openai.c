/* wk_openai: the adapter for OpenAI and every OpenAI-compatible provider (groq, openrouter,
 * cerebras, or any server behind openai/ + api_base). The request goes through nearly as the
 * client sent it (proxy-only fields removed, model renamed); the answer comes back with
 * `model` restamped to the model group the client asked for, as LiteLLM does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_json.h"
#include "wk_adapter.h"

static const char *s_path(wk_call_t call)
{
    switch (call) {
    case WK_CALL_COMPLETION:
        return "/completions";
    case WK_CALL_EMBEDDING:
        return "/embeddings";
    default:
        return "/chat/completions";
    }
}

static int s_prepare(wk_job_t *job, wk_fail_t *fail)
{
    LP_UNUSED(fail);
    const lp_deployment_t *d = job->d;
    job->url = lp_asprintf("%s%s", d->api_base, s_path(job->call));
    json_t *body = wk_upstream_body(job);
    if (job->stream) {
        /* Always ask for usage so the record is exact; the client only sees the usage chunk
         * when it asked for it (wk_openai stream_end). */
        json_t *opts = json_object_get(body, "stream_options");
        job->include_usage = lp_json_bool(opts, "include_usage", false);
        json_t *o = json_is_object(opts) ? json_copy(opts) : json_object();
        json_object_set_new(o, "include_usage", json_true());
        json_object_set_new(body, "stream_options", o);
        json_object_set_new(body, "stream", json_true());
    }
    job->body = lp_json_dump(body, &job->body_len);
    json_decref(body);
    wk_header(&job->headers, "Content-Type", "application/json");
    wk_header(&job->headers, "Accept", job->stream ? "text/event-stream" : "application/json");
    wk_bearer(job);
    const char *org = lp_json_str(d->params, "organization");
    if (org && !strpbrk(org, "\r\n"))
        wk_header(&job->headers, "OpenAI-Organization", org);
    wk_extra_headers(job, &job->headers);
    return 0;
}

static int s_respond(wk_job_t *job, wk_result_t *out, wk_fail_t *fail)
{
    char err[LP_ERR_LEN];
    json_t *resp = lp_json_parse(job->resp.data ? job->resp.data : "", job->resp.len, err);
    const char *list = job->call == WK_CALL_EMBEDDING ? "data" : "choices";
    if (!json_is_object(resp) || !json_is_array(json_object_get(resp, list))) {
        json_decref(resp);
        return wk_fail(fail, 502, "invalid_upstream_response", true,
                       "%s returned a response that is not an OpenAI %s object",
                       job->d->provider->name,
                       job->call == WK_CALL_EMBEDDING ? "embeddings" : "completion");
    }
    json_t *usage = json_object_get(resp, "usage");
    out->prompt_tokens = lp_json_tokens(usage, "prompt_tokens", 0);
    out->completion_tokens = lp_json_tokens(usage, "completion_tokens", 0);
    out->total_tokens = lp_json_tokens(usage, "total_tokens", 0);
    if (!out->total_tokens)
        out->total_tokens = out->prompt_tokens + out->completion_tokens;
    json_object_set_new(resp, "model", json_string(job->group));
    out->response = resp;
    return 0;
}

/* The provider's own words: error.message, error (string), message or detail. */
static void s_error_message(const json_t *body, char *out, size_t size)
{
    json_t *e = json_object_get(body, "error");
    const char *msg = json_is_string(e) ? json_string_value(e) : lp_json_str(e, "message");
    if (!msg)
        msg = lp_json_str(body, "message");
    if (!msg)
        msg = lp_json_str(body, "detail");
    lp_strlcpy(out, msg ? msg : "", size);
}

static void s_error(wk_job_t *job, wk_fail_t *fail)
{
    char err[LP_ERR_LEN];
    char text[WK_MSG_LEN - 64];
    json_t *body = lp_json_parse(job->resp.data ? job->resp.data : "", job->resp.len, err);
    s_error_message(body, text, sizeof text);
    const char *code = lp_json_str(json_object_get(body, "error"), "code");
    wk_fail_from_status(fail, job->status);
    wk_scrub(text, job->d->api_key);
    if (!text[0])
        snprintf(text, sizeof text, "HTTP %ld without an error message", job->status);
    snprintf(fail->message, sizeof fail->message, "%s error %ld: %s", job->d->provider->name,
             job->status, text);
    bool client_side = job->status == 400 || job->status == 413 || job->status == 422;
    if (client_side &&
        ((code && strcmp(code, "context_length_exceeded") == 0) ||
         strstr(text, "maximum context length") || strstr(text, "context_length_exceeded"))) {
        fail->status = 400;
        fail->code = "context_length_exceeded";
        fail->retryable = false;
    }
    json_decref(body);
}

/* Text a delta carries, for token estimates when the provider reports no usage. */
static size_t s_delta_bytes(const json_t *choices)
{
    size_t n = 0, i, k;
    json_t *c, *tc;
    json_array_foreach(choices, i, c)
    {
        json_t *delta = json_object_get(c, "delta");
        n += json_string_length(json_object_get(delta, "content"));
        n += json_string_length(json_object_get(delta, "reasoning_content"));
        json_array_foreach(json_object_get(delta, "tool_calls"), k, tc)
        {
            json_t *fn = json_object_get(tc, "function");
            n += json_string_length(json_object_get(fn, "arguments"));
            n += json_string_length(json_object_get(fn, "name"));
        }
        n += json_string_length(json_object_get(c, "text")); /* legacy completions */
    }
    return n;
}

static void s_take_usage(wk_job_t *job, const json_t *usage)
{
    job->have_usage = true;
    job->usage_prompt = lp_json_tokens(usage, "prompt_tokens", 0);
    job->usage_completion = lp_json_tokens(usage, "completion_tokens", 0);
    job->usage_total = lp_json_tokens(usage, "total_tokens", 0);
}

/* One provider chunk: validated, model restamped, usage kept aside, relayed. */
static int s_stream_event(wk_job_t *job, const char *event, const char *data, size_t len,
                          lp_buf_t *out, wk_fail_t *fail)
{
    LP_UNUSED(event);
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        job->done = true;
        return 0;
    }
    if (job->done)
        return 0; /* nothing after the terminator counts */
    char err[LP_ERR_LEN];
    json_t *chunk = lp_json_parse(data, len, err);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        return wk_fail(fail, 502, "invalid_upstream_stream", false,
                       "%s sent an invalid stream event: %s", job->d->provider->name,
                       chunk ? "not a JSON object" : err);
    }
    json_t *error = json_object_get(chunk, "error");
    if (error) {
        char text[256];
        const char *msg =
            json_is_string(error) ? json_string_value(error) : lp_json_str(error, "message");
        lp_strlcpy(text, msg ? msg : "error event", sizeof text);
        wk_scrub(text, job->d->api_key);
        json_decref(chunk);
        return wk_fail(fail, 502, "upstream_stream_error", false, "%s: %s", job->d->provider->name,
                       text);
    }
    const char *id = lp_json_str(chunk, "id");
    if (id)
        lp_strlcpy(job->chunk_id, id, sizeof job->chunk_id);
    job->created = lp_json_int(chunk, "created", job->created);
    json_t *usage = json_object_get(chunk, "usage");
    json_t *choices = json_object_get(chunk, "choices");
    if (json_is_object(usage))
        s_take_usage(job, usage);
    if (json_is_array(choices) && json_array_size(choices) == 0 && json_is_object(usage)) {
        json_decref(chunk); /* the usage chunk: sent at the end, if the client wants it */
        return 0;
    }
    size_t i;
    json_t *c;
    json_array_foreach(choices, i, c)
    {
        if (json_is_string(json_object_get(c, "finish_reason")))
            job->finish_seen = true;
    }
    job->content_bytes += s_delta_bytes(choices);
    if (!job->include_usage)
        json_object_del(chunk, "usage");
    json_object_set_new(chunk, "model", json_string(job->group));
    wk_sse_emit(out, chunk);
    json_decref(chunk);
    return 0;
}

static int s_stream_end(wk_job_t *job, lp_buf_t *out, wk_fail_t *fail)
{
    if (!job->done)
        return wk_fail(fail, 502, "upstream_stream_truncated", false,
                       "%s ended the stream without its [DONE] terminator", job->d->provider->name);
    if (job->include_usage) {
        long long p, c, t;
        wk_stream_usage(job, &p, &c, &t);
        json_t *chunk = json_object();
        json_object_set_new(chunk, "id", json_string(job->chunk_id));
        json_object_set_new(chunk, "object",
                            json_string(job->call == WK_CALL_COMPLETION ? "text_completion"
                                                                        : "chat.completion.chunk"));
        json_object_set_new(chunk, "created", json_integer(job->created));
        json_object_set_new(chunk, "model", json_string(job->group));
        json_object_set_new(chunk, "choices", json_array());
        json_t *usage = json_object();
        json_object_set_new(usage, "prompt_tokens", json_integer(p));
        json_object_set_new(usage, "completion_tokens", json_integer(c));
        json_object_set_new(usage, "total_tokens", json_integer(t));
        json_object_set_new(chunk, "usage", usage);
        wk_sse_emit(out, chunk);
        json_decref(chunk);
    }
    lp_buf_puts(out, "data: [DONE]\n\n");
    return 0;
}

const wk_adapter_t wk_openai_adapter = {
    .name = "openai",
    .prepare = s_prepare,
    .respond = s_respond,
    .error = s_error,
    .stream_event = s_stream_event,
    .stream_end = s_stream_end,
};
