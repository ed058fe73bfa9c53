/* fuzz_openai_response: the input is an OpenAI-compatible provider's non-streaming body:
 * respond() for chat, text completion and embeddings calls, error() for each error status. */
#include "fuzz.h"

static const fz_case_t s_cases[] = {
    {FZ_DEP_OPENAI, WK_CALL_CHAT, false,
     "{\"model\":\"gpt\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"},
    {FZ_DEP_OPENAI, WK_CALL_COMPLETION, false, "{\"model\":\"gpt\",\"prompt\":\"Say hi\"}"},
    {FZ_DEP_OPENAI, WK_CALL_EMBEDDING, false, "{\"model\":\"gpt\",\"input\":[\"a\",\"b\"]}"},
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
    fz_run_respond(&wk_openai_adapter, s_cases, sizeof s_cases / sizeof s_cases[0], data, size);
    return 0;
}
