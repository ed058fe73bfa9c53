#include "gw_check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lp_clientside.h"
#include "lp_json.h"

typedef enum {
    S_INT,    /* whole number within [min, max] */
    S_NUM,    /* number within [min, max] */
    S_BOOL,   /* true or false */
    S_STR,    /* string */
    S_OBJ,    /* object */
    S_OBJS,   /* list of objects */
    S_STRS,   /* list of strings (at most max) */
    S_STOP,   /* a string or a list of at most max strings */
    S_CHOICE, /* a string or an object */
    S_SYSTEM, /* a string or a list of objects */
} s_type_t;

typedef struct {
    const char *name;
    s_type_t type;
    double min, max;
} s_field_t;

#define S_INT_MAX 2147483647.0

/* OpenAI's chat and text completion parameters. */
static const s_field_t s_openai[] = {
    {"max_tokens", S_INT, 1, S_INT_MAX},
    {"max_completion_tokens", S_INT, 1, S_INT_MAX},
    {"n", S_INT, 1, 128},
    {"temperature", S_NUM, 0, 2},
    {"top_p", S_NUM, 0, 1},
    {"presence_penalty", S_NUM, -2, 2},
    {"frequency_penalty", S_NUM, -2, 2},
    {"seed", S_INT, -9.2e18, 9.2e18},
    {"logprobs", S_BOOL, 0, 0},
    {"top_logprobs", S_INT, 0, 20},
    {"echo", S_BOOL, 0, 0},
    {"best_of", S_INT, 1, 128},
    {"parallel_tool_calls", S_BOOL, 0, 0},
    {"stop", S_STOP, 0, 4},
    {"tools", S_OBJS, 0, 0},
    {"functions", S_OBJS, 0, 0},
    {"tool_choice", S_CHOICE, 0, 0},
    {"function_call", S_CHOICE, 0, 0},
    {"response_format", S_OBJ, 0, 0},
    {"stream_options", S_OBJ, 0, 0},
    {"logit_bias", S_OBJ, 0, 0},
    {"metadata", S_OBJ, 0, 0},
    {"user", S_STR, 0, 0},
    {"reasoning_effort", S_STR, 0, 0},
    {"service_tier", S_STR, 0, 0},
};

/* OpenAI's embedding parameters. */
static const s_field_t s_embedding[] = {
    {"dimensions", S_INT, 1, 65536},
    {"encoding_format", S_STR, 0, 0},
    {"user", S_STR, 0, 0},
    {"metadata", S_OBJ, 0, 0},
};

/* Anthropic's Messages parameters. */
static const s_field_t s_anthropic[] = {
    {"max_tokens", S_INT, 1, S_INT_MAX},
    {"temperature", S_NUM, 0, 1},
    {"top_p", S_NUM, 0, 1},
    {"top_k", S_INT, 0, S_INT_MAX},
    {"stop_sequences", S_STRS, 0, 8192},
    {"system", S_SYSTEM, 0, 0},
    {"tools", S_OBJS, 0, 0},
    {"tool_choice", S_OBJ, 0, 0},
    {"metadata", S_OBJ, 0, 0},
    {"thinking", S_OBJ, 0, 0},
};

/* Fields that would steer the call and that no config can allow a client to set. */
static const char *s_steering[] = {"custom_host", "extra_headers"};

/* api_base / base_url / api_key: only as every deployment of the group allows them. */
static bool s_clientside(gw_req_t *req, const json_t *body)
{
    if (!lp_clientside_asked(body))
        return true;
    const lp_cfg_t *cfg = req->srv->cfg;
    for (size_t i = 0; i < cfg->ndeployments; i++) {
        const lp_deployment_t *d = &cfg->deployments[i];
        if (strcmp(d->model_name, req->group) != 0)
            continue;
        lp_clientside_req_t asked;
        char why[LP_ERR_LEN];
        if (lp_clientside_check(cfg, d, body, &asked, why) < 0) {
            gw_req_fail(req, 400, "parameter_not_allowed", asked.field, "%s", why);
            return false;
        }
    }
    return true;
}

static bool s_strings(const json_t *v, double max)
{
    if (!json_is_array(v) || (double)json_array_size(v) > max)
        return false;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        if (!json_is_string(x))
            return false;
    }
    return true;
}

static bool s_objects(const json_t *v)
{
    if (!json_is_array(v))
        return false;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        if (!json_is_object(x))
            return false;
    }
    return true;
}

/* NULL when v is acceptable for f, else what it must be. */
static const char *s_wrong(const s_field_t *f, const json_t *v, char *buf, size_t size)
{
    switch (f->type) {
    case S_INT: {
        double d = json_is_integer(v) ? (double)json_integer_value(v)
                   : json_is_real(v)  ? json_real_value(v)
                                      : NAN;
        if (!isnan(d) && d == floor(d) && d >= f->min && d <= f->max)
            return NULL;
        snprintf(buf, size, "a whole number from %.0f to %.0f", f->min, f->max);
        return buf;
    }
    case S_NUM:
        if (json_is_number(v) && json_number_value(v) >= f->min && json_number_value(v) <= f->max)
            return NULL;
        snprintf(buf, size, "a number from %g to %g", f->min, f->max);
        return buf;
    case S_BOOL:
        return json_is_boolean(v) ? NULL : "true or false";
    case S_STR:
        return json_is_string(v) ? NULL : "a string";
    case S_OBJ:
        return json_is_object(v) ? NULL : "an object";
    case S_OBJS:
        return s_objects(v) ? NULL : "a list of objects";
    case S_STRS:
        return s_strings(v, f->max) ? NULL : "a list of strings";
    case S_STOP:
        return json_is_string(v) || s_strings(v, f->max) ? NULL
                                                         : "a string or a list of up to 4 strings";
    case S_CHOICE:
        return json_is_string(v) || json_is_object(v) ? NULL : "a string or an object";
    case S_SYSTEM:
        return json_is_string(v) || s_objects(v) ? NULL : "a string or a list of text blocks";
    }
    return "of another type";
}

static bool s_fields(gw_req_t *req, const json_t *body, const s_field_t *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(body, fields[i].name);
        char buf[96];
        const char *want = v && !json_is_null(v) ? s_wrong(&fields[i], v, buf, sizeof buf) : NULL;
        if (want) {
            gw_req_fail(req, 400, NULL, fields[i].name, "%s must be %s", fields[i].name, want);
            return false;
        }
    }
    return true;
}

/* messages: a non-empty list of {role, content}; for Anthropic, roles user and assistant. */
static bool s_messages(gw_req_t *req, const json_t *body, bool anthropic)
{
    const json_t *msgs = json_object_get(body, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        gw_req_fail(req, 400, NULL, "messages",
                    "messages is required: a non-empty list of {role, content}");
        return false;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = lp_json_str(m, "role");
        if (!json_is_object(m) || !role ||
            (anthropic && strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
            gw_req_fail(req, 400, NULL, "messages", "messages[%zu] needs a role%s", i,
                        anthropic ? " user or assistant" : " (a string)");
            return false;
        }
        const json_t *content = json_object_get(m, "content");
        if (content && !json_is_string(content) && !json_is_array(content) &&
            !json_is_null(content)) {
            gw_req_fail(req, 400, NULL, "messages",
                        "messages[%zu].content must be a string, a list of parts, or null", i);
            return false;
        }
    }
    return true;
}

bool gw_check_body(gw_req_t *req, const json_t *body)
{
    for (size_t i = 0; i < LP_ARRAY_LEN(s_steering); i++) {
        if (json_object_get(body, s_steering[i])) {
            gw_req_fail(req, 400, "parameter_not_allowed", s_steering[i],
                        "%s cannot be set by a client: the proxy calls the upstreams its config "
                        "names, with their keys",
                        s_steering[i]);
            return false;
        }
    }
    if (!s_clientside(req, body))
        return false;
    switch (req->call) {
    case GW_CALL_CHAT:
        return s_messages(req, body, false) &&
               s_fields(req, body, s_openai, LP_ARRAY_LEN(s_openai));
    case GW_CALL_COMPLETION: {
        const json_t *p = json_object_get(body, "prompt");
        if (!json_is_string(p) && !json_is_array(p)) {
            gw_req_fail(req, 400, NULL, "prompt", "prompt is required: a string or a list");
            return false;
        }
        return s_fields(req, body, s_openai, LP_ARRAY_LEN(s_openai));
    }
    case GW_CALL_EMBEDDING: {
        const json_t *in = json_object_get(body, "input");
        if (!json_is_string(in) && (!json_is_array(in) || json_array_size(in) == 0)) {
            gw_req_fail(req, 400, NULL, "input", "input is required: a string or a non-empty list");
            return false;
        }
        return s_fields(req, body, s_embedding, LP_ARRAY_LEN(s_embedding));
    }
    case GW_CALL_MESSAGES:
    case GW_CALL_COUNT_TOKENS:
        if (!s_messages(req, body, true))
            return false;
        if (req->call == GW_CALL_MESSAGES &&
            !json_is_integer(json_object_get(body, "max_tokens"))) {
            gw_req_fail(req, 400, NULL, "max_tokens",
                        "max_tokens is required: a whole number >= 1");
            return false;
        }
        return s_fields(req, body, s_anthropic, LP_ARRAY_LEN(s_anthropic));
    default:
        return true;
    }
}
