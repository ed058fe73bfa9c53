/* wk_voyage: the adapter for Voyage AI (voyage/ prefix), an embeddings-only provider with an
 * OpenAI-like wire format. The request keeps OpenAI's `input` and renames `dimensions` to
 * Voyage's `output_dimension`; Voyage's own knobs (input_type, truncation, output_dtype) pass
 * through. The answer is OpenAI's embeddings list with `model` restamped to the model group and
 * Voyage's total_tokens reported as prompt_tokens, as LiteLLM does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_json.h"
#include "wk_adapter.h"

/* Chat and completions have no Voyage endpoint: refuse them before any call goes out. */
static int s_fail_not_embedding(const wk_job_t *job, wk_fail_t *fail)
{
    return wk_fail(fail, 400, NULL, false,
                   "%s serves embeddings only: model group '%s' cannot answer %s calls",
                   job->d->provider->name, job->group ? job->group : "",
                   job->call == WK_CALL_COMPLETION ? "completion" : "chat completion");
}

/* Voyage embeds text only: a string or a non-empty list of strings. OpenAI also allows token
 * ids (a list of integers, or of lists of integers), which Voyage cannot take. */
static int s_check_input(const wk_job_t *job, const json_t *input, wk_fail_t *fail)
{
    const char *prov = job->d->provider->name;
    if (json_is_string(input))
        return 0;
    if (!json_is_array(input) || json_array_size(input) == 0)
        return wk_fail(fail, 400, NULL, false,
                       "'input' must be a string or a non-empty array of strings");
    size_t i;
    json_t *v;
    json_array_foreach(input, i, v)
    {
        if (json_is_integer(v) || json_is_array(v))
            return wk_fail(fail, 400, NULL, false,
                           "%s takes text: token-id arrays in 'input' are not supported", prov);
        if (!json_is_string(v))
            return wk_fail(fail, 400, NULL, false,
                           "'input' must be a string or a non-empty array of strings");
    }
    return 0;
}

/* How many embeddings the client asked for: one per input string. */
static size_t s_input_count(const json_t *req)
{
    const json_t *input = json_object_get(req, "input");
    return json_is_array(input) ? json_array_size(input) : 1;
}

static bool s_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The optional body fields, each checked for the type Voyage expects so that a malformed
 * request is the client's 400 and not an opaque provider error. `src` is the client's request
 * merged with the deployment's litellm_params defaults. */
static int s_optional_fields(const json_t *src, json_t *body, wk_fail_t *fail)
{
    json_t *v = json_object_get(src, "input_type");
    if (v) {
        if (!json_is_null(v) && !json_is_string(v))
            return wk_fail(fail, 400, NULL, false,
                           "'input_type' must be null, \"query\" or \"document\"");
        json_object_set(body, "input_type", v);
    }
    v = json_object_get(src, "truncation");
    if (v) {
        if (!json_is_boolean(v))
            return wk_fail(fail, 400, NULL, false, "'truncation' must be true or false");
        json_object_set(body, "truncation", v);
    }
    /* OpenAI's `dimensions`; Voyage's own spelling is accepted when it is the only one. */
    v = json_object_get(src, "dimensions");
    if (!v || json_is_null(v))
        v = json_object_get(src, "output_dimension");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0)
            return wk_fail(fail, 400, NULL, false, "'dimensions' must be a positive integer");
        json_object_set(body, "output_dimension", v);
    }
    v = json_object_get(src, "output_dtype");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return wk_fail(fail, 400, NULL, false, "'output_dtype' must be a string");
        json_object_set(body, "output_dtype", v);
    }
    v = json_object_get(src, "encoding_format");
    if (v && !json_is_null(v)) {
        const char *fmt = json_string_value(v);
        if (!fmt || (strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0))
            return wk_fail(fail, 400, NULL, false,
                           "'encoding_format' must be \"float\" or \"base64\"");
        /* Voyage's default is lists of numbers; it only knows the base64 value. */
        if (strcmp(fmt, "base64") == 0)
            json_object_set_new(body, "encoding_format", json_string("base64"));
    }
    return 0;
}

/* Build the Voyage request from scratch: only the fields Voyage knows go out, so OpenAI-only
 * fields such as `user` are dropped silently rather than rejected by Voyage. */
static int s_prepare(wk_job_t *job, wk_fail_t *fail)
{
    const lp_deployment_t *d = job->d;
    if (job->call != WK_CALL_EMBEDDING)
        return s_fail_not_embedding(job, fail);
    if (job->stream)
        return wk_fail(fail, 400, NULL, false, "embeddings cannot be streamed");
    if (!d->api_base)
        return wk_fail(fail, 500, NULL, false, "deployment %s has no api_base", d->id);
    int rc = -1;
    json_t *src = wk_upstream_body(job);
    json_t *body = json_object();
    json_t *input = json_object_get(src, "input");
    if (s_check_input(job, input, fail) < 0)
        goto done;
    json_object_set(body, "input", input);
    json_object_set_new(body, "model", json_string(d->provider_model));
    if (s_optional_fields(src, body, fail) < 0)
        goto done;
    /* LiteLLM accepts an api_base that already names the endpoint. */
    job->url = s_ends_with(d->api_base, "/embeddings") ? lp_strdup(d->api_base)
                                                       : lp_asprintf("%s/embeddings", d->api_base);
    job->body = lp_json_dump(body, &job->body_len);
    wk_header(&job->headers, "Content-Type", "application/json");
    wk_header(&job->headers, "Accept", "application/json");
    wk_bearer(job);
    wk_extra_headers(job, &job->headers);
    rc = 0;
done:
    json_decref(body);
    json_decref(src);
    return rc;
}

static int s_bad_response(const wk_job_t *job, wk_fail_t *fail, const char *why)
{
    return wk_fail(fail, 502, "invalid_upstream_response", true,
                   "%s returned a response that is not an embeddings list: %s",
                   job->d->provider->name, why);
}

/* Voyage's list, re-made in OpenAI's shape: entries ordered by their index (one per input),
 * model restamped, total_tokens reported as prompt_tokens. Base64 embeddings (asked for with
 * encoding_format) are strings and pass through unchanged. */
static int s_respond(wk_job_t *job, wk_result_t *out, wk_fail_t *fail)
{
    char err[LP_ERR_LEN];
    json_t *resp = lp_json_parse(job->resp.data ? job->resp.data : "", job->resp.len, err);
    json_t *data = json_object_get(resp, "data");
    const char *object = lp_json_str(resp, "object");
    json_t **slots = NULL;
    int rc = -1;
    if (!json_is_object(resp) || !json_is_array(data) || (object && strcmp(object, "list") != 0)) {
        s_bad_response(job, fail, resp ? "no list of data" : err);
        goto done;
    }
    size_t n = json_array_size(data);
    if (n != s_input_count(job->req)) {
        s_bad_response(job, fail, "not one embedding per input");
        goto done;
    }
    slots = lp_calloc(n ? n : 1, sizeof *slots);
    size_t i;
    json_t *item;
    json_array_foreach(data, i, item)
    {
        json_t *emb = json_object_get(item, "embedding");
        json_t *index = json_object_get(item, "index");
        long long at = json_is_integer(index) ? json_integer_value(index) : (long long)i;
        if (!json_is_array(emb) && !json_is_string(emb)) {
            s_bad_response(job, fail, "an entry has no embedding");
            goto done;
        }
        if (at < 0 || (size_t)at >= n || slots[at]) {
            s_bad_response(job, fail, "embedding indexes are not 0..n-1");
            goto done;
        }
        slots[at] = emb;
    }
    json_t *list = json_array();
    for (i = 0; i < n; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "object", json_string("embedding"));
        json_object_set_new(e, "index", json_integer((json_int_t)i));
        json_object_set(e, "embedding", slots[i]);
        json_array_append_new(list, e);
    }
    long long total = lp_json_tokens(json_object_get(resp, "usage"), "total_tokens", -1);
    if (total < 0) /* no usage reported: estimate rather than bill nothing */
        total = wk_estimate_tokens(wk_prompt_bytes(job->req));
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(total));
    json_object_set_new(usage, "total_tokens", json_integer(total));
    json_t *answer = json_object();
    json_object_set_new(answer, "object", json_string("list"));
    json_object_set_new(answer, "data", list);
    json_object_set_new(answer, "model", json_string(job->group ? job->group : ""));
    json_object_set_new(answer, "usage", usage);
    out->response = answer;
    out->prompt_tokens = total;
    out->completion_tokens = 0;
    out->total_tokens = total;
    rc = 0;
done:
    free(slots);
    json_decref(resp);
    return rc;
}

/* Voyage's words: {"detail": "..."} (FastAPI style, a list of {msg} for validation errors),
 * sometimes {"error": "..."} or {"error": {"message": ...}}, or a bare {"message": ...}. */
static void s_error_message(const json_t *body, char *out, size_t size)
{
    const json_t *detail = json_object_get(body, "detail");
    const json_t *e = json_object_get(body, "error");
    const char *msg = json_string_value(detail);
    if (!msg && json_is_array(detail))
        msg = lp_json_str(json_array_get(detail, 0), "msg");
    if (!msg)
        msg = json_is_string(e) ? json_string_value(e) : lp_json_str(e, "message");
    if (!msg)
        msg = lp_json_str(body, "message");
    lp_strlcpy(out, msg ? msg : "", size);
}

/* Voyage says an input did not fit: "... is too long ...", "... has too many tokens and does
 * not fit into the model's context window ...", "The max allowed tokens per submitted batch
 * is 120000 ...". */
static bool s_is_too_long(const char *text)
{
    static const char *needles[] = {"too long",       "too many tokens",    "context window",
                                    "context length", "max allowed tokens", "maximum context"};
    for (size_t i = 0; i < LP_ARRAY_LEN(needles); i++) {
        if (strcasestr(text, needles[i]))
            return true;
    }
    return false;
}

static void s_error(wk_job_t *job, wk_fail_t *fail)
{
    char err[LP_ERR_LEN];
    char text[WK_MSG_LEN - 64];
    json_t *body = lp_json_parse(job->resp.data ? job->resp.data : "", job->resp.len, err);
    s_error_message(body, text, sizeof text);
    json_decref(body);
    wk_fail_from_status(fail, job->status);
    wk_scrub(text, job->d->api_key);
    if (!text[0])
        snprintf(text, sizeof text, "HTTP %ld without an error message", job->status);
    snprintf(fail->message, sizeof fail->message, "%s error %ld: %s", job->d->provider->name,
             job->status, text);
    /* Only a refused request can be about length; a 429's "tokens per minute" is not. */
    bool refused = job->status == 400 || job->status == 413 || job->status == 422;
    if (refused && s_is_too_long(text)) {
        fail->status = 400;
        fail->code = "context_length_exceeded";
        fail->retryable = false;
    }
}

/* Never called: prepare refuses streams. Present so the adapter table is complete. */
static int s_stream_event(wk_job_t *job, const char *event, const char *data, size_t len,
                          lp_buf_t *out, wk_fail_t *fail)
{
    LP_UNUSED(event);
    LP_UNUSED(data);
    LP_UNUSED(len);
    LP_UNUSED(out);
    return wk_fail(fail, 400, NULL, false, "%s serves embeddings only: nothing to stream",
                   job->d->provider->name);
}

static int s_stream_end(wk_job_t *job, lp_buf_t *out, wk_fail_t *fail)
{
    LP_UNUSED(out);
    return wk_fail(fail, 400, NULL, false, "%s serves embeddings only: nothing to stream",
                   job->d->provider->name);
}

const wk_adapter_t wk_voyage_adapter = {
    .name = "voyage",
    .prepare = s_prepare,
    .respond = s_respond,
    .error = s_error,
    .stream_event = s_stream_event,
    .stream_end = s_stream_end,
};
