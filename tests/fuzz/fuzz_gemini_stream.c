/* fuzz_gemini_stream: the input is a Gemini streamGenerateContent?alt=sse stream (each event a
 * whole GenerateContentResponse), fed in pseudo-random splits through lp_sse into the Gemini
 * adapter. */
#include "fuzz.h"

static const fz_case_t s_cases[] = {
    {FZ_DEP_GEMINI, WK_CALL_CHAT, true,
     "{\"model\":\"gem\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}],"
     "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
     "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]}",
     false},
};

FZ_ADAPTER_TARGET(fz_run_stream, wk_gemini_adapter)
