/* wk_call: the life of one job in a worker, from its REQUEST to its END or ERROR: the mock
 * answer, or the provider call through the deployment's adapter, non-streaming (buffered,
 * bounded) or streaming (provider SSE re-framed chunk by chunk, sent as HEAD, CHUNK..., END,
 * with a credit window so a slow client pauses the provider transfer instead of filling
 * memory). Jobs are owned by the worker server's table; a job is freed only after its easy
 * handle left the multi handle. */
#ifndef WK_CALL_H
#define WK_CALL_H

#include <curl/curl.h>

#include "lp_msg.h"
#include "wk_job.h"

typedef struct wk_server wk_server_t;

/* Start the job a REQUEST asks for. Answers at once (and frees the job) on a bad request,
 * an unknown deployment or a mock answer; otherwise the call runs in the background. */
void wk_call_start(wk_server_t *srv, lp_msg_t *request);
/* The provider transfer finished (from the multi handle's done callback). */
void wk_call_done(wk_job_t *job, CURLcode result);
/* The client is gone: abort the provider call, report the usage so far, free the job. */
void wk_call_cancel(wk_job_t *job);
/* The gateway consumed `bytes` of this stream: resume the transfer if it was waiting. */
void wk_call_credit(wk_job_t *job, long long bytes);
/* Abort and free without a reply (worker shutting down). */
void wk_call_free(wk_job_t *job);

#endif
