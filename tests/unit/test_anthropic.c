/* test_anthropic: the Anthropic Messages adapter (wk_anthropic): the request it builds from
 * an OpenAI chat request, and the OpenAI answers, errors and stream chunks it makes of
 * Anthropic's documented response, error and SSE shapes. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lp_cfg.h"
#include "lp_json.h"
#include "wk_adapter.h"

#define KEY "sk-ant-api03-unit-test-key-0123456789"

/* Deployment 0: defaults and a key. Deployment 1: a /v1 base, api_version, a max_tokens
 * default, extra headers, no key. */
static const char *s_config = "model_list:\n"
                              "  - model_name: claude\n"
                              "    litellm_params:\n"
                              "      model: anthropic/claude-sonnet-4-5-20250929\n"
                              "      api_key: " KEY "\n"
                              "  - model_name: claude-gw\n"
                              "    litellm_params:\n"
                              "      model: anthropic/claude-3-5-haiku-latest\n"
                              "      api_base: https://gw.example.com/anthropic/v1/\n"
                              "      api_version: \"2024-01-01\"\n"
                              "      max_tokens: 1000\n"
                              "      temperature: 0.2\n"
                              "      extra_headers: {anthropic-beta: prompt-caching-2024-07-31}\n";

typedef struct {
    lp_cfg_t *cfg;
    wk_job_t *job;
    wk_fail_t fail;
    lp_buf_t out;
} fx_t;

/* A job on deployment dep for the request text; false when the config or JSON is bad. */
static bool fx_init(fx_t *fx, size_t dep, const char *req, bool stream)
{
    memset(fx, 0, sizeof *fx);
    fx->fail.retry_after_ms = -1;
    unsetenv("ANTHROPIC_API_KEY");
    unsetenv("ANTHROPIC_API_BASE");
    setenv("LITELLM_MASTER_KEY", "sk-unit-test-key-0123456789", 1);
    char err[LP_ERR_LEN] = "";
    fx->cfg = lp_cfg_load_string(s_config, "anthropic.yaml", err);
    if (!fx->cfg) {
        fprintf(stderr, "config: %s\n", err);
        return false;
    }
    wk_job_t *job = lp_calloc(1, sizeof *job);
    job->tool_block = -1; /* as wk_call_start sets it */
    job->d = &fx->cfg->deployments[dep];
    job->group = lp_strdup(dep == 0 ? "claude" : "claude-gw");
    job->call = WK_CALL_CHAT;
    job->stream = stream;
    job->retry_after_ms = -1;
    job->req = lp_json_parse(req, strlen(req), err);
    fx->job = job;
    if (!job->req)
        fprintf(stderr, "request: %s\n", err);
    return job->req != NULL;
}

static void fx_free(fx_t *fx)
{
    wk_job_t *job = fx->job;
    if (job) {
        curl_slist_free_all(job->headers);
        free(job->url);
        free(job->body);
        free(job->group);
        json_decref(job->req);
        lp_buf_free(&job->resp);
        free(job);
    }
    lp_buf_free(&fx->out);
    lp_cfg_destroy(&fx->cfg);
}

/* The value of header name in the job's list, or NULL. */
static const char *header(const wk_job_t *job, const char *name)
{
    size_t n = strlen(name);
    for (const struct curl_slist *l = job->headers; l; l = l->next) {
        if (strncmp(l->data, name, n) == 0 && l->data[n] == ':')
            return l->data + n + 2;
    }
    return NULL;
}

static size_t header_count(const wk_job_t *job)
{
    size_t n = 0;
    for (const struct curl_slist *l = job->headers; l; l = l->next)
        n++;
    return n;
}

/* prepare() and the body it built, parsed (NULL when prepare failed). */
static json_t *prepare(fx_t *fx)
{
    if (wk_anthropic_adapter.prepare(fx->job, &fx->fail) < 0)
        return NULL;
    json_error_t jerr;
    return json_loadb(fx->job->body, fx->job->body_len, 0, &jerr);
}

/* The JSON text of v, compact with sorted keys, for whole-value comparisons. */
static bool json_is(const json_t *v, const char *expected)
{
    json_error_t jerr;
    json_t *e = json_loads(expected, JSON_DECODE_ANY, &jerr);
    bool same = e && json_equal(v, e);
    if (!same) {
        char *got = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        fprintf(stderr, "got      %s\nexpected %s\n", got ? got : "(null)", expected);
        free(got);
    }
    json_decref(e);
    return same;
}

/* The failure message is expected (shown when not). */
static bool msg_is(const wk_fail_t *fail, const char *expected)
{
    if (strcmp(fail->message, expected) == 0)
        return true;
    fprintf(stderr, "message  %s\nexpected %s\n", fail->message, expected);
    return false;
}

/* Give the provider's answer to the job. */
static void set_resp(wk_job_t *job, long status, const char *body)
{
    job->status = status;
    lp_buf_reset(&job->resp);
    lp_buf_puts(&job->resp, body);
}

/* Feed one provider SSE event. */
static int feed(fx_t *fx, const char *event, const char *data)
{
    return wk_anthropic_adapter.stream_event(fx->job, event, data, strlen(data), &fx->out,
                                             &fx->fail);
}

/* The client events in out: each chunk parsed, "[DONE]" as a JSON string. */
static json_t *chunks(const lp_buf_t *out)
{
    json_t *list = json_array();
    const char *p = out->data ? out->data : "";
    while (*p) {
        if (strncmp(p, "data: ", 6) != 0)
            break;
        p += 6;
        const char *end = strstr(p, "\n\n");
        if (!end)
            break;
        json_error_t jerr;
        json_t *v = (end - p == 6 && strncmp(p, "[DONE]", 6) == 0)
                        ? json_string("[DONE]")
                        : json_loadb(p, (size_t)(end - p), 0, &jerr);
        json_array_append_new(list, v ? v : json_string("(unparsable)"));
        p = end + 2;
    }
    return list;
}

/* choices[0].delta of chunk i. */
static json_t *delta_of(const json_t *list, size_t i)
{
    json_t *choice = json_array_get(json_object_get(json_array_get(list, i), "choices"), 0);
    return json_object_get(choice, "delta");
}

static const char *finish_of(const json_t *list, size_t i)
{
    json_t *choice = json_array_get(json_object_get(json_array_get(list, i), "choices"), 0);
    return lp_json_str(choice, "finish_reason");
}

/* ---- prepare ---- */

static void test_url_and_headers(void)
{
    fx_t fx;
    CHECK(fx_init(&fx, 0,
                  "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                  false));
    json_t *body = prepare(&fx);
    CHECK(body != NULL);
    CHECK_STR(fx.job->url, "https://api.anthropic.com/v1/messages");
    CHECK(header_count(fx.job) == 4);
    CHECK_STR(header(fx.job, "x-api-key"), KEY);
    CHECK_STR(header(fx.job, "anthropic-version"), "2023-06-01");
    CHECK_STR(header(fx.job, "content-type"), "application/json");
    CHECK_STR(header(fx.job, "accept"), "application/json");
    CHECK(header(fx.job, "authorization") == NULL);
    CHECK(json_is(body, "{\"model\":\"claude-sonnet-4-5-20250929\",\"max_tokens\":4096,"
                        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
    json_decref(body);
    fx_free(&fx);

    /* A base ending in /v1, a configured version, extra headers, no key, a stream. */
    CHECK(fx_init(&fx, 1, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}",
                  true));
    body = prepare(&fx);
    CHECK(body != NULL);
    CHECK_STR(fx.job->url, "https://gw.example.com/anthropic/v1/messages");
    CHECK(header_count(fx.job) == 4);
    CHECK(header(fx.job, "x-api-key") == NULL);
    CHECK_STR(header(fx.job, "anthropic-version"), "2024-01-01");
    CHECK_STR(header(fx.job, "accept"), "text/event-stream");
    CHECK_STR(header(fx.job, "anthropic-beta"), "prompt-caching-2024-07-31");
    /* the deployment's max_tokens and temperature are defaults */
    CHECK(json_is(body, "{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":1000,"
                        "\"temperature\":0.2,\"stream\":true,"
                        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
    CHECK(!fx.job->include_usage);
    json_decref(body);
    fx_free(&fx);
}

static void test_chat_only(void)
{
    fx_t fx;
    CHECK(fx_init(&fx, 0, "{\"input\":\"embed me\"}", false));
    fx.job->call = WK_CALL_EMBEDDING;
    CHECK(wk_anthropic_adapter.prepare(fx.job, &fx.fail) < 0);
    CHECK(fx.fail.status == 400);
    CHECK(!fx.fail.retryable);
    CHECK(strstr(fx.fail.message, "anthropic/ serves chat completions only") != NULL);
    CHECK(fx.job->url == NULL && fx.job->body == NULL);
    fx.job->call = WK_CALL_COMPLETION;
    CHECK(wk_anthropic_adapter.prepare(fx.job, &fx.fail) < 0);
    CHECK(fx.fail.status == 400);
    CHECK(strstr(fx.fail.message, "chat completions only") != NULL);
    fx_free(&fx);
}

static void test_body_parameters(void)
{
    fx_t fx;
    CHECK(fx_init(&fx, 0,
                  "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                  "\"max_completion_tokens\":300,\"stop\":\"END\",\"temperature\":0.5,"
                  "\"top_p\":0.9,\"top_k\":40,\"user\":\"user-42\",\"stream\":true,"
                  "\"stream_options\":{\"include_usage\":true},\"n\":1,\"logprobs\":false,"
                  "\"response_format\":{\"type\":\"text\"},\"seed\":null,"
                  "\"metadata\":{\"tags\":[\"proxy-only\"]},"
                  "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}}",
                  true));
    json_t *body = prepare(&fx);
    CHECK(body != NULL);
    CHECK(fx.job->include_usage);
    CHECK(json_is(body, "{\"model\":\"claude-sonnet-4-5-20250929\",\"max_tokens\":300,"
                        "\"stop_sequences\":[\"END\"],\"temperature\":0.5,\"top_p\":0.9,"
                        "\"top_k\":40,\"metadata\":{\"user_id\":\"user-42\"},\"stream\":true,"
                        "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},"
                        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
    json_decref(body);
    fx_free(&fx);

    /* max_tokens wins over max_completion_tokens and the deployment's default; stop array */
    CHECK(fx_init(&fx, 1,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":77,"
                  "\"max_completion_tokens\":300,\"stop\":[\"a\",\"b\"]}",
                  false));
    body = prepare(&fx);
    CHECK(body != NULL);
    CHECK(lp_json_int(body, "max_tokens", 0) == 77);
    CHECK(json_is(json_object_get(body, "stop_sequences"), "[\"a\",\"b\"]"));
    CHECK(json_object_get(body, "stream") == NULL);
    json_decref(body);
    fx_free(&fx);

    /* the request's max_completion_tokens wins over the deployment's max_tokens */
    CHECK(fx_init(&fx, 1,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                  "\"max_completion_tokens\":300}",
                  false));
    body = prepare(&fx);
    CHECK(body != NULL);
    CHECK(lp_json_int(body, "max_tokens", 0) == 300);
    json_decref(body);
    fx_free(&fx);

    CHECK(fx_init(
        &fx, 0, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":0}", false));
    CHECK(prepare(&fx) == NULL);
    CHECK(fx.fail.status == 400);
    CHECK(strstr(fx.fail.message, "max_tokens") != NULL);
    fx_free(&fx);
}

static void test_system_hoisting(void)
{
    fx_t fx;
    CHECK(fx_init(&fx, 0,
                  "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                  "{\"role\":\"user\",\"content\":\"hi\"}]}",
                  false));
    json_t *body = prepare(&fx);
    CHECK(body != NULL);
    CHECK(json_is(json_object_get(body, "system"), "\"Be brief.\""));
    CHECK(json_is(json_object_get(body, "messages"), "[{\"role\":\"user\",\"content\":\"hi\"}]"));
    json_decref(body);
    fx_free(&fx);

    /* several system/developer messages, parts with cache_control, empty text dropped */
    CHECK(
        fx_init(&fx, 0,
                "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                "{\"role\":\"developer\",\"content\":\"\"},"
                "{\"role\":\"user\",\"content\":\"hi\"},"
                "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"Long doc\","
                "\"cache_control\":{\"type\":\"ephemeral\"}},{\"type\":\"text\",\"text\":\"\"}]}]}",
                false));
    body = prepare(&fx);
    CHECK(body != NULL);
    CHECK(json_is(json_object_get(body, "system"),
                  "[{\"type\":\"text\",\"text\":\"Be brief.\"},{\"type\":\"text\",\"text\":"
                  "\"Long doc\",\"cache_control\":{\"type\":\"ephemeral\"}}]"));
    CHECK(json_is(json_object_get(body, "messages"), "[{\"role\":\"user\",\"content\":\"hi\"}]"));
    json_decref(body);
    fx_free(&fx);

    /* one system message given as parts stays blocks; only-empty system is omitted */
    CHECK(fx_init(&fx, 0,
                  "{\"messages\":[{\"role\":\"developer\",\"content\":[{\"type\":\"text\","
                  "\"text\":\"Rules\"}]},{\"role\":\"user\",\"content\":\"hi\"}]}",
                  false));
    body = prepare(&fx);
    CHECK(body != NULL);
    CHECK(json_is(json_object_get(body, "system"), "[{\"type\":\"text\",\"text\":\"Rules\"}]"));
    json_decref(body);
    fx_free(&fx);

    CHECK(fx_init(&fx, 0,
                  "{\"messages\":[{\"role\":\"system\",\"content\":\"\"},"
                  "{\"role\":\"user\",\"content\":\"hi\"}]}",
                  false));
    body = prepare(&fx);
    CHECK(body != NULL);
    CHECK(json_object_get(body, "system") == NULL);
    json_decref(body);
    fx_free(&fx);
}

static void test_user_parts_and_images(void)
{
    fx_t fx;
    CHECK(fx_init(&fx, 0,
                  "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
                  "\"What is in these?\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
                  "\"data:image/png;base64,iVBORw0KGgo=\",\"detail\":\"high\"}},"
                  "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                  "\"https://upload.example.org/cat.jpg\"}}]},"
                  "{\"role\":\"user\",\"content\":\"Be precise.\"}]}",
                  false));
    json_t *body = prepare(&fx);
    CHECK(body != NULL);
    /* two user messages in a row become one */
    CHECK(json_is(json_object_get(body, "messages"),
                  "[{\"role\":\"user\",\"content\":["
                  "{\"type\":\"text\",\"text\":\"What is in these?\"},"
                  "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
                  "\"image/png\",\"data\":\"iVBORw0KGgo=\"}},"
                  "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":"
                  "\"https://upload.example.org/cat.jpg\"}},"
                  "{\"type\":\"text\",\"text\":\"Be precise.\"}]}]"));
    json_decref(body);
    fx_free(&fx);

    static const char *bad[] = {
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://x/y.png\"}}",
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png,notbase64\"}}",
        "{\"type\":\"image_url\",\"image_url\":{}}",
        "{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"AAAA\",\"format\":\"wav\"}}",
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(bad); i++) {
        char req[512];
        snprintf(req, sizeof req, "{\"messages\":[{\"role\":\"user\",\"content\":[%s]}]}", bad[i]);
        CHECK(fx_init(&fx, 0, req, false));
        CHECK(prepare(&fx) == NULL);
        CHECK(fx.fail.status == 400);
        CHECK(!fx.fail.retryable);
        fx_free(&fx);
    }
}

static void test_tool_history(void)
{
    static const char *req =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
        "{\"id\":\"call_abc.123\",\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
        "{\"id\":\"toolu_02\",\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"arguments\":\"\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_abc.123\",\"content\":\"18C\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_02\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"21\"},{\"type\":\"text\",\"text\":\"C\"}]},"
        "{\"role\":\"user\",\"content\":\"Thanks\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"t3\","
        "\"type\":\"function\",\"function\":{\"name\":\"noop\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"assistant\",\"content\":\"Done.\"}]}";
    static const char *want =
        "[{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Checking.\"},"
        "{\"type\":\"tool_use\",\"id\":\"call_abc_123\",\"name\":\"get_weather\","
        "\"input\":{\"city\":\"Paris\"}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_02\",\"name\":\"get_weather\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"tool_result\",\"tool_use_id\":\"call_abc_123\",\"content\":\"18C\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_02\",\"content\":\"21C\"},"
        "{\"type\":\"text\",\"text\":\"Thanks\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t3\",\"name\":"
        "\"noop\",\"input\":{}},{\"type\":\"text\",\"text\":\"Done.\"}]}]";
    fx_t fx;
    CHECK(fx_init(&fx, 0, req, false));
    json_t *body = prepare(&fx);
    CHECK(body != NULL);
    CHECK(json_is(json_object_get(body, "messages"), want));
    json_decref(body);
    fx_free(&fx);

    /* arguments that are not a JSON object are refused */
    static const char *bad_args[] = {"{not json", "[1,2]", "42"};
    for (size_t i = 0; i < LP_ARRAY_LEN(bad_args); i++) {
        json_t *bad =
            json_pack("{s:[{s:s,s:s},{s:s,s:[{s:s,s:s,s:{s:s,s:s}}]}]}", "messages", "role", "user",
                      "content", "hi", "role", "assistant", "tool_calls", "id", "c1", "type",
                      "function", "function", "name", "f", "arguments", bad_args[i]);
        CHECK(bad != NULL);
        char *text = json_dumps(bad, JSON_COMPACT);
        json_decref(bad);
        bool ok = fx_init(&fx, 0, text, false);
        free(text);
        CHECK(ok);
        CHECK(prepare(&fx) == NULL);
        CHECK(fx.fail.status == 400);
        CHECK(strstr(fx.fail.message, "'f'") != NULL);
        fx_free(&fx);
    }

    CHECK(fx_init(&fx, 0, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", false));
    CHECK(prepare(&fx) == NULL);
    CHECK(fx.fail.status == 400);
    fx_free(&fx);
}

static void test_tools_and_choice(void)
{
    static const char *tools =
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"description\":\"Current weather\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"now\"}}]";
    static const struct {
        const char *choice; /* request fields after tools */
        const char *expect; /* tool_choice sent, or NULL for none */
    } cases[] = {
        {"", NULL},
        {",\"tool_choice\":\"auto\"", "{\"type\":\"auto\"}"},
        {",\"tool_choice\":\"required\"", "{\"type\":\"any\"}"},
        {",\"tool_choice\":\"none\"", "{\"type\":\"none\"}"},
        {",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"now\"}}",
         "{\"type\":\"tool\",\"name\":\"now\"}"},
        {",\"parallel_tool_calls\":false",
         "{\"type\":\"auto\",\"disable_parallel_tool_use\":true}"},
        {",\"tool_choice\":\"required\",\"parallel_tool_calls\":false",
         "{\"type\":\"any\",\"disable_parallel_tool_use\":true}"},
        {",\"parallel_tool_calls\":true", NULL},
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(cases); i++) {
        char req[1024];
        snprintf(req, sizeof req, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],%s%s}",
                 tools, cases[i].choice);
        fx_t fx;
        CHECK(fx_init(&fx, 0, req, false));
        json_t *body = prepare(&fx);
        CHECK(body != NULL);
        CHECK(json_is(json_object_get(body, "tools"),
                      "[{\"name\":\"get_weather\",\"description\":\"Current weather\","
                      "\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":"
                      "{\"type\":\"string\"}},\"required\":[\"city\"]}},"
                      "{\"name\":\"now\",\"input_schema\":{\"type\":\"object\","
                      "\"properties\":{}}}]"));
        if (cases[i].expect)
            CHECK(json_is(json_object_get(body, "tool_choice"), cases[i].expect));
        else
            CHECK(json_object_get(body, "tool_choice") == NULL);
        CHECK(json_object_get(body, "parallel_tool_calls") == NULL);
        json_decref(body);
        fx_free(&fx);
    }

    /* without tools, tool_choice is not sent (Anthropic refuses it) */
    fx_t fx;
    CHECK(fx_init(&fx, 0,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tool_choice\":"
                  "\"none\",\"parallel_tool_calls\":false}",
                  false));
    json_t *body = prepare(&fx);
    CHECK(body != NULL);
    CHECK(json_object_get(body, "tool_choice") == NULL && json_object_get(body, "tools") == NULL);
    json_decref(body);
    fx_free(&fx);

    CHECK(fx_init(&fx, 0,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[],"
                  "\"tool_choice\":\"sometimes\"}",
                  false));
    CHECK(prepare(&fx) == NULL);
    CHECK(fx.fail.status == 400);
    fx_free(&fx);
}

static void test_unsupported_params(void)
{
    static const char *params[][2] = {
        {"n", "2"},
        {"logprobs", "true"},
        {"top_logprobs", "3"},
        {"logit_bias", "{\"1234\":-100}"},
        {"presence_penalty", "0.5"},
        {"frequency_penalty", "1"},
        {"seed", "7"},
        {"response_format", "{\"type\":\"json_object\"}"},
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(params); i++) {
        char req[256];
        snprintf(req, sizeof req,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"%s\":%s}", params[i][0],
                 params[i][1]);
        fx_t fx;
        CHECK(fx_init(&fx, 0, req, false));
        CHECK(prepare(&fx) == NULL);
        CHECK(fx.fail.status == 400);
        CHECK_STR(fx.fail.code, "unsupported_params");
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", params[i][0]);
        CHECK(strstr(fx.fail.message, quoted) != NULL);
        fx_free(&fx);

        /* drop_params: the call goes on without it */
        CHECK(fx_init(&fx, 0, req, false));
        fx.job->drop_params = true;
        json_t *body = prepare(&fx);
        CHECK(body != NULL);
        CHECK(json_object_get(body, params[i][0]) == NULL);
        CHECK(json_object_size(body) == 3); /* model, messages, max_tokens */
        json_decref(body);
        fx_free(&fx);
    }
}

/* ---- answers ---- */

static void test_respond_text(void)
{
    fx_t fx;
    CHECK(fx_init(&fx, 0, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", false));
    set_resp(fx.job, 200,
             "{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":"
             "\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[{\"type\":"
             "\"text\",\"text\":\"Hello! \"},{\"type\":\"text\",\"text\":\"How can I help?\"}],"
             "\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"
             "\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,"
             "\"output_tokens\":9,\"service_tier\":\"standard\"}}");
    wk_result_t res = {0};
    CHECK(wk_anthropic_adapter.respond(fx.job, &res, &fx.fail) == 0);
    json_t *r = res.response;
    CHECK(r != NULL);
    CHECK_STR(lp_json_str(r, "id"), "msg_01XFDUDYJgAACzvnptvVoYEL");
    CHECK_STR(lp_json_str(r, "object"), "chat.completion");
    CHECK_STR(lp_json_str(r, "model"), "claude");
    CHECK(lp_json_int(r, "created", 0) > 1700000000);
    CHECK(json_is(json_object_get(r, "choices"),
                  "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                  "\"Hello! How can I help?\"},\"finish_reason\":\"stop\"}]"));
    CHECK(json_is(json_object_get(r, "usage"),
                  "{\"prompt_tokens\":2112,\"completion_tokens\":9,\"total_tokens\":2121,"
                  "\"prompt_tokens_details\":{\"cached_tokens\":2000}}"));
    CHECK(res.prompt_tokens == 2112 && res.completion_tokens == 9 && res.total_tokens == 2121);
    json_decref(r);
    fx_free(&fx);
}

static void test_respond_tools_and_thinking(void)
{
    fx_t fx;
    CHECK(fx_init(&fx, 0, "{\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"}]}", false));
    set_resp(fx.job, 200,
             "{\"id\":\"msg_01Aq9w938a90dw8q\",\"type\":\"message\",\"role\":\"assistant\","
             "\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[{\"type\":\"thinking\","
             "\"thinking\":\"The user wants the weather.\",\"signature\":\"EqQBCgIYAhIM1gbcDa9\"},"
             "{\"type\":\"tool_use\",\"id\":\"toolu_01A09q90qw90lq917835lq9\",\"name\":"
             "\"get_weather\",\"input\":{\"location\":\"San Francisco, CA\",\"unit\":"
             "\"celsius\"}},{\"type\":\"tool_use\",\"id\":\"toolu_02\",\"name\":\"now\","
             "\"input\":{}}],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
             "\"usage\":{\"input_tokens\":472,\"output_tokens\":89}}");
    wk_result_t res = {0};
    CHECK(wk_anthropic_adapter.respond(fx.job, &res, &fx.fail) == 0);
    json_t *r = res.response;
    static const char *want =
        "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
        "\"reasoning_content\":\"The user wants the weather.\",\"tool_calls\":["
        "{\"id\":\"toolu_01A09q90qw90lq917835lq9\",\"type\":\"function\",\"function\":"
        "{\"name\":\"get_weather\",\"arguments\":"
        "\"{\\\"location\\\":\\\"San Francisco, CA\\\",\\\"unit\\\":\\\"celsius\\\"}\"}},"
        "{\"id\":\"toolu_02\",\"type\":\"function\",\"function\":{\"name\":\"now\","
        "\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]";
    CHECK(json_is(json_object_get(r, "choices"), want));
    CHECK(json_is(json_object_get(r, "usage"),
                  "{\"prompt_tokens\":472,\"completion_tokens\":89,\"total_tokens\":561}"));
    json_decref(r);
    fx_free(&fx);
}

static void test_finish_reasons(void)
{
    static const char *map[][2] = {
        {"end_turn", "stop"},       {"stop_sequence", "stop"},     {"max_tokens", "length"},
        {"tool_use", "tool_calls"}, {"refusal", "content_filter"}, {"pause_turn", "stop"},
        {"something_new", "stop"},
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(map); i++) {
        fx_t fx;
        CHECK(fx_init(&fx, 0, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", false));
        char body[512];
        snprintf(body, sizeof body,
                 "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":"
                 "[{\"type\":\"text\",\"text\":\"x\"}],\"stop_reason\":\"%s\",\"stop_sequence\":"
                 "null,\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}",
                 map[i][0]);
        set_resp(fx.job, 200, body);
        wk_result_t res = {0};
        CHECK(wk_anthropic_adapter.respond(fx.job, &res, &fx.fail) == 0);
        json_t *choice = json_array_get(json_object_get(res.response, "choices"), 0);
        CHECK_STR(lp_json_str(choice, "finish_reason"), map[i][1]);
        json_decref(res.response);
        fx_free(&fx);
    }
}

static void test_respond_invalid(void)
{
    static const char *bodies[] = {
        "",
        "not json",
        "[]",
        "{\"type\":\"message\"}",
        "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}",
        "{\"type\":\"completion\",\"content\":[]}",
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(bodies); i++) {
        fx_t fx;
        CHECK(fx_init(&fx, 0, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", false));
        set_resp(fx.job, 200, bodies[i]);
        wk_result_t res = {0};
        CHECK(wk_anthropic_adapter.respond(fx.job, &res, &fx.fail) < 0);
        CHECK(res.response == NULL);
        CHECK(fx.fail.status == 502);
        CHECK_STR(fx.fail.code, "invalid_upstream_response");
        CHECK(fx.fail.retryable);
        fx_free(&fx);
    }
}

static void test_errors(void)
{
    static const struct {
        long status;
        const char *body;
        int want_status;
        const char *want_code; /* NULL = status code */
        bool retryable;
        const char *want_msg;
    } cases[] = {
        {429,
         "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":"
         "\"Number of request tokens has exceeded your per-minute rate limit\"}}",
         429, NULL, true,
         "anthropic error 429: Number of request tokens has exceeded your per-minute rate limit"},
        {529,
         "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
         "\"Overloaded\"}}",
         503, NULL, true, "anthropic error 529: Overloaded"},
        {500,
         "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
         "\"Internal server error\"}}",
         502, NULL, true, "anthropic error 500: Internal server error"},
        {400,
         "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
         "\"prompt is too long: 208310 tokens > 200000 maximum\"}}",
         400, "context_length_exceeded", false,
         "anthropic error 400: prompt is too long: 208310 tokens > 200000 maximum"},
        {400,
         "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
         "\"messages.1.content.0.tool_result: unexpected tool_use_id\"}}",
         400, NULL, false,
         "anthropic error 400: messages.1.content.0.tool_result: "
         "unexpected tool_use_id"},
        {401,
         "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":"
         "\"invalid x-api-key " KEY "\"}}",
         401, NULL, false, "anthropic error 401: invalid x-api-key ***"},
        {502, "<html>Bad Gateway</html>", 502, NULL, true,
         "anthropic error 502: HTTP 502 without an error message"},
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(cases); i++) {
        fx_t fx;
        CHECK(fx_init(&fx, 0, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", false));
        set_resp(fx.job, cases[i].status, cases[i].body);
        wk_anthropic_adapter.error(fx.job, &fx.fail);
        CHECK(fx.fail.status == cases[i].want_status);
        if (cases[i].want_code)
            CHECK_STR(fx.fail.code, cases[i].want_code);
        else
            CHECK(fx.fail.code == NULL);
        CHECK(fx.fail.retryable == cases[i].retryable);
        CHECK(msg_is(&fx.fail, cases[i].want_msg));
        CHECK(strstr(fx.fail.message, KEY) == NULL);
        fx_free(&fx);
    }
}

/* ---- streams ---- */

static void test_stream_text(void)
{
    fx_t fx;
    CHECK(fx_init(&fx, 0,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],\"stream\":true,"
                  "\"stream_options\":{\"include_usage\":true}}",
                  true));
    json_t *body = prepare(&fx);
    CHECK(body != NULL);
    CHECK(json_is_true(json_object_get(body, "stream")));
    CHECK(json_object_get(body, "stream_options") == NULL);
    json_decref(body);
    CHECK(fx.job->include_usage);

    CHECK(feed(&fx, "message_start",
               "{\"type\":\"message_start\",\"message\":{\"id\":"
               "\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\",\"type\":\"message\",\"role\":"
               "\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5-20250929\","
               "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,"
               "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":10,"
               "\"output_tokens\":1}}}") == 0);
    CHECK(feed(&fx, "content_block_start",
               "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
               "\"text\",\"text\":\"\"}}") == 0);
    CHECK(feed(&fx, "ping", "{\"type\": \"ping\"}") == 0);
    CHECK(feed(&fx, "content_block_delta",
               "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
               "\"text\":\"Hello\"}}") == 0);
    CHECK(feed(&fx, "content_block_delta",
               "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
               "\"text\":\"!\"}}") == 0);
    CHECK(feed(&fx, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}") == 0);
    CHECK(feed(&fx, "message_delta",
               "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
               "\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}") == 0);
    CHECK(!fx.job->done);
    CHECK(feed(&fx, "message_stop", "{\"type\":\"message_stop\"}") == 0);
    CHECK(fx.job->done);
    CHECK(feed(&fx, "ping", "{\"type\":\"ping\"}") == 0); /* after the end: ignored */
    CHECK(wk_anthropic_adapter.stream_end(fx.job, &fx.out, &fx.fail) == 0);

    json_t *list = chunks(&fx.out);
    CHECK(json_array_size(list) == 6);
    for (size_t i = 0; i < 5; i++) {
        json_t *c = json_array_get(list, i);
        CHECK_STR(lp_json_str(c, "id"), "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
        CHECK_STR(lp_json_str(c, "object"), "chat.completion.chunk");
        CHECK_STR(lp_json_str(c, "model"), "claude");
        CHECK(lp_json_int(c, "created", 0) == fx.job->created && fx.job->created > 0);
    }
    CHECK(json_is(delta_of(list, 0), "{\"role\":\"assistant\",\"content\":\"\"}"));
    CHECK(finish_of(list, 0) == NULL);
    CHECK(json_is(delta_of(list, 1), "{\"content\":\"Hello\"}"));
    CHECK(json_is(delta_of(list, 2), "{\"content\":\"!\"}"));
    CHECK(json_is(delta_of(list, 3), "{}"));
    CHECK_STR(finish_of(list, 3), "stop");
    CHECK(json_is(json_object_get(json_array_get(list, 4), "choices"), "[]"));
    CHECK(json_is(json_object_get(json_array_get(list, 4), "usage"),
                  "{\"prompt_tokens\":35,\"completion_tokens\":15,\"total_tokens\":50}"));
    CHECK(json_is(json_array_get(list, 5), "\"[DONE]\""));
    CHECK(fx.job->finish_seen && fx.job->have_usage);
    CHECK(fx.job->usage_prompt == 35 && fx.job->usage_completion == 15 &&
          fx.job->usage_total == 50);
    CHECK(fx.job->content_bytes == 6);
    json_decref(list);
    fx_free(&fx);
}

static void test_stream_tools(void)
{
    fx_t fx;
    CHECK(fx_init(&fx, 0, "{\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"}]}", true));
    static const char *events[][2] = {
        {"message_start",
         "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\","
         "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\","
         "\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},"
         "\"content\":[],\"stop_reason\":null}}"},
        {"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                "{\"type\":\"thinking_delta\",\"thinking\":\"Need weather.\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                "{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}"},
        {"content_block_start", "{\"type\":\"content_block_start\",\"index\":1,"
                                "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
                                "{\"type\":\"text_delta\",\"text\":\"Checking:\"}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}"},
        {"content_block_start",
         "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":"
         "\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\","
         "\"input\":{}}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":"
                                "{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":"
                                "{\"type\":\"input_json_delta\",\"partial_json\":"
                                "\"{\\\"location\\\":\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":"
                                "{\"type\":\"input_json_delta\",\"partial_json\":"
                                "\" \\\"Paris\\\"}\"}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":2}"},
        {"content_block_start",
         "{\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":"
         "\"tool_use\",\"id\":\"toolu_02\",\"name\":\"now\",\"input\":{}}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":3,\"delta\":"
                                "{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":3}"},
        {"message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
                          "\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}"},
        {"message_stop", "{\"type\":\"message_stop\"}"},
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(events); i++)
        CHECK(feed(&fx, events[i][0], events[i][1]) == 0);
    CHECK(wk_anthropic_adapter.stream_end(fx.job, &fx.out, &fx.fail) == 0);
    json_t *list = chunks(&fx.out);
    CHECK(json_array_size(list) == 10); /* no usage chunk: include_usage not asked */
    CHECK(json_is(delta_of(list, 0), "{\"role\":\"assistant\",\"content\":\"\"}"));
    CHECK(json_is(delta_of(list, 1), "{\"reasoning_content\":\"Need weather.\"}"));
    CHECK(json_is(delta_of(list, 2), "{\"content\":\"Checking:\"}"));
    CHECK(json_is(delta_of(list, 3),
                  "{\"tool_calls\":[{\"index\":0,\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\","
                  "\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                  "\"arguments\":\"\"}}]}"));
    CHECK(json_is(delta_of(list, 4), "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
                                     "\"{\\\"location\\\":\"}}]}"));
    CHECK(json_is(delta_of(list, 5), "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
                                     "\" \\\"Paris\\\"}\"}}]}"));
    CHECK(json_is(delta_of(list, 6),
                  "{\"tool_calls\":[{\"index\":1,\"id\":\"toolu_02\",\"type\":\"function\","
                  "\"function\":{\"name\":\"now\",\"arguments\":\"\"}}]}"));
    CHECK(json_is(delta_of(list, 7),
                  "{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{}\"}}]}"));
    CHECK(json_is(delta_of(list, 8), "{}"));
    CHECK_STR(finish_of(list, 8), "tool_calls");
    size_t finishes = 0;
    for (size_t i = 0; i < json_array_size(list); i++)
        finishes += finish_of(list, i) != NULL;
    CHECK(finishes == 1);
    CHECK(json_is(json_array_get(list, 9), "\"[DONE]\""));
    CHECK(fx.job->usage_prompt == 472 && fx.job->usage_completion == 89);
    json_decref(list);
    fx_free(&fx);
}

static void test_stream_errors(void)
{
    fx_t fx;
    CHECK(fx_init(&fx, 0, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", true));
    CHECK(feed(&fx, "message_start",
               "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\","
               "\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":5,"
               "\"output_tokens\":1}}}") == 0);
    CHECK(feed(&fx, "error",
               "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
               "\"Overloaded\"}}") < 0);
    CHECK(fx.fail.status == 503);
    CHECK_STR(fx.fail.code, "upstream_stream_error");
    CHECK(strstr(fx.fail.message, "Overloaded") != NULL);
    fx_free(&fx);

    CHECK(fx_init(&fx, 0, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", true));
    CHECK(feed(&fx, "error",
               "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
               "\"bad key " KEY "\"}}") < 0);
    CHECK(fx.fail.status == 502);
    CHECK_STR(fx.fail.code, "upstream_stream_error");
    CHECK(strstr(fx.fail.message, KEY) == NULL);
    CHECK(strstr(fx.fail.message, "bad key") != NULL);
    fx_free(&fx);

    CHECK(fx_init(&fx, 0, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", true));
    CHECK(feed(&fx, "message_start", "{not json") < 0);
    CHECK(fx.fail.status == 502);
    CHECK_STR(fx.fail.code, "invalid_upstream_stream");
    fx_free(&fx);
}

static void test_stream_truncated(void)
{
    fx_t fx;
    CHECK(fx_init(&fx, 0,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                  "\"stream_options\":{\"include_usage\":true}}",
                  true));
    json_t *body = prepare(&fx);
    CHECK(body != NULL);
    json_decref(body);
    CHECK(feed(&fx, "message_start",
               "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\","
               "\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":5,"
               "\"output_tokens\":1}}}") == 0);
    CHECK(feed(&fx, "content_block_delta",
               "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
               "\"text\":\"Hel\"}}") == 0);
    size_t before = fx.out.len;
    CHECK(wk_anthropic_adapter.stream_end(fx.job, &fx.out, &fx.fail) < 0);
    CHECK(fx.fail.status == 502);
    CHECK_STR(fx.fail.code, "upstream_stream_truncated");
    CHECK(msg_is(&fx.fail, "anthropic ended the stream without message_stop"));
    CHECK(fx.out.len == before); /* no usage chunk, no [DONE] */
    CHECK(!fx.job->finish_seen);
    fx_free(&fx);

    /* message_stop without a message_delta: the finish reason still comes, once */
    CHECK(fx_init(&fx, 0, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", true));
    CHECK(feed(&fx, "message_stop", "{\"type\":\"message_stop\"}") == 0);
    CHECK(wk_anthropic_adapter.stream_end(fx.job, &fx.out, &fx.fail) == 0);
    json_t *list = chunks(&fx.out);
    CHECK(json_array_size(list) == 2);
    CHECK_STR(finish_of(list, 0), "stop");
    CHECK(json_is(json_array_get(list, 1), "\"[DONE]\""));
    json_decref(list);
    fx_free(&fx);
}

int main(void)
{
    RUN(test_url_and_headers);
    RUN(test_chat_only);
    RUN(test_body_parameters);
    RUN(test_system_hoisting);
    RUN(test_user_parts_and_images);
    RUN(test_tool_history);
    RUN(test_tools_and_choice);
    RUN(test_unsupported_params);
    RUN(test_respond_text);
    RUN(test_respond_tools_and_thinking);
    RUN(test_finish_reasons);
    RUN(test_respond_invalid);
    RUN(test_errors);
    RUN(test_stream_text);
    RUN(test_stream_tools);
    RUN(test_stream_errors);
    RUN(test_stream_truncated);
    return th_report();
}
