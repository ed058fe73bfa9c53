/* fuzz_anthropic_stream: the input is an Anthropic Messages SSE stream (message_start,
 * content_block_*, message_delta, message_stop, ping, error events), fed in pseudo-random
 * splits through lp_sse into the Anthropic adapter, translated and relayed as they came. */
#include "fuzz.h"

static const fz_case_t s_cases[] = {
    {FZ_DEP_ANTHROPIC, WK_CALL_CHAT, true,
     "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}],"
     "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
     "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]}",
     false},
    {FZ_DEP_ANTHROPIC, WK_CALL_CHAT, true,
     "{\"model\":\"claude\",\"max_tokens\":64,\"stream\":true,"
     "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
     true},
};

FZ_ADAPTER_TARGET(fz_run_stream, wk_anthropic_adapter)
