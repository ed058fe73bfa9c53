/* wk_tei: the adapter for HuggingFace text-embeddings-inference (huggingface/ prefix) through
 * its native API, POST /embed. TEI is self-hosted and embeddings-only: it takes `inputs`, answers
 * with a bare array of float vectors and reports no usage, so the OpenAI list, its base64
 * encoding and the token counts are all made here. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lp_json.h"
#include "wk_adapter.h"

/* Chat and completions have no TEI endpoint: refuse them before any call goes out. */
static int s_fail_not_embedding(const wk_job_t *job, wk_fail_t *fail)
{
    return wk_fail(fail, 400, NULL, false,
                   "%s serves embeddings only: model group '%s' cannot answer %s calls",
                   job->d->provider->name, job->group ? job->group : "",
                   job->call == WK_CALL_COMPLETION ? "completion" : "chat completion");
}

/* TEI's /embed takes text: a string or a non-empty list of strings. OpenAI's token-id inputs
 * (a list of integers, or of lists of integers) are refused here. */
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

/* How many vectors TEI owes: one per input string. */
static size_t s_input_count(const json_t *req)
{
    const json_t *input = json_object_get(req, "input");
    return json_is_array(input) ? json_array_size(input) : 1;
}

/* True when the client asked for base64 vectors (prepare has refused any other format). */
static bool s_wants_base64(const json_t *req)
{
    const char *fmt = lp_json_str(req, "encoding_format");
    return fmt && strcmp(fmt, "base64") == 0;
}

static bool s_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The parameters TEI has an answer for: `truncate` (TEI's own, default false) goes through,
 * `dimensions` cannot (the model's size is fixed), `encoding_format` is done here. `src` is the
 * client's request merged with the deployment's litellm_params defaults. */
static int s_check_params(const wk_job_t *job, const json_t *src, json_t *body, wk_fail_t *fail)
{
    json_t *v = json_object_get(src, "dimensions");
    if (v && !json_is_null(v) && wk_unsupported(job, "dimensions", fail) < 0)
        return -1;
    v = json_object_get(src, "encoding_format");
    if (v && !json_is_null(v)) {
        const char *fmt = json_string_value(v);
        if (!fmt || (strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0))
            return wk_fail(fail, 400, NULL, false,
                           "'encoding_format' must be \"float\" or \"base64\"");
    }
    v = json_object_get(src, "truncate");
    if (v && !json_is_null(v) && !json_is_boolean(v))
        return wk_fail(fail, 400, NULL, false, "'truncate' must be true or false");
    json_object_set_new(body, "truncate", json_boolean(json_is_true(v)));
    json_object_set_new(body, "normalize", json_true());
    return 0;
}

/* Build the /embed request from scratch: TEI rejects nothing it does not know, but sending
 * only its own fields keeps OpenAI-only ones (user, model) from meaning anything there. */
static int s_prepare(wk_job_t *job, wk_fail_t *fail)
{
    const lp_deployment_t *d = job->d;
    if (job->call != WK_CALL_EMBEDDING)
        return s_fail_not_embedding(job, fail);
    if (job->stream)
        return wk_fail(fail, 400, NULL, false, "embeddings cannot be streamed");
    if (!d->api_base)
        return wk_fail(fail, 500, NULL, false,
                       "deployment %s has no api_base: %s/ needs the TEI server's URL", d->id,
                       d->provider->name);
    int rc = -1;
    json_t *src = wk_upstream_body(job);
    json_t *body = json_object();
    json_t *input = json_object_get(src, "input");
    if (s_check_input(job, input, fail) < 0)
        goto done;
    json_object_set(body, "inputs", input);
    if (s_check_params(job, src, body, fail) < 0)
        goto done;
    job->url = s_ends_with(d->api_base, "/embed") ? lp_strdup(d->api_base)
                                                  : lp_asprintf("%s/embed", d->api_base);
    job->body = lp_json_dump(body, &job->body_len);
    wk_header(&job->headers, "Content-Type", "application/json");
    wk_header(&job->headers, "Accept", "application/json");
    wk_bearer(job); /* self-hosted TEI usually runs without --api-key */
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
                   "%s returned a response that is not a list of embeddings: %s",
                   job->d->provider->name, why);
}

/* A vector as TEI sends it: a non-empty array of finite numbers that fit a float32 (TEI
 * computes in f32, so anything else is not TEI's answer). */
static bool s_is_vector(const json_t *vec)
{
    if (!json_is_array(vec) || json_array_size(vec) == 0)
        return false;
    size_t i;
    json_t *x;
    json_array_foreach(vec, i, x)
    {
        if (!json_is_number(x))
            return false;
        double v = json_number_value(x);
        if (!isfinite(v) || fabs(v) > FLT_MAX)
            return false;
    }
    return true;
}

/* OpenAI's base64 embedding: the vector as little-endian float32 bytes, standard base64 with
 * padding. The byte order is written out so the result does not depend on the host. */
static json_t *s_base64(const json_t *vec)
{
    size_t n = json_array_size(vec);
    unsigned char *raw = lp_malloc(n * 4);
    size_t i;
    json_t *x;
    json_array_foreach(vec, i, x)
    {
        float f = (float)json_number_value(x);
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        raw[4 * i] = (unsigned char)(u & 0xff);
        raw[4 * i + 1] = (unsigned char)((u >> 8) & 0xff);
        raw[4 * i + 2] = (unsigned char)((u >> 16) & 0xff);
        raw[4 * i + 3] = (unsigned char)((u >> 24) & 0xff);
    }
    unsigned char *text = lp_malloc(4 * ((n * 4 + 2) / 3) + 1);
    int len = EVP_EncodeBlock(text, raw, (int)(n * 4));
    json_t *out = len >= 0 ? json_stringn((const char *)text, (size_t)len) : NULL;
    free(raw);
    free(text);
    return out;
}

/* TEI's bare [[f32, ...], ...] (one vector per input, in input order) made into OpenAI's
 * list. TEI reports no usage, so tokens are estimated from the input text. */
static int s_respond(wk_job_t *job, wk_result_t *out, wk_fail_t *fail)
{
    char err[LP_ERR_LEN];
    json_t *resp = lp_json_parse(job->resp.data ? job->resp.data : "", job->resp.len, err);
    json_t *list = NULL;
    int rc = -1;
    if (!json_is_array(resp)) {
        s_bad_response(job, fail, resp ? "not a JSON array" : err);
        goto done;
    }
    if (json_array_size(resp) != s_input_count(job->req)) {
        s_bad_response(job, fail, "not one embedding per input");
        goto done;
    }
    bool base64 = s_wants_base64(job->req);
    list = json_array();
    size_t i;
    json_t *vec;
    json_array_foreach(resp, i, vec)
    {
        if (!s_is_vector(vec)) {
            s_bad_response(job, fail, "an entry is not an array of float32 numbers");
            goto done;
        }
        /* Bounded by WK_MAX_RESPONSE, but EVP_EncodeBlock counts in int. */
        if (base64 && json_array_size(vec) > (size_t)INT_MAX / 4) {
            s_bad_response(job, fail, "an embedding is too long to encode");
            goto done;
        }
        json_t *emb = base64 ? s_base64(vec) : json_incref(vec);
        if (!emb) {
            s_bad_response(job, fail, "an embedding could not be base64-encoded");
            goto done;
        }
        json_t *e = json_object();
        json_object_set_new(e, "object", json_string("embedding"));
        json_object_set_new(e, "index", json_integer((json_int_t)i));
        json_object_set_new(e, "embedding", emb);
        json_array_append_new(list, e);
    }
    long long tokens = wk_estimate_tokens(wk_prompt_bytes(job->req));
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(tokens));
    json_object_set_new(usage, "total_tokens", json_integer(tokens));
    json_t *answer = json_object();
    json_object_set_new(answer, "object", json_string("list"));
    json_object_set_new(answer, "data", list);
    list = NULL;
    json_object_set_new(answer, "model", json_string(job->group ? job->group : ""));
    json_object_set_new(answer, "usage", usage);
    out->response = answer;
    out->prompt_tokens = tokens;
    out->completion_tokens = 0;
    out->total_tokens = tokens;
    rc = 0;
done:
    json_decref(list);
    json_decref(resp);
    return rc;
}

/* TEI's words: {"error": "...", "error_type": "..."} natively; {"message", "code", "type"}
 * from its OpenAI-compatible routes (an api_base pointing there still answers that way). */
static void s_error_message(const json_t *body, char *out, size_t size)
{
    const json_t *e = json_object_get(body, "error");
    const char *msg = json_is_string(e) ? json_string_value(e) : lp_json_str(e, "message");
    if (!msg)
        msg = lp_json_str(body, "message");
    lp_strlcpy(out, msg ? msg : "", size);
}

/* TEI's length refusal: "Input validation error: `inputs` must have less than 512 tokens.
 * Given: 600"; other servers say "too long" or name the context. */
static bool s_is_too_long(const char *text)
{
    if (strcasestr(text, "must have less than") && strcasestr(text, "tokens"))
        return true;
    return strcasestr(text, "too long") || strcasestr(text, "context length") ||
           strcasestr(text, "context window");
}

/* TEI's statuses: 413 (batch larger than --max-client-batch-size) stays 413; 422 (validation
 * or tokenization) is the client's 400, context_length_exceeded when about length; 424 (the
 * model backend failed) is the provider's failure, 502 and retryable elsewhere; 429
 * (overloaded) stays 429; anything else as every provider. */
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
    if (job->status == 422) {
        fail->status = 400;
        fail->retryable = false;
    } else if (job->status == 424) {
        fail->status = 502;
        fail->retryable = true;
    }
    if ((job->status == 400 || job->status == 413 || job->status == 422) && s_is_too_long(text)) {
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

const wk_adapter_t wk_tei_adapter = {
    .name = "huggingface",
    .prepare = s_prepare,
    .respond = s_respond,
    .error = s_error,
    .stream_event = s_stream_event,
    .stream_end = s_stream_end,
};
