#include "wk_mock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lp_crypto.h"
#include "lp_json.h"

const char *wk_mock_text(const wk_job_t *job)
{
    const char *text = lp_json_str(job->req, "mock_response");
    return text ? text : job->d->mock_response;
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

static const struct {
    const char *text;
    int upstream_status;
    const char *code;
} s_errors[] = {
    {"litellm.RateLimitError", 429, NULL},
    {"litellm.InternalServerError", 500, NULL},
    {"litellm.ContextWindowExceededError", 400, "context_length_exceeded"},
    {"litellm.Timeout", 408, "timeout"},
};

int wk_mock_answer(wk_job_t *job, const char *text, wk_result_t *out, wk_fail_t *fail)
{
    for (size_t i = 0; i < LP_ARRAY_LEN(s_errors); i++) {
        if (strcmp(text, s_errors[i].text) == 0) {
            wk_fail_from_status(fail, s_errors[i].upstream_status);
            if (s_errors[i].code)
                fail->code = s_errors[i].code;
            fail->retry_after_ms = -1;
            snprintf(fail->message, sizeof fail->message, "mock_response: %s", text);
            return -1;
        }
    }
    if (job->call == WK_CALL_EMBEDDING)
        return wk_fail(fail, 400, NULL, false,
                       "mock_response works for chat and text completions, not embeddings");
    uint8_t raw[16];
    char uuid[LP_UUID_LEN];
    memcpy(raw, job->id, sizeof raw);
    lp_uuid_format(raw, uuid);
    json_t *resp = json_object();
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    if (job->call == WK_CALL_COMPLETION) {
        json_object_set_new(resp, "id", json_string_nocheck(uuid));
        json_object_set_new(resp, "object", json_string("text_completion"));
        json_object_set_new(choice, "text", lp_json_text(text));
        json_object_set_new(choice, "logprobs", json_null());
    } else {
        char id[64];
        snprintf(id, sizeof id, "chatcmpl-%s", uuid);
        json_object_set_new(resp, "id", json_string(id));
        json_object_set_new(resp, "object", json_string("chat.completion"));
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", lp_json_text(text));
        json_object_set_new(choice, "message", msg);
    }
    json_object_set_new(choice, "finish_reason", json_string("stop"));
    json_object_set_new(resp, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(resp, "model", json_string(job->group));
    json_t *choices = json_array();
    json_array_append_new(choices, choice);
    json_object_set_new(resp, "choices", choices);
    out->prompt_tokens = wk_estimate_tokens(wk_prompt_bytes(job->req));
    out->completion_tokens = wk_estimate_tokens(strlen(text));
    out->total_tokens = out->prompt_tokens + out->completion_tokens;
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(out->prompt_tokens));
    json_object_set_new(usage, "completion_tokens", json_integer(out->completion_tokens));
    json_object_set_new(usage, "total_tokens", json_integer(out->total_tokens));
    json_object_set_new(resp, "usage", usage);
    out->response = resp;
    return 0;
}
