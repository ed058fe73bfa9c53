/* fuzz_tei_response: the input is a text-embeddings-inference /embed body (a bare array of
 * float vectors): respond() for one input as floats and three inputs as base64, error() for
 * each error status. TEI does not stream, so it has no stream target. */
#include "fuzz.h"

static const fz_case_t s_cases[] = {
    {FZ_DEP_TEI, WK_CALL_EMBEDDING, false, "{\"model\":\"tei-embed\",\"input\":\"hello\"}", false},
    {FZ_DEP_TEI, WK_CALL_EMBEDDING, false,
     "{\"model\":\"tei-embed\",\"input\":[\"a\",\"b\",\"c\"],\"encoding_format\":\"base64\"}",
     false},
};

FZ_ADAPTER_TARGET(fz_run_respond, wk_tei_adapter)
