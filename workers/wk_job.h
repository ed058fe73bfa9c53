/* wk_job: one provider call as the worker runs it: the request as the client sent it, the
 * deployment chosen by the router, the upstream HTTP exchange, and its timings. Owned by the
 * worker server; a job dies only after its easy handle left the multi handle. */
#ifndef WK_JOB_H
#define WK_JOB_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lp_buf.h"
#include "lp_cfg.h"
#include "lp_loop.h"
#include "lp_msg.h"
#include "lp_sse.h"

/* Largest provider answer buffered for one non-streaming call. */
#define WK_MAX_RESPONSE (64 * 1024 * 1024)
/* Stream bytes a worker may send ahead of the client: past this it stops reading from the
 * provider until the gateway acknowledges (CREDIT). Bounds every daemon's memory. */
#define WK_STREAM_WINDOW (256 * 1024)
/* libcurl's read buffer for a streaming call (CURLOPT_BUFFERSIZE). */
#define WK_STREAM_BUFFER (8 * 1024)
/* Kernel receive buffer of a streaming call's socket (SO_RCVBUF). */
#define WK_STREAM_RCVBUF (128 * 1024)

typedef enum { WK_CALL_CHAT = 0, WK_CALL_COMPLETION, WK_CALL_EMBEDDING } wk_call_t;

typedef struct wk_job wk_job_t;
struct wk_job {
    uint8_t id[LP_REQ_ID_LEN];
    char idstr[LP_REQ_ID_STR_LEN];
    lp_cfg_t *cfg;            /* the config the call began with (a reference) */
    const lp_deployment_t *d; /* borrowed from cfg, or own */
    lp_deployment_t *own;     /* d with the client's api_base/api_key (lp_clientside) */
    bool client_base;         /* the client chose the host: guarded at connect time */
    bool blocked;             /* ... and its address was refused */
    char *group;              /* model group the client asked for */
    lp_buf_t model_member;    /* "model":"<group>", made once to restamp answers (wk_openai) */
    wk_call_t call;
    bool stream;
    bool messages;           /* the client speaks Anthropic's Messages API (/v1/messages) */
    bool passthrough;        /* ... to an Anthropic deployment: relayed as it is */
    bool count_tokens;       /* /v1/messages/count_tokens */
    char *anthropic_version; /* the client's anthropic-version and -beta headers, or NULL */
    char *anthropic_beta;
    bool drop_params; /* litellm drop_params: unsupported parameters are dropped, not refused */
    int attempt;
    long long timeout_ms;
    long long stream_timeout_ms;
    json_t *req; /* the client's request body (owned) */

    /* upstream exchange, filled by the adapter's prepare() */
    char *url;
    struct curl_slist *headers;
    char *body; /* request body sent upstream (owned) */
    size_t body_len;
    CURL *easy;
    lp_buf_t resp; /* response bytes */
    long status;
    long long retry_after_ms; /* from a retry-after header, -1 if none */
    bool too_big;

    int64_t recv_ns; /* when the worker got the job */
    int64_t start_ns;
    int64_t first_byte_ns;
    void *owner; /* the worker server */
    bool mocked; /* answered by mock_response, no provider call */

    /* streaming */
    lp_sse_t sse;
    lp_buf_t out;       /* client bytes not yet sent to the gateway */
    bool head_sent;     /* HEAD went: from here on no retry, errors become stream events */
    bool done;          /* the provider's terminator arrived */
    bool finish_seen;   /* a finish_reason reached the client */
    bool include_usage; /* the client asked for the usage chunk */
    bool have_usage;    /* the provider reported usage */
    long long usage_prompt, usage_completion, usage_total;
    size_t content_bytes; /* text relayed, for estimating tokens when no usage comes */
    char chunk_id[128];   /* id and created of the provider's chunks, for synthesised ones */
    long long created;
    size_t unacked; /* bytes sent and not yet acknowledged by the gateway */
    bool paused;    /* the transfer is paused for want of credit */
    int tool_calls; /* tool calls started in the stream (the next OpenAI tool index) */
    bool role_sent; /* the first chunk (with delta.role) went out */
    int tool_block; /* the provider's content block that is the open tool call, -1 if none */
    bool failed;    /* the stream broke; stream_fail says how */
    bool stream_fail_retryable;
    char stream_fail_msg[512];
    int stream_fail_status;
    const char *stream_fail_code;
    lp_timer_t stream_timer;            /* time to first byte, then idle time between chunks */
    struct wk_messages_stream *mstream; /* chunks re-told as Anthropic events (owned) */
};

#endif
