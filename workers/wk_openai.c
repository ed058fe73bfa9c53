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
    job->body = lp_json_dump(body, &job->body_len);
    json_decref(body);
    wk_header(&job->headers, "Content-Type", "application/json");
    wk_header(&job->headers, "Accept", job->stream ? "text/event-stream" : "application/json");
    if (d->api_key && *d->api_key && strcmp(d->api_key, "none") != 0) {
        char *auth = lp_asprintf("Bearer %s", d->api_key);
        wk_header(&job->headers, "Authorization", auth);
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    const char *org = lp_json_str(d->params, "organization");
    if (org && !strpbrk(org, "\r\n"))
        wk_header(&job->headers, "OpenAI-Organization", org);
    wk_extra_headers(job, &job->headers);
    return 0;
}

static long long s_usage(const json_t *usage, const char *key)
{
    return lp_json_int(usage, key, 0);
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
    out->prompt_tokens = s_usage(usage, "prompt_tokens");
    out->completion_tokens = s_usage(usage, "completion_tokens");
    out->total_tokens = s_usage(usage, "total_tokens");
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
    if ((code && strcmp(code, "context_length_exceeded") == 0) ||
        strstr(text, "maximum context length") || strstr(text, "context_length_exceeded")) {
        fail->status = 400;
        fail->code = "context_length_exceeded";
        fail->retryable = false;
    }
    json_decref(body);
}

const wk_adapter_t wk_openai_adapter = {
    .name = "openai",
    .prepare = s_prepare,
    .respond = s_respond,
    .error = s_error,
};
