/* fuzz_anthropic_response: the input is an Anthropic Messages API body: respond() for a chat
 * call that offered tools and for a /v1/messages call relayed as it came, error() for each
 * error status. */
#include "fuzz.h"

static const fz_case_t s_cases[] = {
    {FZ_DEP_ANTHROPIC, WK_CALL_CHAT, false,
     "{\"model\":\"claude\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
     "{\"role\":\"user\",\"content\":\"Weather in Paris?\"}],"
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
     "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]}",
     false},
    {FZ_DEP_ANTHROPIC, WK_CALL_CHAT, false,
     "{\"model\":\"claude\",\"max_tokens\":64,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
     "}",
     true},
};

FZ_ADAPTER_TARGET(fz_run_respond, wk_anthropic_adapter)
