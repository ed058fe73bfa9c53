/* fuzz_openai_stream: the input is an OpenAI-compatible provider's SSE stream, fed in
 * pseudo-random splits through lp_sse into the OpenAI adapter (chat with the usage chunk
 * asked for, and a text completion without it). */
#include "fuzz.h"

static const fz_case_t s_cases[] = {
    {FZ_DEP_OPENAI, WK_CALL_CHAT, true,
     "{\"model\":\"gpt\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,"
     "\"stream_options\":{\"include_usage\":true}}",
     false},
    {FZ_DEP_OPENAI, WK_CALL_COMPLETION, true,
     "{\"model\":\"gpt\",\"prompt\":\"Say hi\",\"stream\":true}", false},
};

FZ_ADAPTER_TARGET(fz_run_stream, wk_openai_adapter)
