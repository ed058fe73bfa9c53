/* wk_mock: LiteLLM's mock_response. A request (or a deployment) carrying mock_response is
 * answered by the worker without calling any provider, so a new user can try the whole
 * chain with no API key. Special values reproduce provider failures, as in LiteLLM:
 * "litellm.RateLimitError" (429), "litellm.InternalServerError" (500 -> 502),
 * "litellm.ContextWindowExceededError" (400 context_length_exceeded), "litellm.Timeout" (408).
 * Token counts are estimates (4 bytes per token), since no tokenizer ran. */
#ifndef WK_MOCK_H
#define WK_MOCK_H

#include <stdbool.h>

#include "wk_adapter.h"

/* The mock text for this job: the request's mock_response, else the deployment's; NULL when
 * the job must really call the provider. Borrowed. */
const char *wk_mock_text(const wk_job_t *job);
/* Answer the job from text: 0 with out filled, or -1 with fail filled. */
int wk_mock_answer(wk_job_t *job, const char *text, wk_result_t *out, wk_fail_t *fail);
/* Answer a streaming job from text: the whole SSE stream (role chunk, one chunk per word,
 * finish chunk, usage chunk when asked, [DONE]) appended to out; usage set in the job. */
int wk_mock_stream(wk_job_t *job, const char *text, lp_buf_t *out, wk_fail_t *fail);

#endif
