/* test_embed_adapters: the Voyage (wk_voyage) and text-embeddings-inference (wk_tei) adapters,
 * driven directly: prepare (URL, headers, body), respond on provider answers written as the
 * providers document them, error on their error bodies, and the refusals of everything that is
 * not an embedding call. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lp_buf.h"
#include "lp_cfg.h"
#include "lp_json.h"
#include "wk_adapter.h"

/* Declared here until wk_adapter.h lists them; a repeated extern declaration is harmless. */

#define VOYAGE_KEY "pa-unit-test-voyage-key-0123456789"
#define TEI_KEY    "hf_unit_test_tei_token_0123456789"

static const char *s_env[] = {"VOYAGE_API_KEY", "VOYAGE_API_BASE", "HUGGINGFACE_API_KEY",
                              "HUGGINGFACE_API_BASE"};

static const char *s_voyage_cfg = "model_list:\n"
                                  "  - model_name: voyage-embed\n"
                                  "    litellm_params:\n"
                                  "      model: voyage/voyage-3.5\n"
                                  "      api_key: " VOYAGE_KEY "\n"
                                  "      extra_headers: {X-Team: search}\n";

static const char *s_voyage_base_cfg = "model_list:\n"
                                       "  - model_name: voyage-embed\n"
                                       "    litellm_params:\n"
                                       "      model: voyage/voyage-code-3\n"
                                       "      api_key: " VOYAGE_KEY "\n"
                                       "      api_base: https://voyage.internal/v1/embeddings\n";

static const char *s_tei_cfg = "model_list:\n"
                               "  - model_name: tei-embed\n"
                               "    litellm_params:\n"
                               "      model: huggingface/BAAI/bge-small-en-v1.5\n"
                               "      api_base: http://tei:8080/\n";

static const char *s_tei_key_cfg = "model_list:\n"
                                   "  - model_name: tei-embed\n"
                                   "    litellm_params:\n"
                                   "      model: huggingface/BAAI/bge-small-en-v1.5\n"
                                   "      api_base: http://tei:8080\n"
                                   "      api_key: " TEI_KEY "\n";

static const char *s_tei_none_cfg = "model_list:\n"
                                    "  - model_name: tei-embed\n"
                                    "    litellm_params:\n"
                                    "      model: huggingface/BAAI/bge-small-en-v1.5\n"
                                    "      api_base: http://tei:8080/embed\n"
                                    "      api_key: none\n";

/* One call under test: the config it came from and the job the worker would have built. */
typedef struct {
    lp_cfg_t *cfg;
    wk_job_t *job;
} fx_t;

/* Load a config (no provider variables in the environment) and build a job for its first
 * deployment with the client's request body. Either pointer is NULL on failure. */
static fx_t s_fx(const char *yaml, const char *group, wk_call_t call, const char *req)
{
    fx_t fx = {0};
    for (size_t i = 0; i < LP_ARRAY_LEN(s_env); i++)
        unsetenv(s_env[i]);
    setenv("LITELLM_MASTER_KEY", "sk-unit-test-key-0123456789", 1);
    char err[LP_ERR_LEN] = "";
    fx.cfg = lp_cfg_load_string(yaml, "embed.yaml", err);
    if (!fx.cfg || fx.cfg->ndeployments == 0) {
        fprintf(stderr, "config: %s\n", err);
        return fx;
    }
    wk_job_t *job = lp_calloc(1, sizeof *job);
    job->d = &fx.cfg->deployments[0];
    job->group = lp_strdup(group);
    job->call = call;
    job->retry_after_ms = -1;
    job->req = lp_json_parse(req, strlen(req), err);
    fx.job = job;
    return fx;
}

static void s_fx_free(fx_t *fx)
{
    wk_job_t *job = fx->job;
    if (job) {
        curl_slist_free_all(job->headers);
        free(job->url);
        free(job->body);
        free(job->group);
        lp_buf_free(&job->resp);
        lp_buf_free(&job->out);
        json_decref(job->req);
        free(job);
    }
    lp_cfg_destroy(&fx->cfg);
    fx->job = NULL;
}

/* The value of header `name` in the job's list, or NULL. */
static const char *s_header(const wk_job_t *job, const char *name)
{
    size_t n = strlen(name);
    for (const struct curl_slist *h = job->headers; h; h = h->next) {
        if (strncmp(h->data, name, n) == 0 && h->data[n] == ':' && h->data[n + 1] == ' ')
            return h->data + n + 2;
    }
    return NULL;
}

static size_t s_header_count(const wk_job_t *job)
{
    size_t n = 0;
    for (const struct curl_slist *h = job->headers; h; h = h->next)
        n++;
    return n;
}

/* The body prepare() built, parsed (caller decrefs). */
static json_t *s_body(const wk_job_t *job)
{
    char err[LP_ERR_LEN];
    return job->body ? lp_json_parse(job->body, job->body_len, err) : NULL;
}

/* Hand the adapter a provider answer. */
static void s_answer(wk_job_t *job, long status, const char *body)
{
    lp_buf_reset(&job->resp);
    job->resp.len = 0;
    lp_buf_puts(&job->resp, body);
    job->status = status;
}

/* The client message is exactly want (shown on stderr when not). */
static bool s_msg_is(const wk_fail_t *f, const char *want)
{
    if (strcmp(f->message, want) == 0)
        return true;
    fprintf(stderr, "message: '%s'\n   want: '%s'\n", f->message, want);
    return false;
}
#define CHECK_MSG(f, want) CHECK(s_msg_is(&(f), want))

static bool s_real_is(const json_t *v, double want)
{
    return json_is_number(v) && json_number_value(v) == want;
}

/* ---- Voyage: requests ---- */

static void test_voyage_prepare_minimal(void)
{
    fx_t fx = s_fx(s_voyage_cfg, "voyage-embed", WK_CALL_EMBEDDING,
                   "{\"model\":\"voyage-embed\",\"input\":\"Sample text\","
                   "\"encoding_format\":\"float\",\"user\":\"user-1234\","
                   "\"metadata\":{\"tags\":[\"a\"]}}");
    CHECK(fx.job != NULL);
    wk_job_t *job = fx.job;
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_voyage_adapter.prepare(job, &fail) == 0);
    CHECK_STR(wk_voyage_adapter.name, "voyage");
    CHECK_STR(job->url, "https://api.voyageai.com/v1/embeddings");
    CHECK_STR(s_header(job, "Content-Type"), "application/json");
    CHECK_STR(s_header(job, "Accept"), "application/json");
    CHECK_STR(s_header(job, "Authorization"), "Bearer " VOYAGE_KEY);
    CHECK_STR(s_header(job, "X-Team"), "search");
    CHECK(s_header_count(job) == 4);
    json_t *body = s_body(job);
    CHECK(json_is_object(body));
    CHECK_STR(lp_json_str(body, "input"), "Sample text");
    CHECK_STR(lp_json_str(body, "model"), "voyage-3.5");
    /* float is Voyage's default: not sent; OpenAI-only and proxy fields are dropped */
    CHECK(json_object_size(body) == 2);
    CHECK(job->body_len == strlen(job->body));
    json_decref(body);
    s_fx_free(&fx);
}

static void test_voyage_prepare_all_fields(void)
{
    fx_t fx = s_fx(s_voyage_cfg, "voyage-embed", WK_CALL_EMBEDDING,
                   "{\"model\":\"voyage-embed\",\"input\":[\"What is RAG?\",\"Retrieval\"],"
                   "\"input_type\":\"query\",\"truncation\":false,\"dimensions\":512,"
                   "\"output_dtype\":\"int8\",\"encoding_format\":\"base64\",\"user\":\"u\"}");
    CHECK(fx.job != NULL);
    wk_job_t *job = fx.job;
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_voyage_adapter.prepare(job, &fail) == 0);
    json_t *body = s_body(job);
    json_t *input = json_object_get(body, "input");
    CHECK(json_is_array(input) && json_array_size(input) == 2);
    CHECK_STR(json_string_value(json_array_get(input, 0)), "What is RAG?");
    CHECK_STR(json_string_value(json_array_get(input, 1)), "Retrieval");
    CHECK_STR(lp_json_str(body, "model"), "voyage-3.5");
    CHECK_STR(lp_json_str(body, "input_type"), "query");
    CHECK(json_is_false(json_object_get(body, "truncation")));
    CHECK(lp_json_int(body, "output_dimension", 0) == 512);
    CHECK(json_object_get(body, "dimensions") == NULL);
    CHECK_STR(lp_json_str(body, "output_dtype"), "int8");
    CHECK_STR(lp_json_str(body, "encoding_format"), "base64");
    CHECK(json_object_get(body, "user") == NULL);
    CHECK(json_object_size(body) == 7);
    json_decref(body);
    s_fx_free(&fx);
}

static void test_voyage_prepare_null_input_type_and_base(void)
{
    fx_t fx = s_fx(s_voyage_base_cfg, "voyage-embed", WK_CALL_EMBEDDING,
                   "{\"input\":[\"def add(a, b): return a + b\"],\"input_type\":null,"
                   "\"truncation\":true}");
    CHECK(fx.job != NULL);
    wk_job_t *job = fx.job;
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_voyage_adapter.prepare(job, &fail) == 0);
    /* an api_base that already names the endpoint is used as it is */
    CHECK_STR(job->url, "https://voyage.internal/v1/embeddings");
    CHECK(s_header(job, "X-Team") == NULL);
    CHECK(s_header_count(job) == 3);
    json_t *body = s_body(job);
    CHECK_STR(lp_json_str(body, "model"), "voyage-code-3");
    CHECK(json_is_null(json_object_get(body, "input_type")));
    CHECK(json_is_true(json_object_get(body, "truncation")));
    CHECK(json_object_size(body) == 4);
    json_decref(body);
    s_fx_free(&fx);
}

/* prepare must fail with a 400 (nothing prepared) for this request. */
static bool s_voyage_refuses(const char *req, wk_call_t call, bool stream, const char *needle)
{
    fx_t fx = s_fx(s_voyage_cfg, "voyage-embed", call, req);
    if (!fx.job)
        return false;
    fx.job->stream = stream;
    wk_fail_t fail = {.retry_after_ms = -1};
    bool ok = wk_voyage_adapter.prepare(fx.job, &fail) == -1 && fail.status == 400 &&
              !fail.retryable && strstr(fail.message, needle) && fx.job->body == NULL &&
              fx.job->url == NULL && fx.job->headers == NULL;
    if (!ok)
        fprintf(stderr, "voyage refusal: %d %s\n", fail.status, fail.message);
    s_fx_free(&fx);
    return ok;
}

static void test_voyage_refuses(void)
{
    CHECK(s_voyage_refuses("{\"input\":[[101,2023,102],[101,2003,102]]}", WK_CALL_EMBEDDING, false,
                           "token-id"));
    CHECK(s_voyage_refuses("{\"input\":[101,2023,102]}", WK_CALL_EMBEDDING, false, "token-id"));
    CHECK(s_voyage_refuses("{\"model\":\"voyage-embed\"}", WK_CALL_EMBEDDING, false, "'input'"));
    CHECK(s_voyage_refuses("{\"input\":[]}", WK_CALL_EMBEDDING, false, "'input'"));
    CHECK(s_voyage_refuses("{\"input\":[\"a\",{\"text\":\"b\"}]}", WK_CALL_EMBEDDING, false,
                           "'input'"));
    CHECK(s_voyage_refuses("{\"input\":\"a\",\"dimensions\":\"512\"}", WK_CALL_EMBEDDING, false,
                           "dimensions"));
    CHECK(s_voyage_refuses("{\"input\":\"a\",\"encoding_format\":\"hex\"}", WK_CALL_EMBEDDING,
                           false, "encoding_format"));
    CHECK(s_voyage_refuses("{\"input\":\"a\",\"truncation\":\"yes\"}", WK_CALL_EMBEDDING, false,
                           "truncation"));
    CHECK(s_voyage_refuses("{\"input\":\"a\",\"input_type\":3}", WK_CALL_EMBEDDING, false,
                           "input_type"));
    CHECK(s_voyage_refuses("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", WK_CALL_CHAT,
                           false, "voyage serves embeddings only"));
    CHECK(s_voyage_refuses("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", WK_CALL_CHAT,
                           true, "embeddings only"));
    CHECK(
        s_voyage_refuses("{\"prompt\":\"Say hi\"}", WK_CALL_COMPLETION, false, "embeddings only"));
    CHECK(s_voyage_refuses("{\"input\":\"a\"}", WK_CALL_EMBEDDING, true, "streamed"));
}

static void test_voyage_stream_functions_fail(void)
{
    fx_t fx = s_fx(s_voyage_cfg, "voyage-embed", WK_CALL_EMBEDDING, "{\"input\":\"a\"}");
    CHECK(fx.job != NULL);
    lp_buf_t out = {0};
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_voyage_adapter.stream_event(fx.job, NULL, "{}", 2, &out, &fail) == -1);
    CHECK(fail.status == 400);
    CHECK(strstr(fail.message, "embeddings only") != NULL);
    wk_fail_t fail2 = {.retry_after_ms = -1};
    CHECK(wk_voyage_adapter.stream_end(fx.job, &out, &fail2) == -1);
    CHECK(fail2.status == 400);
    CHECK(out.len == 0);
    lp_buf_free(&out);
    s_fx_free(&fx);
}

/* ---- Voyage: answers ---- */

static void test_voyage_respond_in_index_order(void)
{
    fx_t fx = s_fx(s_voyage_cfg, "voyage-embed", WK_CALL_EMBEDDING,
                   "{\"input\":[\"first\",\"second\",\"third\"]}");
    CHECK(fx.job != NULL);
    wk_job_t *job = fx.job;
    s_answer(job, 200,
             "{\"object\":\"list\",\"data\":["
             "{\"object\":\"embedding\",\"embedding\":[0.031,-0.002,0.015],\"index\":2},"
             "{\"object\":\"embedding\",\"embedding\":[-0.011,0.024,0.007],\"index\":0},"
             "{\"object\":\"embedding\",\"embedding\":[0.004,0.019,-0.026],\"index\":1}],"
             "\"model\":\"voyage-3.5\",\"usage\":{\"total_tokens\":9}}");
    wk_result_t res = {0};
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_voyage_adapter.respond(job, &res, &fail) == 0);
    json_t *r = res.response;
    CHECK_STR(lp_json_str(r, "object"), "list");
    CHECK_STR(lp_json_str(r, "model"), "voyage-embed");
    json_t *data = json_object_get(r, "data");
    CHECK(json_array_size(data) == 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(data, i);
        CHECK_STR(lp_json_str(e, "object"), "embedding");
        CHECK(lp_json_int(e, "index", -1) == (long long)i);
        CHECK(json_array_size(json_object_get(e, "embedding")) == 3);
        CHECK(json_object_size(e) == 3);
    }
    CHECK(s_real_is(json_array_get(json_object_get(json_array_get(data, 0), "embedding"), 0),
                    -0.011));
    CHECK(
        s_real_is(json_array_get(json_object_get(json_array_get(data, 1), "embedding"), 0), 0.004));
    CHECK(
        s_real_is(json_array_get(json_object_get(json_array_get(data, 2), "embedding"), 2), 0.015));
    json_t *usage = json_object_get(r, "usage");
    CHECK(lp_json_int(usage, "prompt_tokens", -1) == 9);
    CHECK(lp_json_int(usage, "total_tokens", -1) == 9);
    CHECK(json_object_size(usage) == 2);
    CHECK(res.prompt_tokens == 9 && res.completion_tokens == 0 && res.total_tokens == 9);
    json_decref(r);
    s_fx_free(&fx);
}

static void test_voyage_respond_base64_passthrough(void)
{
    fx_t fx = s_fx(s_voyage_cfg, "voyage-embed", WK_CALL_EMBEDDING,
                   "{\"input\":\"Sample text\",\"encoding_format\":\"base64\"}");
    CHECK(fx.job != NULL);
    wk_job_t *job = fx.job;
    s_answer(job, 200,
             "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\","
             "\"embedding\":\"8IVJPBHHOr0=\",\"index\":0}],\"model\":\"voyage-3.5\","
             "\"usage\":{\"total_tokens\":2}}");
    wk_result_t res = {0};
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_voyage_adapter.respond(job, &res, &fail) == 0);
    json_t *e = json_array_get(json_object_get(res.response, "data"), 0);
    CHECK_STR(lp_json_str(e, "embedding"), "8IVJPBHHOr0=");
    CHECK(res.total_tokens == 2);
    json_decref(res.response);
    s_fx_free(&fx);
}

static void test_voyage_respond_without_usage_estimates(void)
{
    fx_t fx = s_fx(s_voyage_cfg, "voyage-embed", WK_CALL_EMBEDDING, "{\"input\":\"twelve bytes\"}");
    CHECK(fx.job != NULL);
    s_answer(fx.job, 200,
             "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"embedding\":[0.5],"
             "\"index\":0}],\"model\":\"voyage-3.5\"}");
    wk_result_t res = {0};
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_voyage_adapter.respond(fx.job, &res, &fail) == 0);
    CHECK(res.prompt_tokens == 3 && res.total_tokens == 3);
    json_decref(res.response);
    s_fx_free(&fx);
}

/* respond must fail 502 invalid_upstream_response on this answer. */
static bool s_voyage_bad(const char *req, const char *answer)
{
    fx_t fx = s_fx(s_voyage_cfg, "voyage-embed", WK_CALL_EMBEDDING, req);
    if (!fx.job)
        return false;
    s_answer(fx.job, 200, answer);
    wk_result_t res = {0};
    wk_fail_t fail = {.retry_after_ms = -1};
    bool ok = wk_voyage_adapter.respond(fx.job, &res, &fail) == -1 && fail.status == 502 &&
              fail.code && strcmp(fail.code, "invalid_upstream_response") == 0 && fail.retryable &&
              res.response == NULL && strstr(fail.message, "voyage");
    json_decref(res.response);
    s_fx_free(&fx);
    return ok;
}

static void test_voyage_respond_invalid(void)
{
    const char *one = "{\"input\":\"a\"}", *two = "{\"input\":[\"a\",\"b\"]}";
    CHECK(s_voyage_bad(one, "<html>502 Bad Gateway</html>"));
    CHECK(s_voyage_bad(one, ""));
    CHECK(s_voyage_bad(one, "[[0.1,0.2]]"));
    CHECK(s_voyage_bad(one, "{\"object\":\"embedding\",\"data\":[{\"embedding\":[0.1],"
                            "\"index\":0}]}"));
    CHECK(s_voyage_bad(one, "{\"object\":\"list\",\"data\":{\"embedding\":[0.1]}}"));
    CHECK(s_voyage_bad(one, "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\","
                            "\"index\":0}],\"usage\":{\"total_tokens\":1}}"));
    CHECK(s_voyage_bad(two, "{\"object\":\"list\",\"data\":[{\"embedding\":[0.1],\"index\":0}],"
                            "\"usage\":{\"total_tokens\":1}}"));
    CHECK(s_voyage_bad(two, "{\"object\":\"list\",\"data\":[{\"embedding\":[0.1],\"index\":0},"
                            "{\"embedding\":[0.2],\"index\":0}]}"));
    CHECK(s_voyage_bad(two, "{\"object\":\"list\",\"data\":[{\"embedding\":[0.1],\"index\":0},"
                            "{\"embedding\":[0.2],\"index\":7}]}"));
    CHECK(s_voyage_bad(one, "{\"object\":\"list\",\"data\":[\"0.1\"]}"));
}

/* ---- Voyage: errors ---- */

/* Run error() on a Voyage error answer. */
static wk_fail_t s_voyage_error(long status, const char *answer)
{
    wk_fail_t fail = {.retry_after_ms = -1};
    fx_t fx = s_fx(s_voyage_cfg, "voyage-embed", WK_CALL_EMBEDDING, "{\"input\":\"a\"}");
    if (!fx.job) {
        fail.status = -1;
        return fail;
    }
    s_answer(fx.job, status, answer);
    wk_voyage_adapter.error(fx.job, &fail);
    s_fx_free(&fx);
    return fail;
}

static void test_voyage_errors(void)
{
    wk_fail_t f = s_voyage_error(
        400, "{\"detail\":\"Request to model 'voyage-code-2' failed. The example at index 0 in "
             "your batch has too many tokens and does not fit into the model's context window of "
             "16000 tokens. Please lower the number of tokens in the listed example(s) or use "
             "truncation.\"}");
    CHECK(f.status == 400 && !f.retryable);
    CHECK_STR(f.code, "context_length_exceeded");
    CHECK(strncmp(f.message, "voyage error 400: Request to model 'voyage-code-2' failed.", 58) ==
          0);

    f = s_voyage_error(400, "{\"detail\":\"Request to model 'voyage-3-large' failed. The max "
                            "allowed tokens per submitted batch is 120000. Your batch has 124302 "
                            "tokens after truncation. Please lower the number of tokens in the "
                            "batch.\"}");
    CHECK(f.status == 400);
    CHECK_STR(f.code, "context_length_exceeded");

    f = s_voyage_error(400, "{\"detail\":\"Input text at index 3 is too long for model "
                            "voyage-3.5 when truncation is false.\"}");
    CHECK_STR(f.code, "context_length_exceeded");

    f = s_voyage_error(400, "{\"detail\":\"Value 'voyage-9' is not a supported model.\"}");
    CHECK(f.status == 400 && f.code == NULL && !f.retryable);
    CHECK_MSG(f, "voyage error 400: Value 'voyage-9' is not a supported model.");

    f = s_voyage_error(401, "{\"detail\":\"Provided API key is invalid: " VOYAGE_KEY "\"}");
    CHECK(f.status == 401 && !f.retryable && f.code == NULL);
    CHECK(strstr(f.message, VOYAGE_KEY) == NULL);
    CHECK(strstr(f.message, "unit-test-voyage") == NULL);
    CHECK(strstr(f.message, "voyage error 401: Provided API key is invalid: ") == f.message);

    f = s_voyage_error(429, "{\"detail\":\"You have not yet added your payment method in the "
                            "billing page and will have reduced rate limits of 3 RPM and 10K "
                            "TPM: too many tokens per minute.\"}");
    CHECK(f.status == 429 && f.retryable && f.code == NULL);
    CHECK(strstr(f.message, "voyage error 429: You have not yet added") == f.message);

    f = s_voyage_error(422, "{\"detail\":[{\"type\":\"literal_error\",\"loc\":[\"body\","
                            "\"input_type\"],\"msg\":\"Input should be 'query' or 'document'\","
                            "\"input\":\"passage\"}]}");
    CHECK(f.status == 422 && !f.retryable);
    CHECK_MSG(f, "voyage error 422: Input should be 'query' or 'document'");

    f = s_voyage_error(500, "{\"error\":\"Internal server error\"}");
    CHECK(f.status == 502 && f.retryable);
    CHECK_MSG(f, "voyage error 500: Internal server error");

    f = s_voyage_error(503, "{\"error\":{\"message\":\"Service temporarily unavailable\"}}");
    CHECK(f.status == 503 && f.retryable);
    CHECK_MSG(f, "voyage error 503: Service temporarily unavailable");

    f = s_voyage_error(502, "<html><body>Bad Gateway</body></html>");
    CHECK(f.status == 502 && f.retryable);
    CHECK_MSG(f, "voyage error 502: HTTP 502 without an error message");
}

/* ---- TEI: requests ---- */

static void test_tei_prepare(void)
{
    fx_t fx = s_fx(s_tei_cfg, "tei-embed", WK_CALL_EMBEDDING,
                   "{\"model\":\"tei-embed\",\"input\":[\"What is Deep Learning?\",\"Hi\"],"
                   "\"encoding_format\":\"float\",\"user\":\"user-1\"}");
    CHECK(fx.job != NULL);
    wk_job_t *job = fx.job;
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_tei_adapter.prepare(job, &fail) == 0);
    CHECK_STR(wk_tei_adapter.name, "huggingface");
    CHECK_STR(job->url, "http://tei:8080/embed");
    CHECK_STR(s_header(job, "Content-Type"), "application/json");
    CHECK_STR(s_header(job, "Accept"), "application/json");
    CHECK(s_header(job, "Authorization") == NULL);
    CHECK(s_header_count(job) == 2);
    json_t *body = s_body(job);
    json_t *inputs = json_object_get(body, "inputs");
    CHECK(json_array_size(inputs) == 2);
    CHECK_STR(json_string_value(json_array_get(inputs, 0)), "What is Deep Learning?");
    CHECK_STR(json_string_value(json_array_get(inputs, 1)), "Hi");
    CHECK(json_is_false(json_object_get(body, "truncate")));
    CHECK(json_is_true(json_object_get(body, "normalize")));
    CHECK(json_object_size(body) == 3);
    json_decref(body);
    s_fx_free(&fx);
}

static void test_tei_prepare_key_and_truncate(void)
{
    fx_t fx = s_fx(s_tei_key_cfg, "tei-embed", WK_CALL_EMBEDDING,
                   "{\"input\":\"What is Deep Learning?\",\"truncate\":true}");
    CHECK(fx.job != NULL);
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_tei_adapter.prepare(fx.job, &fail) == 0);
    CHECK_STR(fx.job->url, "http://tei:8080/embed");
    CHECK_STR(s_header(fx.job, "Authorization"), "Bearer " TEI_KEY);
    CHECK(s_header_count(fx.job) == 3);
    json_t *body = s_body(fx.job);
    CHECK_STR(lp_json_str(body, "inputs"), "What is Deep Learning?");
    CHECK(json_is_true(json_object_get(body, "truncate")));
    CHECK(json_is_true(json_object_get(body, "normalize")));
    CHECK(json_object_size(body) == 3);
    json_decref(body);
    s_fx_free(&fx);

    /* api_key "none" means no key; a base naming /embed is used as it is */
    fx = s_fx(s_tei_none_cfg, "tei-embed", WK_CALL_EMBEDDING, "{\"input\":\"x\"}");
    CHECK(fx.job != NULL);
    CHECK(wk_tei_adapter.prepare(fx.job, &fail) == 0);
    CHECK_STR(fx.job->url, "http://tei:8080/embed");
    CHECK(s_header(fx.job, "Authorization") == NULL);
    CHECK(s_header_count(fx.job) == 2);
    s_fx_free(&fx);
}

static void test_tei_dimensions(void)
{
    const char *req = "{\"input\":\"x\",\"dimensions\":256}";
    fx_t fx = s_fx(s_tei_cfg, "tei-embed", WK_CALL_EMBEDDING, req);
    CHECK(fx.job != NULL);
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_tei_adapter.prepare(fx.job, &fail) == -1);
    CHECK(fail.status == 400 && !fail.retryable);
    CHECK_STR(fail.code, "unsupported_params");
    CHECK(strstr(fail.message, "'dimensions'") != NULL);
    CHECK(strstr(fail.message, "huggingface") != NULL);
    CHECK(fx.job->body == NULL && fx.job->url == NULL);
    s_fx_free(&fx);

    fx = s_fx(s_tei_cfg, "tei-embed", WK_CALL_EMBEDDING, req);
    CHECK(fx.job != NULL);
    fx.job->drop_params = true;
    CHECK(wk_tei_adapter.prepare(fx.job, &fail) == 0);
    json_t *body = s_body(fx.job);
    CHECK(json_object_get(body, "dimensions") == NULL);
    CHECK(json_object_size(body) == 3);
    json_decref(body);
    s_fx_free(&fx);
}

static bool s_tei_refuses(const char *req, wk_call_t call, bool stream, const char *needle)
{
    fx_t fx = s_fx(s_tei_cfg, "tei-embed", call, req);
    if (!fx.job)
        return false;
    fx.job->stream = stream;
    wk_fail_t fail = {.retry_after_ms = -1};
    bool ok = wk_tei_adapter.prepare(fx.job, &fail) == -1 && fail.status == 400 &&
              !fail.retryable && strstr(fail.message, needle) && fx.job->body == NULL &&
              fx.job->headers == NULL;
    if (!ok)
        fprintf(stderr, "tei refusal: %d %s\n", fail.status, fail.message);
    s_fx_free(&fx);
    return ok;
}

static void test_tei_refuses(void)
{
    CHECK(s_tei_refuses("{\"input\":[[101,2054,2003,102]]}", WK_CALL_EMBEDDING, false, "token-id"));
    CHECK(s_tei_refuses("{\"input\":[101,2054]}", WK_CALL_EMBEDDING, false, "token-id"));
    CHECK(s_tei_refuses("{\"input\":null}", WK_CALL_EMBEDDING, false, "'input'"));
    CHECK(s_tei_refuses("{\"input\":\"x\",\"encoding_format\":\"ubinary\"}", WK_CALL_EMBEDDING,
                        false, "encoding_format"));
    CHECK(s_tei_refuses("{\"input\":\"x\",\"truncate\":\"left\"}", WK_CALL_EMBEDDING, false,
                        "truncate"));
    CHECK(s_tei_refuses("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", WK_CALL_CHAT,
                        false, "huggingface serves embeddings only"));
    CHECK(s_tei_refuses("{\"prompt\":\"hi\"}", WK_CALL_COMPLETION, true, "embeddings only"));
    CHECK(s_tei_refuses("{\"input\":\"x\"}", WK_CALL_EMBEDDING, true, "streamed"));

    fx_t fx = s_fx(s_tei_cfg, "tei-embed", WK_CALL_CHAT, "{}");
    CHECK(fx.job != NULL);
    lp_buf_t out = {0};
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_tei_adapter.stream_event(fx.job, NULL, "[DONE]", 6, &out, &fail) == -1);
    CHECK(fail.status == 400);
    CHECK(wk_tei_adapter.stream_end(fx.job, &out, &fail) == -1);
    CHECK(fail.status == 400 && out.len == 0);
    lp_buf_free(&out);
    s_fx_free(&fx);
}

/* ---- TEI: answers ---- */

static void test_tei_respond_floats(void)
{
    fx_t fx = s_fx(s_tei_cfg, "tei-embed", WK_CALL_EMBEDDING,
                   "{\"input\":[\"Hello world\",\"The quick brown fox\"]}");
    CHECK(fx.job != NULL);
    s_answer(fx.job, 200, "[[0.0123,-0.0456,0.0789],[-0.0321,0.0654,-0.0987]]");
    wk_result_t res = {0};
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_tei_adapter.respond(fx.job, &res, &fail) == 0);
    json_t *r = res.response;
    CHECK_STR(lp_json_str(r, "object"), "list");
    CHECK_STR(lp_json_str(r, "model"), "tei-embed");
    json_t *data = json_object_get(r, "data");
    CHECK(json_array_size(data) == 2);
    json_t *e0 = json_array_get(data, 0), *e1 = json_array_get(data, 1);
    CHECK_STR(lp_json_str(e0, "object"), "embedding");
    CHECK(lp_json_int(e0, "index", -1) == 0);
    CHECK(lp_json_int(e1, "index", -1) == 1);
    CHECK(json_array_size(json_object_get(e0, "embedding")) == 3);
    CHECK(s_real_is(json_array_get(json_object_get(e0, "embedding"), 0), 0.0123));
    CHECK(s_real_is(json_array_get(json_object_get(e1, "embedding"), 2), -0.0987));
    /* 11 + 19 bytes of input, 4 bytes a token, rounded up */
    json_t *usage = json_object_get(r, "usage");
    CHECK(lp_json_int(usage, "prompt_tokens", -1) == 8);
    CHECK(lp_json_int(usage, "total_tokens", -1) == 8);
    CHECK(res.prompt_tokens == 8 && res.completion_tokens == 0 && res.total_tokens == 8);
    char *dump = lp_json_dump(r, NULL);
    CHECK(dump != NULL);
    free(dump);
    json_decref(r);
    s_fx_free(&fx);
}

static void test_tei_respond_base64(void)
{
    fx_t fx = s_fx(s_tei_cfg, "tei-embed", WK_CALL_EMBEDDING,
                   "{\"input\":[\"a\",\"b\",\"c\"],\"encoding_format\":\"base64\"}");
    CHECK(fx.job != NULL);
    s_answer(fx.job, 200, "[[1.0,-2.0,0.5],[0.25],[0.0123,-0.0456]]");
    wk_result_t res = {0};
    wk_fail_t fail = {.retry_after_ms = -1};
    CHECK(wk_tei_adapter.respond(fx.job, &res, &fail) == 0);
    json_t *data = json_object_get(res.response, "data");
    CHECK(json_array_size(data) == 3);
    CHECK_STR(lp_json_str(json_array_get(data, 0), "embedding"), "AACAPwAAAMAAAAA/");
    CHECK_STR(lp_json_str(json_array_get(data, 1), "embedding"), "AACAPg==");
    CHECK_STR(lp_json_str(json_array_get(data, 2), "embedding"), "8IVJPBHHOr0=");
    CHECK(res.prompt_tokens == 1);
    json_decref(res.response);
    s_fx_free(&fx);
}

static bool s_tei_bad(const char *req, const char *answer)
{
    fx_t fx = s_fx(s_tei_cfg, "tei-embed", WK_CALL_EMBEDDING, req);
    if (!fx.job)
        return false;
    s_answer(fx.job, 200, answer);
    wk_result_t res = {0};
    wk_fail_t fail = {.retry_after_ms = -1};
    bool ok = wk_tei_adapter.respond(fx.job, &res, &fail) == -1 && fail.status == 502 &&
              fail.code && strcmp(fail.code, "invalid_upstream_response") == 0 &&
              res.response == NULL && strstr(fail.message, "huggingface");
    json_decref(res.response);
    s_fx_free(&fx);
    return ok;
}

static void test_tei_respond_invalid(void)
{
    const char *one = "{\"input\":\"a\"}", *two = "{\"input\":[\"a\",\"b\"]}";
    const char *b64 = "{\"input\":\"a\",\"encoding_format\":\"base64\"}";
    CHECK(s_tei_bad(one, "not json"));
    CHECK(s_tei_bad(one, "{\"object\":\"list\",\"data\":[{\"embedding\":[0.1],\"index\":0}]}"));
    CHECK(s_tei_bad(one, "[0.1,0.2,0.3]"));
    CHECK(s_tei_bad(two, "[[0.1,0.2]]"));
    CHECK(s_tei_bad(one, "[[0.1,0.2],[0.3,0.4]]"));
    CHECK(s_tei_bad(one, "[[\"0.1\"]]"));
    CHECK(s_tei_bad(one, "[[0.1,null]]"));
    CHECK(s_tei_bad(one, "[[]]"));
    CHECK(s_tei_bad(b64, "[[1e300]]"));
    CHECK(s_tei_bad(one, "[[[0.1,0.2]]]"));
}

/* ---- TEI: errors ---- */

static wk_fail_t s_tei_error(long status, const char *answer, const char *yaml)
{
    wk_fail_t fail = {.retry_after_ms = -1};
    fx_t fx = s_fx(yaml, "tei-embed", WK_CALL_EMBEDDING, "{\"input\":\"a\"}");
    if (!fx.job) {
        fail.status = -1;
        return fail;
    }
    s_answer(fx.job, status, answer);
    wk_tei_adapter.error(fx.job, &fail);
    s_fx_free(&fx);
    return fail;
}

static void test_tei_errors(void)
{
    wk_fail_t f = s_tei_error(413,
                              "{\"error\":\"batch size 64 > maximum allowed batch size 32\","
                              "\"error_type\":\"validation\"}",
                              s_tei_cfg);
    CHECK(f.status == 413 && !f.retryable && f.code == NULL);
    CHECK_MSG(f, "huggingface error 413: batch size 64 > maximum allowed batch size 32");

    f = s_tei_error(422,
                    "{\"error\":\"Input validation error: `inputs` must have less than 512 "
                    "tokens. Given: 600\",\"error_type\":\"validation\"}",
                    s_tei_cfg);
    CHECK(f.status == 400 && !f.retryable);
    CHECK_STR(f.code, "context_length_exceeded");
    CHECK_MSG(f, "huggingface error 422: Input validation error: `inputs` must have less "
                 "than 512 tokens. Given: 600");

    f = s_tei_error(422,
                    "{\"error\":\"Input validation error: `inputs` cannot be empty\","
                    "\"error_type\":\"validation\"}",
                    s_tei_cfg);
    CHECK(f.status == 400 && !f.retryable && f.code == NULL);
    CHECK_MSG(f, "huggingface error 422: Input validation error: `inputs` cannot be empty");

    f = s_tei_error(422, "{\"error\":\"Tokenization error\",\"error_type\":\"tokenizer\"}",
                    s_tei_cfg);
    CHECK(f.status == 400 && f.code == NULL);

    f = s_tei_error(424, "{\"error\":\"Inference failed\",\"error_type\":\"backend\"}", s_tei_cfg);
    CHECK(f.status == 502 && f.retryable && f.code == NULL);
    CHECK_MSG(f, "huggingface error 424: Inference failed");

    f = s_tei_error(429, "{\"error\":\"Model is overloaded\",\"error_type\":\"overloaded\"}",
                    s_tei_cfg);
    CHECK(f.status == 429 && f.retryable && f.code == NULL);
    CHECK_MSG(f, "huggingface error 429: Model is overloaded");

    f = s_tei_error(503, "{\"error\":\"unhealthy\",\"error_type\":\"unhealthy\"}", s_tei_cfg);
    CHECK(f.status == 503 && f.retryable);

    f = s_tei_error(401, "", s_tei_key_cfg);
    CHECK(f.status == 401 && !f.retryable);
    CHECK_MSG(f, "huggingface error 401: HTTP 401 without an error message");

    /* the server echoing the deployment's key never reaches the client */
    f = s_tei_error(400,
                    "{\"message\":\"token " TEI_KEY " rejected\",\"code\":400,"
                    "\"type\":\"validation\"}",
                    s_tei_key_cfg);
    CHECK(f.status == 400);
    CHECK(strstr(f.message, TEI_KEY) == NULL);
    CHECK_MSG(f, "huggingface error 400: token *** rejected");
}

int main(void)
{
    RUN(test_voyage_prepare_minimal);
    RUN(test_voyage_prepare_all_fields);
    RUN(test_voyage_prepare_null_input_type_and_base);
    RUN(test_voyage_refuses);
    RUN(test_voyage_stream_functions_fail);
    RUN(test_voyage_respond_in_index_order);
    RUN(test_voyage_respond_base64_passthrough);
    RUN(test_voyage_respond_without_usage_estimates);
    RUN(test_voyage_respond_invalid);
    RUN(test_voyage_errors);
    RUN(test_tei_prepare);
    RUN(test_tei_prepare_key_and_truncate);
    RUN(test_tei_dimensions);
    RUN(test_tei_refuses);
    RUN(test_tei_respond_floats);
    RUN(test_tei_respond_base64);
    RUN(test_tei_respond_invalid);
    RUN(test_tei_errors);
    return th_report();
}
