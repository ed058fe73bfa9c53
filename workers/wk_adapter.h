/* wk_adapter: what every provider adapter provides (request translation, response
 * translation, error mapping) and the helpers they share. One adapter per wire format
 * (lp_wire_t); OpenAI-compatible providers share one. */
#ifndef WK_ADAPTER_H
#define WK_ADAPTER_H

#include <jansson.h>
#include <stdbool.h>

#include "lp_provider.h"
#include "wk_job.h"

/* Longest error message passed to the client. */
#define WK_MSG_LEN 512

/* Why a call failed, as the client will see it. */
typedef struct {
    int status;               /* HTTP status for the client */
    const char *code;         /* OpenAI code, or NULL for the status as a string */
    bool retryable;           /* another attempt (maybe elsewhere) may succeed */
    long long retry_after_ms; /* provider's retry-after, -1 if none */
    char message[WK_MSG_LEN];
} wk_fail_t;

/* A successful answer for the client: a document to serialise, or bytes ready to send (an
 * OpenAI-compatible provider's answer restamped, an Anthropic answer relayed as it came). */
typedef struct {
    json_t *response; /* body for the client (owned by the result), or NULL: */
    lp_buf_t body;    /* the body for the client, ready to send */
    long long prompt_tokens, completion_tokens, total_tokens;
} wk_result_t;

typedef struct {
    const char *name;
    /* Build job->url, job->headers and job->body from the client request. -1 fills fail. */
    int (*prepare)(wk_job_t *job, wk_fail_t *fail);
    /* Translate a 2xx answer in job->resp into the OpenAI response. -1 fills fail. */
    int (*respond)(wk_job_t *job, wk_result_t *out, wk_fail_t *fail);
    /* Translate an error answer (job->status >= 400, body in job->resp). */
    void (*error)(wk_job_t *job, wk_fail_t *fail);
    /* Streams: one provider event in, client bytes appended to out. Sets job->done at the
     * provider's terminator. -1 fills fail (a broken stream). */
    int (*stream_event)(wk_job_t *job, const char *event, const char *data, size_t len,
                        lp_buf_t *out, wk_fail_t *fail);
    /* Streams: the provider finished sending; append the last client bytes (usage chunk,
     * terminator). -1 fills fail when the stream was cut short. */
    int (*stream_end)(wk_job_t *job, lp_buf_t *out, wk_fail_t *fail);
} wk_adapter_t;

extern const wk_adapter_t wk_openai_adapter;
extern const wk_adapter_t wk_anthropic_adapter;
extern const wk_adapter_t wk_gemini_adapter;
extern const wk_adapter_t wk_voyage_adapter;
extern const wk_adapter_t wk_tei_adapter;

/* The adapter for a wire format, or NULL when this build has none. */
const wk_adapter_t *wk_adapter_for(lp_wire_t wire);

/* Fill fail (printf-style message). Returns -1 for `return wk_fail(...)`. */
int wk_fail(wk_fail_t *fail, int status, const char *code, bool retryable, const char *fmt, ...)
    LP_PRINTF(5, 6);
/* The client-facing status, code and retryability for a provider's HTTP error status:
 * 429 stays 429, 500/502/504 -> 502, 503/529 -> 503, 4xx kept. */
void wk_fail_from_status(wk_fail_t *fail, long upstream_status);
/* Remove secrets from provider text in place: the deployment's key and anything shaped like
 * an API key ("sk-...", "AIza...") are replaced by "***". */
void wk_scrub(char *text, const char *api_key);
/* Append "Name: value" to a header list (NULL on allocation failure is fatal). */
void wk_header(struct curl_slist **list, const char *name, const char *value);
/* Authorization: Bearer <the deployment's key>, unless it has none ("none" is LiteLLM's
 * placeholder for a server without a key). */
void wk_bearer(wk_job_t *job);
/* A client parameter the provider cannot take: with drop_params it is dropped (0), else the
 * call is refused with a 400 naming it (-1, fail filled), as LiteLLM does. */
int wk_unsupported(const wk_job_t *job, const char *param, wk_fail_t *fail);
/* Client fields that steer the proxy and never go to a provider. */
bool wk_is_proxy_field(const char *key);
/* Deployment litellm_params that configure the call rather than travel in the body. */
bool wk_is_call_param(const char *key);
/* Start the upstream body: a copy of the client's request without proxy-only fields, with
 * the deployment's extra litellm_params as defaults and "model" set to the provider's name.
 * The caller owns the result. */
json_t *wk_upstream_body(const wk_job_t *job);
/* Add the deployment's litellm_params.extra_headers to a header list. */
void wk_extra_headers(const wk_job_t *job, struct curl_slist **list);
/* Bytes of text in the request's messages / prompt / input, for token estimates. */
size_t wk_prompt_bytes(const json_t *req);
/* Tokens estimated from bytes (4 bytes per token; 0 only for no text). */
long long wk_estimate_tokens(size_t bytes);
/* Append one SSE event "data: <json>\n\n" to out. */
void wk_sse_emit(lp_buf_t *out, const json_t *value);
/* Start an event relayed as the provider wrote it: "event: <name>\n" (when name is not
 * NULL) and "data: "; wk_sse_relay_end ends it, its line breaks made spaces. Valid JSON has
 * line breaks only between tokens, so the event stays one data line whatever the provider's
 * layout, and a name cannot start a line of its own. */
size_t wk_sse_relay_start(lp_buf_t *out, const char *name);
void wk_sse_relay_end(lp_buf_t *out, size_t from);
/* The usage of a stream: the provider's, else estimated from the bytes seen. */
void wk_stream_usage(const wk_job_t *job, long long *prompt, long long *completion,
                     long long *total);

#endif
