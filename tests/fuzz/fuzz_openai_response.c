/* fuzz_openai_response: the input is an OpenAI-compatible provider's non-streaming body:
 * respond() for chat, text completion and embeddings calls, error() for each error status. */
#include "fuzz.h"

static const fz_case_t s_cases[] = {
    {FZ_DEP_OPENAI, WK_CALL_CHAT, false,
     "{\"model\":\"gpt\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", false},
    {FZ_DEP_OPENAI, WK_CALL_COMPLETION, false, "{\"model\":\"gpt\",\"prompt\":\"Say hi\"}", false},
    {FZ_DEP_OPENAI, WK_CALL_EMBEDDING, false, "{\"model\":\"gpt\",\"input\":[\"a\",\"b\"]}", false},
};

FZ_ADAPTER_TARGET(fz_run_respond, wk_openai_adapter)
