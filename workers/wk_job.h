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
#include "lp_msg.h"

/* Largest provider answer buffered for one non-streaming call. */
#define WK_MAX_RESPONSE (64 * 1024 * 1024)

typedef enum { WK_CALL_CHAT = 0, WK_CALL_COMPLETION, WK_CALL_EMBEDDING } wk_call_t;

typedef struct wk_job wk_job_t;
struct wk_job {
    uint8_t id[LP_REQ_ID_LEN];
    char idstr[LP_REQ_ID_STR_LEN];
    const lp_deployment_t *d; /* borrowed from the worker's config */
    char *group;              /* model group the client asked for */
    wk_call_t call;
    bool stream;
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

    int64_t start_ns;
    int64_t first_byte_ns;
    void *owner; /* the worker server */
};

#endif
