/* fuzz_tei_response: the input is a text-embeddings-inference /embed body (a bare array of
 * float vectors): respond() for one input as floats and three inputs as base64, error() for
 * each error status. TEI does not stream, so it has no stream target. */
#include "fuzz.h"

static const fz_case_t s_cases[] = {
    {FZ_DEP_TEI, WK_CALL_EMBEDDING, false, "{\"model\":\"tei-embed\",\"input\":\"hello\"}"},
    {FZ_DEP_TEI, WK_CALL_EMBEDDING, false,
     "{\"model\":\"tei-embed\",\"input\":[\"a\",\"b\",\"c\"],\"encoding_format\":\"base64\"}"},
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
    fz_run_respond(&wk_tei_adapter, s_cases, sizeof s_cases / sizeof s_cases[0], data, size);
    return 0;
}
