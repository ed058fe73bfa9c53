/* wk_gemini: the adapter for Google AI Studio's Gemini API (gemini/ prefix). OpenAI chat
 * requests become generateContent / streamGenerateContent?alt=sse calls and embeddings one
 * batchEmbedContents call; answers, errors and SSE streams come back in OpenAI's shapes with
 * `model` restamped to the model group, following LiteLLM's translation rules. The key goes
 * in the x-goog-api-key header, never in the URL, so no URL that reaches a log carries it. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "lp_crypto.h"
#include "lp_json.h"
#include "wk_adapter.h"

/* Used when a deployment has no api_base at all (lp_cfg normally fills the default). */
#define S_DEFAULT_BASE "https://generativelanguage.googleapis.com"
/* The API version appended to a base that does not name one. */
#define S_API_VERSION "v1beta"
/* Longest model name put in a URL path: Gemini's names are far shorter. */
#define S_MODEL_MAX 200
/* "call_" + 16 hex digits + NUL. */
#define S_CALL_ID_LEN 22

/* ---- small helpers ---- */

static bool s_ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* Gemini model ids are [A-Za-z0-9._-]; anything else could change the URL's meaning. */
static bool s_model_ok(const char *m)
{
    if (!m || !*m || strlen(m) > S_MODEL_MAX)
        return false;
    for (const char *p = m; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* The versioned API root: the base plus /v1beta, unless the base already ends in a version
 * (users copy "…/v1beta" from Google's docs into api_base). Caller frees. */
static char *s_api_root(const lp_deployment_t *d)
{
    const char *base = d->api_base && *d->api_base ? d->api_base : S_DEFAULT_BASE;
    size_t len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        len--;
    if (s_ends_with(base, len, "/" S_API_VERSION) || s_ends_with(base, len, "/v1"))
        return lp_strndup(base, len);
    return lp_asprintf("%.*s/%s", (int)len, base, S_API_VERSION);
}

/* Gemini sends function calls without ids; OpenAI clients need one per call to answer it.
 * Derived from the request id and the call's position, so a retry of the same request
 * yields the same ids and two requests never share one. */
static void s_call_id(const wk_job_t *job, size_t index, char out[S_CALL_ID_LEN])
{
    uint8_t seed[LP_REQ_ID_LEN + 8];
    memcpy(seed, job->id, LP_REQ_ID_LEN);
    for (size_t i = 0; i < 8; i++)
        seed[LP_REQ_ID_LEN + i] = (uint8_t)((uint64_t)index >> (8 * i));
    char hex[LP_SHA256_HEX_LEN];
    lp_sha256_hex(seed, sizeof seed, hex);
    snprintf(out, S_CALL_ID_LEN, "call_%.16s", hex);
}

/* OpenAI's finish_reason for a Gemini finishReason (LiteLLM's map_finish_reason); STOP with
 * function calls is "tool_calls" since Gemini does not say so itself. */
static const char *s_finish(const char *reason, bool tool_calls)
{
    static const char *filtered[] = {"SAFETY", "RECITATION", "BLOCKLIST",    "PROHIBITED_CONTENT",
                                     "SPII",   "LANGUAGE",   "IMAGE_SAFETY", "OTHER"};
    if (!reason || strcmp(reason, "STOP") == 0)
        return tool_calls ? "tool_calls" : "stop";
    if (strcmp(reason, "MAX_TOKENS") == 0)
        return "length";
    for (size_t i = 0; i < LP_ARRAY_LEN(filtered); i++) {
        if (strcmp(reason, filtered[i]) == 0)
            return "content_filter";
    }
    return "stop";
}

/* A mimeType for a file URL from its extension; Gemini needs one and images are the
 * common case, hence the JPEG default (as LiteLLM). */
static const char *s_guess_mime(const char *url)
{
    static const struct {
        const char *ext, *mime;
    } types[] = {
        {"png", "image/png"},   {"jpg", "image/jpeg"},      {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},   {"webp", "image/webp"},     {"heic", "image/heic"},
        {"heif", "image/heif"}, {"pdf", "application/pdf"}, {"mp3", "audio/mp3"},
        {"wav", "audio/wav"},   {"mp4", "video/mp4"},       {"txt", "text/plain"},
    };
    size_t end = strcspn(url, "?#");
    size_t dot = end;
    while (dot > 0 && url[dot - 1] != '.' && url[dot - 1] != '/')
        dot--;
    if (dot == 0 || url[dot - 1] != '.')
        return "image/jpeg";
    size_t n = end - dot;
    for (size_t i = 0; i < LP_ARRAY_LEN(types); i++) {
        if (strlen(types[i].ext) == n && strncasecmp(url + dot, types[i].ext, n) == 0)
            return types[i].mime;
    }
    return "image/jpeg";
}

/* ---- chat request ---- */

/* The request being translated: contents[] and systemInstruction parts under construction. */
typedef struct {
    wk_job_t *job;
    wk_fail_t *fail;
    const char *prov;
    json_t *messages; /* borrowed */
    json_t *contents;
    json_t *system;
} s_chat_t;

/* A 400 for a request Gemini cannot take, named after the provider. Returns -1. */
static int s_bad(s_chat_t *cx, const char *fmt, ...) LP_PRINTF(2, 3);
static int s_bad(s_chat_t *cx, const char *fmt, ...)
{
    char text[WK_MSG_LEN - 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return wk_fail(cx->fail, 400, NULL, false, "%s: %s", cx->prov, text);
}

/* Append parts under role, merged into the previous content when it has the same role:
 * Gemini wants user and model turns to alternate. Takes parts. */
static void s_add_content(s_chat_t *cx, const char *role, json_t *parts)
{
    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return;
    }
    size_t n = json_array_size(cx->contents);
    json_t *last = n ? json_array_get(cx->contents, n - 1) : NULL;
    const char *last_role = lp_json_str(last, "role");
    if (last_role && strcmp(last_role, role) == 0) {
        json_array_extend(json_object_get(last, "parts"), parts);
        json_decref(parts);
        return;
    }
    json_t *content = json_object();
    json_object_set_new(content, "role", json_string(role));
    json_object_set_new(content, "parts", parts);
    json_array_append_new(cx->contents, content);
}

/* A {text} part, unless empty: Gemini refuses empty text parts. */
static void s_add_text(json_t *parts, const char *text)
{
    if (!text || !*text)
        return;
    json_t *p = json_object();
    json_object_set_new(p, "text", json_string(text));
    json_array_append_new(parts, p);
}

/* A data: URL as an inlineData part ("data:<mime>;base64,<data>"). */
static int s_data_url(s_chat_t *cx, const char *url, json_t *parts)
{
    const char *head = url + 5;
    const char *comma = strchr(head, ',');
    if (!comma || !s_ends_with(head, (size_t)(comma - head), ";base64"))
        return s_bad(cx, "%s", "a data: URL must be base64 (data:<mime>;base64,<data>)");
    size_t mlen = strcspn(head, ";,");
    char *mime = mlen ? lp_strndup(head, mlen) : lp_strdup("image/jpeg");
    json_t *inl = json_object();
    json_object_set_new(inl, "mimeType", json_string(mime));
    json_object_set_new(inl, "data", json_string(comma + 1));
    free(mime);
    json_t *p = json_object();
    json_object_set_new(p, "inlineData", inl);
    json_array_append_new(parts, p);
    return 0;
}

/* An image_url: data URLs travel inline, http(s) URLs as fileData for Gemini to fetch. */
static int s_image_part(s_chat_t *cx, const json_t *image_url, json_t *parts)
{
    const char *url =
        json_is_string(image_url) ? json_string_value(image_url) : lp_json_str(image_url, "url");
    if (!url)
        return s_bad(cx, "%s", "image_url part without a url");
    if (strncmp(url, "data:", 5) == 0)
        return s_data_url(cx, url, parts);
    if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0)
        return s_bad(cx, "%s", "image_url must be an http(s) or data: URL");
    json_t *fd = json_object();
    json_object_set_new(fd, "mimeType", json_string(s_guess_mime(url)));
    json_object_set_new(fd, "fileUri", json_string(url));
    json_t *p = json_object();
    json_object_set_new(p, "fileData", fd);
    json_array_append_new(parts, p);
    return 0;
}

/* input_audio {data, format} as an inlineData part. */
static int s_audio_part(s_chat_t *cx, const json_t *audio, json_t *parts)
{
    const char *data = lp_json_str(audio, "data");
    const char *format = lp_json_str(audio, "format");
    if (!data || !format || strpbrk(format, "/;"))
        return s_bad(cx, "%s", "input_audio part needs data and format");
    char *mime = lp_asprintf("audio/%s", format);
    json_t *inl = json_object();
    json_object_set_new(inl, "mimeType", json_string(mime));
    json_object_set_new(inl, "data", json_string(data));
    free(mime);
    json_t *p = json_object();
    json_object_set_new(p, "inlineData", inl);
    json_array_append_new(parts, p);
    return 0;
}

/* One OpenAI content part appended to Gemini parts. */
static int s_content_part(s_chat_t *cx, const json_t *part, json_t *parts)
{
    if (json_is_string(part)) {
        s_add_text(parts, json_string_value(part));
        return 0;
    }
    const char *type = lp_json_str(part, "type");
    if (!type)
        return s_bad(cx, "%s", "a content part has no type");
    if (strcmp(type, "text") == 0) {
        s_add_text(parts, lp_json_str(part, "text"));
        return 0;
    }
    if (strcmp(type, "image_url") == 0)
        return s_image_part(cx, json_object_get(part, "image_url"), parts);
    if (strcmp(type, "input_audio") == 0)
        return s_audio_part(cx, json_object_get(part, "input_audio"), parts);
    if (strcmp(type, "file") == 0) {
        const char *fd = lp_json_str(json_object_get(part, "file"), "file_data");
        if (fd && strncmp(fd, "data:", 5) == 0)
            return s_data_url(cx, fd, parts);
        return s_bad(cx, "%s", "file parts need file_data as a base64 data: URL");
    }
    if (strcmp(type, "refusal") == 0)
        return 0; /* an earlier refusal of ours: nothing for the model to read */
    return s_bad(cx, "content parts of type '%s' are not supported", type);
}

/* A message's content (string, parts array or null) appended to Gemini parts. */
static int s_content(s_chat_t *cx, const json_t *content, json_t *parts)
{
    if (!content || json_is_null(content))
        return 0;
    if (json_is_string(content)) {
        s_add_text(parts, json_string_value(content));
        return 0;
    }
    if (!json_is_array(content))
        return s_bad(cx, "%s", "message content must be a string or an array of parts");
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        if (s_content_part(cx, part, parts) < 0)
            return -1;
    }
    return 0;
}

/* The text of a message's content: the string, or its text parts joined. Caller frees. */
static char *s_content_text(const json_t *content)
{
    if (json_is_string(content))
        return lp_strdup(json_string_value(content));
    lp_buf_t b = {0};
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *t = json_is_string(part) ? json_string_value(part) : lp_json_str(part, "text");
        if (t)
            lp_buf_puts(&b, t);
    }
    char *s = lp_buf_steal(&b, NULL);
    return s ? s : lp_strdup("");
}

/* assistant tool_calls -> functionCall parts; arguments (a JSON string) become args. */
static int s_tool_calls(s_chat_t *cx, const json_t *calls, json_t *parts)
{
    size_t i;
    json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        json_t *fn = json_object_get(tc, "function");
        const char *name = lp_json_str(fn, "name");
        if (!name)
            return s_bad(cx, "%s", "an assistant tool call has no function name");
        const char *argstr = lp_json_str(fn, "arguments");
        json_t *args = NULL;
        if (!argstr || !*argstr) {
            args = json_object();
        } else {
            char err[LP_ERR_LEN];
            args = lp_json_parse(argstr, strlen(argstr), err);
            if (!json_is_object(args)) {
                json_decref(args);
                return s_bad(cx, "the arguments of tool call '%s' are not a JSON object", name);
            }
        }
        json_t *call = json_object();
        json_object_set_new(call, "name", json_string(name));
        json_object_set_new(call, "args", args);
        json_t *p = json_object();
        json_object_set_new(p, "functionCall", call);
        json_array_append_new(parts, p);
    }
    return 0;
}

/* The function name of the tool call `id`, from the assistant messages before index `upto`:
 * Gemini's functionResponse is matched by name, OpenAI's tool result by id. Borrowed. */
static const char *s_tool_name(const json_t *messages, size_t upto, const char *id)
{
    for (size_t i = upto; i-- > 0;) {
        json_t *calls = json_object_get(json_array_get(messages, i), "tool_calls");
        size_t k;
        json_t *tc;
        json_array_foreach(calls, k, tc)
        {
            const char *tid = lp_json_str(tc, "id");
            if (tid && strcmp(tid, id) == 0)
                return lp_json_str(json_object_get(tc, "function"), "name");
        }
    }
    return NULL;
}

/* A tool (or legacy function) result -> a user-role functionResponse part. The response must
 * be an object: JSON object content goes as is, anything else wrapped as {"content": text}. */
static int s_tool_result(s_chat_t *cx, const json_t *msg, size_t index)
{
    const char *id = lp_json_str(msg, "tool_call_id");
    const char *name = id ? s_tool_name(cx->messages, index, id) : NULL;
    if (!name)
        name = lp_json_str(msg, "name");
    if (!name)
        return s_bad(cx, "tool message '%s' answers no earlier assistant tool call",
                     id ? id : "(no tool_call_id)");
    char *text = s_content_text(json_object_get(msg, "content"));
    char err[LP_ERR_LEN];
    json_t *response = lp_json_parse(text, strlen(text), err);
    if (!json_is_object(response)) {
        json_decref(response);
        response = json_object();
        json_object_set_new(response, "content", lp_json_text(text));
    }
    free(text);
    json_t *fr = json_object();
    json_object_set_new(fr, "name", json_string(name));
    json_object_set_new(fr, "response", response);
    json_t *p = json_object();
    json_object_set_new(p, "functionResponse", fr);
    json_t *parts = json_array();
    json_array_append_new(parts, p);
    s_add_content(cx, "user", parts);
    return 0;
}

/* messages[] -> contents[] and systemInstruction parts. */
static int s_messages(s_chat_t *cx)
{
    if (!json_is_array(cx->messages))
        return s_bad(cx, "%s", "messages must be an array");
    size_t i;
    json_t *msg;
    json_array_foreach(cx->messages, i, msg)
    {
        const char *role = lp_json_str(msg, "role");
        if (!role)
            return s_bad(cx, "%s", "every message needs a role");
        json_t *content = json_object_get(msg, "content");
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            if (s_content(cx, content, cx->system) < 0)
                return -1;
            continue;
        }
        if (strcmp(role, "tool") == 0 || strcmp(role, "function") == 0) {
            if (s_tool_result(cx, msg, i) < 0)
                return -1;
            continue;
        }
        bool assistant = strcmp(role, "assistant") == 0;
        if (!assistant && strcmp(role, "user") != 0)
            return s_bad(cx, "unknown message role '%s'", role);
        json_t *parts = json_array();
        if (s_content(cx, content, parts) < 0 ||
            (assistant && s_tool_calls(cx, json_object_get(msg, "tool_calls"), parts) < 0)) {
            json_decref(parts);
            return -1;
        }
        s_add_content(cx, assistant ? "model" : "user", parts);
    }
    return 0;
}

/* Numeric sampling parameters, renamed; integer ones must be JSON integers. */
static int s_number_params(s_chat_t *cx, const json_t *src, json_t *cfg)
{
    static const struct {
        const char *from, *to;
        bool integer;
    } map[] = {
        {"temperature", "temperature", false},
        {"top_p", "topP", false},
        {"top_k", "topK", true},
        {"n", "candidateCount", true},
        {"presence_penalty", "presencePenalty", false},
        {"frequency_penalty", "frequencyPenalty", false},
        {"seed", "seed", true},
        {"max_tokens", "maxOutputTokens", true},
        {"max_completion_tokens", "maxOutputTokens", true}, /* wins over max_tokens */
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(map); i++) {
        json_t *v = json_object_get(src, map[i].from);
        if (!v || json_is_null(v))
            continue;
        if (map[i].integer ? !json_is_integer(v) : !json_is_number(v))
            return s_bad(cx, map[i].integer ? "'%s' must be an integer" : "'%s' must be a number",
                         map[i].from);
        json_object_set(cfg, map[i].to, v);
    }
    return 0;
}

/* stop (string or array of strings) -> stopSequences. */
static int s_stop(s_chat_t *cx, const json_t *stop, json_t *cfg)
{
    if (!stop || json_is_null(stop))
        return 0;
    json_t *seqs = json_array();
    if (json_is_string(stop)) {
        json_array_append(seqs, (json_t *)stop);
    } else if (json_is_array(stop)) {
        size_t i;
        json_t *s;
        json_array_foreach(stop, i, s)
        {
            if (!json_is_string(s)) {
                json_decref(seqs);
                return s_bad(cx, "%s", "'stop' must be a string or an array of strings");
            }
            json_array_append(seqs, s);
        }
    } else {
        json_decref(seqs);
        return s_bad(cx, "%s", "'stop' must be a string or an array of strings");
    }
    if (json_array_size(seqs))
        json_object_set_new(cfg, "stopSequences", seqs);
    else
        json_decref(seqs);
    return 0;
}

/* response_format -> responseMimeType (+ responseSchema for json_schema). */
static int s_response_format(s_chat_t *cx, const json_t *rf, json_t *cfg)
{
    if (!rf || json_is_null(rf))
        return 0;
    const char *type = lp_json_str(rf, "type");
    if (!type)
        return s_bad(cx, "%s", "response_format needs a type");
    if (strcmp(type, "text") == 0)
        return 0;
    if (strcmp(type, "json_object") != 0 && strcmp(type, "json_schema") != 0)
        return s_bad(cx, "response_format type '%s' is not supported", type);
    json_object_set_new(cfg, "responseMimeType", json_string("application/json"));
    json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
    if (strcmp(type, "json_schema") == 0 && json_is_object(schema))
        json_object_set(cfg, "responseSchema", schema);
    return 0;
}

/* An empty OBJECT schema: Gemini rejects "properties: {}" for OBJECT, and a function without
 * parameters is declared by leaving them out. */
static bool s_empty_object_schema(const json_t *params)
{
    const char *type = lp_json_str(params, "type");
    json_t *props = json_object_get(params, "properties");
    return type && strcmp(type, "object") == 0 && json_object_size(props) == 0 &&
           !json_object_get(params, "anyOf") && !json_object_get(params, "oneOf");
}

/* tools -> [{functionDeclarations:[{name, description, parameters}]}]. */
static int s_tools(s_chat_t *cx, const json_t *tools, json_t *body)
{
    if (!tools || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return s_bad(cx, "%s", "'tools' must be an array");
    json_t *decls = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *type = lp_json_str(t, "type");
        json_t *fn = json_object_get(t, "function");
        const char *name = lp_json_str(fn, "name");
        if ((type && strcmp(type, "function") != 0) || !name) {
            json_decref(decls);
            return s_bad(cx, "tools of type '%s' are not supported (function tools only)",
                         type ? type : "(none)");
        }
        json_t *decl = json_object();
        json_object_set_new(decl, "name", json_string(name));
        json_t *desc = json_object_get(fn, "description");
        if (json_is_string(desc))
            json_object_set(decl, "description", desc);
        json_t *params = json_object_get(fn, "parameters");
        if (json_is_object(params) && !s_empty_object_schema(params))
            json_object_set(decl, "parameters", params);
        json_array_append_new(decls, decl);
    }
    if (json_array_size(decls) == 0) {
        json_decref(decls);
        return 0;
    }
    json_t *tool = json_object();
    json_object_set_new(tool, "functionDeclarations", decls);
    json_t *list = json_array();
    json_array_append_new(list, tool);
    json_object_set_new(body, "tools", list);
    return 0;
}

/* tool_choice -> toolConfig.functionCallingConfig {mode, allowedFunctionNames?}. */
static int s_tool_choice(s_chat_t *cx, const json_t *choice, json_t *body)
{
    if (!choice || json_is_null(choice))
        return 0;
    const char *mode = NULL;
    const char *name = NULL;
    if (json_is_string(choice)) {
        const char *s = json_string_value(choice);
        if (strcmp(s, "auto") == 0)
            mode = "AUTO";
        else if (strcmp(s, "required") == 0 || strcmp(s, "any") == 0)
            mode = "ANY";
        else if (strcmp(s, "none") == 0)
            mode = "NONE";
    } else {
        name = lp_json_str(json_object_get(choice, "function"), "name");
        if (name)
            mode = "ANY";
    }
    if (!mode)
        return s_bad(cx, "%s",
                     "tool_choice must be auto, required, none or {\"type\":\"function\","
                     "\"function\":{\"name\":...}}");
    json_t *fcc = json_object();
    json_object_set_new(fcc, "mode", json_string(mode));
    if (name) {
        json_t *names = json_array();
        json_array_append_new(names, json_string(name));
        json_object_set_new(fcc, "allowedFunctionNames", names);
    }
    json_t *tc = json_object();
    json_object_set_new(tc, "functionCallingConfig", fcc);
    json_object_set_new(body, "toolConfig", tc);
    return 0;
}

/* OpenAI parameters Gemini has no equivalent for: refused, or dropped under drop_params. */
static int s_unsupported(const wk_job_t *job, const json_t *src, wk_fail_t *fail)
{
    if (lp_json_bool(src, "logprobs", false) && wk_unsupported(job, "logprobs", fail) < 0)
        return -1;
    json_t *top = json_object_get(src, "top_logprobs");
    if (top && !json_is_null(top) && wk_unsupported(job, "top_logprobs", fail) < 0)
        return -1;
    json_t *bias = json_object_get(src, "logit_bias");
    if (bias && !json_is_null(bias) && !(json_is_object(bias) && json_object_size(bias) == 0) &&
        wk_unsupported(job, "logit_bias", fail) < 0)
        return -1;
    if (json_is_false(json_object_get(src, "parallel_tool_calls")) &&
        wk_unsupported(job, "parallel_tool_calls", fail) < 0)
        return -1;
    return 0;
}

/* The generateContent body for an OpenAI chat request (src: the client's request merged with
 * the deployment's defaults). *out is the caller's on success. */
static int s_chat_body(wk_job_t *job, const json_t *src, json_t **out, wk_fail_t *fail)
{
    if (s_unsupported(job, src, fail) < 0)
        return -1;
    s_chat_t cx = {
        job,          fail,        job->d->provider->name, json_object_get(src, "messages"),
        json_array(), json_array()};
    json_t *body = json_object();
    json_t *cfg = json_object();
    int rc = -1;
    if (s_messages(&cx) < 0 || s_number_params(&cx, src, cfg) < 0 ||
        s_stop(&cx, json_object_get(src, "stop"), cfg) < 0 ||
        s_response_format(&cx, json_object_get(src, "response_format"), cfg) < 0 ||
        s_tools(&cx, json_object_get(src, "tools"), body) < 0 ||
        s_tool_choice(&cx, json_object_get(src, "tool_choice"), body) < 0)
        goto done;
    json_object_set(body, "contents", cx.contents);
    if (json_array_size(cx.system)) {
        json_t *si = json_object();
        json_object_set(si, "parts", cx.system);
        json_object_set_new(body, "systemInstruction", si);
    }
    if (json_object_size(cfg))
        json_object_set(body, "generationConfig", cfg);
    json_t *safety = json_object_get(src, "safety_settings");
    if (json_is_array(safety))
        json_object_set(body, "safetySettings", safety);
    if (job->stream)
        job->include_usage =
            lp_json_bool(json_object_get(src, "stream_options"), "include_usage", false);
    *out = body;
    body = NULL;
    rc = 0;
done:
    json_decref(body);
    json_decref(cfg);
    json_decref(cx.contents);
    json_decref(cx.system);
    return rc;
}

/* ---- embeddings request ---- */

/* task_type / input_type -> taskType: LiteLLM's "query"/"document", or Google's own name. */
static const char *s_task_type(const char *t)
{
    if (strcmp(t, "query") == 0)
        return "RETRIEVAL_QUERY";
    if (strcmp(t, "document") == 0)
        return "RETRIEVAL_DOCUMENT";
    if (!*t)
        return NULL;
    for (const char *p = t; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || *p == '_'))
            return NULL;
    }
    return t;
}

/* The batchEmbedContents body: one request per input, in input order. */
static int s_embed_body(wk_job_t *job, const json_t *src, json_t **out, wk_fail_t *fail)
{
    const char *prov = job->d->provider->name;
    json_t *input = json_object_get(src, "input");
    json_t *inputs = json_array();
    if (json_is_string(input)) {
        json_array_append(inputs, input);
    } else if (json_is_array(input) && json_array_size(input) > 0) {
        size_t i;
        json_t *v;
        json_array_foreach(input, i, v)
        {
            if (!json_is_string(v)) {
                json_decref(inputs);
                return wk_fail(fail, 400, NULL, false,
                               "%s embeddings take text: 'input' must be a string or an array "
                               "of strings (token arrays are not accepted)",
                               prov);
            }
            json_array_append(inputs, v);
        }
    } else {
        json_decref(inputs);
        return wk_fail(fail, 400, NULL, false,
                       "%s embeddings: 'input' must be a non-empty string or array of strings",
                       prov);
    }
    const char *task = lp_json_str(src, "task_type");
    if (!task)
        task = lp_json_str(src, "input_type");
    const char *task_type = task ? s_task_type(task) : NULL;
    json_t *dims = json_object_get(src, "dimensions");
    const char *enc = lp_json_str(src, "encoding_format");
    const char *bad = NULL;
    if (task && !task_type)
        bad = "task_type/input_type must be query, document or a Gemini taskType "
              "(e.g. SEMANTIC_SIMILARITY)";
    else if (dims && !json_is_null(dims) &&
             (!json_is_integer(dims) || json_integer_value(dims) <= 0))
        bad = "'dimensions' must be a positive integer";
    else if (enc && strcmp(enc, "float") != 0 && strcmp(enc, "base64") != 0)
        bad = "'encoding_format' must be float or base64";
    if (bad) {
        json_decref(inputs);
        return wk_fail(fail, 400, NULL, false, "%s embeddings: %s", prov, bad);
    }
    char *model = lp_asprintf("models/%s", job->d->provider_model);
    json_t *requests = json_array();
    size_t i;
    json_t *text;
    json_array_foreach(inputs, i, text)
    {
        json_t *part = json_object();
        json_object_set(part, "text", text);
        json_t *parts = json_array();
        json_array_append_new(parts, part);
        json_t *content = json_object();
        json_object_set_new(content, "parts", parts);
        json_t *r = json_object();
        json_object_set_new(r, "model", json_string(model));
        json_object_set_new(r, "content", content);
        if (task_type)
            json_object_set_new(r, "taskType", json_string(task_type));
        if (json_is_integer(dims))
            json_object_set(r, "outputDimensionality", dims);
        json_array_append_new(requests, r);
    }
    free(model);
    json_decref(inputs);
    json_t *body = json_object();
    json_object_set_new(body, "requests", requests);
    *out = body;
    return 0;
}

/* ---- prepare ---- */

/* URL, headers and body for the call. Everything the client could get wrong is refused
 * here, before a provider call is spent on it. */
static int s_prepare(wk_job_t *job, wk_fail_t *fail)
{
    const lp_deployment_t *d = job->d;
    const char *prov = d->provider->name;
    if (job->call == WK_CALL_COMPLETION)
        return wk_fail(fail, 400, NULL, false,
                       "%s supports chat completions and embeddings, not text completions", prov);
    if (job->call == WK_CALL_EMBEDDING && job->stream)
        return wk_fail(fail, 400, NULL, false, "%s embeddings cannot be streamed", prov);
    if (!s_model_ok(d->provider_model))
        return wk_fail(fail, 500, "invalid_deployment", true,
                       "deployment %s: '%s' is not a valid %s model name ([A-Za-z0-9._-] only)",
                       d->id, d->model, prov);
    if (d->api_key && strpbrk(d->api_key, "\r\n"))
        return wk_fail(fail, 500, "invalid_deployment", true,
                       "deployment %s: the API key contains a line break", d->id);
    json_t *src = wk_upstream_body(job);
    json_t *body = NULL;
    int rc = job->call == WK_CALL_EMBEDDING ? s_embed_body(job, src, &body, fail)
                                            : s_chat_body(job, src, &body, fail);
    json_decref(src);
    if (rc < 0)
        return -1;
    char *root = s_api_root(d);
    const char *method = job->call == WK_CALL_EMBEDDING ? "batchEmbedContents"
                         : job->stream                  ? "streamGenerateContent?alt=sse"
                                                        : "generateContent";
    job->url = lp_asprintf("%s/models/%s:%s", root, d->provider_model, method);
    free(root);
    job->body = lp_json_dump(body, &job->body_len);
    json_decref(body);
    wk_header(&job->headers, "Content-Type", "application/json");
    wk_header(&job->headers, "Accept", job->stream ? "text/event-stream" : "application/json");
    if (d->api_key && *d->api_key)
        wk_header(&job->headers, "x-goog-api-key", d->api_key);
    wk_extra_headers(job, &job->headers);
    return 0;
}

/* ---- chat response ---- */

/* Gemini usageMetadata as OpenAI counts; thinking tokens are billed as output, so they count
 * as completion tokens (and are reported again as reasoning_tokens). */
static void s_usage_counts(const json_t *um, long long *p, long long *c, long long *t)
{
    *p = lp_json_tokens(um, "promptTokenCount", 0);
    *c =
        lp_json_tokens(um, "candidatesTokenCount", 0) + lp_json_tokens(um, "thoughtsTokenCount", 0);
    *t = lp_json_tokens(um, "totalTokenCount", 0);
    if (!*t)
        *t = *p + *c;
}

/* OpenAI's usage object, with cache and reasoning details when Gemini gives them. */
static json_t *s_usage_json(const json_t *um, long long p, long long c, long long t)
{
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(p));
    json_object_set_new(usage, "completion_tokens", json_integer(c));
    json_object_set_new(usage, "total_tokens", json_integer(t));
    json_t *cached = json_object_get(um, "cachedContentTokenCount");
    if (json_is_integer(cached)) {
        json_t *d = json_object();
        json_object_set(d, "cached_tokens", cached);
        json_object_set_new(usage, "prompt_tokens_details", d);
    }
    json_t *thoughts = json_object_get(um, "thoughtsTokenCount");
    if (json_is_integer(thoughts)) {
        json_t *d = json_object();
        json_object_set(d, "reasoning_tokens", thoughts);
        json_object_set_new(usage, "completion_tokens_details", d);
    }
    return usage;
}

/* A functionCall part as an OpenAI tool call; NULL when it has no name. */
static json_t *s_tool_call(const wk_job_t *job, const json_t *fc, size_t index)
{
    const char *name = lp_json_str(fc, "name");
    if (!name)
        return NULL;
    json_t *args = json_object_get(fc, "args");
    char *argstr = json_is_object(args) ? lp_json_dump(args, NULL) : lp_strdup("{}");
    char id[S_CALL_ID_LEN];
    s_call_id(job, index, id);
    json_t *fn = json_object();
    json_object_set_new(fn, "name", json_string(name));
    json_object_set_new(fn, "arguments", json_string(argstr));
    free(argstr);
    json_t *tc = json_object();
    json_object_set_new(tc, "id", json_string(id));
    json_object_set_new(tc, "type", json_string("function"));
    json_object_set_new(tc, "function", fn);
    return tc;
}

/* One candidate as an OpenAI choice; *calls numbers tool calls across candidates so ids stay
 * unique. NULL on a malformed function call. */
static json_t *s_choice(const wk_job_t *job, const json_t *cand, size_t pos, size_t *calls)
{
    lp_buf_t text = {0}, thought = {0};
    bool has_text = false;
    json_t *tool_calls = json_array();
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(json_object_get(cand, "content"), "parts"), i, part)
    {
        json_t *fc = json_object_get(part, "functionCall");
        const char *t = lp_json_str(part, "text");
        if (json_is_object(fc)) {
            json_t *tc = s_tool_call(job, fc, (*calls)++);
            if (!tc) {
                json_decref(tool_calls);
                lp_buf_free(&text);
                lp_buf_free(&thought);
                return NULL;
            }
            json_array_append_new(tool_calls, tc);
        } else if (t && lp_json_bool(part, "thought", false)) {
            lp_buf_puts(&thought, t);
        } else if (t) {
            lp_buf_puts(&text, t);
            has_text = true;
        }
    }
    bool has_calls = json_array_size(tool_calls) > 0;
    json_t *msg = json_object();
    json_object_set_new(msg, "role", json_string("assistant"));
    json_object_set_new(msg, "content",
                        has_text ? json_string(text.data ? text.data : "") : json_null());
    if (thought.len)
        json_object_set_new(msg, "reasoning_content", json_string(thought.data));
    if (has_calls)
        json_object_set(msg, "tool_calls", tool_calls);
    json_decref(tool_calls);
    lp_buf_free(&text);
    lp_buf_free(&thought);
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(lp_json_int(cand, "index", (long long)pos)));
    json_object_set_new(choice, "message", msg);
    json_object_set_new(choice, "finish_reason",
                        json_string(s_finish(lp_json_str(cand, "finishReason"), has_calls)));
    return choice;
}

/* The choice for a prompt Gemini refused to answer (or answered with no candidate). */
static json_t *s_empty_choice(const json_t *feedback)
{
    json_t *msg = json_object();
    json_object_set_new(msg, "role", json_string("assistant"));
    json_object_set_new(msg, "content", json_null());
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "message", msg);
    bool blocked = lp_json_str(feedback, "blockReason") != NULL;
    json_object_set_new(choice, "finish_reason", json_string(blocked ? "content_filter" : "stop"));
    return choice;
}

/* generateContent answer -> chat.completion. A blocked prompt is still a 200 for the
 * client: one choice with no content and finish_reason content_filter, as OpenAI does. */
static int s_respond_chat(wk_job_t *job, json_t *resp, wk_result_t *out, wk_fail_t *fail)
{
    json_t *cands = json_object_get(resp, "candidates");
    json_t *feedback = json_object_get(resp, "promptFeedback");
    if (!json_is_array(cands) && !json_is_object(feedback))
        return wk_fail(fail, 502, "invalid_upstream_response", true,
                       "%s returned a response that is not a generateContent object",
                       job->d->provider->name);
    json_t *choices = json_array();
    size_t calls = 0, i;
    json_t *cand;
    json_array_foreach(cands, i, cand)
    {
        json_t *choice = json_is_object(cand) ? s_choice(job, cand, i, &calls) : NULL;
        if (!choice) {
            json_decref(choices);
            return wk_fail(fail, 502, "invalid_upstream_response", true,
                           "%s returned a malformed candidate", job->d->provider->name);
        }
        json_array_append_new(choices, choice);
    }
    if (json_array_size(choices) == 0)
        json_array_append_new(choices, s_empty_choice(feedback));
    json_t *um = json_object_get(resp, "usageMetadata");
    s_usage_counts(um, &out->prompt_tokens, &out->completion_tokens, &out->total_tokens);
    const char *rid = lp_json_str(resp, "responseId");
    char *id = rid && *rid ? lp_strdup(rid) : lp_asprintf("chatcmpl-%s", job->idstr);
    json_t *r = json_object();
    json_object_set_new(r, "id", lp_json_text(id));
    json_object_set_new(r, "object", json_string("chat.completion"));
    json_object_set_new(r, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(r, "model", json_string(job->group));
    json_object_set_new(r, "choices", choices);
    json_object_set_new(
        r, "usage",
        s_usage_json(um, out->prompt_tokens, out->completion_tokens, out->total_tokens));
    free(id);
    out->response = r;
    return 0;
}

/* ---- embeddings response ---- */

/* values as OpenAI's base64: the little-endian float32 bytes, standard alphabet, padded. */
static json_t *s_base64_floats(const json_t *values)
{
    size_t n = json_array_size(values);
    unsigned char *raw = lp_malloc(n * 4 + 1);
    size_t i;
    json_t *v;
    json_array_foreach(values, i, v)
    {
        float f = (float)json_number_value(v);
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        for (size_t k = 0; k < 4; k++)
            raw[i * 4 + k] = (unsigned char)(bits >> (8 * k));
    }
    char *b64 = lp_malloc(4 * ((n * 4 + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)b64, raw, (int)(n * 4));
    json_t *s = json_stringn(b64, len > 0 ? (size_t)len : 0);
    free(raw);
    free(b64);
    return s;
}

/* Every value a number, and few enough that their bytes fit EVP_EncodeBlock's int. */
static bool s_values_ok(const json_t *values)
{
    if (!json_is_array(values) || json_array_size(values) > (size_t)(1 << 26))
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(values, i, v)
    {
        if (!json_is_number(v))
            return false;
    }
    return true;
}

/* batchEmbedContents answer -> OpenAI's embeddings list, in input order. Gemini does not
 * always count embedding tokens, hence the estimate. */
static int s_respond_embed(wk_job_t *job, json_t *resp, wk_result_t *out, wk_fail_t *fail)
{
    const char *prov = job->d->provider->name;
    json_t *embs = json_object_get(resp, "embeddings");
    json_t *input = json_object_get(job->req, "input");
    size_t want = json_is_string(input) ? 1 : json_array_size(input);
    if (!json_is_array(embs) || json_array_size(embs) != want)
        return wk_fail(fail, 502, "invalid_upstream_response", true,
                       "%s returned %zu embeddings for %zu inputs", prov,
                       json_is_array(embs) ? json_array_size(embs) : 0, want);
    const char *enc = lp_json_str(job->req, "encoding_format");
    bool b64 = enc && strcmp(enc, "base64") == 0;
    json_t *data = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(embs, i, e)
    {
        json_t *values = json_object_get(e, "values");
        if (!s_values_ok(values)) {
            json_decref(data);
            return wk_fail(fail, 502, "invalid_upstream_response", true,
                           "%s returned an embedding without numeric values", prov);
        }
        json_t *item = json_object();
        json_object_set_new(item, "object", json_string("embedding"));
        json_object_set_new(item, "index", json_integer((json_int_t)i));
        json_object_set_new(item, "embedding", b64 ? s_base64_floats(values) : json_copy(values));
        json_array_append_new(data, item);
    }
    json_t *um = json_object_get(resp, "usageMetadata");
    long long p = lp_json_tokens(um, "promptTokenCount", -1);
    if (p < 0)
        p = wk_estimate_tokens(wk_prompt_bytes(job->req));
    out->prompt_tokens = p;
    out->completion_tokens = 0;
    out->total_tokens = p;
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(p));
    json_object_set_new(usage, "total_tokens", json_integer(p));
    json_t *r = json_object();
    json_object_set_new(r, "object", json_string("list"));
    json_object_set_new(r, "data", data);
    json_object_set_new(r, "model", json_string(job->group));
    json_object_set_new(r, "usage", usage);
    out->response = r;
    return 0;
}

/* Any 2xx answer must be a JSON object before either translation looks at it. */
static int s_respond(wk_job_t *job, wk_result_t *out, wk_fail_t *fail)
{
    char err[LP_ERR_LEN];
    json_t *resp = lp_json_parse(job->resp.data ? job->resp.data : "", job->resp.len, err);
    if (!json_is_object(resp)) {
        json_decref(resp);
        return wk_fail(fail, 502, "invalid_upstream_response", true,
                       "%s returned a response that is not a JSON object", job->d->provider->name);
    }
    int rc = job->call == WK_CALL_EMBEDDING ? s_respond_embed(job, resp, out, fail)
                                            : s_respond_chat(job, resp, out, fail);
    json_decref(resp);
    return rc;
}

/* ---- errors ---- */

/* Google's RetryInfo.retryDelay ("37s", "0.5s") in ms, or -1. */
static long long s_retry_delay(const json_t *error)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(error, "details"), i, d)
    {
        const char *type = lp_json_str(d, "@type");
        const char *delay = lp_json_str(d, "retryDelay");
        if (!type || !delay || !strstr(type, "google.rpc.RetryInfo"))
            continue;
        char *end = NULL;
        double s = strtod(delay, &end);
        if (end != delay && strcmp(end, "s") == 0 && s >= 0 && s < 86400)
            return (long long)(s * 1000.0);
    }
    return -1;
}

/* Gemini's words for a prompt longer than the model's context. */
static bool s_context_error(const char *text)
{
    static const char *phrases[] = {"exceeds the maximum number of tokens", "input token count",
                                    "context length", "context window", "too many tokens"};
    for (size_t i = 0; i < LP_ARRAY_LEN(phrases); i++) {
        if (strcasestr(text, phrases[i]))
            return true;
    }
    return false;
}

/* Google's {"error":{code, message, status}} as the client's failure: status-based mapping,
 * then Gemini's status names for the cases the HTTP code does not tell apart. */
static void s_error(wk_job_t *job, wk_fail_t *fail)
{
    char err[LP_ERR_LEN];
    char text[WK_MSG_LEN - 64];
    json_t *body = lp_json_parse(job->resp.data ? job->resp.data : "", job->resp.len, err);
    /* streamGenerateContent without alt=sse wraps errors in an array: accept both */
    json_t *root = json_is_array(body) ? json_array_get(body, 0) : body;
    json_t *e = json_object_get(root, "error");
    const char *msg = json_is_string(e) ? json_string_value(e) : lp_json_str(e, "message");
    const char *gstatus = lp_json_str(e, "status");
    lp_strlcpy(text, msg ? msg : "", sizeof text);
    wk_fail_from_status(fail, job->status);
    wk_scrub(text, job->d->api_key);
    if (!text[0])
        snprintf(text, sizeof text, "HTTP %ld without an error message", job->status);
    snprintf(fail->message, sizeof fail->message, "%s error %ld: %s", job->d->provider->name,
             job->status, text);
    if (gstatus && strcmp(gstatus, "RESOURCE_EXHAUSTED") == 0) {
        fail->status = 429;
        fail->retryable = true;
    }
    bool invalid = gstatus ? strcmp(gstatus, "INVALID_ARGUMENT") == 0 : job->status == 400;
    if (invalid && s_context_error(text)) {
        fail->status = 400;
        fail->code = "context_length_exceeded";
        fail->retryable = false;
    }
    /* wk_call copies job->retry_after_ms into the failure: Google puts its delay in the body */
    long long delay = s_retry_delay(e);
    if (job->retry_after_ms < 0 && delay >= 0)
        job->retry_after_ms = delay;
    json_decref(body);
}

/* ---- streams ---- */

/* What a stream remembers between provider events, kept in the job between them. */
typedef struct {
    uint32_t tool_calls; /* function calls relayed so far: the next delta index */
    bool role_sent;      /* the first chunk, with delta.role, went out */
} s_stream_t;

static s_stream_t s_stream_load(const wk_job_t *job)
{
    s_stream_t st = {(uint32_t)job->tool_calls, job->role_sent};
    return st;
}

static void s_stream_save(wk_job_t *job, const s_stream_t *st)
{
    job->tool_calls = (int)st->tool_calls;
    job->role_sent = st->role_sent;
}

static void s_emit(wk_job_t *job, s_stream_t *st, lp_buf_t *out, long long index, json_t *delta,
                   const char *finish)
{
    if (!st->role_sent) {
        json_t *d = json_object();
        json_object_set_new(d, "role", json_string("assistant"));
        json_object_update(d, delta);
        json_decref(delta);
        delta = d;
        st->role_sent = true;
    }
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(index));
    json_object_set_new(choice, "delta", delta);
    json_object_set_new(choice, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *choices = json_array();
    json_array_append_new(choices, choice);
    json_t *chunk = json_object();
    json_object_set_new(chunk, "id", lp_json_text(job->chunk_id));
    json_object_set_new(chunk, "object", json_string("chat.completion.chunk"));
    json_object_set_new(chunk, "created", json_integer(job->created));
    json_object_set_new(chunk, "model", json_string(job->group));
    json_object_set_new(chunk, "choices", choices);
    wk_sse_emit(out, chunk);
    json_decref(chunk);
    if (finish)
        job->finish_seen = true;
}

/* One part of a streamed candidate as a delta chunk (text, thought or a whole call). */
static void s_stream_part(wk_job_t *job, s_stream_t *st, lp_buf_t *out, long long index,
                          const json_t *part)
{
    json_t *fc = json_object_get(part, "functionCall");
    const char *text = lp_json_str(part, "text");
    if (json_is_object(fc)) {
        json_t *tc = s_tool_call(job, fc, st->tool_calls);
        if (!tc)
            return; /* a call without a name cannot be answered: not relayed */
        json_object_set_new(tc, "index", json_integer(st->tool_calls));
        st->tool_calls++;
        json_t *fn = json_object_get(tc, "function");
        job->content_bytes += json_string_length(json_object_get(fn, "name")) +
                              json_string_length(json_object_get(fn, "arguments"));
        json_t *calls = json_array();
        json_array_append_new(calls, tc);
        json_t *delta = json_object();
        json_object_set_new(delta, "tool_calls", calls);
        s_emit(job, st, out, index, delta, NULL);
    } else if (text && *text) {
        bool thought = lp_json_bool(part, "thought", false);
        json_t *delta = json_object();
        json_object_set_new(delta, thought ? "reasoning_content" : "content", json_string(text));
        job->content_bytes += strlen(text);
        s_emit(job, st, out, index, delta, NULL);
    }
}

/* Usage of a stream event; Gemini repeats it growing, the last one is the total. */
static void s_stream_take_usage(wk_job_t *job, const json_t *um)
{
    job->have_usage = true;
    s_usage_counts(um, &job->usage_prompt, &job->usage_completion, &job->usage_total);
}

/* One streamGenerateContent event (a whole GenerateContentResponse) as OpenAI chunks. The
 * event that carries a finishReason ends the stream (Gemini sends no [DONE]). */
static int s_stream_event(wk_job_t *job, const char *event, const char *data, size_t len,
                          lp_buf_t *out, wk_fail_t *fail)
{
    LP_UNUSED(event);
    const char *prov = job->d->provider->name;
    if (len == 0)
        return 0;
    char err[LP_ERR_LEN];
    json_t *ev = lp_json_parse(data, len, err);
    if (!json_is_object(ev)) {
        json_decref(ev);
        return wk_fail(fail, 502, "invalid_upstream_stream", false,
                       "%s sent an invalid stream event: %s", prov, ev ? "not a JSON object" : err);
    }
    json_t *error = json_object_get(ev, "error");
    if (error) {
        char text[256];
        const char *msg =
            json_is_string(error) ? json_string_value(error) : lp_json_str(error, "message");
        lp_strlcpy(text, msg ? msg : "error event", sizeof text);
        wk_scrub(text, job->d->api_key);
        json_decref(ev);
        return wk_fail(fail, 502, "upstream_stream_error", false, "%s stream error: %s", prov,
                       text);
    }
    json_t *um = json_object_get(ev, "usageMetadata");
    if (json_is_object(um))
        s_stream_take_usage(job, um);
    if (job->done) {
        json_decref(ev);
        return 0; /* the finish went out: nothing after it is relayed */
    }
    const char *rid = lp_json_str(ev, "responseId");
    if (rid && *rid)
        lp_strlcpy(job->chunk_id, rid, sizeof job->chunk_id);
    else if (!job->chunk_id[0])
        snprintf(job->chunk_id, sizeof job->chunk_id, "chatcmpl-%s", job->idstr);
    if (!job->created)
        job->created = (long long)time(NULL);
    s_stream_t st = s_stream_load(job);
    json_t *cands = json_object_get(ev, "candidates");
    size_t i, k;
    json_t *cand, *part;
    json_array_foreach(cands, i, cand)
    {
        long long index = lp_json_int(cand, "index", (long long)i);
        json_array_foreach(json_object_get(json_object_get(cand, "content"), "parts"), k, part)
        {
            s_stream_part(job, &st, out, index, part);
        }
        const char *reason = lp_json_str(cand, "finishReason");
        if (reason) {
            s_emit(job, &st, out, index, json_object(), s_finish(reason, st.tool_calls > 0));
            job->done = true;
        }
    }
    const char *blocked = lp_json_str(json_object_get(ev, "promptFeedback"), "blockReason");
    if (json_array_size(cands) == 0 && blocked) {
        s_emit(job, &st, out, 0, json_object(), "content_filter");
        job->done = true;
    }
    s_stream_save(job, &st);
    json_decref(ev);
    return 0;
}

/* The last bytes: the usage chunk when asked for, then OpenAI's [DONE], which Gemini never
 * sends; a stream that ended without a finishReason was cut short. */
static int s_stream_end(wk_job_t *job, lp_buf_t *out, wk_fail_t *fail)
{
    if (!job->done)
        return wk_fail(fail, 502, "upstream_stream_truncated", false,
                       "%s ended the stream without a finishReason", job->d->provider->name);
    if (job->include_usage) {
        long long p, c, t;
        wk_stream_usage(job, &p, &c, &t);
        json_t *usage = json_object();
        json_object_set_new(usage, "prompt_tokens", json_integer(p));
        json_object_set_new(usage, "completion_tokens", json_integer(c));
        json_object_set_new(usage, "total_tokens", json_integer(t));
        json_t *chunk = json_object();
        json_object_set_new(chunk, "id", lp_json_text(job->chunk_id));
        json_object_set_new(chunk, "object", json_string("chat.completion.chunk"));
        json_object_set_new(chunk, "created", json_integer(job->created));
        json_object_set_new(chunk, "model", json_string(job->group));
        json_object_set_new(chunk, "choices", json_array());
        json_object_set_new(chunk, "usage", usage);
        wk_sse_emit(out, chunk);
        json_decref(chunk);
    }
    lp_buf_puts(out, "data: [DONE]\n\n");
    return 0;
}

const wk_adapter_t wk_gemini_adapter = {
    .name = "gemini",
    .prepare = s_prepare,
    .respond = s_respond,
    .error = s_error,
    .stream_event = s_stream_event,
    .stream_end = s_stream_end,
};
