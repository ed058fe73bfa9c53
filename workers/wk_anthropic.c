/* wk_anthropic: the adapter for Anthropic's Messages API (anthropic/ models). The client's
 * OpenAI chat request is rewritten into a Messages request (system prompt hoisted, roles
 * alternating, tools and tool results as content blocks, max_tokens always set) following
 * LiteLLM's OpenAI -> Anthropic translation; answers, errors and the SSE event stream come
 * back in OpenAI's shapes with `model` restamped to the model group. Chat only. A
 * /v1/messages client's request goes through as it came (passthrough), and so do the
 * answer's bytes and events, read only for their usage (lp_jscan). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lp_jscan.h"
#include "lp_json.h"
#include "wk_adapter.h"

/* anthropic-version when the deployment sets no api_version (LiteLLM's default). */
#define WK_ANTHROPIC_VERSION "2023-06-01"
/* max_tokens when neither the request nor the deployment sets one: Anthropic requires the
 * field; LiteLLM's DEFAULT_ANTHROPIC_CHAT_MAX_TOKENS. */
#define WK_ANTHROPIC_MAX_TOKENS 4096

/* ---- request ---- */

/* A request being translated: where the hoisted system text and the messages accumulate. */
typedef struct {
    wk_job_t *job;
    wk_fail_t *fail;
    json_t *system;    /* text blocks from system/developer messages */
    bool system_parts; /* some system content came as parts: send blocks, not a string */
    json_t *messages;  /* Anthropic messages, roles alternating */
} s_tx_t;

static int s_bad_request(s_tx_t *tx, const char *fmt, ...) LP_PRINTF(2, 3);

/* A request Anthropic cannot take as sent: 400, the client's to fix. */
static int s_bad_request(s_tx_t *tx, const char *fmt, ...)
{
    wk_fail_t *fail = tx->fail;
    fail->status = 400;
    fail->code = NULL;
    fail->retryable = false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail->message, sizeof fail->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Anthropic accepts tool ids matching ^[a-zA-Z0-9_-]+$; ids minted by other providers
 * (replayed history) may carry other characters, which become '_'. Caller frees. */
static char *s_tool_id(const char *id)
{
    char *out = lp_strdup(id);
    for (char *p = out; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            *p = '_';
    }
    return out;
}

static json_t *s_text_block(const char *text)
{
    json_t *b = json_object();
    json_object_set_new(b, "type", json_string("text"));
    json_object_set_new(b, "text", json_string(text));
    return b;
}

/* Add a block (taken) to the conversation: appended to the last message when it has the same
 * role (Anthropic requires user and assistant to alternate), else a new message. */
static void s_add_block(s_tx_t *tx, const char *role, json_t *block)
{
    size_t n = json_array_size(tx->messages);
    json_t *last = n ? json_array_get(tx->messages, n - 1) : NULL;
    const char *last_role = lp_json_str(last, "role");
    if (last_role && strcmp(last_role, role) == 0) {
        json_array_append_new(json_object_get(last, "content"), block);
        return;
    }
    json_t *msg = json_object();
    json_object_set_new(msg, "role", json_string(role));
    json_t *content = json_array();
    json_array_append_new(content, block);
    json_object_set_new(msg, "content", content);
    json_array_append_new(tx->messages, msg);
}

/* An OpenAI image_url (data: URL or http(s) URL) as an Anthropic image block, or NULL with
 * fail filled. */
static json_t *s_image_block(s_tx_t *tx, const json_t *part)
{
    json_t *iu = json_object_get(part, "image_url");
    const char *url = json_is_string(iu) ? json_string_value(iu) : lp_json_str(iu, "url");
    if (!url) {
        s_bad_request(tx, "anthropic/: an image_url part needs image_url.url");
        return NULL;
    }
    json_t *source = json_object();
    if (lp_str_prefix(url, "data:")) {
        /* data:<media type>[;param...];base64,<data> */
        const char *comma = strchr(url, ',');
        size_t head = comma ? (size_t)(comma - url) : 0;
        const char *semi = comma ? memchr(url, ';', head) : NULL;
        if (!semi || semi == url + 5 || head < 5 + 7 || strncmp(comma - 7, ";base64", 7) != 0) {
            json_decref(source);
            s_bad_request(tx,
                          "anthropic/: image data URLs must look like data:<type>;base64,<data>");
            return NULL;
        }
        char *media = lp_strndup(url + 5, (size_t)(semi - url - 5));
        json_object_set_new(source, "type", json_string("base64"));
        json_object_set_new(source, "media_type", lp_json_text(media));
        json_object_set_new(source, "data", json_string(comma + 1));
        free(media);
    } else if (lp_str_prefix(url, "https://") || lp_str_prefix(url, "http://")) {
        json_object_set_new(source, "type", json_string("url"));
        json_object_set_new(source, "url", json_string(url));
    } else {
        json_decref(source);
        s_bad_request(tx, "anthropic/: an image_url must be a data: URL or an http(s) URL");
        return NULL;
    }
    json_t *b = json_object();
    json_object_set_new(b, "type", json_string("image"));
    json_object_set_new(b, "source", source);
    return b;
}

/* Content (a string or OpenAI parts) as blocks of a message with the given role. Empty text
 * is dropped: Anthropic refuses empty text blocks. */
static int s_add_content(s_tx_t *tx, const char *role, const json_t *content)
{
    if (!content || json_is_null(content))
        return 0;
    if (json_is_string(content)) {
        if (json_string_length(content))
            s_add_block(tx, role, s_text_block(json_string_value(content)));
        return 0;
    }
    if (!json_is_array(content))
        return s_bad_request(tx,
                             "anthropic/: message content must be a string or an array of parts");
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *type = lp_json_str(part, "type");
        if (!type)
            return s_bad_request(tx, "anthropic/: every content part needs a type");
        if (strcmp(type, "text") == 0) {
            const char *text = lp_json_str(part, "text");
            if (!text)
                return s_bad_request(tx, "anthropic/: a text part needs a text string");
            if (!*text)
                continue;
            json_t *b = s_text_block(text);
            json_t *cc = json_object_get(part, "cache_control");
            if (cc)
                json_object_set(b, "cache_control", cc);
            s_add_block(tx, role, b);
        } else if (strcmp(type, "image_url") == 0) {
            json_t *b = s_image_block(tx, part);
            if (!b)
                return -1;
            s_add_block(tx, role, b);
        } else if (strcmp(type, "image") == 0 || strcmp(type, "document") == 0) {
            /* Already Anthropic blocks: the client speaks the provider's dialect. */
            s_add_block(tx, role, json_deep_copy(part));
        } else {
            return s_bad_request(tx, "anthropic/ does not accept content parts of type '%.40s'",
                                 type);
        }
    }
    return 0;
}

/* A system or developer message: its text joins the top-level system prompt. */
static int s_add_system(s_tx_t *tx, const json_t *content)
{
    if (json_is_string(content)) {
        if (json_string_length(content))
            json_array_append_new(tx->system, s_text_block(json_string_value(content)));
        return 0;
    }
    if (!content || json_is_null(content))
        return 0;
    if (!json_is_array(content))
        return s_bad_request(tx, "anthropic/: system content must be a string or text parts");
    tx->system_parts = true;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *text = lp_json_str(part, "text");
        const char *type = lp_json_str(part, "type");
        if (!text || !type || strcmp(type, "text") != 0)
            return s_bad_request(tx, "anthropic/: system messages take text parts only");
        if (!*text)
            continue;
        json_t *b = s_text_block(text);
        json_t *cc = json_object_get(part, "cache_control");
        if (cc)
            json_object_set(b, "cache_control", cc);
        json_array_append_new(tx->system, b);
    }
    return 0;
}

/* The assistant's earlier tool calls as tool_use blocks; arguments must be a JSON object. */
static int s_add_tool_calls(s_tx_t *tx, const json_t *calls)
{
    if (!calls || json_is_null(calls))
        return 0;
    if (!json_is_array(calls))
        return s_bad_request(tx, "anthropic/: tool_calls must be an array");
    size_t i;
    json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        json_t *fn = json_object_get(tc, "function");
        const char *id = lp_json_str(tc, "id");
        const char *name = lp_json_str(fn, "name");
        if (!id || !*id || !name)
            return s_bad_request(tx, "anthropic/: every tool call needs an id and a function name");
        json_t *args = json_object_get(fn, "arguments");
        json_t *input = NULL;
        if (json_is_object(args)) {
            input = json_deep_copy(args);
        } else if (json_is_string(args) &&
                   strspn(json_string_value(args), " \t\r\n") == json_string_length(args)) {
            input = json_object(); /* "" means no arguments */
        } else if (json_is_string(args)) {
            char err[LP_ERR_LEN];
            input = lp_json_parse(json_string_value(args), json_string_length(args), err);
        } else if (!args || json_is_null(args)) {
            input = json_object();
        }
        if (!json_is_object(input)) {
            json_decref(input);
            return s_bad_request(tx,
                                 "anthropic/: the arguments of tool call '%.80s' are not a JSON "
                                 "object",
                                 name);
        }
        char *tid = s_tool_id(id);
        json_t *b = json_object();
        json_object_set_new(b, "type", json_string("tool_use"));
        json_object_set_new(b, "id", json_string(tid));
        json_object_set_new(b, "name", json_string(name));
        json_object_set_new(b, "input", input);
        free(tid);
        s_add_block(tx, "assistant", b);
    }
    return 0;
}

/* A tool message's content as the string of a tool_result: text parts are joined. */
static char *s_tool_text(const json_t *content)
{
    if (json_is_string(content))
        return lp_strdup(json_string_value(content));
    lp_buf_t buf = {0};
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *text =
            json_is_string(part) ? json_string_value(part) : lp_json_str(part, "text");
        if (text)
            lp_buf_puts(&buf, text);
    }
    char *s = lp_buf_steal(&buf, NULL);
    return s ? s : lp_strdup("");
}

/* A role "tool" message: a tool_result block in a user message (consecutive results merge
 * into one user message through s_add_block). */
static int s_add_tool_result(s_tx_t *tx, const json_t *msg)
{
    const char *call_id = lp_json_str(msg, "tool_call_id");
    if (!call_id || !*call_id)
        return s_bad_request(tx, "anthropic/: a tool message needs its tool_call_id");
    char *tid = s_tool_id(call_id);
    char *text = s_tool_text(json_object_get(msg, "content"));
    json_t *b = json_object();
    json_object_set_new(b, "type", json_string("tool_result"));
    json_object_set_new(b, "tool_use_id", json_string(tid));
    json_object_set_new(b, "content", lp_json_text(text));
    free(tid);
    free(text);
    s_add_block(tx, "user", b);
    return 0;
}

/* Messages that ended up as one plain text block go as a plain string. */
static void s_collapse_text(json_t *messages)
{
    size_t i;
    json_t *msg;
    json_array_foreach(messages, i, msg)
    {
        json_t *content = json_object_get(msg, "content");
        json_t *b = json_array_get(content, 0);
        const char *type = lp_json_str(b, "type");
        if (json_array_size(content) == 1 && json_object_size(b) == 2 && type &&
            strcmp(type, "text") == 0)
            json_object_set(msg, "content", json_object_get(b, "text"));
    }
}

/* OpenAI messages into tx->system and tx->messages. */
static int s_messages(s_tx_t *tx, const json_t *messages)
{
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return s_bad_request(tx, "anthropic/: messages must be a non-empty array");
    size_t i;
    json_t *msg;
    json_array_foreach(messages, i, msg)
    {
        const char *role = lp_json_str(msg, "role");
        json_t *content = json_object_get(msg, "content");
        int rc;
        if (!role)
            return s_bad_request(tx, "anthropic/: every message needs a role");
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
            rc = s_add_system(tx, content);
        else if (strcmp(role, "user") == 0)
            rc = s_add_content(tx, "user", content);
        else if (strcmp(role, "assistant") == 0)
            rc = s_add_content(tx, "assistant", content) < 0
                     ? -1
                     : s_add_tool_calls(tx, json_object_get(msg, "tool_calls"));
        else if (strcmp(role, "tool") == 0)
            rc = s_add_tool_result(tx, msg);
        else
            return s_bad_request(tx, "anthropic/ does not accept messages with role '%.40s'", role);
        if (rc < 0)
            return -1;
    }
    s_collapse_text(tx->messages);
    return 0;
}

/* OpenAI function tools as Anthropic tools; other entries (Anthropic's own server tools)
 * pass as they are. */
static json_t *s_tools(s_tx_t *tx, const json_t *tools)
{
    if (!json_is_array(tools)) {
        s_bad_request(tx, "anthropic/: tools must be an array");
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        json_t *fn = json_object_get(t, "function");
        const char *type = lp_json_str(t, "type");
        if (!json_is_object(t) || (type && strcmp(type, "function") == 0 && !fn)) {
            json_decref(out);
            s_bad_request(tx,
                          "anthropic/: every tool must be {type:function, function:{name, ...}}");
            return NULL;
        }
        if (!fn) {
            json_array_append_new(out, json_deep_copy(t));
            continue;
        }
        const char *name = lp_json_str(fn, "name");
        if (!name) {
            json_decref(out);
            s_bad_request(tx, "anthropic/: every function tool needs a name");
            return NULL;
        }
        json_t *a = json_object();
        json_object_set_new(a, "name", json_string(name));
        json_t *desc = json_object_get(fn, "description");
        if (json_is_string(desc))
            json_object_set(a, "description", desc);
        json_t *params = json_object_get(fn, "parameters");
        if (json_is_object(params)) {
            json_object_set_new(a, "input_schema", json_deep_copy(params));
        } else {
            json_t *schema = json_object(); /* Anthropic requires a schema */
            json_object_set_new(schema, "type", json_string("object"));
            json_object_set_new(schema, "properties", json_object());
            json_object_set_new(a, "input_schema", schema);
        }
        json_t *cc = json_object_get(t, "cache_control");
        if (cc)
            json_object_set(a, "cache_control", cc);
        json_array_append_new(out, a);
    }
    return out;
}

/* OpenAI tool_choice (and parallel_tool_calls:false) as Anthropic's tool_choice; *out stays
 * NULL when neither was given. */
static int s_tool_choice(s_tx_t *tx, const json_t *choice, const json_t *parallel, json_t **out)
{
    json_t *tc = NULL;
    if (json_is_string(choice)) {
        const char *s = json_string_value(choice);
        const char *type = strcmp(s, "auto") == 0       ? "auto"
                           : strcmp(s, "required") == 0 ? "any"
                           : strcmp(s, "none") == 0     ? "none"
                                                        : NULL;
        if (!type)
            return s_bad_request(
                tx, "anthropic/: tool_choice '%.40s' is not auto, required or none", s);
        tc = json_object();
        json_object_set_new(tc, "type", json_string(type));
    } else if (json_is_object(choice)) {
        const char *type = lp_json_str(choice, "type");
        const char *name = lp_json_str(json_object_get(choice, "function"), "name");
        if (type && strcmp(type, "function") == 0 && name) {
            tc = json_object();
            json_object_set_new(tc, "type", json_string("tool"));
            json_object_set_new(tc, "name", json_string(name));
        } else if (type && (strcmp(type, "auto") == 0 || strcmp(type, "any") == 0 ||
                            strcmp(type, "tool") == 0 || strcmp(type, "none") == 0)) {
            tc = json_deep_copy(choice); /* already Anthropic's shape */
        } else {
            return s_bad_request(tx, "anthropic/: tool_choice must be auto, required, none or "
                                     "{type:function, function:{name}}");
        }
    } else if (choice && !json_is_null(choice)) {
        return s_bad_request(tx, "anthropic/: tool_choice must be a string or an object");
    }
    if (json_is_false(parallel)) {
        if (!tc) {
            tc = json_object();
            json_object_set_new(tc, "type", json_string("auto"));
        }
        if (strcmp(lp_json_str(tc, "type"), "none") != 0)
            json_object_set_new(tc, "disable_parallel_tool_use", json_true());
    }
    *out = tc;
    return 0;
}

/* max_tokens, which Anthropic requires: the request's max_tokens, else its
 * max_completion_tokens, else the deployment's, else LiteLLM's default. */
static int s_max_tokens(s_tx_t *tx, long long *out)
{
    const json_t *srcs[] = {tx->job->req, tx->job->d->params};
    const char *keys[] = {"max_tokens", "max_completion_tokens"};
    for (size_t s = 0; s < LP_ARRAY_LEN(srcs); s++) {
        for (size_t k = 0; k < LP_ARRAY_LEN(keys); k++) {
            json_t *v = json_object_get(srcs[s], keys[k]);
            if (!v || json_is_null(v))
                continue;
            if (!json_is_integer(v) || json_integer_value(v) <= 0)
                return s_bad_request(tx, "%s must be a positive integer", keys[k]);
            *out = (long long)json_integer_value(v);
            return 0;
        }
    }
    *out = WK_ANTHROPIC_MAX_TOKENS;
    return 0;
}

/* OpenAI parameters Anthropic has no equivalent for: refused (or dropped under drop_params)
 * when they would change the answer; no-op values pass silently. */
static int s_check_unsupported(s_tx_t *tx, const char *key, const json_t *v, bool *handled)
{
    static const char *always[] = {"top_logprobs", "seed", "functions", "function_call",
                                   "reasoning_effort"};
    *handled = true;
    if (json_is_null(v))
        return 0;
    if (strcmp(key, "n") == 0)
        return json_is_integer(v) && json_integer_value(v) == 1
                   ? 0
                   : wk_unsupported(tx->job, key, tx->fail);
    if (strcmp(key, "logprobs") == 0)
        return json_is_false(v) ? 0 : wk_unsupported(tx->job, key, tx->fail);
    if (strcmp(key, "logit_bias") == 0)
        return json_is_object(v) && json_object_size(v) == 0
                   ? 0
                   : wk_unsupported(tx->job, key, tx->fail);
    if (strcmp(key, "presence_penalty") == 0 || strcmp(key, "frequency_penalty") == 0)
        return json_is_number(v) && json_number_value(v) == 0.0
                   ? 0
                   : wk_unsupported(tx->job, key, tx->fail);
    if (strcmp(key, "response_format") == 0) {
        const char *type = lp_json_str(v, "type");
        return type && strcmp(type, "text") == 0 ? 0 : wk_unsupported(tx->job, key, tx->fail);
    }
    for (size_t i = 0; i < LP_ARRAY_LEN(always); i++) {
        if (strcmp(key, always[i]) == 0)
            return wk_unsupported(tx->job, key, tx->fail);
    }
    *handled = false;
    return 0;
}

/* stop (a string or an array of strings) as stop_sequences. */
static int s_stop(s_tx_t *tx, json_t *stop, json_t *body)
{
    json_t *seqs = json_array();
    if (json_is_string(stop)) {
        json_array_append(seqs, stop);
    } else if (json_is_array(stop)) {
        size_t i;
        json_t *s;
        json_array_foreach(stop, i, s)
        {
            if (!json_is_string(s)) {
                json_decref(seqs);
                return s_bad_request(tx,
                                     "anthropic/: stop must be a string or an array of strings");
            }
            json_array_append(seqs, s);
        }
    } else {
        json_decref(seqs);
        return s_bad_request(tx, "anthropic/: stop must be a string or an array of strings");
    }
    if (json_array_size(seqs))
        json_object_set_new(body, "stop_sequences", seqs);
    else
        json_decref(seqs);
    return 0;
}

/* Every top-level field of the OpenAI request (merged with the deployment's defaults) into
 * the Messages body. Fields with no OpenAI meaning here (thinking, top_k, ...) pass through,
 * as LiteLLM passes provider-specific parameters. */
static int s_fields(s_tx_t *tx, json_t *src, json_t *body, json_t **tools)
{
    const char *key;
    json_t *v;
    json_object_foreach(src, key, v)
    {
        bool handled;
        if (s_check_unsupported(tx, key, v, &handled) < 0)
            return -1;
        if (handled)
            continue;
        if (strcmp(key, "model") == 0 || strcmp(key, "messages") == 0 ||
            strcmp(key, "max_tokens") == 0 || strcmp(key, "max_completion_tokens") == 0 ||
            strcmp(key, "stream") == 0 || strcmp(key, "stream_options") == 0 ||
            strcmp(key, "tool_choice") == 0 || strcmp(key, "parallel_tool_calls") == 0 ||
            json_is_null(v))
            continue;
        if (strcmp(key, "stop") == 0) {
            if (s_stop(tx, v, body) < 0)
                return -1;
        } else if (strcmp(key, "user") == 0) {
            if (json_is_string(v) && json_string_length(v)) {
                json_t *meta = json_object();
                json_object_set(meta, "user_id", v);
                json_object_set_new(body, "metadata", meta);
            }
        } else if (strcmp(key, "tools") == 0) {
            *tools = s_tools(tx, v);
            if (!*tools)
                return -1;
        } else {
            json_object_set(body, key, v); /* temperature, top_p, top_k, thinking, ... */
        }
    }
    return 0;
}

/* The Messages request body for the job, or NULL with fail filled. */
static json_t *s_body(wk_job_t *job, wk_fail_t *fail)
{
    s_tx_t tx = {job, fail, json_array(), false, json_array()};
    json_t *src = wk_upstream_body(job);
    json_t *body = json_object();
    json_t *tools = NULL, *choice = NULL;
    long long max_tokens = 0;
    json_object_set_new(body, "model", json_string(job->d->provider_model));
    if (s_messages(&tx, json_object_get(src, "messages")) < 0 ||
        s_max_tokens(&tx, &max_tokens) < 0 || s_fields(&tx, src, body, &tools) < 0 ||
        s_tool_choice(&tx, json_object_get(src, "tool_choice"),
                      json_object_get(src, "parallel_tool_calls"), &choice) < 0)
        goto fail;
    size_t nsys = json_array_size(tx.system);
    if (nsys == 1 && !tx.system_parts)
        json_object_set(body, "system", json_object_get(json_array_get(tx.system, 0), "text"));
    else if (nsys)
        json_object_set(body, "system", tx.system);
    json_object_set(body, "messages", tx.messages);
    json_object_set_new(body, "max_tokens", json_integer(max_tokens));
    /* Anthropic refuses tool_choice without tools; OpenAI clients send it anyway. */
    if (tools && json_array_size(tools)) {
        json_object_set(body, "tools", tools);
        if (choice)
            json_object_set(body, "tool_choice", choice);
    }
    if (job->stream)
        json_object_set_new(body, "stream", json_true());
    json_decref(tools);
    json_decref(choice);
    json_decref(tx.system);
    json_decref(tx.messages);
    json_decref(src);
    return body;
fail:
    json_decref(tools);
    json_decref(choice);
    json_decref(tx.system);
    json_decref(tx.messages);
    json_decref(src);
    json_decref(body);
    return NULL;
}

/* A /v1/messages request for this Anthropic deployment: the client's own body (proxy
 * fields removed, the deployment's model and defaults in), or for count_tokens only the
 * fields that endpoint takes. */
static json_t *s_passthrough_body(wk_job_t *job)
{
    json_t *body = wk_upstream_body(job);
    json_t *md = json_object_get(job->req, "metadata"); /* Anthropic's own, not the proxy's */
    if (json_is_object(md) && !job->count_tokens)
        json_object_set(body, "metadata", md);
    if (job->count_tokens) {
        static const char *keep[] = {"model",       "messages", "system",     "tools",
                                     "tool_choice", "thinking", "mcp_servers"};
        json_t *slim = json_object();
        for (size_t i = 0; i < LP_ARRAY_LEN(keep); i++) {
            json_t *v = json_object_get(body, keep[i]);
            if (v)
                json_object_set(slim, keep[i], v);
        }
        json_decref(body);
        body = slim;
    }
    return body;
}

/* Build the Messages call: URL, headers and the translated body. */
static int s_prepare(wk_job_t *job, wk_fail_t *fail)
{
    const lp_deployment_t *d = job->d;
    if (job->call != WK_CALL_CHAT)
        return wk_fail(fail, 400, NULL, false,
                       "anthropic/ serves chat completions only (/v1/chat/completions); "
                       "%s go to another provider",
                       job->call == WK_CALL_EMBEDDING ? "embeddings" : "text completions");
    const char *version = d->api_version && *d->api_version ? d->api_version : WK_ANTHROPIC_VERSION;
    if (job->passthrough && job->anthropic_version && !strpbrk(job->anthropic_version, "\r\n"))
        version = job->anthropic_version; /* the client's, as its request is shaped for it */
    if (!d->api_base)
        return wk_fail(fail, 500, NULL, false, "deployment %s has no api_base", d->id);
    if (strpbrk(version, "\r\n") || (d->api_key && strpbrk(d->api_key, "\r\n")))
        return wk_fail(fail, 500, NULL, false,
                       "deployment %s: api_key or api_version contains a line break", d->id);
    if (job->stream)
        job->include_usage =
            lp_json_bool(json_object_get(job->req, "stream_options"), "include_usage", false);
    json_t *body = job->passthrough ? s_passthrough_body(job) : s_body(job, fail);
    if (!body)
        return -1;
    size_t blen = strlen(d->api_base);
    bool has_v1 = blen >= 3 && strcmp(d->api_base + blen - 3, "/v1") == 0;
    job->url = lp_asprintf("%s%s%s", d->api_base, has_v1 ? "/messages" : "/v1/messages",
                           job->count_tokens ? "/count_tokens" : "");
    job->body = lp_json_dump(body, &job->body_len);
    json_decref(body);
    if (d->api_key && *d->api_key)
        wk_header(&job->headers, "x-api-key", d->api_key);
    wk_header(&job->headers, "anthropic-version", version);
    if (job->passthrough && job->anthropic_beta && !strpbrk(job->anthropic_beta, "\r\n"))
        wk_header(&job->headers, "anthropic-beta", job->anthropic_beta);
    wk_header(&job->headers, "content-type", "application/json");
    wk_header(&job->headers, "accept", job->stream ? "text/event-stream" : "application/json");
    wk_extra_headers(job, &job->headers);
    return 0;
}

/* ---- answers ---- */

/* Anthropic stop_reason -> OpenAI finish_reason (LiteLLM map_finish_reason; pause_turn and
 * unknown reasons end as "stop"). */
static const char *s_finish(const char *stop_reason)
{
    static const char *map[][2] = {
        {"end_turn", "stop"},
        {"stop_sequence", "stop"},
        {"pause_turn", "stop"},
        {"max_tokens", "length"},
        {"model_context_window_exceeded", "length"},
        {"compaction", "length"},
        {"tool_use", "tool_calls"},
        {"refusal", "content_filter"},
        {"content_filtered", "content_filter"},
    };
    for (size_t i = 0; stop_reason && i < LP_ARRAY_LEN(map); i++) {
        if (strcmp(map[i][0], stop_reason) == 0)
            return map[i][1];
    }
    return "stop";
}

/* Prompt tokens as OpenAI counts them: cache writes and reads are part of the prompt. */
static long long s_prompt_tokens(const json_t *usage)
{
    return lp_json_tokens(usage, "input_tokens", 0) +
           lp_json_tokens(usage, "cache_creation_input_tokens", 0) +
           lp_json_tokens(usage, "cache_read_input_tokens", 0);
}

/* An OpenAI tool call for a tool_use block; arguments are the input as compact JSON. */
static json_t *s_tool_call(const json_t *block)
{
    json_t *input = json_object_get(block, "input");
    char *args = input ? lp_json_dump(input, NULL) : lp_strdup("{}");
    json_t *fn = json_object();
    const char *name = lp_json_str(block, "name");
    json_object_set_new(fn, "name", json_string(name ? name : ""));
    json_object_set_new(fn, "arguments", json_string(args));
    free(args);
    json_t *tc = json_object();
    const char *id = lp_json_str(block, "id");
    json_object_set_new(tc, "id", json_string(id ? id : ""));
    json_object_set_new(tc, "type", json_string("function"));
    json_object_set_new(tc, "function", fn);
    return tc;
}

/* The OpenAI usage object for an Anthropic usage object; counts also go to out. */
static json_t *s_usage(const json_t *usage, wk_result_t *out)
{
    out->prompt_tokens = s_prompt_tokens(usage);
    out->completion_tokens = lp_json_tokens(usage, "output_tokens", 0);
    out->total_tokens = out->prompt_tokens + out->completion_tokens;
    json_t *u = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(out->prompt_tokens));
    json_object_set_new(u, "completion_tokens", json_integer(out->completion_tokens));
    json_object_set_new(u, "total_tokens", json_integer(out->total_tokens));
    json_t *cached = json_object_get(usage, "cache_read_input_tokens");
    if (json_is_integer(cached)) {
        json_t *details = json_object();
        json_object_set(details, "cached_tokens", cached);
        json_object_set_new(u, "prompt_tokens_details", details);
    }
    return u;
}

/* What the proxy reads of an Anthropic answer or event it relays as it came: the type and
 * the usage (at usage, or message.usage in message_start). */
typedef struct {
    char type[128];                    /* event types are short names */
    bool usage;                        /* a usage object */
    long long input, output;           /* -1: not an integer */
    long long cache_write, cache_read; /* 0 when absent */
} s_relay_t;

static bool s_relay_scan(lp_jscan_t *s, lp_jscan_kind_t kind, const char *text, size_t len,
                         void *arg)
{
    s_relay_t *r = arg;
    int depth = lp_jscan_depth(s);
    if (depth == 0)
        return kind == LP_JSCAN_OBJECT || kind == LP_JSCAN_CLOSE ||
               lp_jscan_stop(s, "not a JSON object");
    if (depth == 1 && kind == LP_JSCAN_STRING && lp_jscan_key_is(s, "type")) {
        size_t n = LP_MIN(len, sizeof r->type - 1);
        memcpy(r->type, text, n);
        r->type[n] = '\0';
    } else if (kind == LP_JSCAN_OBJECT &&
               (lp_jscan_at(s, "usage") || lp_jscan_at(s, "message.usage"))) {
        r->usage = true;
    } else if (kind == LP_JSCAN_NUMBER &&
               (lp_jscan_at(s, "usage.*") || lp_jscan_at(s, "message.usage.*"))) {
        static const char *fields[] = {"input_tokens", "output_tokens",
                                       "cache_creation_input_tokens", "cache_read_input_tokens"};
        long long *to[] = {&r->input, &r->output, &r->cache_write, &r->cache_read};
        for (size_t i = 0; i < LP_ARRAY_LEN(fields); i++)
            if (lp_jscan_key_is(s, fields[i]))
                *to[i] = lp_jscan_count(text, len, i < 2 ? -1 : 0);
    }
    return true;
}

/* The usage a relayed answer or event reported, as OpenAI counts it (cache writes and reads
 * are prompt, as s_prompt_tokens has it): *prompt only when input_tokens was there,
 * *completion only when output_tokens was. */
static void s_relay_usage(const s_relay_t *r, long long *prompt, long long *completion)
{
    if (r->input >= 0)
        *prompt = r->input + r->cache_write + r->cache_read;
    if (r->output >= 0)
        *completion = r->output;
}

/* Read a relayed answer or event. 0, or -1 with the reason in err. */
static int s_relay_read(const char *data, size_t len, s_relay_t *r, char *err)
{
    *r = (s_relay_t){.input = -1, .output = -1};
    return lp_jscan_run(data, len, s_relay_scan, r, err);
}

/* A /v1/messages answer goes back as it came, bytes untouched; only its usage is read (for
 * the record). */
static int s_passthrough_respond(wk_job_t *job, wk_result_t *out, wk_fail_t *fail)
{
    char err[LP_ERR_LEN];
    s_relay_t r;
    if (s_relay_read(job->resp.data, job->resp.len, &r, err) < 0)
        return wk_fail(fail, 502, "invalid_upstream_response", true,
                       "%s returned a response that is not a JSON object (%s)",
                       job->d->provider->name, err);
    if (!job->count_tokens) {
        out->prompt_tokens = r.cache_write + r.cache_read;
        s_relay_usage(&r, &out->prompt_tokens, &out->completion_tokens);
        out->total_tokens = out->prompt_tokens + out->completion_tokens;
    }
    out->body = job->resp; /* handed over: no copy */
    job->resp = (lp_buf_t){0};
    return 0;
}

/* A Messages answer as an OpenAI chat.completion. */
static int s_respond(wk_job_t *job, wk_result_t *out, wk_fail_t *fail)
{
    if (job->passthrough)
        return s_passthrough_respond(job, out, fail);
    char err[LP_ERR_LEN];
    json_t *resp = lp_json_parse(job->resp.data ? job->resp.data : "", job->resp.len, err);
    const char *type = lp_json_str(resp, "type");
    json_t *content = json_object_get(resp, "content");
    if (!json_is_object(resp) || !json_is_array(content) || (type && strcmp(type, "message"))) {
        json_decref(resp);
        return wk_fail(fail, 502, "invalid_upstream_response", true,
                       "%s returned a response that is not a Messages API message object",
                       job->d->provider->name);
    }
    lp_buf_t text = {0}, thinking = {0};
    json_t *calls = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b)
    {
        const char *bt = lp_json_str(b, "type");
        if (!bt)
            continue;
        if (strcmp(bt, "text") == 0 && lp_json_str(b, "text"))
            lp_buf_puts(&text, lp_json_str(b, "text"));
        else if (strcmp(bt, "thinking") == 0 && lp_json_str(b, "thinking"))
            lp_buf_puts(&thinking, lp_json_str(b, "thinking"));
        else if (strcmp(bt, "tool_use") == 0)
            json_array_append_new(calls, s_tool_call(b));
    }
    json_t *msg = json_object();
    json_object_set_new(msg, "role", json_string("assistant"));
    if (text.len == 0 && json_array_size(calls))
        json_object_set_new(msg, "content", json_null());
    else
        json_object_set_new(msg, "content", lp_json_text(text.data ? text.data : ""));
    if (json_array_size(calls))
        json_object_set(msg, "tool_calls", calls);
    if (thinking.len)
        json_object_set_new(msg, "reasoning_content", lp_json_text(thinking.data));
    lp_buf_free(&text);
    lp_buf_free(&thinking);
    json_decref(calls);

    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "message", msg);
    json_object_set_new(choice, "finish_reason",
                        json_string(s_finish(lp_json_str(resp, "stop_reason"))));
    json_t *choices = json_array();
    json_array_append_new(choices, choice);

    json_t *o = json_object();
    const char *id = lp_json_str(resp, "id");
    json_object_set_new(o, "id", lp_json_text(id ? id : ""));
    json_object_set_new(o, "object", json_string("chat.completion"));
    json_object_set_new(o, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(o, "model", json_string(job->group));
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", s_usage(json_object_get(resp, "usage"), out));
    json_decref(resp);
    out->response = o;
    return 0;
}

/* Anthropic's context-window refusals: "prompt is too long: N tokens > M maximum" and
 * "input length and `max_tokens` exceed context limit". */
static bool s_context_error(const char *etype, const char *text)
{
    return etype && strcmp(etype, "invalid_request_error") == 0 &&
           (strcasestr(text, "prompt is too long") || strcasestr(text, "exceed context limit"));
}

/* An error answer: {"type":"error","error":{"type","message"}}. */
static void s_error(wk_job_t *job, wk_fail_t *fail)
{
    char err[LP_ERR_LEN];
    char text[WK_MSG_LEN - 64];
    json_t *body = lp_json_parse(job->resp.data ? job->resp.data : "", job->resp.len, err);
    json_t *e = json_object_get(body, "error");
    const char *msg = json_is_string(e) ? json_string_value(e) : lp_json_str(e, "message");
    if (!msg)
        msg = lp_json_str(body, "message");
    lp_strlcpy(text, msg ? msg : "", sizeof text);
    wk_fail_from_status(fail, job->status);
    wk_scrub(text, job->d->api_key);
    if (!text[0])
        snprintf(text, sizeof text, "HTTP %ld without an error message", job->status);
    snprintf(fail->message, sizeof fail->message, "%s error %ld: %s", job->d->provider->name,
             job->status, text);
    if (s_context_error(lp_json_str(e, "type"), text)) {
        fail->status = 400;
        fail->code = "context_length_exceeded";
        fail->retryable = false;
    }
    json_decref(body);
}

/* ---- streams ---- */

/* One chat.completion.chunk with the given delta (taken) and finish reason (may be NULL). */
static void s_chunk(wk_job_t *job, lp_buf_t *out, json_t *delta, const char *finish)
{
    if (!job->created)
        job->created = (long long)time(NULL);
    json_t *chunk = json_object();
    json_object_set_new(chunk, "id", lp_json_text(job->chunk_id));
    json_object_set_new(chunk, "object", json_string("chat.completion.chunk"));
    json_object_set_new(chunk, "created", json_integer(job->created));
    json_object_set_new(chunk, "model", json_string(job->group));
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "delta", delta);
    json_object_set_new(choice, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *choices = json_array();
    json_array_append_new(choices, choice);
    json_object_set_new(chunk, "choices", choices);
    wk_sse_emit(out, chunk);
    json_decref(chunk);
}

/* A delta with one string member (content, reasoning_content). Empty text sends nothing. */
static void s_text_delta(wk_job_t *job, lp_buf_t *out, const char *key, const char *text)
{
    if (!text || !*text)
        return;
    job->content_bytes += strlen(text);
    json_t *delta = json_object();
    json_object_set_new(delta, key, lp_json_text(text));
    s_chunk(job, out, delta, NULL);
}

/* A delta with one tool call (taken) at the given OpenAI index. */
static void s_tool_delta(wk_job_t *job, lp_buf_t *out, long long index, json_t *tc)
{
    json_object_set_new(tc, "index", json_integer(index));
    json_t *calls = json_array();
    json_array_append_new(calls, tc);
    json_t *delta = json_object();
    json_object_set_new(delta, "tool_calls", calls);
    s_chunk(job, out, delta, NULL);
}

/* Usage from message_start (input side, cumulative output) or message_delta (cumulative
 * output, and input counts when the API version sends them there too). */
static void s_take_usage(wk_job_t *job, const json_t *usage)
{
    if (!json_is_object(usage))
        return;
    if (json_is_integer(json_object_get(usage, "input_tokens")))
        job->usage_prompt = s_prompt_tokens(usage);
    if (json_is_integer(json_object_get(usage, "output_tokens")))
        job->usage_completion = lp_json_tokens(usage, "output_tokens", 0);
    job->usage_total = job->usage_prompt + job->usage_completion;
    job->have_usage = true;
}

/* The chunk with the finish reason, sent once per stream. */
static void s_finish_chunk(wk_job_t *job, lp_buf_t *out, const char *stop_reason)
{
    if (job->finish_seen)
        return;
    job->finish_seen = true;
    s_chunk(job, out, json_object(), s_finish(stop_reason));
}

static void s_message_start(wk_job_t *job, const json_t *ev, lp_buf_t *out)
{
    json_t *message = json_object_get(ev, "message");
    const char *id = lp_json_str(message, "id");
    if (id)
        lp_strlcpy(job->chunk_id, id, sizeof job->chunk_id);
    job->created = (long long)time(NULL);
    s_take_usage(job, json_object_get(message, "usage"));
    json_t *delta = json_object();
    json_object_set_new(delta, "role", json_string("assistant"));
    json_object_set_new(delta, "content", json_string(""));
    s_chunk(job, out, delta, NULL);
}

static void s_block_start(wk_job_t *job, const json_t *ev, lp_buf_t *out)
{
    json_t *block = json_object_get(ev, "content_block");
    const char *type = lp_json_str(block, "type");
    if (!type)
        return;
    if (strcmp(type, "text") == 0) {
        s_text_delta(job, out, "content", lp_json_str(block, "text"));
    } else if (strcmp(type, "thinking") == 0) {
        s_text_delta(job, out, "reasoning_content", lp_json_str(block, "thinking"));
    } else if (strcmp(type, "tool_use") == 0) {
        const char *id = lp_json_str(block, "id");
        const char *name = lp_json_str(block, "name");
        json_t *fn = json_object();
        json_object_set_new(fn, "name", lp_json_text(name ? name : ""));
        json_object_set_new(fn, "arguments", json_string(""));
        json_t *tc = json_object();
        json_object_set_new(tc, "id", lp_json_text(id ? id : ""));
        json_object_set_new(tc, "type", json_string("function"));
        json_object_set_new(tc, "function", fn);
        job->content_bytes += name ? strlen(name) : 0;
        s_tool_delta(job, out, job->tool_calls, tc);
        job->tool_block = (int)lp_json_int(ev, "index", -1);
        job->tool_calls++;
    }
}

static void s_block_delta(wk_job_t *job, const json_t *ev, lp_buf_t *out)
{
    json_t *delta = json_object_get(ev, "delta");
    const char *type = lp_json_str(delta, "type");
    if (!type)
        return;
    if (strcmp(type, "text_delta") == 0) {
        s_text_delta(job, out, "content", lp_json_str(delta, "text"));
    } else if (strcmp(type, "thinking_delta") == 0) {
        s_text_delta(job, out, "reasoning_content", lp_json_str(delta, "thinking"));
    } else if (strcmp(type, "input_json_delta") == 0) {
        const char *part = lp_json_str(delta, "partial_json");
        /* Only the open tool_use block's input (server tools stream theirs too). */
        if (!part || !*part || job->tool_calls == 0 ||
            lp_json_int(ev, "index", -2) != job->tool_block)
            return;
        job->content_bytes += strlen(part);
        json_t *fn = json_object();
        json_object_set_new(fn, "arguments", lp_json_text(part));
        json_t *tc = json_object();
        json_object_set_new(tc, "function", fn);
        s_tool_delta(job, out, job->tool_calls - 1, tc);
    }
    /* signature_delta, citations_delta: nothing the OpenAI shape carries */
}

/* A mid-stream error event: {"type":"error","error":{"type","message"}}. */
static int s_stream_error(wk_job_t *job, const json_t *ev, wk_fail_t *fail)
{
    json_t *e = json_object_get(ev, "error");
    const char *etype = lp_json_str(e, "type");
    const char *msg = lp_json_str(e, "message");
    char text[256], type[64];
    lp_strlcpy(text, msg ? msg : "error event", sizeof text);
    lp_strlcpy(type, etype ? etype : "unknown", sizeof type);
    wk_scrub(text, job->d->api_key);
    wk_scrub(type, job->d->api_key); /* provider text too, however unlikely a key is there */
    bool overloaded = etype && strcmp(etype, "overloaded_error") == 0;
    return wk_fail(fail, overloaded ? 503 : 502, "upstream_stream_error", overloaded,
                   "%s stream error (%s): %s", job->d->provider->name, type, text);
}

/* /v1/messages to Anthropic: each event is relayed as it came; usage and the end are read
 * on the way (an error event ends the stream as the proxy's own error event). */
static int s_passthrough_event(wk_job_t *job, const char *event, const char *data, size_t len,
                               lp_buf_t *out, wk_fail_t *fail)
{
    char err[LP_ERR_LEN];
    s_relay_t r;
    if (s_relay_read(data, len, &r, err) < 0)
        return wk_fail(fail, 502, "invalid_upstream_stream", false,
                       "%s sent an invalid stream event: %s", job->d->provider->name, err);
    const char *type = r.type[0] ? r.type : event ? event : "";
    if (strcmp(type, "error") == 0) {
        json_t *ev = lp_json_parse(data, len, NULL); /* rare: read in full for its words */
        int rc = s_stream_error(job, ev, fail);
        json_decref(ev);
        return rc;
    }
    if (r.usage && (strcmp(type, "message_start") == 0 || strcmp(type, "message_delta") == 0)) {
        s_relay_usage(&r, &job->usage_prompt, &job->usage_completion);
        job->usage_total = job->usage_prompt + job->usage_completion;
        job->have_usage = true;
    } else if (strcmp(type, "message_stop") == 0) {
        job->done = true;
    } else if (strcmp(type, "content_block_delta") == 0) {
        job->content_bytes += len / 2; /* for an estimate, should usage never come */
    }
    size_t from = wk_sse_relay_start(out, type);
    lp_buf_append(out, data, len);
    wk_sse_relay_end(out, from);
    return 0;
}

/* One provider event, translated into zero or one OpenAI chunk. */
static int s_stream_event(wk_job_t *job, const char *event, const char *data, size_t len,
                          lp_buf_t *out, wk_fail_t *fail)
{
    if (job->done)
        return 0; /* nothing after message_stop counts */
    if (job->passthrough)
        return s_passthrough_event(job, event, data, len, out, fail);
    char err[LP_ERR_LEN];
    json_t *ev = lp_json_parse(data, len, err);
    if (!json_is_object(ev)) {
        json_decref(ev);
        return wk_fail(fail, 502, "invalid_upstream_stream", false,
                       "%s sent an invalid stream event: %s", job->d->provider->name,
                       ev ? "not a JSON object" : err);
    }
    const char *type = lp_json_str(ev, "type");
    if (!type)
        type = event ? event : "";
    int rc = 0;
    if (strcmp(type, "message_start") == 0) {
        s_message_start(job, ev, out);
    } else if (strcmp(type, "content_block_start") == 0) {
        s_block_start(job, ev, out);
    } else if (strcmp(type, "content_block_delta") == 0) {
        s_block_delta(job, ev, out);
    } else if (strcmp(type, "content_block_stop") == 0) {
        if (job->tool_calls && lp_json_int(ev, "index", -2) == job->tool_block)
            job->tool_block = -1;
    } else if (strcmp(type, "message_delta") == 0) {
        s_take_usage(job, json_object_get(ev, "usage"));
        s_finish_chunk(job, out, lp_json_str(json_object_get(ev, "delta"), "stop_reason"));
    } else if (strcmp(type, "message_stop") == 0) {
        s_finish_chunk(job, out, NULL); /* only when message_delta never said why */
        job->done = true;
    } else if (strcmp(type, "error") == 0) {
        rc = s_stream_error(job, ev, fail);
    }
    /* ping and event types added later: nothing to relay */
    json_decref(ev);
    return rc;
}

static int s_stream_end(wk_job_t *job, lp_buf_t *out, wk_fail_t *fail)
{
    if (!job->done)
        return wk_fail(fail, 502, "upstream_stream_truncated", false,
                       "%s ended the stream without message_stop", job->d->provider->name);
    if (job->passthrough)
        return 0; /* message_stop went out as it came */
    if (job->include_usage) {
        long long p, c, t;
        wk_stream_usage(job, &p, &c, &t);
        if (!job->created)
            job->created = (long long)time(NULL);
        json_t *chunk = json_object();
        json_object_set_new(chunk, "id", lp_json_text(job->chunk_id));
        json_object_set_new(chunk, "object", json_string("chat.completion.chunk"));
        json_object_set_new(chunk, "created", json_integer(job->created));
        json_object_set_new(chunk, "model", json_string(job->group));
        json_object_set_new(chunk, "choices", json_array());
        json_t *usage = json_object();
        json_object_set_new(usage, "prompt_tokens", json_integer(p));
        json_object_set_new(usage, "completion_tokens", json_integer(c));
        json_object_set_new(usage, "total_tokens", json_integer(t));
        json_object_set_new(chunk, "usage", usage);
        wk_sse_emit(out, chunk);
        json_decref(chunk);
    }
    lp_buf_puts(out, "data: [DONE]\n\n");
    return 0;
}

const wk_adapter_t wk_anthropic_adapter = {
    .name = "anthropic",
    .prepare = s_prepare,
    .respond = s_respond,
    .error = s_error,
    .stream_event = s_stream_event,
    .stream_end = s_stream_end,
};
