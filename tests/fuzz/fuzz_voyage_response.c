/* fuzz_voyage_response: the input is a Voyage AI embeddings body: respond() for one input and
 * for three inputs (indexes must cover 0..n-1), error() for each error status. Voyage does not
 * stream, so it has no stream target. */
#include "fuzz.h"

static const fz_case_t s_cases[] = {
    {FZ_DEP_VOYAGE, WK_CALL_EMBEDDING, false, "{\"model\":\"voyage-embed\",\"input\":\"hello\"}",
     false},
    {FZ_DEP_VOYAGE, WK_CALL_EMBEDDING, false,
     "{\"model\":\"voyage-embed\",\"input\":[\"a\",\"b\",\"c\"],\"input_type\":\"query\"}", false},
};

FZ_ADAPTER_TARGET(fz_run_respond, wk_voyage_adapter)
