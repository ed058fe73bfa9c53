/* fuzz_gemini_response: the input is a Gemini generateContent or batchEmbedContents body:
 * respond() for a chat call that offered tools and for a two-input embedding call, error()
 * for each error status. */
#include "fuzz.h"

static const fz_case_t s_cases[] = {
    {FZ_DEP_GEMINI, WK_CALL_CHAT, false,
     "{\"model\":\"gem\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}],"
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
     "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]}",
     false},
    {FZ_DEP_GEMINI_EMBED, WK_CALL_EMBEDDING, false,
     "{\"model\":\"gem-embed\",\"input\":[\"a\",\"b\"]}", false},
};

FZ_ADAPTER_TARGET(fz_run_respond, wk_gemini_adapter)
