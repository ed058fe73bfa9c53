/* test_gemini: the Gemini adapter (workers/wk_gemini.c) driven directly: request translation
 * (URL, headers, body field by field), responses, errors and SSE streams, on fixtures shaped
 * like Google AI Studio's documented answers. No network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lp_buf.h"
#include "lp_cfg.h"
#include "lp_json.h"
#include "lp_msg.h"
#include "wk_adapter.h"
#include "wk_job.h"

#define KEY "AIzaSyUnitTestKey0123456789abcdefghijk"

/* Deployments by position in s_cfg_text. */
enum { DEP_GEM = 0, DEP_V1BETA, DEP_PROXY, DEP_BAD_MODEL, DEP_EMBED };

static const char *s_cfg_text = "model_list:\n"
                                "  - model_name: gem\n"
                                "    litellm_params:\n"
                                "      model: gemini/gemini-2.5-flash\n"
                                "      api_key: " KEY "\n"
                                "  - model_name: gem-v1beta\n"
                                "    litellm_params:\n"
                                "      model: gemini/gemini-2.5-flash\n"
                                "      api_key: " KEY "\n"
                                "      api_base: http://127.0.0.1:8089/v1beta\n"
                                "      max_tokens: 256\n"
                                "      extra_headers:\n"
                                "        X-Team: blue\n"
                                "  - model_name: gem-proxy\n"
                                "    litellm_params:\n"
                                "      model: gemini/gemini-2.0-flash-lite\n"
                                "      api_key: " KEY "\n"
                                "      api_base: https://gw.example.com/gemini/\n"
                                "  - model_name: gem-bad\n"
                                "    litellm_params:\n"
                                "      model: gemini/../files?x=1\n"
                                "      api_key: " KEY "\n"
                                "  - model_name: gem-embed\n"
                                "    litellm_params:\n"
                                "      model: gemini/gemini-embedding-001\n"
                                "      api_key: " KEY "\n"
                                "      api_base: https://proxy.example.com/google/v1\n";

static lp_cfg_t *s_cfg;

/* ---- helpers ---- */

static wk_job_t *new_job(int dep, wk_call_t call, bool stream, const char *req)
{
    wk_job_t *job = lp_calloc(1, sizeof *job);
    for (size_t i = 0; i < LP_REQ_ID_LEN; i++)
        job->id[i] = (uint8_t)(0xa0 + i);
    lp_req_id_format(job->id, job->idstr);
    job->d = &s_cfg->deployments[dep];
    job->group = lp_strdup(job->d->model_name);
    job->call = call;
    job->stream = stream;
    job->retry_after_ms = -1;
    job->req = json_loads(req, 0, NULL);
    return job;
}

static void free_job(wk_job_t *job)
{
    curl_slist_free_all(job->headers);
    free(job->url);
    free(job->body);
    free(job->group);
    lp_buf_free(&job->resp);
    lp_buf_free(&job->out);
    json_decref(job->req);
    free(job);
}

/* A value inside JSON by a dotted path ("contents.0.parts.1.text"). Borrowed. */
static json_t *at(json_t *v, const char *path)
{
    const char *p = path;
    while (v && *p) {
        char tok[128];
        size_t n = strcspn(p, ".");
        if (n >= sizeof tok)
            return NULL;
        memcpy(tok, p, n);
        tok[n] = '\0';
        p += n + (p[n] == '.');
        char *end = NULL;
        long idx = strtol(tok, &end, 10);
        v = (json_is_array(v) && n > 0 && *end == '\0') ? json_array_get(v, (size_t)idx)
                                                        : json_object_get(v, tok);
    }
    return v;
}

static const char *str_at(json_t *v, const char *path)
{
    return json_string_value(at(v, path));
}

static long long int_at(json_t *v, const char *path)
{
    json_t *x = at(v, path);
    return json_is_integer(x) ? json_integer_value(x) : -999;
}

static double num_at(json_t *v, const char *path)
{
    json_t *x = at(v, path);
    return json_is_number(x) ? json_number_value(x) : -999.0;
}

static bool has_header(const wk_job_t *job, const char *line)
{
    for (const struct curl_slist *h = job->headers; h; h = h->next) {
        if (strcmp(h->data, line) == 0)
            return true;
    }
    return false;
}

static size_t header_count(const wk_job_t *job)
{
    size_t n = 0;
    for (const struct curl_slist *h = job->headers; h; h = h->next)
        n++;
    return n;
}

static json_t *body_of(const wk_job_t *job)
{
    return job->body ? json_loadb(job->body, job->body_len, 0, NULL) : NULL;
}

/* prepare, and the body it built (NULL when prepare failed). */
static json_t *prepare(wk_job_t *job, wk_fail_t *fail)
{
    if (wk_gemini_adapter.prepare(job, fail) < 0)
        return NULL;
    return body_of(job);
}

static void set_resp(wk_job_t *job, long status, const char *text)
{
    job->status = status;
    lp_buf_reset(&job->resp);
    lp_buf_puts(&job->resp, text);
}

/* The client SSE bytes as an array: each event's JSON, or the string "[DONE]". NULL when
 * the bytes are not well-formed "data: ...\n\n" events. */
static json_t *sse_events(const lp_buf_t *out)
{
    json_t *list = json_array();
    const char *p = out->data ? out->data : "";
    while (*p) {
        if (strncmp(p, "data: ", 6) != 0) {
            json_decref(list);
            return NULL;
        }
        p += 6;
        const char *end = strstr(p, "\n\n");
        if (!end) {
            json_decref(list);
            return NULL;
        }
        if ((size_t)(end - p) == 6 && strncmp(p, "[DONE]", 6) == 0)
            json_array_append_new(list, json_string("[DONE]"));
        else
            json_array_append_new(list, json_loadb(p, (size_t)(end - p), 0, NULL));
        p = end + 2;
    }
    return list;
}

static int feed(wk_job_t *job, const char *data, wk_fail_t *fail)
{
    return wk_gemini_adapter.stream_event(job, "", data, strlen(data), &job->out, fail);
}

/* Chunks with a non-null finish_reason. */
static size_t finish_count(json_t *events)
{
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        if (json_is_string(at(e, "choices.0.finish_reason")))
            n++;
    }
    return n;
}

static bool is_call_id(const char *id)
{
    if (!id || strlen(id) != 21 || strncmp(id, "call_", 5) != 0)
        return false;
    for (const char *p = id + 5; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

/* ---- prepare: chat ---- */

static void test_prepare_chat_basic(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                            "{\"model\":\"gem\",\"messages\":["
                            "{\"role\":\"system\",\"content\":\"Be brief.\"},"
                            "{\"role\":\"developer\",\"content\":[{\"type\":\"text\","
                            "\"text\":\"Answer in English.\"}]},"
                            "{\"role\":\"user\",\"content\":\"Hi\"}],"
                            "\"temperature\":0.3,\"user\":\"u-1\",\"metadata\":{\"k\":1}}");
    wk_fail_t fail = {0};
    json_t *b = prepare(job, &fail);
    CHECK(b != NULL);
    CHECK_STR(job->url, "https://generativelanguage.googleapis.com/v1beta/models/"
                        "gemini-2.5-flash:generateContent");
    CHECK(strstr(job->url, KEY) == NULL);
    CHECK(has_header(job, "Content-Type: application/json"));
    CHECK(has_header(job, "Accept: application/json"));
    CHECK(has_header(job, "x-goog-api-key: " KEY));
    CHECK(header_count(job) == 3);
    CHECK(json_object_size(b) == 3); /* contents, systemInstruction, generationConfig */
    CHECK_STR(str_at(b, "systemInstruction.parts.0.text"), "Be brief.");
    CHECK_STR(str_at(b, "systemInstruction.parts.1.text"), "Answer in English.");
    CHECK(json_array_size(at(b, "systemInstruction.parts")) == 2);
    CHECK(json_array_size(at(b, "contents")) == 1);
    CHECK_STR(str_at(b, "contents.0.role"), "user");
    CHECK_STR(str_at(b, "contents.0.parts.0.text"), "Hi");
    CHECK(num_at(b, "generationConfig.temperature") == 0.3);
    CHECK(json_object_size(at(b, "generationConfig")) == 1);
    CHECK(!job->include_usage);
    json_decref(b);
    free_job(job);
}

static void test_prepare_stream_and_defaults(void)
{
    wk_job_t *job = new_job(DEP_V1BETA, WK_CALL_CHAT, true,
                            "{\"model\":\"gem-v1beta\",\"stream\":true,"
                            "\"stream_options\":{\"include_usage\":true},"
                            "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    wk_fail_t fail = {0};
    json_t *b = prepare(job, &fail);
    CHECK(b != NULL);
    /* the base already names the version: not doubled */
    CHECK_STR(job->url, "http://127.0.0.1:8089/v1beta/models/gemini-2.5-flash:"
                        "streamGenerateContent?alt=sse");
    CHECK(has_header(job, "Accept: text/event-stream"));
    CHECK(has_header(job, "x-goog-api-key: " KEY));
    CHECK(has_header(job, "X-Team: blue"));
    CHECK(job->include_usage);
    CHECK(json_object_get(b, "stream_options") == NULL);
    CHECK(json_object_get(b, "stream") == NULL);
    CHECK(json_object_get(b, "max_tokens") == NULL);
    CHECK(int_at(b, "generationConfig.maxOutputTokens") == 256); /* deployment default */
    json_decref(b);
    free_job(job);

    /* the client's value wins over the deployment's; max_completion_tokens over max_tokens */
    job = new_job(DEP_V1BETA, WK_CALL_CHAT, false,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":50}");
    b = prepare(job, &fail);
    CHECK(b != NULL);
    CHECK(int_at(b, "generationConfig.maxOutputTokens") == 50);
    json_decref(b);
    free_job(job);
    job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":50,"
                  "\"max_completion_tokens\":70}");
    b = prepare(job, &fail);
    CHECK(b != NULL);
    CHECK(int_at(b, "generationConfig.maxOutputTokens") == 70);
    json_decref(b);
    free_job(job);
}

static void test_prepare_api_bases(void)
{
    wk_fail_t fail = {0};
    wk_job_t *job = new_job(DEP_PROXY, WK_CALL_CHAT, false,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    json_t *b = prepare(job, &fail);
    CHECK(b != NULL);
    CHECK_STR(job->url,
              "https://gw.example.com/gemini/v1beta/models/gemini-2.0-flash-lite:generateContent");
    json_decref(b);
    free_job(job);

    /* a model name that would change the URL is refused before any call */
    job = new_job(DEP_BAD_MODEL, WK_CALL_CHAT, false,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    CHECK(prepare(job, &fail) == NULL);
    CHECK(fail.status == 500);
    CHECK_STR(fail.code, "invalid_deployment");
    CHECK(job->url == NULL && job->body == NULL);
    free_job(job);
}

static void test_prepare_conversation(void)
{
    wk_job_t *job = new_job(
        DEP_GEM, WK_CALL_CHAT, false,
        "{\"messages\":["
        "{\"role\":\"system\",\"content\":\"You are a weather bot.\"},"
        "{\"role\":\"user\",\"content\":\"What's the weather?\"},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"Look:\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/cat.PNG?s=l\"}},"
        "{\"type\":\"image_url\",\"image_url\":\"https://example.com/photo\"}]},"
        "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
        "{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
        "{\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"get_time\","
        "\"arguments\":\"\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_a\",\"content\":\"{\\\"temp\\\":21}\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_b\",\"content\":\"noon\"},"
        "{\"role\":\"user\",\"content\":\"Thanks\"}]}");
    wk_fail_t fail = {0};
    json_t *b = prepare(job, &fail);
    CHECK(b != NULL);
    CHECK_STR(str_at(b, "systemInstruction.parts.0.text"), "You are a weather bot.");
    CHECK(json_array_size(at(b, "contents")) == 3);
    /* two user messages merged into one user turn */
    CHECK_STR(str_at(b, "contents.0.role"), "user");
    CHECK(json_array_size(at(b, "contents.0.parts")) == 5);
    CHECK_STR(str_at(b, "contents.0.parts.0.text"), "What's the weather?");
    CHECK_STR(str_at(b, "contents.0.parts.1.text"), "Look:");
    CHECK_STR(str_at(b, "contents.0.parts.2.inlineData.mimeType"), "image/png");
    CHECK_STR(str_at(b, "contents.0.parts.2.inlineData.data"), "iVBORw0KGgo=");
    CHECK_STR(str_at(b, "contents.0.parts.3.fileData.mimeType"), "image/png");
    CHECK_STR(str_at(b, "contents.0.parts.3.fileData.fileUri"), "https://example.com/cat.PNG?s=l");
    CHECK_STR(str_at(b, "contents.0.parts.4.fileData.mimeType"), "image/jpeg");
    CHECK_STR(str_at(b, "contents.0.parts.4.fileData.fileUri"), "https://example.com/photo");
    /* assistant -> model, tool_calls -> functionCall with parsed args */
    CHECK_STR(str_at(b, "contents.1.role"), "model");
    CHECK(json_array_size(at(b, "contents.1.parts")) == 3);
    CHECK_STR(str_at(b, "contents.1.parts.0.text"), "Checking.");
    CHECK_STR(str_at(b, "contents.1.parts.1.functionCall.name"), "get_weather");
    CHECK_STR(str_at(b, "contents.1.parts.1.functionCall.args.city"), "Paris");
    CHECK_STR(str_at(b, "contents.1.parts.2.functionCall.name"), "get_time");
    CHECK(json_is_object(at(b, "contents.1.parts.2.functionCall.args")));
    CHECK(json_object_size(at(b, "contents.1.parts.2.functionCall.args")) == 0);
    /* tool results: one user turn, names recovered by id, then the next user text */
    CHECK_STR(str_at(b, "contents.2.role"), "user");
    CHECK(json_array_size(at(b, "contents.2.parts")) == 3);
    CHECK_STR(str_at(b, "contents.2.parts.0.functionResponse.name"), "get_weather");
    CHECK(int_at(b, "contents.2.parts.0.functionResponse.response.temp") == 21);
    CHECK_STR(str_at(b, "contents.2.parts.1.functionResponse.name"), "get_time");
    CHECK_STR(str_at(b, "contents.2.parts.1.functionResponse.response.content"), "noon");
    CHECK_STR(str_at(b, "contents.2.parts.2.text"), "Thanks");
    json_decref(b);
    free_job(job);
}

static void test_prepare_generation_config(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                            "\"top_p\":0.9,\"top_k\":40,\"n\":2,\"presence_penalty\":0.5,"
                            "\"frequency_penalty\":0.25,\"seed\":7,\"stop\":\"END\","
                            "\"response_format\":{\"type\":\"json_object\"}}");
    wk_fail_t fail = {0};
    json_t *b = prepare(job, &fail);
    CHECK(b != NULL);
    json_t *g = at(b, "generationConfig");
    CHECK(num_at(g, "topP") == 0.9);
    CHECK(int_at(g, "topK") == 40);
    CHECK(int_at(g, "candidateCount") == 2);
    CHECK(num_at(g, "presencePenalty") == 0.5);
    CHECK(num_at(g, "frequencyPenalty") == 0.25);
    CHECK(int_at(g, "seed") == 7);
    CHECK(json_array_size(at(g, "stopSequences")) == 1);
    CHECK_STR(str_at(g, "stopSequences.0"), "END");
    CHECK_STR(str_at(g, "responseMimeType"), "application/json");
    CHECK(json_object_get(g, "responseSchema") == NULL);
    CHECK(json_object_size(g) == 8);
    json_decref(b);
    free_job(job);

    const char *schema = "{\"type\":\"object\",\"properties\":{\"answer\":{\"type\":\"string\"}},"
                         "\"required\":[\"answer\"]}";
    char req[1024];
    snprintf(req, sizeof req,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stop\":[\"a\",\"b\"],"
             "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"r\","
             "\"strict\":true,\"schema\":%s}}}",
             schema);
    job = new_job(DEP_GEM, WK_CALL_CHAT, false, req);
    b = prepare(job, &fail);
    CHECK(b != NULL);
    json_t *want = json_loads(schema, 0, NULL);
    CHECK(json_equal(at(b, "generationConfig.responseSchema"), want));
    json_decref(want);
    CHECK_STR(str_at(b, "generationConfig.responseMimeType"), "application/json");
    CHECK_STR(str_at(b, "generationConfig.stopSequences.1"), "b");
    json_decref(b);
    free_job(job);

    job =
        new_job(DEP_GEM, WK_CALL_CHAT, false,
                "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"temperature\":\"hot\"}");
    CHECK(prepare(job, &fail) == NULL);
    CHECK(fail.status == 400);
    CHECK(strstr(fail.message, "temperature") != NULL);
    free_job(job);
}

/* A request with the tools below and the given tool_choice JSON. */
static wk_job_t *tools_job(const char *choice)
{
    char req[2048];
    snprintf(req, sizeof req,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}],"
             "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
             "\"description\":\"Current weather\",\"parameters\":{\"type\":\"object\","
             "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},"
             "{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":"
             "{\"type\":\"object\",\"properties\":{}}}}]%s%s}",
             choice ? ",\"tool_choice\":" : "", choice ? choice : "");
    return new_job(DEP_GEM, WK_CALL_CHAT, false, req);
}

static void test_prepare_tools(void)
{
    wk_fail_t fail = {0};
    wk_job_t *job = tools_job(NULL);
    json_t *b = prepare(job, &fail);
    CHECK(b != NULL);
    CHECK(json_array_size(at(b, "tools")) == 1);
    CHECK(json_array_size(at(b, "tools.0.functionDeclarations")) == 2);
    json_t *d0 = at(b, "tools.0.functionDeclarations.0");
    CHECK_STR(str_at(d0, "name"), "get_weather");
    CHECK_STR(str_at(d0, "description"), "Current weather");
    CHECK_STR(str_at(d0, "parameters.properties.city.type"), "string");
    CHECK_STR(str_at(d0, "parameters.required.0"), "city");
    json_t *d1 = at(b, "tools.0.functionDeclarations.1");
    CHECK_STR(str_at(d1, "name"), "get_time");
    CHECK(json_object_get(d1, "parameters") == NULL); /* empty OBJECT schema left out */
    CHECK(json_object_get(b, "toolConfig") == NULL);
    json_decref(b);
    free_job(job);

    static const struct {
        const char *choice, *mode;
    } cases[] = {{"\"auto\"", "AUTO"}, {"\"required\"", "ANY"}, {"\"none\"", "NONE"}};
    for (size_t i = 0; i < LP_ARRAY_LEN(cases); i++) {
        job = tools_job(cases[i].choice);
        b = prepare(job, &fail);
        CHECK(b != NULL);
        CHECK_STR(str_at(b, "toolConfig.functionCallingConfig.mode"), cases[i].mode);
        CHECK(at(b, "toolConfig.functionCallingConfig.allowedFunctionNames") == NULL);
        json_decref(b);
        free_job(job);
    }
    job = tools_job("{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}");
    b = prepare(job, &fail);
    CHECK(b != NULL);
    CHECK_STR(str_at(b, "toolConfig.functionCallingConfig.mode"), "ANY");
    CHECK(json_array_size(at(b, "toolConfig.functionCallingConfig.allowedFunctionNames")) == 1);
    CHECK_STR(str_at(b, "toolConfig.functionCallingConfig.allowedFunctionNames.0"), "get_weather");
    json_decref(b);
    free_job(job);

    job = tools_job("\"sometimes\"");
    CHECK(prepare(job, &fail) == NULL);
    CHECK(fail.status == 400);
    free_job(job);
    job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                  "\"tools\":[{\"type\":\"web_search_preview\"}]}");
    CHECK(prepare(job, &fail) == NULL);
    CHECK(fail.status == 400);
    CHECK(strstr(fail.message, "web_search_preview") != NULL);
    free_job(job);
}

static void test_prepare_unsupported_params(void)
{
    static const struct {
        const char *extra, *param;
    } cases[] = {
        {"\"logprobs\":true", "'logprobs'"},
        {"\"logit_bias\":{\"50256\":-100}", "'logit_bias'"},
        {"\"parallel_tool_calls\":false", "'parallel_tool_calls'"},
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(cases); i++) {
        char req[512];
        snprintf(req, sizeof req, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],%s}",
                 cases[i].extra);
        wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false, req);
        wk_fail_t fail = {0};
        CHECK(prepare(job, &fail) == NULL);
        CHECK(fail.status == 400);
        CHECK_STR(fail.code, "unsupported_params");
        CHECK(!fail.retryable);
        CHECK(strstr(fail.message, cases[i].param) != NULL);
        free_job(job);
        /* drop_params: dropped, and nothing of it reaches Gemini */
        job = new_job(DEP_GEM, WK_CALL_CHAT, false, req);
        job->drop_params = true;
        json_t *b = prepare(job, &fail);
        CHECK(b != NULL);
        CHECK(strstr(job->body, "logprobs") == NULL && strstr(job->body, "logit") == NULL &&
              strstr(job->body, "parallel") == NULL);
        json_decref(b);
        free_job(job);
    }
    /* harmless values are not refusals */
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                            "\"logprobs\":false,\"parallel_tool_calls\":true,\"logit_bias\":{}}");
    wk_fail_t fail = {0};
    json_t *b = prepare(job, &fail);
    CHECK(b != NULL);
    json_decref(b);
    free_job(job);
}

static void test_prepare_bad_requests(void)
{
    static const struct {
        const char *req, *needle;
    } cases[] = {
        {"{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"call_x\",\"content\":\"1\"}]}",
         "call_x"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"ftp://example.com/a.png\"}}]}]}",
         "image_url"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"data:image/png,rawbytes\"}}]}]}",
         "base64"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
         "not a JSON object"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}]}", "video"},
        {"{\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", "wizard"},
        {"{\"messages\":\"hi\"}", "messages"},
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(cases); i++) {
        wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false, cases[i].req);
        wk_fail_t fail = {0};
        CHECK(prepare(job, &fail) == NULL);
        CHECK(fail.status == 400);
        CHECK(!fail.retryable);
        CHECK(strncmp(fail.message, "gemini", 6) == 0);
        CHECK(strstr(fail.message, cases[i].needle) != NULL);
        CHECK(job->url == NULL && job->body == NULL && job->headers == NULL);
        free_job(job);
    }
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_COMPLETION, false, "{\"prompt\":\"Say hi\"}");
    wk_fail_t fail = {0};
    CHECK(prepare(job, &fail) == NULL);
    CHECK(fail.status == 400);
    CHECK(strstr(fail.message, "completions") != NULL);
    free_job(job);
}

/* ---- responses ---- */

static const char *s_text_response =
    "{\"candidates\":[{\"content\":{\"parts\":["
    "{\"text\":\"The user greets me.\",\"thought\":true},"
    "{\"text\":\"Hello\"},{\"text\":\", world.\"}],\"role\":\"model\"},"
    "\"finishReason\":\"STOP\",\"index\":0,\"safetyRatings\":[{\"category\":"
    "\"HARM_CATEGORY_HARASSMENT\",\"probability\":\"NEGLIGIBLE\"}]}],"
    "\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":5,"
    "\"totalTokenCount\":37,\"cachedContentTokenCount\":4,\"thoughtsTokenCount\":20,"
    "\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":12}]},"
    "\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"mJ1kaO2tK4ib1dkPq4yJ6Ac\"}";

static void test_respond_text(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    set_resp(job, 200, s_text_response);
    wk_result_t res = {0};
    wk_fail_t fail = {0};
    CHECK(wk_gemini_adapter.respond(job, &res, &fail) == 0);
    json_t *r = res.response;
    CHECK_STR(str_at(r, "id"), "mJ1kaO2tK4ib1dkPq4yJ6Ac");
    CHECK_STR(str_at(r, "object"), "chat.completion");
    CHECK_STR(str_at(r, "model"), "gem");
    CHECK(int_at(r, "created") > 1700000000);
    CHECK(json_array_size(at(r, "choices")) == 1);
    CHECK(int_at(r, "choices.0.index") == 0);
    CHECK_STR(str_at(r, "choices.0.message.role"), "assistant");
    CHECK_STR(str_at(r, "choices.0.message.content"), "Hello, world.");
    CHECK_STR(str_at(r, "choices.0.message.reasoning_content"), "The user greets me.");
    CHECK(at(r, "choices.0.message.tool_calls") == NULL);
    CHECK_STR(str_at(r, "choices.0.finish_reason"), "stop");
    CHECK(int_at(r, "usage.prompt_tokens") == 12);
    CHECK(int_at(r, "usage.completion_tokens") == 25);
    CHECK(int_at(r, "usage.total_tokens") == 37);
    CHECK(int_at(r, "usage.prompt_tokens_details.cached_tokens") == 4);
    CHECK(int_at(r, "usage.completion_tokens_details.reasoning_tokens") == 20);
    CHECK(res.prompt_tokens == 12 && res.completion_tokens == 25 && res.total_tokens == 37);
    json_decref(r);
    free_job(job);
}

static void test_respond_tool_calls(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}]}");
    const char *fixture =
        "{\"candidates\":[{\"content\":{\"parts\":["
        "{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}}},"
        "{\"functionCall\":{\"name\":\"get_time\",\"args\":{}}}],\"role\":\"model\"},"
        "\"finishReason\":\"STOP\",\"index\":0}],"
        "\"usageMetadata\":{\"promptTokenCount\":40,\"candidatesTokenCount\":10,"
        "\"totalTokenCount\":50},\"modelVersion\":\"gemini-2.5-flash\"}";
    set_resp(job, 200, fixture);
    wk_result_t res = {0};
    wk_fail_t fail = {0};
    CHECK(wk_gemini_adapter.respond(job, &res, &fail) == 0);
    json_t *r = res.response;
    char want_id[64];
    snprintf(want_id, sizeof want_id, "chatcmpl-%s", job->idstr);
    CHECK_STR(str_at(r, "id"), want_id);
    CHECK(json_is_null(at(r, "choices.0.message.content")));
    CHECK_STR(str_at(r, "choices.0.finish_reason"), "tool_calls");
    json_t *tc = at(r, "choices.0.message.tool_calls");
    CHECK(json_array_size(tc) == 2);
    const char *id0 = str_at(tc, "0.id"), *id1 = str_at(tc, "1.id");
    CHECK(is_call_id(id0) && is_call_id(id1));
    CHECK(strcmp(id0, id1) != 0);
    CHECK_STR(str_at(tc, "0.type"), "function");
    CHECK_STR(str_at(tc, "0.function.name"), "get_weather");
    CHECK_STR(str_at(tc, "0.function.arguments"), "{\"city\":\"Paris\"}");
    CHECK_STR(str_at(tc, "1.function.name"), "get_time");
    CHECK_STR(str_at(tc, "1.function.arguments"), "{}");
    CHECK(res.prompt_tokens == 40 && res.completion_tokens == 10 && res.total_tokens == 50);
    /* the same job (a retry) yields the same ids */
    char first[32];
    lp_strlcpy(first, id0, sizeof first);
    wk_result_t again = {0};
    CHECK(wk_gemini_adapter.respond(job, &again, &fail) == 0);
    CHECK_STR(str_at(again.response, "choices.0.message.tool_calls.0.id"), first);
    json_decref(again.response);
    json_decref(r);
    free_job(job);
}

static void test_respond_finish_reasons(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"n\":2}");
    set_resp(job, 200,
             "{\"candidates\":["
             "{\"content\":{\"parts\":[{\"text\":\"Once upon\"}],\"role\":\"model\"},"
             "\"finishReason\":\"MAX_TOKENS\",\"index\":0},"
             "{\"finishReason\":\"SAFETY\",\"index\":1,\"safetyRatings\":[{\"category\":"
             "\"HARM_CATEGORY_DANGEROUS_CONTENT\",\"probability\":\"HIGH\",\"blocked\":true}]}],"
             "\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,"
             "\"totalTokenCount\":5}}");
    wk_result_t res = {0};
    wk_fail_t fail = {0};
    CHECK(wk_gemini_adapter.respond(job, &res, &fail) == 0);
    CHECK(json_array_size(at(res.response, "choices")) == 2);
    CHECK(int_at(res.response, "choices.0.index") == 0);
    CHECK_STR(str_at(res.response, "choices.0.finish_reason"), "length");
    CHECK_STR(str_at(res.response, "choices.0.message.content"), "Once upon");
    CHECK(int_at(res.response, "choices.1.index") == 1);
    CHECK_STR(str_at(res.response, "choices.1.finish_reason"), "content_filter");
    CHECK(json_is_null(at(res.response, "choices.1.message.content")));
    json_decref(res.response);

    static const struct {
        const char *gemini, *openai;
    } map[] = {{"RECITATION", "content_filter"},
               {"BLOCKLIST", "content_filter"},
               {"PROHIBITED_CONTENT", "content_filter"},
               {"SPII", "content_filter"},
               {"LANGUAGE", "content_filter"},
               {"IMAGE_SAFETY", "content_filter"},
               {"OTHER", "content_filter"},
               {"MALFORMED_FUNCTION_CALL", "stop"},
               {"FINISH_REASON_UNSPECIFIED", "stop"}};
    for (size_t i = 0; i < LP_ARRAY_LEN(map); i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}],\"role\":"
                 "\"model\"},\"finishReason\":\"%s\",\"index\":0}]}",
                 map[i].gemini);
        set_resp(job, 200, body);
        wk_result_t r = {0};
        CHECK(wk_gemini_adapter.respond(job, &r, &fail) == 0);
        CHECK_STR(str_at(r.response, "choices.0.finish_reason"), map[i].openai);
        json_decref(r.response);
    }
    free_job(job);
}

static void test_respond_blocked_prompt(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"bad\"}]}");
    set_resp(job, 200,
             "{\"promptFeedback\":{\"blockReason\":\"SAFETY\",\"safetyRatings\":[{\"category\":"
             "\"HARM_CATEGORY_HARASSMENT\",\"probability\":\"HIGH\"}]},"
             "\"usageMetadata\":{\"promptTokenCount\":8,\"totalTokenCount\":8},"
             "\"modelVersion\":\"gemini-2.5-flash\"}");
    wk_result_t res = {0};
    wk_fail_t fail = {0};
    CHECK(wk_gemini_adapter.respond(job, &res, &fail) == 0);
    CHECK(json_array_size(at(res.response, "choices")) == 1);
    CHECK(json_is_null(at(res.response, "choices.0.message.content")));
    CHECK_STR(str_at(res.response, "choices.0.message.role"), "assistant");
    CHECK_STR(str_at(res.response, "choices.0.finish_reason"), "content_filter");
    CHECK(int_at(res.response, "usage.prompt_tokens") == 8);
    CHECK(int_at(res.response, "usage.completion_tokens") == 0);
    json_decref(res.response);
    free_job(job);
}

static void test_respond_invalid(void)
{
    static const char *bodies[] = {
        "<html>oops</html>",
        "{\"models\":[]}",
        "[{\"candidates\":[]}]",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"args\":{}}}]}}]}",
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(bodies); i++) {
        wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                                "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
        set_resp(job, 200, bodies[i]);
        wk_result_t res = {0};
        wk_fail_t fail = {0};
        CHECK(wk_gemini_adapter.respond(job, &res, &fail) < 0);
        CHECK(fail.status == 502);
        CHECK_STR(fail.code, "invalid_upstream_response");
        CHECK(res.response == NULL);
        free_job(job);
    }
}

/* ---- errors ---- */

static void test_errors(void)
{
    static const struct {
        long upstream;
        const char *body;
        int status;
        const char *code; /* NULL: none */
        bool retryable;
        const char *message; /* expected prefix */
    } cases[] = {
        {400,
         "{\"error\":{\"code\":400,\"message\":\"The input token count (1200293) exceeds the "
         "maximum number of tokens allowed (1048576).\",\"status\":\"INVALID_ARGUMENT\"}}",
         400, "context_length_exceeded", false, "gemini error 400: The input token count"},
        {400,
         "{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API "
         "key.\",\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":"
         "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\"}]}}",
         400, NULL, false, "gemini error 400: API key not valid"},
        {403,
         "{\"error\":{\"code\":403,\"message\":\"Permission denied for key " KEY
         "\",\"status\":\"PERMISSION_DENIED\"}}",
         403, NULL, false, "gemini error 403: Permission denied for key ***"},
        {404,
         "{\"error\":{\"code\":404,\"message\":\"models/gemini-9 is not found for API version "
         "v1beta\",\"status\":\"NOT_FOUND\"}}",
         404, NULL, false, "gemini error 404: models/gemini-9 is not found"},
        {500,
         "{\"error\":{\"code\":500,\"message\":\"An internal error has occurred.\",\"status\":"
         "\"INTERNAL\"}}",
         502, NULL, true, "gemini error 500: An internal error"},
        {503,
         "{\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again "
         "later.\",\"status\":\"UNAVAILABLE\"}}",
         503, NULL, true, "gemini error 503: The model is overloaded"},
        {502, "<html><body>Bad Gateway</body></html>", 502, NULL, true,
         "gemini error 502: HTTP 502 without an error message"},
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(cases); i++) {
        wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                                "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
        set_resp(job, cases[i].upstream, cases[i].body);
        wk_fail_t fail = {.retry_after_ms = -1};
        wk_gemini_adapter.error(job, &fail);
        CHECK(fail.status == cases[i].status);
        CHECK(cases[i].code ? fail.code && strcmp(fail.code, cases[i].code) == 0 : !fail.code);
        CHECK(fail.retryable == cases[i].retryable);
        CHECK(strncmp(fail.message, cases[i].message, strlen(cases[i].message)) == 0);
        CHECK(strstr(fail.message, KEY) == NULL);
        CHECK(job->retry_after_ms == -1);
        free_job(job);
    }
}

static void test_error_quota(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, false,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    set_resp(job, 429,
             "{\"error\":{\"code\":429,\"message\":\"You exceeded your current quota, please "
             "check your plan and billing details.\",\"status\":\"RESOURCE_EXHAUSTED\","
             "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\","
             "\"violations\":[{\"quotaMetric\":\"generativelanguage.googleapis.com/"
             "generate_content_free_tier_requests\"}]},{\"@type\":"
             "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"37s\"}]}}");
    wk_fail_t fail = {.retry_after_ms = -1};
    wk_gemini_adapter.error(job, &fail);
    CHECK(fail.status == 429);
    CHECK(fail.retryable);
    CHECK(fail.code == NULL);
    CHECK(strncmp(fail.message, "gemini error 429: You exceeded your current quota", 48) == 0);
    CHECK(job->retry_after_ms == 37000);
    /* a retry-after header, when present, wins over the body */
    job->retry_after_ms = 5000;
    wk_gemini_adapter.error(job, &fail);
    CHECK(job->retry_after_ms == 5000);
    /* RESOURCE_EXHAUSTED is a rate limit whatever the HTTP status says */
    job->retry_after_ms = -1;
    set_resp(job, 400,
             "{\"error\":{\"code\":400,\"message\":\"Resource has been exhausted (e.g. check "
             "quota).\",\"status\":\"RESOURCE_EXHAUSTED\"}}");
    wk_gemini_adapter.error(job, &fail);
    CHECK(fail.status == 429);
    CHECK(fail.retryable);
    free_job(job);
}

/* ---- embeddings ---- */

static void test_embeddings_prepare(void)
{
    wk_job_t *job = new_job(DEP_EMBED, WK_CALL_EMBEDDING, false,
                            "{\"model\":\"gem-embed\",\"input\":[\"first\",\"second\"],"
                            "\"dimensions\":256,\"task_type\":\"query\",\"user\":\"u\"}");
    wk_fail_t fail = {0};
    json_t *b = prepare(job, &fail);
    CHECK(b != NULL);
    CHECK_STR(job->url, "https://proxy.example.com/google/v1/models/"
                        "gemini-embedding-001:batchEmbedContents");
    CHECK(has_header(job, "x-goog-api-key: " KEY));
    CHECK(has_header(job, "Content-Type: application/json"));
    CHECK(json_object_size(b) == 1);
    CHECK(json_array_size(at(b, "requests")) == 2);
    json_t *r0 = at(b, "requests.0");
    CHECK_STR(str_at(r0, "model"), "models/gemini-embedding-001");
    CHECK_STR(str_at(r0, "content.parts.0.text"), "first");
    CHECK_STR(str_at(r0, "taskType"), "RETRIEVAL_QUERY");
    CHECK(int_at(r0, "outputDimensionality") == 256);
    CHECK(json_object_size(r0) == 4);
    CHECK_STR(str_at(b, "requests.1.content.parts.0.text"), "second");
    json_decref(b);
    free_job(job);

    static const struct {
        const char *req, *task; /* task NULL: none sent */
    } tasks[] = {
        {"{\"input\":\"x\"}", NULL},
        {"{\"input\":\"x\",\"input_type\":\"document\"}", "RETRIEVAL_DOCUMENT"},
        {"{\"input\":\"x\",\"task_type\":\"SEMANTIC_SIMILARITY\"}", "SEMANTIC_SIMILARITY"},
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(tasks); i++) {
        job = new_job(DEP_EMBED, WK_CALL_EMBEDDING, false, tasks[i].req);
        b = prepare(job, &fail);
        CHECK(b != NULL);
        CHECK(json_array_size(at(b, "requests")) == 1);
        CHECK_STR(str_at(b, "requests.0.content.parts.0.text"), "x");
        if (tasks[i].task)
            CHECK_STR(str_at(b, "requests.0.taskType"), tasks[i].task);
        else
            CHECK(at(b, "requests.0.taskType") == NULL);
        CHECK(at(b, "requests.0.outputDimensionality") == NULL);
        json_decref(b);
        free_job(job);
    }

    static const char *bad[] = {
        "{\"input\":[[101,102,103]]}",
        "{\"input\":[101,102]}",
        "{\"input\":[]}",
        "{\"input\":42}",
        "{\"input\":\"x\",\"task_type\":\"semantic\"}",
        "{\"input\":\"x\",\"dimensions\":0}",
        "{\"input\":\"x\",\"encoding_format\":\"int8\"}",
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(bad); i++) {
        job = new_job(DEP_EMBED, WK_CALL_EMBEDDING, false, bad[i]);
        CHECK(prepare(job, &fail) == NULL);
        CHECK(fail.status == 400);
        CHECK(job->url == NULL && job->body == NULL);
        free_job(job);
    }
}

static void test_embeddings_respond(void)
{
    wk_job_t *job =
        new_job(DEP_EMBED, WK_CALL_EMBEDDING, false, "{\"input\":[\"hello\",\"world!\"]}");
    set_resp(job, 200,
             "{\"embeddings\":[{\"values\":[0.5,-1,0.25]},{\"values\":[0.125,2,-0.75]}]}");
    wk_result_t res = {0};
    wk_fail_t fail = {0};
    CHECK(wk_gemini_adapter.respond(job, &res, &fail) == 0);
    json_t *r = res.response;
    CHECK_STR(str_at(r, "object"), "list");
    CHECK_STR(str_at(r, "model"), "gem-embed");
    CHECK(json_array_size(at(r, "data")) == 2);
    CHECK_STR(str_at(r, "data.0.object"), "embedding");
    CHECK(int_at(r, "data.0.index") == 0);
    CHECK(num_at(r, "data.0.embedding.0") == 0.5);
    CHECK(num_at(r, "data.0.embedding.1") == -1.0);
    CHECK(int_at(r, "data.1.index") == 1);
    CHECK(num_at(r, "data.1.embedding.2") == -0.75);
    /* no usageMetadata: estimated from 11 bytes of input */
    CHECK(int_at(r, "usage.prompt_tokens") == 3);
    CHECK(int_at(r, "usage.total_tokens") == 3);
    CHECK(res.prompt_tokens == 3 && res.completion_tokens == 0 && res.total_tokens == 3);
    json_decref(r);
    free_job(job);

    job = new_job(DEP_EMBED, WK_CALL_EMBEDDING, false,
                  "{\"input\":\"x\",\"encoding_format\":\"base64\"}");
    set_resp(job, 200,
             "{\"embeddings\":[{\"values\":[1.0,-2.0,0.5]}],"
             "\"usageMetadata\":{\"promptTokenCount\":9}}");
    CHECK(wk_gemini_adapter.respond(job, &res, &fail) == 0);
    CHECK_STR(str_at(res.response, "data.0.embedding"), "AACAPwAAAMAAAAA/");
    CHECK(int_at(res.response, "usage.prompt_tokens") == 9);
    CHECK(res.total_tokens == 9);
    json_decref(res.response);

    /* fewer embeddings than inputs, or no values: a broken answer */
    set_resp(job, 200, "{\"embeddings\":[]}");
    CHECK(wk_gemini_adapter.respond(job, &res, &fail) < 0);
    CHECK(fail.status == 502);
    CHECK_STR(fail.code, "invalid_upstream_response");
    set_resp(job, 200, "{\"embeddings\":[{\"values\":[\"a\"]}]}");
    CHECK(wk_gemini_adapter.respond(job, &res, &fail) < 0);
    CHECK(fail.status == 502);
    free_job(job);

    job = new_job(DEP_EMBED, WK_CALL_EMBEDDING, true, "{\"input\":\"x\"}");
    CHECK(prepare(job, &fail) == NULL);
    CHECK(fail.status == 400);
    free_job(job);
}

/* ---- streams ---- */

static void test_stream_text(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, true,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                            "\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    wk_fail_t fail = {0};
    json_t *b = prepare(job, &fail);
    CHECK(b != NULL);
    json_decref(b);
    CHECK(job->include_usage);
    const char *events[] = {
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},"
        "\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":7,\"totalTokenCount\":7},"
        "\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"abc123\"}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}],\"role\":\"model\"},"
        "\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":7,\"totalTokenCount\":7},"
        "\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"abc123\"}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}],\"role\":\"model\"},"
        "\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":7,"
        "\"candidatesTokenCount\":3,\"totalTokenCount\":10},"
        "\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"abc123\"}",
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(events); i++)
        CHECK(feed(job, events[i], &fail) == 0);
    CHECK(job->done);
    CHECK(job->finish_seen);
    CHECK(wk_gemini_adapter.stream_end(job, &job->out, &fail) == 0);
    json_t *ev = sse_events(&job->out);
    CHECK(ev != NULL);
    CHECK(json_array_size(ev) == 6);
    CHECK_STR(str_at(ev, "0.object"), "chat.completion.chunk");
    CHECK_STR(str_at(ev, "0.id"), "abc123");
    CHECK_STR(str_at(ev, "0.model"), "gem");
    CHECK(int_at(ev, "0.created") > 1700000000);
    CHECK(int_at(ev, "0.choices.0.index") == 0);
    CHECK_STR(str_at(ev, "0.choices.0.delta.role"), "assistant");
    CHECK_STR(str_at(ev, "0.choices.0.delta.content"), "Hel");
    CHECK(json_is_null(at(ev, "0.choices.0.finish_reason")));
    CHECK(at(ev, "1.choices.0.delta.role") == NULL);
    CHECK_STR(str_at(ev, "1.choices.0.delta.content"), "lo");
    CHECK_STR(str_at(ev, "2.choices.0.delta.content"), "!");
    CHECK_STR(str_at(ev, "3.choices.0.finish_reason"), "stop");
    CHECK(json_object_size(at(ev, "3.choices.0.delta")) == 0);
    CHECK(finish_count(ev) == 1);
    CHECK_STR(str_at(ev, "4.id"), "abc123");
    CHECK(json_array_size(at(ev, "4.choices")) == 0);
    CHECK(int_at(ev, "4.usage.prompt_tokens") == 7);
    CHECK(int_at(ev, "4.usage.completion_tokens") == 3);
    CHECK(int_at(ev, "4.usage.total_tokens") == 10);
    CHECK_STR(str_at(ev, "5"), "[DONE]");
    CHECK(job->have_usage && job->usage_prompt == 7 && job->usage_completion == 3 &&
          job->usage_total == 10);
    json_decref(ev);
    free_job(job);
}

static void test_stream_thoughts_and_tools(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, true,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}]}");
    wk_fail_t fail = {0};
    const char *events[] = {
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"**Planning** I need the "
        "weather.\",\"thought\":true}],\"role\":\"model\"},\"index\":0}],"
        "\"usageMetadata\":{\"promptTokenCount\":30,\"totalTokenCount\":30,"
        "\"thoughtsTokenCount\":12},\"responseId\":\"r-1\"}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"get_weather\","
        "\"args\":{\"city\":\"Paris\"}}}],\"role\":\"model\"},\"index\":0}],"
        "\"responseId\":\"r-1\"}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"get_time\","
        "\"args\":{}}}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],"
        "\"usageMetadata\":{\"promptTokenCount\":30,\"candidatesTokenCount\":15,"
        "\"totalTokenCount\":57,\"thoughtsTokenCount\":12},\"responseId\":\"r-1\"}",
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(events); i++)
        CHECK(feed(job, events[i], &fail) == 0);
    CHECK(job->done);
    CHECK(!job->include_usage);
    CHECK(wk_gemini_adapter.stream_end(job, &job->out, &fail) == 0);
    json_t *ev = sse_events(&job->out);
    CHECK(ev != NULL);
    CHECK(json_array_size(ev) == 5);
    CHECK_STR(str_at(ev, "0.choices.0.delta.role"), "assistant");
    CHECK_STR(str_at(ev, "0.choices.0.delta.reasoning_content"),
              "**Planning** I need the weather.");
    CHECK(at(ev, "0.choices.0.delta.content") == NULL);
    json_t *t0 = at(ev, "1.choices.0.delta.tool_calls.0");
    CHECK(at(ev, "1.choices.0.delta.role") == NULL);
    CHECK(int_at(t0, "index") == 0);
    CHECK(is_call_id(str_at(t0, "id")));
    CHECK_STR(str_at(t0, "type"), "function");
    CHECK_STR(str_at(t0, "function.name"), "get_weather");
    CHECK_STR(str_at(t0, "function.arguments"), "{\"city\":\"Paris\"}");
    json_t *t1 = at(ev, "2.choices.0.delta.tool_calls.0");
    CHECK(int_at(t1, "index") == 1);
    CHECK(is_call_id(str_at(t1, "id")));
    CHECK(strcmp(str_at(t0, "id"), str_at(t1, "id")) != 0);
    CHECK_STR(str_at(t1, "function.name"), "get_time");
    CHECK_STR(str_at(t1, "function.arguments"), "{}");
    CHECK_STR(str_at(ev, "3.choices.0.finish_reason"), "tool_calls");
    CHECK(finish_count(ev) == 1);
    CHECK_STR(str_at(ev, "3.id"), "r-1");
    CHECK_STR(str_at(ev, "4"), "[DONE]");
    /* thinking tokens are output tokens */
    CHECK(job->usage_prompt == 30 && job->usage_completion == 27 && job->usage_total == 57);
    json_decref(ev);
    free_job(job);
}

static void test_stream_truncated(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, true,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    wk_fail_t fail = {0};
    CHECK(feed(job,
               "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Half an\"}],"
               "\"role\":\"model\"},\"index\":0}]}",
               &fail) == 0);
    CHECK(!job->done);
    json_t *ev = sse_events(&job->out);
    CHECK(ev != NULL && json_array_size(ev) == 1);
    char want_id[64];
    snprintf(want_id, sizeof want_id, "chatcmpl-%s", job->idstr);
    CHECK_STR(str_at(ev, "0.id"), want_id);
    CHECK_STR(str_at(ev, "0.choices.0.delta.content"), "Half an");
    json_decref(ev);
    lp_buf_reset(&job->out);
    CHECK(wk_gemini_adapter.stream_end(job, &job->out, &fail) < 0);
    CHECK(fail.status == 502);
    CHECK_STR(fail.code, "upstream_stream_truncated");
    CHECK(strcmp(fail.message, "gemini ended the stream without a finishReason") == 0);
    CHECK(job->out.len == 0);
    free_job(job);
}

static void test_stream_errors(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, true,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    wk_fail_t fail = {0};
    CHECK(feed(job,
               "{\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please "
               "try again later.\",\"status\":\"UNAVAILABLE\"}}",
               &fail) < 0);
    CHECK(fail.status == 502);
    CHECK_STR(fail.code, "upstream_stream_error");
    CHECK(strstr(fail.message, "The model is overloaded") != NULL);
    CHECK(!fail.retryable);
    CHECK(feed(job, "{oops", &fail) < 0);
    CHECK(fail.status == 502);
    CHECK_STR(fail.code, "invalid_upstream_stream");
    CHECK(feed(job, "[1,2]", &fail) < 0);
    CHECK_STR(fail.code, "invalid_upstream_stream");
    CHECK(job->out.len == 0);
    free_job(job);
}

static void test_stream_blocked_and_after_finish(void)
{
    wk_job_t *job = new_job(DEP_GEM, WK_CALL_CHAT, true,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"bad\"}],"
                            "\"stream_options\":{\"include_usage\":true}}");
    wk_fail_t fail = {0};
    json_t *b = prepare(job, &fail);
    CHECK(b != NULL);
    json_decref(b);
    CHECK(feed(job,
               "{\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},"
               "\"usageMetadata\":{\"promptTokenCount\":5,\"totalTokenCount\":5},"
               "\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"blk\"}",
               &fail) == 0);
    CHECK(job->done);
    /* anything after the finish is not relayed, but its usage counts */
    CHECK(feed(job,
               "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"late\"}]},"
               "\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{"
               "\"promptTokenCount\":6,\"totalTokenCount\":6}}",
               &fail) == 0);
    CHECK(wk_gemini_adapter.stream_end(job, &job->out, &fail) == 0);
    json_t *ev = sse_events(&job->out);
    CHECK(ev != NULL);
    CHECK(json_array_size(ev) == 3);
    CHECK_STR(str_at(ev, "0.choices.0.delta.role"), "assistant");
    CHECK_STR(str_at(ev, "0.choices.0.finish_reason"), "content_filter");
    CHECK(finish_count(ev) == 1);
    CHECK(int_at(ev, "1.usage.prompt_tokens") == 6);
    CHECK(int_at(ev, "1.usage.completion_tokens") == 0);
    CHECK_STR(str_at(ev, "2"), "[DONE]");
    json_decref(ev);
    free_job(job);
}

int main(void)
{
    static const char *env[] = {"GEMINI_API_KEY", "GEMINI_API_BASE"};
    for (size_t i = 0; i < LP_ARRAY_LEN(env); i++)
        unsetenv(env[i]);
    setenv("LITELLM_MASTER_KEY", "sk-unit-test-key-0123456789", 1);
    char err[LP_ERR_LEN] = "";
    s_cfg = lp_cfg_load_string(s_cfg_text, "gemini.yaml", err);
    if (!s_cfg) {
        printf("FAIL %s: config: %s\n", __FILE__, err);
        return 1;
    }
    RUN(test_prepare_chat_basic);
    RUN(test_prepare_stream_and_defaults);
    RUN(test_prepare_api_bases);
    RUN(test_prepare_conversation);
    RUN(test_prepare_generation_config);
    RUN(test_prepare_tools);
    RUN(test_prepare_unsupported_params);
    RUN(test_prepare_bad_requests);
    RUN(test_respond_text);
    RUN(test_respond_tool_calls);
    RUN(test_respond_finish_reasons);
    RUN(test_respond_blocked_prompt);
    RUN(test_respond_invalid);
    RUN(test_errors);
    RUN(test_error_quota);
    RUN(test_embeddings_prepare);
    RUN(test_embeddings_respond);
    RUN(test_stream_text);
    RUN(test_stream_thoughts_and_tools);
    RUN(test_stream_truncated);
    RUN(test_stream_errors);
    RUN(test_stream_blocked_and_after_finish);
    lp_cfg_destroy(&s_cfg);
    return th_report();
}
