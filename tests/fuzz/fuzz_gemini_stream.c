/* fuzz_gemini_stream: the input is a Gemini streamGenerateContent?alt=sse stream (each event a
 * whole GenerateContentResponse), fed in pseudo-random splits through lp_sse into the Gemini
 * adapter. */
#include "fuzz.h"

static const fz_case_t s_cases[] = {
    {FZ_DEP_GEMINI, WK_CALL_CHAT, true,
     "{\"model\":\"gem\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}],"
     "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
     "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]}"},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_cfg();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_run_stream(&wk_gemini_adapter, s_cases, sizeof s_cases / sizeof s_cases[0], data, size);
    return 0;
}
