/* wk_openai: the adapter for OpenAI and every OpenAI-compatible provider (groq, openrouter,
 * cerebras, or any server behind openai/ + api_base). The request goes through nearly as the
 * client sent it (proxy-only fields removed, model renamed); the answer comes back with
 * `model` restamped to the model group the client asked for, as LiteLLM does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_jscan.h"
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

/* What one pass over an OpenAI answer or stream chunk keeps: the fields the proxy reads and
 * the spans it changes. Everything else goes to the client byte for byte. */
typedef struct {
    wk_job_t *job;
    const char *list; /* "choices" or "data": must be an array */
    bool list_ok;     /* it is */
    size_t list_len;  /* choices in a chunk */
    size_t members;   /* top-level members */
    size_t close_at;  /* the top-level closing brace */
    int model_seen, usage_seen, list_seen;
    size_t model_from, model_to; /* the top-level model's value */
    size_t usage_from, usage_to; /* the top-level usage member, for cutting it */
    bool usage;                  /* usage is an object */
    long long prompt, completion, total;
    bool error;         /* a top-level error member (streams) */
    bool finish;        /* a choice has a finish_reason */
    size_t delta_bytes; /* text a chunk carries, for token estimates */
} s_scan_t;

/* Strings whose length counts as relayed text when the provider reports no usage. */
static const char *s_text_paths[] = {
    "choices.*.delta.content",
    "choices.*.delta.reasoning_content",
    "choices.*.delta.tool_calls.*.function.arguments",
    "choices.*.delta.tool_calls.*.function.name",
    "choices.*.text", /* legacy completions */
};

/* A top-level member the proxy reads or rewrites may appear once only. */
static bool s_once(lp_jscan_t *s, int *seen, const char *key)
{
    return ++*seen == 1 || lp_jscan_stop(s, "duplicate \"%s\" member", key);
}

static bool s_top_member(lp_jscan_t *s, s_scan_t *a, lp_jscan_kind_t kind, const char *text,
                         size_t len)
{
    bool first = kind != LP_JSCAN_CLOSE;                           /* the value's first event */
    bool last = kind != LP_JSCAN_OBJECT && kind != LP_JSCAN_ARRAY; /* and its last */
    if (first)
        a->members++;
    if (lp_jscan_key_is(s, "model")) {
        if (first && !s_once(s, &a->model_seen, "model"))
            return false;
        if (last) {
            a->model_from = lp_jscan_start(s);
            a->model_to = lp_jscan_end(s);
        }
    } else if (lp_jscan_key_is(s, "usage")) {
        if (first && !s_once(s, &a->usage_seen, "usage"))
            return false;
        if (kind == LP_JSCAN_OBJECT)
            a->usage = true;
        if (last)
            lp_jscan_member_span(s, &a->usage_from, &a->usage_to);
    } else if (lp_jscan_key_is(s, a->list)) {
        if (first && !s_once(s, &a->list_seen, a->list))
            return false;
        a->list_ok = kind == LP_JSCAN_ARRAY || (a->list_ok && kind == LP_JSCAN_CLOSE);
    } else if (lp_jscan_key_is(s, "error")) {
        a->error = true;
    } else if (lp_jscan_key_is(s, "id") && kind == LP_JSCAN_STRING) {
        size_t n = LP_MIN(len, sizeof a->job->chunk_id - 1);
        memcpy(a->job->chunk_id, text, n);
        a->job->chunk_id[n] = '\0';
    } else if (lp_jscan_key_is(s, "created") && kind == LP_JSCAN_NUMBER) {
        lp_jscan_int(text, len, &a->job->created); /* kept as it was when not an integer */
    }
    return true;
}

static bool s_scan(lp_jscan_t *s, lp_jscan_kind_t kind, const char *text, size_t len, void *arg)
{
    s_scan_t *a = arg;
    switch (lp_jscan_depth(s)) {
    case 0:
        if (kind == LP_JSCAN_CLOSE)
            a->close_at = lp_jscan_end(s) - 1;
        return kind == LP_JSCAN_OBJECT || kind == LP_JSCAN_CLOSE ||
               lp_jscan_stop(s, "not a JSON object");
    case 1:
        return s_top_member(s, a, kind, text, len);
    case 2:
        if (kind != LP_JSCAN_CLOSE && lp_jscan_at(s, "choices.*"))
            a->list_len++;
        else if (kind == LP_JSCAN_NUMBER && lp_jscan_at(s, "usage.prompt_tokens"))
            a->prompt = lp_jscan_count(text, len, 0);
        else if (kind == LP_JSCAN_NUMBER && lp_jscan_at(s, "usage.completion_tokens"))
            a->completion = lp_jscan_count(text, len, 0);
        else if (kind == LP_JSCAN_NUMBER && lp_jscan_at(s, "usage.total_tokens"))
            a->total = lp_jscan_count(text, len, 0);
        return true;
    default:
        if (kind != LP_JSCAN_STRING)
            return true;
        if (lp_jscan_at(s, "choices.*.finish_reason"))
            a->finish = true;
        for (size_t i = 0; i < LP_ARRAY_LEN(s_text_paths); i++)
            if (lp_jscan_at(s, s_text_paths[i]))
                a->delta_bytes += len;
        return true;
    }
}

/* "model":"<group>", made once per job: a stream restamps every event. */
static const lp_buf_t *s_model_member(wk_job_t *job)
{
    if (job->model_member.len == 0) {
        json_t *group = lp_json_text(job->group);
        lp_buf_puts(&job->model_member, "\"model\":");
        lp_json_dump_to(&job->model_member, group);
        json_decref(group);
    }
    return &job->model_member;
}

/* out gets text with `model` set to the model group the client asked for (added when the
 * provider sent none) and, when cut_usage, without its usage member. */
static void s_restamp(wk_job_t *job, const s_scan_t *a, const char *text, size_t len,
                      bool cut_usage, lp_buf_t *out)
{
    const lp_buf_t *member = s_model_member(job);
    size_t name = sizeof "\"model\":" - 1;
    lp_jscan_edit_t edits[3];
    size_t n = 0;
    bool cut = cut_usage && a->usage_seen;
    if (cut)
        edits[n++] = (lp_jscan_edit_t){a->usage_from, a->usage_to, "", 0};
    if (a->model_seen) {
        edits[n++] =
            (lp_jscan_edit_t){a->model_from, a->model_to, member->data + name, member->len - name};
    } else { /* the last member, after the others' comma */
        if (a->members > (cut ? 1u : 0u))
            edits[n++] = (lp_jscan_edit_t){a->close_at, a->close_at, ",", 1};
        edits[n++] = (lp_jscan_edit_t){a->close_at, a->close_at, member->data, member->len};
    }
    /* The usage cut may come after the model's span. */
    if (cut && n >= 2 && edits[1].from < edits[0].from) {
        lp_jscan_edit_t t = edits[0];
        edits[0] = edits[1];
        edits[1] = t;
    }
    lp_jscan_splice(out, text, len, edits, n);
}

static int s_respond(wk_job_t *job, wk_result_t *out, wk_fail_t *fail)
{
    char err[LP_ERR_LEN];
    bool embedding = job->call == WK_CALL_EMBEDDING;
    s_scan_t a = {.job = job, .list = embedding ? "data" : "choices"};
    if (lp_jscan_run(job->resp.data, job->resp.len, s_scan, &a, err) < 0 || !a.list_ok)
        return wk_fail(fail, 502, "invalid_upstream_response", true,
                       "%s returned a response that is not an OpenAI %s object",
                       job->d->provider->name, embedding ? "embeddings" : "completion");
    out->prompt_tokens = a.prompt;
    out->completion_tokens = a.completion;
    out->total_tokens = a.total ? a.total : a.prompt + a.completion;
    s_restamp(job, &a, job->resp.data, job->resp.len, false, &out->body);
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

/* The provider's error event, in its own words (rare: parsed in full). */
static int s_stream_error(wk_job_t *job, const char *data, size_t len, wk_fail_t *fail)
{
    char text[256];
    json_t *chunk = lp_json_parse(data, len, NULL);
    json_t *error = json_object_get(chunk, "error");
    const char *msg =
        json_is_string(error) ? json_string_value(error) : lp_json_str(error, "message");
    lp_strlcpy(text, msg ? msg : "error event", sizeof text);
    json_decref(chunk);
    wk_scrub(text, job->d->api_key);
    return wk_fail(fail, 502, "upstream_stream_error", false, "%s: %s", job->d->provider->name,
                   text);
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
    s_scan_t a = {.job = job, .list = "choices"};
    if (lp_jscan_run(data, len, s_scan, &a, err) < 0)
        return wk_fail(fail, 502, "invalid_upstream_stream", false,
                       "%s sent an invalid stream event: %s", job->d->provider->name, err);
    if (a.error)
        return s_stream_error(job, data, len, fail);
    /* A /v1/messages client's stream is translated from these chunks by a jansson reader
     * (wk_messages); what jansson refuses and the scan passes on (a repeated key, a NUL
     * escape) would vanish from that answer, so it ends the stream here instead. */
    if (job->messages && !job->passthrough) {
        json_t *strict = lp_json_parse(data, len, err);
        if (!strict)
            return wk_fail(fail, 502, "invalid_upstream_stream", false,
                           "%s sent a stream event that cannot be translated: %s",
                           job->d->provider->name, err);
        json_decref(strict);
    }
    if (a.usage) {
        job->have_usage = true;
        job->usage_prompt = a.prompt;
        job->usage_completion = a.completion;
        job->usage_total = a.total;
        if (a.list_ok && a.list_len == 0)
            return 0; /* the usage chunk: sent at the end, if the client wants it */
    }
    if (a.finish)
        job->finish_seen = true;
    job->content_bytes += a.delta_bytes;
    size_t from = wk_sse_relay_start(out, NULL);
    s_restamp(job, &a, data, len, !job->include_usage, out);
    wk_sse_relay_end(out, from);
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
