/* fuzz_common: the pieces every libFuzzer target shares (see fuzz.h). */
#include "fuzz.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_buf.h"
#include "lp_jscan.h"
#include "lp_json.h"
#include "wk_messages.h"
#include "lp_log.h"
#include "lp_msg.h"
#include "lp_sse.h"

/* Keys of the fuzz deployments: long enough that a provider echoing one back in an error
 * message would be caught by fz_check_fail. */
#define FZ_OPENAI_KEY    "sk-fuzz-openai-key-0123456789abcdef"
#define FZ_ANTHROPIC_KEY "sk-ant-api03-fuzz-key-0123456789abcdef"
#define FZ_VOYAGE_KEY    "pa-fuzz-voyage-key-0123456789abcdef"
#define FZ_TEI_KEY       "hf_fuzz_tei_token_0123456789abcdef"
#define FZ_GEMINI_KEY    "AIzaSyFuzzKey0123456789abcdefghijklmno"

/* One deployment per adapter, in the order of the FZ_DEP_* constants. */
static const char s_cfg_text[] = "model_list:\n"
                                 "  - model_name: gpt\n"
                                 "    litellm_params:\n"
                                 "      model: openai/gpt-4o-mini\n"
                                 "      api_key: " FZ_OPENAI_KEY "\n"
                                 "  - model_name: claude\n"
                                 "    litellm_params:\n"
                                 "      model: anthropic/claude-sonnet-4-5-20250929\n"
                                 "      api_key: " FZ_ANTHROPIC_KEY "\n"
                                 "  - model_name: voyage-embed\n"
                                 "    litellm_params:\n"
                                 "      model: voyage/voyage-3.5\n"
                                 "      api_key: " FZ_VOYAGE_KEY "\n"
                                 "  - model_name: tei-embed\n"
                                 "    litellm_params:\n"
                                 "      model: huggingface/BAAI/bge-small-en-v1.5\n"
                                 "      api_base: http://tei:8080\n"
                                 "      api_key: " FZ_TEI_KEY "\n"
                                 "  - model_name: gem\n"
                                 "    litellm_params:\n"
                                 "      model: gemini/gemini-2.5-flash\n"
                                 "      api_key: " FZ_GEMINI_KEY "\n"
                                 "  - model_name: gem-embed\n"
                                 "    litellm_params:\n"
                                 "      model: gemini/gemini-embedding-001\n"
                                 "      api_key: " FZ_GEMINI_KEY "\n";

/* Variables the config loader reads: unset so the environment cannot change a run. */
static const char *s_env_unset[] = {
    "OPENAI_API_KEY",       "OPENAI_API_BASE",     "ANTHROPIC_API_KEY",
    "ANTHROPIC_API_BASE",   "GEMINI_API_KEY",      "GEMINI_API_BASE",
    "VOYAGE_API_KEY",       "VOYAGE_API_BASE",     "HUGGINGFACE_API_KEY",
    "HUGGINGFACE_API_BASE", "GROQ_API_KEY",        "GROQ_API_BASE",
    "OPENROUTER_API_KEY",   "OPENROUTER_API_BASE", "CEREBRAS_API_KEY",
    "CEREBRAS_API_BASE",    "DATABASE_URL",        "REDIS_URL",
    "LITELLM_LOG",
};

/* Statuses error() is asked to map for every input. */
static const long s_error_statuses[] = {400, 401, 413, 422, 424, 429, 500, 503, 529};

static lp_cfg_t *s_cfg;

void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz invariant broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

void fz_setup(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    for (size_t i = 0; i < LP_ARRAY_LEN(s_env_unset); i++)
        unsetenv(s_env_unset[i]);
    setenv("LITELLM_MASTER_KEY", "sk-fuzz-0123456789abcdef", 1);
    json_object_seed(0x5eed);
    lp_log_set_level(LP_LOG_ERROR);
}

const lp_cfg_t *fz_cfg(void)
{
    if (!s_cfg) {
        fz_setup();
        char err[LP_ERR_LEN] = "";
        s_cfg = lp_cfg_load_string(s_cfg_text, "fuzz.yaml", err);
        FZ_CHECK(s_cfg != NULL, "harness: the fuzz config does not load: %s", err);
        FZ_CHECK(s_cfg->ndeployments == FZ_DEP_COUNT, "harness: %zu deployments",
                 s_cfg->ndeployments);
    }
    return s_cfg;
}

/* ---- deterministic choices ---- */

void fz_rng_seed(fz_rng_t *r, const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < size; i++) {
        h ^= data[i];
        h *= 0x100000001b3ULL;
    }
    r->s = h ? h : 1;
}

uint32_t fz_rng_next(fz_rng_t *r)
{
    /* xorshift64* */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 0x2545F4914F6CDD1DULL) >> 32);
}

size_t fz_rng_piece(fz_rng_t *r, size_t left)
{
    size_t n;
    switch (fz_rng_next(r) % 4) {
    case 0:
        n = 1 + fz_rng_next(r) % 3; /* splits inside CRLF and field names */
        break;
    case 1:
        n = 1 + fz_rng_next(r) % 64;
        break;
    case 2:
        n = 1 + fz_rng_next(r) % 1024;
        break;
    default:
        n = left;
        break;
    }
    return n < left ? n : left;
}

/* ---- jobs ---- */

wk_job_t *fz_job_new(const wk_adapter_t *adapter, const fz_case_t *c)
{
    const lp_cfg_t *cfg = fz_cfg();
    wk_job_t *job = lp_calloc(1, sizeof *job);
    for (size_t i = 0; i < LP_REQ_ID_LEN; i++)
        job->id[i] = (uint8_t)(0xf0 ^ i);
    lp_req_id_format(job->id, job->idstr);
    job->d = &cfg->deployments[c->dep];
    job->group = lp_strdup(job->d->model_name);
    job->call = c->call;
    job->stream = c->stream;
    job->attempt = 1;
    job->timeout_ms = 600000;
    job->retry_after_ms = -1;
    job->tool_block = -1; /* as wk_call_start sets it */
    job->messages = job->passthrough = c->passthrough;
    char err[LP_ERR_LEN];
    job->req = lp_json_parse(c->req, strlen(c->req), err);
    FZ_CHECK(json_is_object(job->req), "harness: bad request %s: %s", c->req, err);
    wk_fail_t fail = {.retry_after_ms = -1};
    FZ_CHECK(adapter->prepare(job, &fail) == 0, "harness: %s prepare failed on %s: %s",
             adapter->name, c->req, fail.message);
    return job;
}

void fz_job_free(wk_job_t *job)
{
    if (!job)
        return;
    curl_slist_free_all(job->headers);
    free(job->url);
    free(job->body);
    free(job->group);
    lp_buf_free(&job->model_member);
    json_decref(job->req);
    lp_buf_free(&job->resp);
    lp_buf_free(&job->out);
    lp_sse_free(&job->sse);
    free(job);
}

/* ---- invariants ---- */

void fz_check_fail(const wk_job_t *job, const wk_fail_t *fail)
{
    FZ_CHECK(fail->status >= 400 && fail->status <= 599, "failure status %d out of range (%s)",
             fail->status, fail->message);
    FZ_CHECK(fail->message[0] != '\0', "failure %d without a message", fail->status);
    FZ_CHECK(memchr(fail->message, '\0', sizeof fail->message) != NULL,
             "failure message not terminated");
    FZ_CHECK(!fail->code || fail->code[0], "failure with an empty code");
    const char *key = job->d->api_key;
    FZ_CHECK(!key || !*key || !strstr(fail->message, key),
             "the deployment's API key reached the client: %s", fail->message);
    /* What the worker sends: an ERROR message whose body is OpenAI's error JSON. */
    size_t len = 0;
    char *body = lp_error_body(fail->status, NULL, fail->code, NULL, fail->message, &len);
    char err[LP_ERR_LEN];
    json_t *v = lp_json_parse(body, len, err);
    FZ_CHECK(json_is_string(json_object_get(json_object_get(v, "error"), "message")),
             "error body is not OpenAI's error object (%s): %s", err, body);
    json_decref(v);
    free(body);
    lp_msg_t *m = lp_msg_error(job->id, fail->status, fail->code, fail->message);
    lp_msg_destroy(&m);
}

typedef struct {
    bool object;
    const char *model; /* the top-level model, a string copied here */
    char seen[256];
    bool has_model;
} s_object_t;

static bool s_object_scan(lp_jscan_t *s, lp_jscan_kind_t kind, const char *text, size_t len,
                          void *arg)
{
    s_object_t *o = arg;
    if (lp_jscan_depth(s) == 0 && kind == LP_JSCAN_OBJECT)
        o->object = true;
    if (lp_jscan_at(s, "model") && kind == LP_JSCAN_STRING && len < sizeof o->seen) {
        memcpy(o->seen, text, len);
        o->seen[len] = '\0';
        o->has_model = true;
    }
    return true;
}

/* p[n] is one JSON object, for jansson (taking repeated keys and NUL escapes, which are
 * valid JSON; refusing only numbers it cannot hold and a NUL escape in a key) and for
 * lp_jscan; with model, its top-level model is that string. */
static void s_check_object(const char *p, size_t n, const char *model, const char *what)
{
    json_error_t jerr;
    json_t *v = json_loadb(p, n, JSON_ALLOW_NUL, &jerr);
    FZ_CHECK(json_is_object(v) ||
                 (!v && (strstr(jerr.text, "too big") || strstr(jerr.text, "overflow") ||
                         strstr(jerr.text, "NUL byte in object key"))),
             "%s is not a JSON object for jansson (%s): %.*s", what,
             v ? "not an object" : jerr.text, (int)(n > 200 ? 200 : n), p);
    json_decref(v);
    char err[LP_ERR_LEN] = "";
    s_object_t o = {0};
    FZ_CHECK(lp_jscan_run(p, n, s_object_scan, &o, err) == 0 && o.object,
             "%s is not a JSON object (%s): %.*s", what, err, (int)(n > 200 ? 200 : n), p);
    FZ_CHECK(!model || (o.has_model && strcmp(o.seen, model) == 0),
             "%s answer's model is not the group %s", what, model);
}

/* The client bytes of a stream: "data: <JSON object>\n\n" events, and when the stream ended
 * well a final "data: [DONE]\n\n" (and [DONE] nowhere else). Relayed Anthropic events
 * (passthrough) are "event: <name>\n" lines before each data line, with no [DONE]: a stream
 * that ended well ends with message_stop, one that did not with an error event. */
static void s_check_sse(const lp_buf_t *out, bool ended_well, bool passthrough)
{
    const char *p = out->data ? out->data : "";
    const char *end = p + out->len;
    bool done = false;
    char last[64] = "";
    while (p < end) {
        FZ_CHECK(!done, "client stream goes on after [DONE]");
        if (passthrough && (size_t)(end - p) >= 7 && memcmp(p, "event: ", 7) == 0) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            FZ_CHECK(nl != NULL, "event line not terminated");
            size_t n = LP_MIN((size_t)(nl - p - 7), sizeof last - 1);
            memcpy(last, p + 7, n);
            last[n] = '\0';
            FZ_CHECK(!memchr(p + 7, '\r', (size_t)(nl - p - 7)), "CR inside an event name");
            p = nl + 1;
        }
        FZ_CHECK((size_t)(end - p) >= 6 && memcmp(p, "data: ", 6) == 0,
                 "client stream event does not start with 'data: ': %.80s", p);
        p += 6;
        const char *stop = memmem(p, (size_t)(end - p), "\n\n", 2);
        FZ_CHECK(stop != NULL, "client stream event not terminated: %.80s", p);
        size_t n = (size_t)(stop - p);
        FZ_CHECK(!memchr(p, '\n', n) && !memchr(p, '\r', n), "an event spans lines: %.*s",
                 (int)LP_MIN(n, 200), p);
        if (!passthrough && n == 6 && memcmp(p, "[DONE]", 6) == 0)
            done = true;
        else
            s_check_object(p, n, NULL, "client stream event");
        p = stop + 2;
    }
    if (passthrough)
        FZ_CHECK(strcmp(last, ended_well ? "message_stop" : "error") == 0,
                 "relayed stream ended %s with '%s'", ended_well ? "well" : "badly", last);
    else
        FZ_CHECK(done == ended_well, ended_well ? "stream ended well without [DONE]"
                                                : "[DONE] sent on a failed stream");
}

/* ---- adapters ---- */

void fz_run_respond(const wk_adapter_t *adapter, const fz_case_t *cases, size_t ncases,
                    const uint8_t *data, size_t size)
{
    for (size_t c = 0; c < ncases; c++) {
        wk_job_t *job = fz_job_new(adapter, &cases[c]);
        lp_buf_append(&job->resp, data, size);
        job->status = 200;
        wk_result_t res = {0};
        wk_fail_t fail = {.retry_after_ms = -1};
        int rc = adapter->respond(job, &res, &fail);
        if (rc == 0 && !res.response) {
            /* The provider's bytes, maybe edited: still one JSON object, model restamped
             * unless relayed as it came. */
            s_check_object(res.body.data, res.body.len, job->passthrough ? NULL : job->group,
                           adapter->name);
            lp_buf_free(&res.body);
        } else if (rc == 0) {
            FZ_CHECK(json_is_object(res.response), "%s respond() succeeded without an object",
                     adapter->name);
            /* What the worker sends: the answer serialised, which must read back. */
            size_t len = 0;
            char *text = lp_json_dump(res.response, &len);
            json_error_t jerr;
            json_t *back = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
            FZ_CHECK(back && json_equal(back, res.response),
                     "%s answer does not survive serialisation (%s)", adapter->name, jerr.text);
            json_decref(back);
            free(text);
            json_decref(res.response);
        } else {
            FZ_CHECK(res.response == NULL && res.body.len == 0,
                     "%s respond() failed but left a response", adapter->name);
            fz_check_fail(job, &fail);
        }
        /* error() reads the body the same way whatever the call: once, on the first case. */
        for (size_t s = 0; c == 0 && s < LP_ARRAY_LEN(s_error_statuses); s++) {
            wk_fail_t efail = {.retry_after_ms = -1};
            job->status = s_error_statuses[s];
            job->retry_after_ms = -1;
            adapter->error(job, &efail);
            fz_check_fail(job, &efail);
        }
        fz_job_free(job);
    }
}

typedef struct {
    wk_job_t *job;
    const wk_adapter_t *adapter;
    wk_fail_t *fail;
} s_event_ctx_t;

static int s_on_event(const char *event, const char *data, size_t len, void *arg)
{
    s_event_ctx_t *ctx = arg;
    FZ_CHECK(data[len] == '\0', "lp_sse event data not NUL-terminated");
    return ctx->adapter->stream_event(ctx->job, event, data, len, &ctx->job->out, ctx->fail);
}

void fz_run_stream(const wk_adapter_t *adapter, const fz_case_t *cases, size_t ncases,
                   const uint8_t *data, size_t size)
{
    for (size_t c = 0; c < ncases; c++) {
        wk_job_t *job = fz_job_new(adapter, &cases[c]);
        job->status = 200;
        fz_rng_t rng;
        fz_rng_seed(&rng, data, size);
        wk_fail_t fail = {.retry_after_ms = -1};
        s_event_ctx_t ctx = {job, adapter, &fail};
        bool failed = false;
        for (size_t off = 0; off < size && !failed;) {
            size_t n = fz_rng_piece(&rng, size - off);
            if (lp_sse_feed(&job->sse, (const char *)data + off, n, s_on_event, &ctx) < 0)
                failed = true;
            off += n;
        }
        if (failed) {
            if (!fail.status) /* lp_sse refused an event (too large), as wk_call reports it */
                wk_fail(&fail, 502, "upstream_stream_too_large", false, "event too large");
        } else if (adapter->stream_end(job, &job->out, &fail) < 0) {
            failed = true;
        }
        if (failed) {
            fz_check_fail(job, &fail);
            /* wk_call's s_stream_fail: the error becomes the stream's last event. */
            if (job->messages) {
                wk_messages_error_event(&job->out, fail.status, fail.message);
            } else {
                size_t elen = 0;
                char *err = lp_error_body(fail.status, NULL, fail.code, NULL, fail.message, &elen);
                lp_buf_puts(&job->out, "data: ");
                lp_buf_append(&job->out, err, elen);
                lp_buf_puts(&job->out, "\n\n");
                free(err);
            }
        }
        s_check_sse(&job->out, !failed, job->passthrough);
        long long p, k, t;
        wk_stream_usage(job, &p, &k, &t);
        fz_job_free(job);
    }
}
