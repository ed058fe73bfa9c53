#include "wk_messages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_json.h"

/* ---- requests: Anthropic -> OpenAI chat ---- */

/* A string field, or "" when absent. */
static const char *s_str(const json_t *o, const char *key)
{
    const char *v = lp_json_str(o, key);
    return v ? v : "";
}

static json_t *s_bad(wk_fail_t *fail, json_t *partial, const char *what)
{
    json_decref(partial);
    wk_fail(fail, 400, NULL, false, "%s", what);
    return NULL;
}

/* The text of a string, or of the text blocks of a list (joined with newlines). */
static char *s_text_of(const json_t *content)
{
    if (json_is_string(content))
        return lp_strdup(json_string_value(content));
    lp_buf_t b = {0};
    size_t i;
    json_t *block;
    json_array_foreach(content, i, block)
    {
        const char *t = lp_json_str(block, "text");
        if (t && !strcmp(s_str(block, "type"), "text")) {
            if (b.len)
                lp_buf_puts(&b, "\n");
            lp_buf_puts(&b, t);
        }
    }
    size_t n = 0;
    char *s = lp_buf_steal(&b, &n);
    return s ? s : lp_strdup("");
}

/* An image block as an OpenAI image_url part (base64 data or a URL). */
static json_t *s_image(const json_t *block)
{
    const json_t *src = json_object_get(block, "source");
    const char *type = lp_json_str(src, "type");
    char *url = NULL;
    if (type && !strcmp(type, "base64") && lp_json_str(src, "media_type") &&
        lp_json_str(src, "data"))
        url = lp_asprintf("data:%s;base64,%s", lp_json_str(src, "media_type"),
                          lp_json_str(src, "data"));
    else if (type && !strcmp(type, "url") && lp_json_str(src, "url"))
        url = lp_strdup(lp_json_str(src, "url"));
    if (!url)
        return NULL;
    json_t *iu = json_object();
    json_object_set_new(iu, "url", lp_json_text(url));
    free(url);
    json_t *part = json_object();
    json_object_set_new(part, "type", json_string("image_url"));
    json_object_set_new(part, "image_url", iu);
    return part;
}

/* One user message's blocks: tool results become "tool" messages (first, as OpenAI wants
 * them right after the assistant's tool calls), the rest one user message. */
static const char *s_user(json_t *msgs, const json_t *content)
{
    json_t *parts = json_array();
    size_t i;
    json_t *block;
    json_array_foreach(content, i, block)
    {
        const char *type = lp_json_str(block, "type");
        if (!type) {
            json_decref(parts);
            return "every content block needs a type";
        }
        if (!strcmp(type, "text")) {
            json_t *p = json_object();
            json_object_set_new(p, "type", json_string("text"));
            json_object_set_new(p, "text", lp_json_text(s_str(block, "text")));
            json_array_append_new(parts, p);
        } else if (!strcmp(type, "image")) {
            json_t *p = s_image(block);
            if (!p) {
                json_decref(parts);
                return "an image block needs source {type: base64, media_type, data} or "
                       "{type: url, url}";
            }
            json_array_append_new(parts, p);
        } else if (!strcmp(type, "tool_result")) {
            const char *id = lp_json_str(block, "tool_use_id");
            if (!id) {
                json_decref(parts);
                return "a tool_result block needs tool_use_id";
            }
            char *text = s_text_of(json_object_get(block, "content"));
            json_t *m = json_object();
            json_object_set_new(m, "role", json_string("tool"));
            json_object_set_new(m, "tool_call_id", lp_json_text(id));
            json_object_set_new(m, "content", lp_json_text(text));
            free(text);
            json_array_append_new(msgs, m);
        } else if (!strcmp(type, "document") &&
                   !strcmp(s_str(json_object_get(block, "source"), "type"), "text")) {
            json_t *p = json_object();
            json_object_set_new(p, "type", json_string("text"));
            json_object_set_new(p, "text",
                                lp_json_text(s_str(json_object_get(block, "source"), "data")));
            json_array_append_new(parts, p);
        } else {
            json_decref(parts);
            return "this content block type cannot be sent to a non-Anthropic model (text, "
                   "image, tool_result and text documents can)";
        }
    }
    if (json_array_size(parts)) {
        json_t *m = json_object();
        json_object_set_new(m, "role", json_string("user"));
        json_object_set_new(m, "content", parts);
        json_array_append_new(msgs, m);
    } else {
        json_decref(parts);
    }
    return NULL;
}

/* An assistant message's blocks: text joined, tool_use as tool_calls, thinking dropped. */
static const char *s_assistant(json_t *msgs, const json_t *content)
{
    lp_buf_t text = {0};
    json_t *calls = json_array();
    size_t i;
    json_t *block;
    json_array_foreach(content, i, block)
    {
        const char *type = s_str(block, "type");
        if (!strcmp(type, "text")) {
            lp_buf_puts(&text, s_str(block, "text"));
        } else if (!strcmp(type, "tool_use")) {
            const json_t *input = json_object_get(block, "input");
            char *args = input ? lp_json_dump(input, NULL) : lp_strdup("{}");
            json_t *fn = json_object();
            json_object_set_new(fn, "name", lp_json_text(s_str(block, "name")));
            json_object_set_new(fn, "arguments", lp_json_text(args));
            free(args);
            json_t *call = json_object();
            json_object_set_new(call, "id", lp_json_text(s_str(block, "id")));
            json_object_set_new(call, "type", json_string("function"));
            json_object_set_new(call, "function", fn);
            json_array_append_new(calls, call);
        }
    }
    json_t *m = json_object();
    json_object_set_new(m, "role", json_string("assistant"));
    json_object_set_new(m, "content",
                        text.len || !json_array_size(calls)
                            ? lp_json_text(text.data ? text.data : "")
                            : json_null());
    if (json_array_size(calls))
        json_object_set(m, "tool_calls", calls);
    json_decref(calls);
    lp_buf_free(&text);
    json_array_append_new(msgs, m);
    return NULL;
}

static json_t *s_tools(const json_t *tools, const char **why)
{
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *type = lp_json_str(t, "type");
        const char *name = lp_json_str(t, "name");
        if ((type && strcmp(type, "custom") != 0) || !name) {
            json_decref(out);
            *why = "only custom tools (name, description, input_schema) can go to a "
                   "non-Anthropic model";
            return NULL;
        }
        json_t *fn = json_object();
        json_object_set_new(fn, "name", lp_json_text(name));
        if (lp_json_str(t, "description"))
            json_object_set_new(fn, "description", lp_json_text(lp_json_str(t, "description")));
        const json_t *schema = json_object_get(t, "input_schema");
        json_object_set(fn, "parameters", schema ? (json_t *)schema : json_object());
        if (!schema)
            json_decref(json_object_get(fn, "parameters"));
        json_t *tool = json_object();
        json_object_set_new(tool, "type", json_string("function"));
        json_object_set_new(tool, "function", fn);
        json_array_append_new(out, tool);
    }
    return out;
}

/* tool_choice {type: auto|any|tool|none, name?, disable_parallel_tool_use?}. */
static void s_tool_choice(json_t *out, const json_t *choice)
{
    const char *type = lp_json_str(choice, "type");
    if (!type)
        return;
    if (!strcmp(type, "auto")) {
        json_object_set_new(out, "tool_choice", json_string("auto"));
    } else if (!strcmp(type, "any")) {
        json_object_set_new(out, "tool_choice", json_string("required"));
    } else if (!strcmp(type, "none")) {
        json_object_set_new(out, "tool_choice", json_string("none"));
    } else if (!strcmp(type, "tool") && lp_json_str(choice, "name")) {
        json_t *fn = json_object();
        json_object_set_new(fn, "name", lp_json_text(lp_json_str(choice, "name")));
        json_t *tc = json_object();
        json_object_set_new(tc, "type", json_string("function"));
        json_object_set_new(tc, "function", fn);
        json_object_set_new(out, "tool_choice", tc);
    }
    if (lp_json_bool(choice, "disable_parallel_tool_use", false))
        json_object_set_new(out, "parallel_tool_calls", json_false());
}

json_t *wk_messages_to_chat(const json_t *req, wk_fail_t *fail)
{
    json_t *out = json_object();
    json_t *msgs = json_array();
    json_object_set_new(out, "messages", msgs);
    const json_t *system = json_object_get(req, "system");
    if (json_is_string(system) || json_is_array(system)) {
        char *text = s_text_of(system);
        json_t *m = json_object();
        json_object_set_new(m, "role", json_string("system"));
        json_object_set_new(m, "content", lp_json_text(text));
        free(text);
        json_array_append_new(msgs, m);
    } else if (system && !json_is_null(system)) {
        return s_bad(fail, out, "system must be a string or a list of text blocks");
    }
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(req, "messages"), i, m)
    {
        const char *role = lp_json_str(m, "role");
        const json_t *content = json_object_get(m, "content");
        if (!role || (strcmp(role, "user") && strcmp(role, "assistant")))
            return s_bad(fail, out, "every message needs role user or assistant");
        if (json_is_string(content)) {
            json_t *c = json_object();
            json_object_set_new(c, "role", json_string(role));
            json_object_set(c, "content", (json_t *)content);
            json_array_append_new(msgs, c);
            continue;
        }
        if (!json_is_array(content))
            return s_bad(fail, out, "message content must be a string or a list of blocks");
        const char *why =
            !strcmp(role, "user") ? s_user(msgs, content) : s_assistant(msgs, content);
        if (why)
            return s_bad(fail, out, why);
    }
    static const char *same[] = {"model", "max_tokens", "temperature",
                                 "top_p", "stream",     "mock_response"};
    for (size_t k = 0; k < LP_ARRAY_LEN(same); k++) {
        json_t *v = json_object_get(req, same[k]);
        if (v)
            json_object_set(out, same[k], v);
    }
    if (json_object_get(req, "stop_sequences"))
        json_object_set(out, "stop", json_object_get(req, "stop_sequences"));
    const char *user = lp_json_str(json_object_get(req, "metadata"), "user_id");
    if (user)
        json_object_set_new(out, "user", lp_json_text(user));
    if (json_is_array(json_object_get(req, "tools"))) {
        const char *why = NULL;
        json_t *tools = s_tools(json_object_get(req, "tools"), &why);
        if (!tools)
            return s_bad(fail, out, why);
        json_object_set_new(out, "tools", tools);
    }
    s_tool_choice(out, json_object_get(req, "tool_choice"));
    if (json_is_true(json_object_get(req, "stream"))) {
        json_t *so = json_object();
        json_object_set_new(so, "include_usage", json_true()); /* usage for message_delta */
        json_object_set_new(out, "stream_options", so);
    }
    /* top_k, thinking, service_tier ...: no OpenAI-shaped equivalent; not sent. */
    return out;
}

long long wk_messages_estimate(const json_t *req)
{
    size_t bytes = 0;
    char *sys = s_text_of(json_object_get(req, "system"));
    bytes += strlen(sys);
    free(sys);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(req, "messages"), i, m)
    {
        char *t = s_text_of(json_object_get(m, "content"));
        bytes += strlen(t);
        free(t);
    }
    json_t *tools = json_object_get(req, "tools");
    if (tools) {
        char *t = lp_json_dump(tools, NULL);
        bytes += strlen(t);
        free(t);
    }
    return wk_estimate_tokens(bytes);
}

/* ---- answers: OpenAI chat -> Anthropic ---- */

static const char *s_stop_reason(const char *finish)
{
    if (!finish)
        return "end_turn";
    if (!strcmp(finish, "length"))
        return "max_tokens";
    if (!strcmp(finish, "tool_calls") || !strcmp(finish, "function_call"))
        return "tool_use";
    return "end_turn";
}

static json_t *s_msg_id(const char *id)
{
    if (id && !strncmp(id, "msg_", 4))
        return lp_json_text(id);
    char *s = lp_asprintf("msg_%s", id && *id ? id : "proxy");
    json_t *v = lp_json_text(s);
    free(s);
    return v;
}

json_t *wk_messages_from_chat(const json_t *resp)
{
    const json_t *choice = json_array_get(json_object_get(resp, "choices"), 0);
    const json_t *msg = json_object_get(choice, "message");
    json_t *content = json_array();
    const char *thinking = lp_json_str(msg, "reasoning_content");
    if (thinking && *thinking) {
        json_t *b = json_object();
        json_object_set_new(b, "type", json_string("thinking"));
        json_object_set_new(b, "thinking", lp_json_text(thinking));
        json_object_set_new(b, "signature", json_string(""));
        json_array_append_new(content, b);
    }
    const char *text = lp_json_str(msg, "content");
    if (text && *text) {
        json_t *b = json_object();
        json_object_set_new(b, "type", json_string("text"));
        json_object_set_new(b, "text", lp_json_text(text));
        json_array_append_new(content, b);
    }
    size_t i;
    json_t *call;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, call)
    {
        const json_t *fn = json_object_get(call, "function");
        const char *args = lp_json_str(fn, "arguments");
        json_t *input = args ? json_loads(args, 0, NULL) : NULL;
        if (!json_is_object(input)) {
            json_decref(input);
            input = json_object();
        }
        json_t *b = json_object();
        json_object_set_new(b, "type", json_string("tool_use"));
        json_object_set_new(b, "id", lp_json_text(s_str(call, "id")));
        json_object_set_new(b, "name", lp_json_text(s_str(fn, "name")));
        json_object_set_new(b, "input", input);
        json_array_append_new(content, b);
    }
    const json_t *u = json_object_get(resp, "usage");
    json_t *usage = json_object();
    json_object_set_new(usage, "input_tokens", json_integer(lp_json_tokens(u, "prompt_tokens", 0)));
    json_object_set_new(usage, "output_tokens",
                        json_integer(lp_json_tokens(u, "completion_tokens", 0)));
    json_t *out = json_object();
    json_object_set_new(out, "id", s_msg_id(lp_json_str(resp, "id")));
    json_object_set_new(out, "type", json_string("message"));
    json_object_set_new(out, "role", json_string("assistant"));
    json_object_set(out, "model", json_object_get(resp, "model"));
    json_object_set_new(out, "content", content);
    json_object_set_new(out, "stop_reason",
                        json_string(s_stop_reason(lp_json_str(choice, "finish_reason"))));
    json_object_set_new(out, "stop_sequence", json_null());
    json_object_set_new(out, "usage", usage);
    return out;
}

/* ---- streams: chat.completion.chunk events -> Anthropic events ---- */

static void s_event(lp_buf_t *out, const char *name, json_t *data)
{
    char *text = lp_json_dump(data, NULL);
    lp_buf_printf(out, "event: %s\ndata: %s\n\n", name, text);
    free(text);
    json_decref(data);
}

void wk_messages_error_event(lp_buf_t *out, int status, const char *message)
{
    size_t len = 0;
    char *body = lp_anthropic_error_body(status, message, &len);
    lp_buf_puts(out, "event: error\ndata: ");
    lp_buf_append(out, body, len);
    lp_buf_puts(out, "\n\n");
    free(body);
}

typedef struct {
    wk_messages_stream_t *st;
    lp_buf_t *out;
} s_ctx_t;

static void s_start(wk_messages_stream_t *st, lp_buf_t *out, const json_t *chunk)
{
    if (st->started)
        return;
    st->started = true;
    json_t *usage = json_object();
    json_object_set_new(usage, "input_tokens", json_integer(0));
    json_object_set_new(usage, "output_tokens", json_integer(0));
    json_t *msg = json_object();
    json_object_set_new(msg, "id", s_msg_id(lp_json_str(chunk, "id")));
    json_object_set_new(msg, "type", json_string("message"));
    json_object_set_new(msg, "role", json_string("assistant"));
    json_t *model = json_object_get(chunk, "model");
    json_object_set(msg, "model", model ? model : json_null());
    if (!model)
        json_decref(json_object_get(msg, "model"));
    json_object_set_new(msg, "content", json_array());
    json_object_set_new(msg, "stop_reason", json_null());
    json_object_set_new(msg, "stop_sequence", json_null());
    json_object_set_new(msg, "usage", usage);
    json_t *ev = json_object();
    json_object_set_new(ev, "type", json_string("message_start"));
    json_object_set_new(ev, "message", msg);
    s_event(out, "message_start", ev);
}

static void s_close_block(wk_messages_stream_t *st, lp_buf_t *out)
{
    if (!st->open)
        return;
    json_t *ev = json_object();
    json_object_set_new(ev, "type", json_string("content_block_stop"));
    json_object_set_new(ev, "index", json_integer(st->block));
    s_event(out, "content_block_stop", ev);
    st->open = 0;
}

static void s_open_block(wk_messages_stream_t *st, lp_buf_t *out, char kind, json_t *block)
{
    s_close_block(st, out);
    st->block = st->next_block++;
    st->open = kind;
    json_t *ev = json_object();
    json_object_set_new(ev, "type", json_string("content_block_start"));
    json_object_set_new(ev, "index", json_integer(st->block));
    json_object_set_new(ev, "content_block", block);
    s_event(out, "content_block_start", ev);
}

static void s_delta(wk_messages_stream_t *st, lp_buf_t *out, const char *type, const char *key,
                    const char *text)
{
    json_t *d = json_object();
    json_object_set_new(d, "type", json_string(type));
    json_object_set_new(d, key, lp_json_text(text));
    json_t *ev = json_object();
    json_object_set_new(ev, "type", json_string("content_block_delta"));
    json_object_set_new(ev, "index", json_integer(st->block));
    json_object_set_new(ev, "delta", d);
    s_event(out, "content_block_delta", ev);
}

static void s_text(wk_messages_stream_t *st, lp_buf_t *out, char kind, const char *text)
{
    if (!text || !*text)
        return;
    if (st->open != kind) {
        json_t *b = json_object();
        json_object_set_new(b, "type", json_string(kind == 't' ? "text" : "thinking"));
        json_object_set_new(b, kind == 't' ? "text" : "thinking", json_string(""));
        s_open_block(st, out, kind, b);
    }
    s_delta(st, out, kind == 't' ? "text_delta" : "thinking_delta",
            kind == 't' ? "text" : "thinking", text);
}

static void s_tool(wk_messages_stream_t *st, lp_buf_t *out, const json_t *tc)
{
    int index = (int)lp_json_int(tc, "index", 0);
    const json_t *fn = json_object_get(tc, "function");
    if (st->open != 'u' || index != st->tool_index || lp_json_str(tc, "id")) {
        json_t *b = json_object();
        json_object_set_new(b, "type", json_string("tool_use"));
        json_object_set_new(b, "id", lp_json_text(s_str(tc, "id")));
        json_object_set_new(b, "name", lp_json_text(s_str(fn, "name")));
        json_object_set_new(b, "input", json_object());
        s_open_block(st, out, 'u', b);
        st->tool_index = index;
    }
    const char *args = lp_json_str(fn, "arguments");
    if (args && *args)
        s_delta(st, out, "input_json_delta", "partial_json", args);
}

static void s_stop(wk_messages_stream_t *st, lp_buf_t *out)
{
    if (st->stopped)
        return;
    s_start(st, out, NULL);
    s_close_block(st, out);
    json_t *delta = json_object();
    json_object_set_new(delta, "stop_reason",
                        json_string(st->stop_reason[0] ? st->stop_reason : "end_turn"));
    json_object_set_new(delta, "stop_sequence", json_null());
    json_t *usage = json_object();
    json_object_set_new(usage, "input_tokens", json_integer(st->input_tokens));
    json_object_set_new(usage, "output_tokens", json_integer(st->output_tokens));
    json_t *ev = json_object();
    json_object_set_new(ev, "type", json_string("message_delta"));
    json_object_set_new(ev, "delta", delta);
    json_object_set_new(ev, "usage", usage);
    s_event(out, "message_delta", ev);
    json_t *stop = json_object();
    json_object_set_new(stop, "type", json_string("message_stop"));
    s_event(out, "message_stop", stop);
    st->stopped = true;
}

/* An OpenAI error type as the closest HTTP status, for Anthropic's error type. */
static int s_error_status(const char *type)
{
    static const struct {
        const char *type;
        int status;
    } map[] = {{"authentication_error", 401},  {"permission_error", 403},
               {"not_found_error", 404},       {"rate_limit_error", 429},
               {"invalid_request_error", 400}, {"service_unavailable_error", 503}};
    for (size_t i = 0; type && i < LP_ARRAY_LEN(map); i++) {
        if (!strcmp(map[i].type, type))
            return map[i].status;
    }
    return 500;
}

static int s_chunk(const char *event, const char *data, size_t len, void *arg)
{
    LP_UNUSED(event);
    s_ctx_t *ctx = arg;
    wk_messages_stream_t *st = ctx->st;
    if (st->stopped)
        return 0;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        s_stop(st, ctx->out);
        return 0;
    }
    char err[LP_ERR_LEN];
    json_t *chunk = lp_json_parse(data, len, err);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        return 0;
    }
    const json_t *error = json_object_get(chunk, "error");
    if (error) {
        wk_messages_error_event(ctx->out, s_error_status(lp_json_str(error, "type")),
                                lp_json_str(error, "message"));
        st->stopped = true; /* nothing may follow an error event */
        json_decref(chunk);
        return 0;
    }
    s_start(st, ctx->out, chunk);
    const json_t *usage = json_object_get(chunk, "usage");
    if (json_is_object(usage)) {
        st->input_tokens = lp_json_tokens(usage, "prompt_tokens", st->input_tokens);
        st->output_tokens = lp_json_tokens(usage, "completion_tokens", st->output_tokens);
    }
    const json_t *c = json_array_get(json_object_get(chunk, "choices"), 0);
    const json_t *delta = json_object_get(c, "delta");
    s_text(st, ctx->out, 'k', lp_json_str(delta, "reasoning_content"));
    s_text(st, ctx->out, 't', lp_json_str(delta, "content"));
    size_t i;
    json_t *tc;
    json_array_foreach(json_object_get(delta, "tool_calls"), i, tc)
    {
        s_tool(st, ctx->out, tc);
    }
    const char *finish = lp_json_str(c, "finish_reason");
    if (finish)
        lp_strlcpy(st->stop_reason, s_stop_reason(finish), sizeof st->stop_reason);
    json_decref(chunk);
    return 0;
}

void wk_messages_stream(wk_messages_stream_t **st_p, lp_buf_t *in, lp_buf_t *out)
{
    if (!*st_p)
        *st_p = lp_calloc(1, sizeof **st_p);
    wk_messages_stream_t *st = *st_p;
    s_ctx_t ctx = {st, out};
    if (in->len && lp_sse_feed(&st->sse, in->data, in->len, s_chunk, &ctx) < 0)
        wk_messages_error_event(out, 502, "the stream could not be translated");
    lp_buf_reset(in);
}

void wk_messages_stream_destroy(wk_messages_stream_t **st_p)
{
    wk_messages_stream_t *st = *st_p;
    if (!st)
        return;
    lp_sse_free(&st->sse);
    free(st);
    *st_p = NULL;
}
