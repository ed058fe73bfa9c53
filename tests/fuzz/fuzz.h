/* fuzz.h: what the libFuzzer targets in tests/fuzz/ share: the fuzz configuration (one
 * deployment per provider), jobs built the way the worker builds them, provider bodies and
 * SSE streams run through an adapter, and the invariants checked on every input.
 *
 * A broken invariant calls fz_fail(), which prints the reason and aborts, so libFuzzer
 * records the input as a crash like any sanitizer report. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_cfg.h"
#include "wk_adapter.h"

/* libFuzzer's entry points (declared here so -Wmissing-prototypes stays quiet). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not in wk_adapter.h yet; a repeated extern declaration is harmless once it is. */
extern const wk_adapter_t wk_gemini_adapter;

/* The deployments of the fuzz configuration (fz_cfg()->deployments[...]). */
enum {
    FZ_DEP_OPENAI = 0,
    FZ_DEP_ANTHROPIC,
    FZ_DEP_VOYAGE,
    FZ_DEP_TEI,
    FZ_DEP_GEMINI,
    FZ_DEP_GEMINI_EMBED,
    FZ_DEP_COUNT
};

/* Report a broken invariant and abort (libFuzzer keeps the input). */
void fz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fz_fail(__VA_ARGS__);                                                                  \
    } while (0)

/* Process set-up every target needs: a fixed environment (master key, no provider
 * variables), a deterministic jansson hash seed, quiet logs. Idempotent. */
void fz_setup(void);
/* The fuzz configuration (loaded once; aborts if it does not load). */
const lp_cfg_t *fz_cfg(void);

/* A deterministic pseudo-random sequence seeded from the input, so one input always runs
 * the same way (splits, header choices) and a crash replays exactly. */
typedef struct {
    uint64_t s;
} fz_rng_t;
void fz_rng_seed(fz_rng_t *r, const uint8_t *data, size_t size);
uint32_t fz_rng_next(fz_rng_t *r);
/* Length of the next piece when data is fed in splits: mostly small, sometimes large. */
size_t fz_rng_piece(fz_rng_t *r, size_t left);

/* One way the worker calls a provider: deployment, call type, stream flag, client body. */
typedef struct {
    int dep;
    wk_call_t call;
    bool stream;
    const char *req;
    bool passthrough; /* /v1/messages to Anthropic: answers and events relayed as they came */
} fz_case_t;

/* A job for the case, after adapter->prepare() (which must succeed on these fixed requests:
 * a failure is a harness bug and aborts). Free with fz_job_free. */
wk_job_t *fz_job_new(const wk_adapter_t *adapter, const fz_case_t *c);
void fz_job_free(wk_job_t *job);

/* The input as a provider's non-streaming answer: respond() for a 2xx for every case, and
 * error() for each error status on the first case; results are checked and serialised as the
 * worker would send them. */
void fz_run_respond(const wk_adapter_t *adapter, const fz_case_t *cases, size_t ncases,
                    const uint8_t *data, size_t size);
/* The input as a provider's SSE stream: fed through lp_sse in pseudo-random splits into
 * stream_event(), then stream_end(); the client bytes must be well-formed SSE of JSON. */
void fz_run_stream(const wk_adapter_t *adapter, const fz_case_t *cases, size_t ncases,
                   const uint8_t *data, size_t size);

/* The entry points of an adapter target: the fuzz configuration, then every input through
 * run (fz_run_respond or fz_run_stream) for the file's s_cases on adapter. */
#define FZ_ADAPTER_TARGET(run, adapter)                                                            \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                                              \
    {                                                                                              \
        (void)argc;                                                                                \
        (void)argv;                                                                                \
        fz_cfg();                                                                                  \
        return 0;                                                                                  \
    }                                                                                              \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                                   \
    {                                                                                              \
        run(&(adapter), s_cases, sizeof s_cases / sizeof s_cases[0], data, size);                  \
        return 0;                                                                                  \
    }

/* A failure as the client will see it must be well-formed and carry no deployment key. */
void fz_check_fail(const wk_job_t *job, const wk_fail_t *fail);

#endif
