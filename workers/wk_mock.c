#include "wk_mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lp_crypto.h"
#include "lp_json.h"

const char *wk_mock_text(const wk_job_t *job)
{
    const char *text = lp_json_str(job->req, "mock_response");
    return text ? text : job->d->mock_response;
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

/* The special mock values that stand for a provider failure; -1 with fail filled. */
static int s_mock_error(const char *text, wk_fail_t *fail)
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
    return 0;
}

int wk_mock_answer(wk_job_t *job, const char *text, wk_result_t *out, wk_fail_t *fail)
{
    if (s_mock_error(text, fail) < 0)
        return -1;
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

/* One chat.completion.chunk with the given delta (taken) and finish reason (may be NULL). */
static void s_chunk(wk_job_t *job, const char *id, lp_buf_t *out, json_t *delta, const char *finish)
{
    json_t *chunk = json_object();
    json_object_set_new(chunk, "id", json_string(id));
    json_object_set_new(chunk, "object", json_string("chat.completion.chunk"));
    json_object_set_new(chunk, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(chunk, "model", json_string(job->group));
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "delta", delta);
    json_object_set_new(choice, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *choices = json_array();
    json_array_append_new(choices, choice);
    json_object_set_new(chunk, "choices", choices);
    wk_sse_emit(out, chunk);
    json_decref(chunk);
}

int wk_mock_stream(wk_job_t *job, const char *text, lp_buf_t *out, wk_fail_t *fail)
{
    if (s_mock_error(text, fail) < 0)
        return -1;
    if (job->call != WK_CALL_CHAT)
        return wk_fail(fail, 400, NULL, false,
                       "a streamed mock_response works for chat completions only");
    uint8_t raw[16];
    char uuid[LP_UUID_LEN], id[64];
    memcpy(raw, job->id, sizeof raw);
    lp_uuid_format(raw, uuid);
    snprintf(id, sizeof id, "chatcmpl-%s", uuid);
    json_t *delta = json_object();
    json_object_set_new(delta, "role", json_string("assistant"));
    json_object_set_new(delta, "content", json_string(""));
    s_chunk(job, id, out, delta, NULL);
    /* One chunk per word, the space kept with the word that follows it. */
    const char *p = text;
    while (*p) {
        const char *q = p + 1;
        while (*q && *q != ' ')
            q++;
        char *piece = lp_strndup(p, (size_t)(q - p));
        delta = json_object();
        json_object_set_new(delta, "content", lp_json_text(piece));
        free(piece);
        s_chunk(job, id, out, delta, NULL);
        p = q;
    }
    s_chunk(job, id, out, json_object(), "stop");
    job->have_usage = true;
    job->usage_prompt = wk_estimate_tokens(wk_prompt_bytes(job->req));
    job->usage_completion = wk_estimate_tokens(strlen(text));
    job->usage_total = job->usage_prompt + job->usage_completion;
    if (lp_json_bool(json_object_get(job->req, "stream_options"), "include_usage", false)) {
        json_t *chunk = json_object();
        json_object_set_new(chunk, "id", json_string(id));
        json_object_set_new(chunk, "object", json_string("chat.completion.chunk"));
        json_object_set_new(chunk, "created", json_integer((json_int_t)time(NULL)));
        json_object_set_new(chunk, "model", json_string(job->group));
        json_object_set_new(chunk, "choices", json_array());
        json_t *usage = json_object();
        json_object_set_new(usage, "prompt_tokens", json_integer(job->usage_prompt));
        json_object_set_new(usage, "completion_tokens", json_integer(job->usage_completion));
        json_object_set_new(usage, "total_tokens", json_integer(job->usage_total));
        json_object_set_new(chunk, "usage", usage);
        wk_sse_emit(out, chunk);
        json_decref(chunk);
    }
    lp_buf_puts(out, "data: [DONE]\n\n");
    return 0;
}
