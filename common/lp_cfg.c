#include "lp_cfg.h"

#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lp_crypto.h"
#include "lp_yaml.h"

#define S_ENV_PREFIX "os.environ/"

/* How a key's value is read and where it lands in lp_cfg_t. */
typedef enum {
    K_STR,    /* char * */
    K_SECRET, /* char *, never echoed in messages */
    K_INT,    /* int, within [min,max] */
    K_DOUBLE, /* double, within [min,max] */
    K_BOOL,   /* bool */
    K_JSON,   /* json_t *, any shape */
    K_LATER,  /* a LiteLLM key llm-proxy does not implement yet: warn, ignore */
} s_kind_t;

typedef struct {
    const char *key;
    s_kind_t kind;
    size_t off;
    double min, max;
} s_key_t;

typedef struct {
    const char *name; /* file name for messages */
    char *err;
    lp_cfg_t *cfg;
} s_ctx_t;

#define OFF(f) offsetof(lp_cfg_t, f)

static const s_key_t s_router_keys[] = {
    {"routing_strategy", K_STR, OFF(routing_strategy), 0, 0},
    {"num_retries", K_INT, OFF(num_retries), 0, 20},
    {"timeout", K_DOUBLE, OFF(timeout_s), 0.001, 86400},
    {"stream_timeout", K_DOUBLE, OFF(stream_timeout_s), 0.001, 86400},
    {"allowed_fails", K_INT, OFF(allowed_fails), 0, 1000000},
    {"cooldown_time", K_DOUBLE, OFF(cooldown_time_s), 0, 86400},
    {"retry_after", K_DOUBLE, OFF(retry_after_s), 0, 3600},
    {"fallbacks", K_JSON, OFF(fallbacks), 0, 0},
    {"context_window_fallbacks", K_JSON, OFF(context_window_fallbacks), 0, 0},
    {"default_fallbacks", K_JSON, OFF(default_fallbacks), 0, 0},
    {"redis_host", K_STR, OFF(redis_host), 0, 0},
    {"redis_port", K_INT, OFF(redis_port), 1, 65535},
    {"redis_password", K_SECRET, OFF(redis_password), 0, 0},
    {"routing_strategy_args", K_LATER, 0, 0, 0},
    {"retry_policy", K_LATER, 0, 0, 0},
    {"allowed_fails_policy", K_LATER, 0, 0, 0},
    {"content_policy_fallbacks", K_LATER, 0, 0, 0},
    {"max_fallbacks", K_LATER, 0, 0, 0},
    {"enable_pre_call_checks", K_LATER, 0, 0, 0},
    {"model_group_alias", K_LATER, 0, 0, 0},
    {"cache_responses", K_LATER, 0, 0, 0},
};

static const s_key_t s_litellm_keys[] = {
    {"drop_params", K_BOOL, OFF(drop_params), 0, 0},
    {"request_timeout", K_DOUBLE, OFF(request_timeout_s), 0.001, 86400},
    {"num_retries", K_INT, OFF(num_retries), 0, 20},
    {"cache", K_BOOL, OFF(cache), 0, 0},
    {"cache_params", K_JSON, OFF(cache_params), 0, 0},
    {"require_auth_for_metrics_endpoint", K_BOOL, OFF(metrics_auth), 0, 0},
    {"set_verbose", K_LATER, 0, 0, 0}, /* handled specially below */
    {"json_logs", K_LATER, 0, 0, 0},
    {"callbacks", K_LATER, 0, 0, 0},
    {"success_callback", K_LATER, 0, 0, 0},
    {"failure_callback", K_LATER, 0, 0, 0},
    {"service_callback", K_LATER, 0, 0, 0},
    {"turn_off_message_logging", K_LATER, 0, 0, 0},
    {"redact_user_api_key_info", K_LATER, 0, 0, 0},
    {"context_window_fallbacks", K_LATER, 0, 0, 0},
    {"fallbacks", K_LATER, 0, 0, 0},
    {"default_fallbacks", K_LATER, 0, 0, 0},
    {"max_budget", K_LATER, 0, 0, 0},
    {"budget_duration", K_LATER, 0, 0, 0},
    {"modify_params", K_LATER, 0, 0, 0},
};

static const s_key_t s_general_keys[] = {
    {"master_key", K_SECRET, OFF(master_key), 0, 0},
    {"database_url", K_SECRET, OFF(database_url), 0, 0},
    {"proxy_batch_write_at", K_DOUBLE, OFF(proxy_batch_write_at_s), 0.01, 3600},
    {"max_request_size_mb", K_INT, OFF(max_request_size_mb), 1, 1024},
    {"database_connection_pool_limit", K_LATER, 0, 0, 0},
    {"database_connection_timeout", K_LATER, 0, 0, 0},
    {"disable_spend_logs", K_LATER, 0, 0, 0},
    {"disable_error_logs", K_LATER, 0, 0, 0},
    {"store_prompts_in_spend_logs", K_LATER, 0, 0, 0},
    {"allow_requests_on_db_unavailable", K_LATER, 0, 0, 0},
    {"user_api_key_cache_ttl", K_DOUBLE, OFF(key_cache_ttl_s), 0, 86400},
    {"limits_fail_closed", K_BOOL, OFF(limits_fail_closed), 0, 0},
    {"allow_client_side_credentials", K_BOOL, OFF(allow_client_side_credentials), 0, 0},
    {"alerting", K_LATER, 0, 0, 0},
    {"alerting_threshold", K_LATER, 0, 0, 0},
    {"background_health_checks", K_LATER, 0, 0, 0},
    {"health_check_interval", K_LATER, 0, 0, 0},
    {"health_check_details", K_LATER, 0, 0, 0},
    {"max_parallel_requests", K_LATER, 0, 0, 0},
    {"global_max_parallel_requests", K_LATER, 0, 0, 0},
    {"max_response_size_mb", K_LATER, 0, 0, 0},
    {"enforce_user_param", K_LATER, 0, 0, 0},
    {"allowed_ips", K_LATER, 0, 0, 0},
    {"litellm_key_header_name", K_LATER, 0, 0, 0},
    {"use_redis_transaction_buffer", K_LATER, 0, 0, 0},
    {"maximum_spend_logs_retention_period", K_LATER, 0, 0, 0},
};

/* Security-relevant keys that only mean something in general_settings: elsewhere they would
 * be silently ineffective, so a misplaced one stops the load. */
static const char *s_general_only[] = {"master_key", "database_url"};

static void s_warn(s_ctx_t *ctx, const lp_ynode_t *node, const char *fmt, ...) LP_PRINTF(3, 4);

static void s_warn(s_ctx_t *ctx, const lp_ynode_t *node, const char *fmt, ...)
{
    char msg[LP_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lp_cfg_t *cfg = ctx->cfg;
    cfg->warnings = lp_realloc(cfg->warnings, (cfg->nwarnings + 1) * sizeof *cfg->warnings);
    cfg->warnings[cfg->nwarnings++] =
        lp_asprintf("%s:%d:%d: %s", ctx->name, node ? node->line : 0, node ? node->col : 0, msg);
}

static int s_fail(s_ctx_t *ctx, const lp_ynode_t *node, const char *fmt, ...) LP_PRINTF(3, 4);

static int s_fail(s_ctx_t *ctx, const lp_ynode_t *node, const char *fmt, ...)
{
    char msg[LP_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lp_err_set(ctx->err, "%s:%d:%d: %s", ctx->name, node ? node->line : 0,
                      node ? node->col : 0, msg);
}

/* Longest secret file read for NAME_FILE. */
#define S_FILE_MAX (64 * 1024)

/* The value of environment variable name, else the content of the file NAME_FILE names
 * (Docker and Kubernetes secrets; trailing newlines dropped), else NULL. A file value is
 * kept in cfg (zeroed when it is freed). -1 with err when NAME_FILE cannot be read. */
static int s_env(s_ctx_t *ctx, const char *name, const char **out)
{
    *out = getenv(name);
    if (*out && **out)
        return 0;
    *out = NULL; /* empty counts as unset: NAME_FILE may still give it */
    char var[256];
    snprintf(var, sizeof var, "%s_FILE", name);
    const char *path = getenv(var);
    if (!path || !*path)
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return lp_err_set(ctx->err, "%s=%s: cannot read it: %s", var, path, strerror(errno));
    char *buf = lp_calloc(1, S_FILE_MAX + 1);
    size_t n = fread(buf, 1, S_FILE_MAX + 1, f);
    bool bad = ferror(f) || n > S_FILE_MAX;
    fclose(f);
    if (bad) {
        explicit_bzero(buf, S_FILE_MAX + 1);
        free(buf);
        return lp_err_set(ctx->err, "%s=%s: unreadable or larger than 64 KiB", var, path);
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    lp_cfg_t *cfg = ctx->cfg;
    cfg->file_values = lp_realloc(cfg->file_values, (cfg->nfile_values + 1) * sizeof(char *));
    cfg->file_values[cfg->nfile_values++] = buf;
    *out = buf;
    return 0;
}

/* The text of a scalar after `os.environ/NAME` resolution. *out is NULL when the variable is
 * unset or the scalar is a YAML null. Borrowed from the tree or the environment. */
static int s_scalar(s_ctx_t *ctx, const lp_ynode_t *node, const char *key, const char **out)
{
    *out = NULL;
    if (node->type != LP_YAML_SCALAR)
        return s_fail(ctx, node, "%s: expected a value, got a %s", key, lp_yaml_type_name(node));
    if (lp_yaml_is_null(node))
        return 0;
    if (lp_str_prefix(node->value, S_ENV_PREFIX)) {
        const char *name = node->value + strlen(S_ENV_PREFIX);
        if (!*name)
            return s_fail(ctx, node, "%s: os.environ/ needs a variable name", key);
        if (s_env(ctx, name, out) < 0)
            return -1;
        /* Unset secrets are normal (a provider not in use, no database): the daemon that
         * needs one says so when it does. Anything else unset is worth a warning. */
        if (!*out && !strstr(key, "api_key") && !strstr(key, "database_url") &&
            !strstr(key, "master_key"))
            s_warn(ctx, node, "%s: environment variable %s is not set", key, name);
        return 0;
    }
    *out = node->value;
    return 0;
}

static int s_bool_text(const char *v, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < LP_ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* YAML to JSON: plain scalars become numbers, booleans or null where they look like one;
 * quoted scalars stay strings; strings resolve os.environ/ when resolve is set. */
static json_t *s_to_json(s_ctx_t *ctx, const lp_ynode_t *node, bool resolve)
{
    switch (node->type) {
    case LP_YAML_MAP: {
        json_t *obj = json_object();
        for (size_t i = 0; i < node->n; i++)
            json_object_set_new(obj, node->keys[i]->value, s_to_json(ctx, node->items[i], resolve));
        return obj;
    }
    case LP_YAML_SEQ: {
        json_t *arr = json_array();
        for (size_t i = 0; i < node->n; i++)
            json_array_append_new(arr, s_to_json(ctx, node->items[i], resolve));
        return arr;
    }
    default:
        break;
    }
    if (lp_yaml_is_null(node))
        return json_null();
    if (node->plain) {
        long long ll;
        double d;
        bool b;
        if (lp_parse_ll(node->value, LLONG_MIN, LLONG_MAX, &ll) == 0)
            return json_integer(ll);
        if (lp_parse_double(node->value, &d) == 0)
            return json_real(d);
        if (strcasecmp(node->value, "true") == 0 || strcasecmp(node->value, "false") == 0) {
            int rc = s_bool_text(node->value, &b);
            LP_UNUSED(rc);
            return json_boolean(b);
        }
    }
    if (resolve) {
        const char *v = NULL;
        if (s_scalar(ctx, node, "value", &v) < 0 || !v)
            return json_null();
        return json_string(v);
    }
    return json_string(node->value);
}

static int s_read_double(s_ctx_t *ctx, const lp_ynode_t *node, const char *key, double min,
                         double max, double *out)
{
    const char *v;
    if (s_scalar(ctx, node, key, &v) < 0)
        return -1;
    if (!v)
        return 0;
    double d;
    if (lp_parse_double(v, &d) < 0)
        return s_fail(ctx, node, "%s: expected a number, got '%.40s'", key, v);
    if (d < min || d > max)
        return s_fail(ctx, node, "%s: %g is out of range [%g, %g]", key, d, min, max);
    *out = d;
    return 0;
}

static int s_read_ll(s_ctx_t *ctx, const lp_ynode_t *node, const char *key, long long min,
                     long long max, long long *out)
{
    const char *v;
    if (s_scalar(ctx, node, key, &v) < 0)
        return -1;
    if (!v)
        return 0;
    long long ll;
    if (lp_parse_ll(v, LLONG_MIN, LLONG_MAX, &ll) < 0)
        return s_fail(ctx, node, "%s: expected a whole number, got '%.40s'", key, v);
    if (ll < min || ll > max)
        return s_fail(ctx, node, "%s: %lld is out of range [%lld, %lld]", key, ll, min, max);
    *out = ll;
    return 0;
}

static int s_read_bool(s_ctx_t *ctx, const lp_ynode_t *node, const char *key, bool *out)
{
    const char *v;
    if (s_scalar(ctx, node, key, &v) < 0)
        return -1;
    if (!v)
        return 0;
    if (s_bool_text(v, out) < 0)
        return s_fail(ctx, node, "%s: expected true or false, got '%.40s'", key, v);
    return 0;
}

static int s_read_str(s_ctx_t *ctx, const lp_ynode_t *node, const char *key, char **out)
{
    const char *v;
    if (s_scalar(ctx, node, key, &v) < 0)
        return -1;
    free(*out);
    *out = v ? lp_strdup(v) : NULL;
    return 0;
}

/* Read one section's keys through its schema table. */
static int s_section(s_ctx_t *ctx, const lp_ynode_t *map, const char *section, const s_key_t *keys,
                     size_t nkeys)
{
    if (!map || lp_yaml_is_null(map))
        return 0;
    if (map->type != LP_YAML_MAP)
        return s_fail(ctx, map, "%s: expected a mapping, got a %s", section,
                      lp_yaml_type_name(map));
    for (size_t i = 0; i < map->n; i++) {
        const char *key = map->keys[i]->value;
        const lp_ynode_t *val = map->items[i];
        char full[128];
        snprintf(full, sizeof full, "%s.%s", section, key);
        if (strcmp(section, "general_settings") != 0) {
            for (size_t g = 0; g < LP_ARRAY_LEN(s_general_only); g++) {
                if (strcmp(key, s_general_only[g]) == 0)
                    return s_fail(ctx, map->keys[i],
                                  "%s: %s belongs in general_settings; here it would be ignored",
                                  full, key);
            }
        }
        const s_key_t *k = NULL;
        for (size_t j = 0; j < nkeys; j++) {
            if (strcmp(keys[j].key, key) == 0)
                k = &keys[j];
        }
        if (!k) {
            s_warn(ctx, map->keys[i], "%s: unknown key, ignored", full);
            continue;
        }
        char *base = (char *)ctx->cfg;
        int rc = 0;
        switch (k->kind) {
        case K_STR:
        case K_SECRET:
            rc = s_read_str(ctx, val, full, (char **)(base + k->off));
            break;
        case K_INT: {
            long long ll = *(int *)(base + k->off);
            rc = s_read_ll(ctx, val, full, (long long)k->min, (long long)k->max, &ll);
            *(int *)(base + k->off) = (int)ll;
            break;
        }
        case K_DOUBLE:
            rc = s_read_double(ctx, val, full, k->min, k->max, (double *)(base + k->off));
            break;
        case K_BOOL:
            rc = s_read_bool(ctx, val, full, (bool *)(base + k->off));
            break;
        case K_JSON: {
            json_t **slot = (json_t **)(base + k->off);
            json_decref(*slot);
            *slot = s_to_json(ctx, val, true);
            break;
        }
        case K_LATER:
            s_warn(ctx, map->keys[i], "%s: LiteLLM setting not implemented by llm-proxy, ignored",
                   full);
            break;
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- configurable_clientside_auth_params (checked by lp_clientside) ---- */

static void s_clientside_free(lp_clientside_t **rules, size_t n)
{
    if (!*rules)
        return;
    for (size_t i = 0; i < n; i++) {
        free((*rules)[i].param);
        free((*rules)[i].pattern);
        if ((*rules)[i].re)
            regfree((*rules)[i].re);
        free((*rules)[i].re);
    }
    free(*rules);
    *rules = NULL;
}

static const char *s_clientside_name(const char *written)
{
    if (!strcmp(written, "api_base") || !strcmp(written, "base_url"))
        return "api_base";
    if (!strcmp(written, "api_key"))
        return "api_key";
    return NULL;
}

static int s_clientside_rule(lp_clientside_t *rule, const char *param, const char *pattern,
                             char *why)
{
    rule->param = lp_strdup(param);
    if (!pattern)
        return 0;
    if (strcmp(param, "api_base") != 0) {
        snprintf(why, LP_ERR_LEN, "only api_base takes a pattern");
        return -1;
    }
    /* Compiled as written; lp_clientside requires the match to span the whole URL (LiteLLM's
     * re.match anchors only the start, which lets "https://api.example.com.evil.test" through
     * a pattern without its "$"). Wrapping it in "^(...)$" instead would let a pattern with a
     * stray ')' escape the anchors. */
    regex_t *re = lp_calloc(1, sizeof *re);
    int rc = regcomp(re, pattern, REG_EXTENDED);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof msg);
        free(re);
        snprintf(why, LP_ERR_LEN, "'%.80s' is not a POSIX extended regular expression: %s", pattern,
                 msg);
        return -1;
    }
    rule->pattern = lp_strdup(pattern);
    rule->re = re;
    return 0;
}

static int s_clientside_parse(const lp_ynode_t *node, lp_clientside_t **rules, size_t *n,
                              const lp_ynode_t **bad, char *why)
{
    *bad = node;
    if (node->type != LP_YAML_SEQ) {
        snprintf(why, LP_ERR_LEN, "expected a list of api_base, api_key or {api_base: pattern}");
        return -1;
    }
    s_clientside_free(rules, *n);
    *n = 0;
    *rules = lp_calloc(node->n ? node->n : 1, sizeof **rules);
    for (size_t i = 0; i < node->n; i++) {
        const lp_ynode_t *item = node->items[i];
        const char *written = NULL, *pattern = NULL;
        *bad = item;
        if (item->type == LP_YAML_SCALAR) {
            written = item->value;
        } else if (item->type == LP_YAML_MAP && item->n == 1 &&
                   item->items[0]->type == LP_YAML_SCALAR) {
            written = item->keys[0]->value;
            pattern = item->items[0]->value;
        }
        const char *param = written ? s_clientside_name(written) : NULL;
        if (!param) {
            snprintf(why, LP_ERR_LEN,
                     "item %zu: expected api_base, base_url, api_key or {api_base: pattern}", i);
            return -1;
        }
        if (s_clientside_rule(&(*rules)[*n], param, pattern, why) < 0) {
            free((*rules)[*n].param);
            return -1;
        }
        (*n)++;
    }
    return 0;
}

/* litellm_params keys read into lp_deployment_t; all others pass through to the provider. */
static const char *s_param_keys[] = {
    "model",
    "api_key",
    "api_base",
    "api_version",
    "rpm",
    "tpm",
    "weight",
    "timeout",
    "stream_timeout",
    "max_retries",
    "order",
    "mock_response",
    "input_cost_per_token",
    "output_cost_per_token",
    "max_parallel_requests",
    "configurable_clientside_auth_params",
};

static bool s_is_param_key(const char *key)
{
    for (size_t i = 0; i < LP_ARRAY_LEN(s_param_keys); i++) {
        if (strcmp(s_param_keys[i], key) == 0)
            return true;
    }
    return false;
}

static int s_deployment_params(s_ctx_t *ctx, lp_deployment_t *d, const lp_ynode_t *lp)
{
    for (size_t i = 0; i < lp->n; i++) {
        const char *key = lp->keys[i]->value;
        const lp_ynode_t *v = lp->items[i];
        char full[128];
        snprintf(full, sizeof full, "litellm_params.%s", key);
        long long ll;
        int rc = 0;
        if (strcmp(key, "model") == 0)
            rc = s_read_str(ctx, v, full, &d->model);
        else if (strcmp(key, "api_key") == 0)
            rc = s_read_str(ctx, v, full, &d->api_key);
        else if (strcmp(key, "api_base") == 0)
            rc = s_read_str(ctx, v, full, &d->api_base);
        else if (strcmp(key, "api_version") == 0)
            rc = s_read_str(ctx, v, full, &d->api_version);
        else if (strcmp(key, "mock_response") == 0)
            rc = s_read_str(ctx, v, full, &d->mock_response);
        else if (strcmp(key, "rpm") == 0)
            rc = s_read_ll(ctx, v, full, 0, LLONG_MAX, &d->rpm);
        else if (strcmp(key, "tpm") == 0)
            rc = s_read_ll(ctx, v, full, 0, LLONG_MAX, &d->tpm);
        else if (strcmp(key, "weight") == 0)
            rc = s_read_double(ctx, v, full, 0, 1e9, &d->weight);
        else if (strcmp(key, "timeout") == 0)
            rc = s_read_double(ctx, v, full, 0.001, 86400, &d->timeout_s);
        else if (strcmp(key, "stream_timeout") == 0)
            rc = s_read_double(ctx, v, full, 0.001, 86400, &d->stream_timeout_s);
        else if (strcmp(key, "input_cost_per_token") == 0)
            rc = s_read_double(ctx, v, full, 0, LP_PRICE_MAX, &d->input_cost_per_token);
        else if (strcmp(key, "output_cost_per_token") == 0)
            rc = s_read_double(ctx, v, full, 0, LP_PRICE_MAX, &d->output_cost_per_token);
        else if (strcmp(key, "max_retries") == 0) {
            ll = d->max_retries;
            rc = s_read_ll(ctx, v, full, 0, 20, &ll);
            d->max_retries = (int)ll;
            if (rc == 0)
                s_warn(ctx, lp->keys[i],
                       "%s: the router retries per group (router_settings.num_retries); a "
                       "deployment's max_retries is ignored",
                       full);
        } else if (strcmp(key, "order") == 0) {
            ll = d->order;
            rc = s_read_ll(ctx, v, full, 0, 1000, &ll);
            d->order = (int)ll;
        } else if (strcmp(key, "configurable_clientside_auth_params") == 0) {
            const lp_ynode_t *bad = NULL;
            char why[LP_ERR_LEN];
            if (s_clientside_parse(v, &d->clientside, &d->nclientside, &bad, why) < 0)
                return s_fail(ctx, bad, "%s: %s", full, why);
        } else if (strcmp(key, "max_parallel_requests") == 0) {
            s_warn(ctx, lp->keys[i], "%s: not implemented by llm-proxy yet, ignored", full);
        }
        if (rc < 0)
            return -1;
        if (!s_is_param_key(key))
            json_object_set_new(d->params, key, s_to_json(ctx, v, true));
    }
    return 0;
}

static int s_deployment_info(s_ctx_t *ctx, lp_deployment_t *d, const lp_ynode_t *mi)
{
    for (size_t i = 0; i < mi->n; i++) {
        const char *key = mi->keys[i]->value;
        const lp_ynode_t *v = mi->items[i];
        char full[128];
        snprintf(full, sizeof full, "model_info.%s", key);
        int rc = 0;
        if (strcmp(key, "id") == 0) {
            rc = s_read_str(ctx, v, full, &d->id);
            if (rc == 0 && (!d->id || !*d->id))
                return s_fail(ctx, v, "%s: must be a non-empty string", full);
        } else if (strcmp(key, "mode") == 0) {
            const char *mode = NULL;
            rc = s_scalar(ctx, v, full, &mode);
            if (rc == 0 && mode) {
                if (strcmp(mode, "chat") == 0)
                    d->mode = LP_MODE_CHAT;
                else if (strcmp(mode, "completion") == 0)
                    d->mode = LP_MODE_COMPLETION;
                else if (strcmp(mode, "embedding") == 0)
                    d->mode = LP_MODE_EMBEDDING;
                else
                    return s_fail(ctx, v, "%s: '%.40s' is not one of chat, completion, embedding",
                                  full, mode);
            }
        } else if (strcmp(key, "input_cost_per_token") == 0) {
            rc = s_read_double(ctx, v, full, 0, LP_PRICE_MAX, &d->input_cost_per_token);
        } else if (strcmp(key, "output_cost_per_token") == 0) {
            rc = s_read_double(ctx, v, full, 0, LP_PRICE_MAX, &d->output_cost_per_token);
        }
        if (rc < 0)
            return -1;
    }
    json_decref(d->info);
    d->info = s_to_json(ctx, mi, false);
    return 0;
}

/* Strip trailing slashes so "<base>/chat/completions" is always well formed. */
static void s_trim_base(char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
}

static int s_deployment(s_ctx_t *ctx, lp_deployment_t *d, const lp_ynode_t *entry, size_t index)
{
    d->line = entry->line;
    d->max_retries = -1;
    d->input_cost_per_token = -1;
    d->output_cost_per_token = -1;
    d->params = json_object();
    if (entry->type != LP_YAML_MAP)
        return s_fail(ctx, entry, "model_list[%zu]: expected a mapping", index);
    const lp_ynode_t *name = lp_yaml_get(entry, "model_name");
    const lp_ynode_t *lp = lp_yaml_get(entry, "litellm_params");
    const lp_ynode_t *mi = lp_yaml_get(entry, "model_info");
    for (size_t i = 0; i < entry->n; i++) {
        const char *k = entry->keys[i]->value;
        if (strcmp(k, "model_name") && strcmp(k, "litellm_params") && strcmp(k, "model_info"))
            s_warn(ctx, entry->keys[i], "model_list[%zu].%s: unknown key, ignored", index, k);
    }
    if (name && s_read_str(ctx, name, "model_name", &d->model_name) < 0)
        return -1;
    if (!d->model_name || !*d->model_name)
        return s_fail(ctx, name ? name : entry, "model_list[%zu].model_name: required", index);
    if (!lp || lp->type != LP_YAML_MAP)
        return s_fail(ctx, lp ? lp : entry, "model_list[%zu].litellm_params: required mapping",
                      index);
    if (s_deployment_params(ctx, d, lp) < 0)
        return -1;
    if (!d->model || !*d->model)
        return s_fail(ctx, lp, "model_list[%zu].litellm_params.model: required", index);
    const char *rest = NULL;
    d->provider = lp_provider_for_model(d->model, &rest);
    if (!d->provider)
        return s_fail(ctx, lp_yaml_get(lp, "model"),
                      "litellm_params.model: '%.60s' has no known provider prefix (%s)", d->model,
                      lp_provider_names());
    d->provider_model = lp_strdup(rest);
    if (mi && mi->type == LP_YAML_MAP && s_deployment_info(ctx, d, mi) < 0)
        return -1;
    if (mi && mi->type != LP_YAML_MAP && !lp_yaml_is_null(mi))
        return s_fail(ctx, mi, "model_list[%zu].model_info: expected a mapping", index);
    const char *env = NULL;
    if (!d->api_base && d->provider->base_env && getenv(d->provider->base_env))
        d->api_base = lp_strdup(getenv(d->provider->base_env));
    if (!d->api_base && d->provider->default_base)
        d->api_base = lp_strdup(d->provider->default_base);
    if (!d->api_base && !d->mock_response)
        return s_fail(ctx, lp, "model_list[%zu] (%s): %s/ needs litellm_params.api_base", index,
                      d->model_name, d->provider->name);
    if (d->api_base)
        s_trim_base(d->api_base);
    if (!d->api_key && d->provider->key_env) {
        if (s_env(ctx, d->provider->key_env, &env) < 0)
            return -1;
        d->api_key = env ? lp_strdup(env) : NULL;
    }
    if (!d->id) {
        /* Stable across daemons and restarts: the hash of the entry as written (environment
         * references unresolved, so no secret goes into it and every daemon agrees). */
        json_t *canon = json_object();
        json_object_set_new(canon, "model_name", json_string(d->model_name));
        json_object_set_new(canon, "litellm_params", s_to_json(ctx, lp, false));
        char *text = json_dumps(canon, JSON_SORT_KEYS | JSON_COMPACT);
        char hex[LP_SHA256_HEX_LEN];
        lp_sha256_hex(text, strlen(text), hex);
        d->id = lp_strdup(hex);
        free(text);
        json_decref(canon);
    }
    if (!d->info)
        d->info = json_object();
    return 0;
}

static int s_model_list(s_ctx_t *ctx, const lp_ynode_t *list)
{
    lp_cfg_t *cfg = ctx->cfg;
    if (!list || lp_yaml_is_null(list)) {
        s_warn(ctx, list, "model_list is empty: every model request will be refused");
        return 0;
    }
    if (list->type != LP_YAML_SEQ)
        return s_fail(ctx, list, "model_list: expected a list, got a %s", lp_yaml_type_name(list));
    cfg->deployments = lp_calloc(list->n, sizeof *cfg->deployments);
    for (size_t i = 0; i < list->n; i++) {
        cfg->ndeployments = i + 1;
        if (s_deployment(ctx, &cfg->deployments[i], list->items[i], i) < 0)
            return -1;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->deployments[j].id, cfg->deployments[i].id) == 0)
                return s_fail(ctx, list->items[i],
                              "model_list[%zu]: model_info.id '%.60s' is used twice (also at "
                              "line %d)",
                              i, cfg->deployments[i].id, cfg->deployments[j].line);
        }
    }
    cfg->groups = lp_calloc(cfg->ndeployments, sizeof *cfg->groups);
    for (size_t i = 0; i < cfg->ndeployments; i++) {
        if (!lp_cfg_has_group(cfg, cfg->deployments[i].model_name))
            cfg->groups[cfg->ngroups++] = cfg->deployments[i].model_name;
    }
    return 0;
}

static int s_environment(s_ctx_t *ctx, const lp_ynode_t *env)
{
    if (!env || lp_yaml_is_null(env))
        return 0;
    if (env->type != LP_YAML_MAP)
        return s_fail(ctx, env, "environment_variables: expected a mapping");
    for (size_t i = 0; i < env->n; i++) {
        const char *v;
        if (s_scalar(ctx, env->items[i], "environment_variables", &v) < 0)
            return -1;
        if (v && setenv(env->keys[i]->value, v, 1) < 0)
            return s_fail(ctx, env->keys[i], "environment_variables: cannot set %.60s",
                          env->keys[i]->value);
    }
    return 0;
}

/* Examples from documentation and tutorials; a proxy started with one of them is open. */
static const char *s_weak_keys[] = {"sk-1234",
                                    "sk-12345",
                                    "sk-123456",
                                    "sk-1234567890",
                                    "sk-master",
                                    "sk-master-key",
                                    "sk-admin",
                                    "sk-test",
                                    "sk-xxxx",
                                    "sk-my-master-key",
                                    "sk-litellm-master-key"};

static int s_master_key(s_ctx_t *ctx, const lp_ynode_t *root)
{
    lp_cfg_t *cfg = ctx->cfg;
    const lp_ynode_t *where = lp_yaml_get(lp_yaml_get(root, "general_settings"), "master_key");
    if (!cfg->master_key || !*cfg->master_key) {
        free(cfg->master_key);
        const char *env = NULL;
        if (s_env(ctx, "LITELLM_MASTER_KEY", &env) < 0)
            return -1;
        cfg->master_key = env && *env ? lp_strdup(env) : NULL;
        where = NULL;
    }
    const char *src = where ? "general_settings.master_key" : "LITELLM_MASTER_KEY";
    if (!cfg->master_key)
        return s_fail(ctx, root,
                      "no master key: set LITELLM_MASTER_KEY or general_settings.master_key "
                      "(make run creates one in .keys/master_key)");
    for (size_t i = 0; i < LP_ARRAY_LEN(s_weak_keys); i++) {
        if (strcmp(cfg->master_key, s_weak_keys[i]) == 0)
            return s_fail(ctx, where,
                          "%s is a well-known example key; choose a random one "
                          "(e.g. sk-$(openssl rand -hex 24))",
                          src);
    }
    if (!lp_str_prefix(cfg->master_key, "sk-"))
        return s_fail(ctx, where, "%s must start with sk-", src);
    if (strlen(cfg->master_key) < LP_MASTER_KEY_MIN_LEN)
        return s_fail(ctx, where, "%s is too short: use at least %d characters", src,
                      LP_MASTER_KEY_MIN_LEN);
    return 0;
}

static const char *s_log_level(const lp_ynode_t *litellm)
{
    const lp_ynode_t *verbose = lp_yaml_get(litellm, "set_verbose");
    bool on = false;
    if (verbose && verbose->type == LP_YAML_SCALAR && s_bool_text(verbose->value, &on) == 0 && on)
        return "debug";
    return NULL;
}

static lp_cfg_t *s_load_tree(lp_ynode_t *root, const char *name, char *err)
{
    lp_cfg_t *cfg = lp_calloc(1, sizeof *cfg);
    cfg->refs = 1;
    cfg->path = lp_strdup(name);
    cfg->num_retries = -1;
    cfg->allowed_fails = 3;
    cfg->cooldown_time_s = 5;
    cfg->timeout_s = 600;
    cfg->stream_timeout_s = 0;
    cfg->request_timeout_s = 0;
    cfg->proxy_batch_write_at_s = 10;
    cfg->max_request_size_mb = 32;
    cfg->key_cache_ttl_s = 10;
    if (err)
        err[0] = '\0';
    s_ctx_t ctx = {.name = name, .err = err, .cfg = cfg};
    static const char *top_keys[] = {"model_list", "router_settings", "litellm_settings",
                                     "general_settings", "environment_variables"};
    if (root->type != LP_YAML_MAP) {
        s_fail(&ctx, root, "the config must be a mapping with model_list, router_settings, ...");
        goto fail;
    }
    for (size_t i = 0; i < root->n; i++) {
        bool known = false;
        for (size_t j = 0; j < LP_ARRAY_LEN(top_keys); j++)
            known |= strcmp(root->keys[i]->value, top_keys[j]) == 0;
        if (strcmp(root->keys[i]->value, "master_key") == 0) {
            s_fail(&ctx, root->keys[i], "master_key belongs in general_settings");
            goto fail;
        }
        if (!known)
            s_warn(&ctx, root->keys[i], "%s: unknown top-level key, ignored", root->keys[i]->value);
    }
    if (s_environment(&ctx, lp_yaml_get(root, "environment_variables")) < 0 ||
        s_section(&ctx, lp_yaml_get(root, "general_settings"), "general_settings", s_general_keys,
                  LP_ARRAY_LEN(s_general_keys)) < 0 ||
        s_section(&ctx, lp_yaml_get(root, "litellm_settings"), "litellm_settings", s_litellm_keys,
                  LP_ARRAY_LEN(s_litellm_keys)) < 0 ||
        s_section(&ctx, lp_yaml_get(root, "router_settings"), "router_settings", s_router_keys,
                  LP_ARRAY_LEN(s_router_keys)) < 0 ||
        s_model_list(&ctx, lp_yaml_get(root, "model_list")) < 0 || s_master_key(&ctx, root) < 0)
        goto fail;
    if (cfg->num_retries < 0)
        cfg->num_retries = 2;
    if (cfg->request_timeout_s > 0 && !lp_yaml_get(lp_yaml_get(root, "router_settings"), "timeout"))
        cfg->timeout_s = cfg->request_timeout_s;
    if (!cfg->routing_strategy)
        cfg->routing_strategy = lp_strdup("simple-shuffle");
    static const char *strategies[] = {"simple-shuffle", "least-busy", "latency-based-routing",
                                       "usage-based-routing", "usage-based-routing-v2"};
    bool known = false;
    for (size_t i = 0; i < LP_ARRAY_LEN(strategies); i++)
        known |= strcmp(cfg->routing_strategy, strategies[i]) == 0;
    if (!known) {
        s_fail(&ctx, lp_yaml_get(lp_yaml_get(root, "router_settings"), "routing_strategy"),
               "router_settings.routing_strategy: '%.40s' is not one of simple-shuffle, "
               "least-busy, latency-based-routing, usage-based-routing(-v2)",
               cfg->routing_strategy);
        goto fail;
    }
    const char *lvl = s_log_level(lp_yaml_get(root, "litellm_settings"));
    if (lvl)
        cfg->log_level = lp_strdup(lvl);
    if (!cfg->database_url || !*cfg->database_url) {
        free(cfg->database_url);
        const char *env = NULL;
        if (s_env(&ctx, "DATABASE_URL", &env) < 0)
            goto fail;
        cfg->database_url = env && *env ? lp_strdup(env) : NULL;
    }
    const char *redis = NULL;
    if (s_env(&ctx, "REDIS_URL", &redis) < 0)
        goto fail;
    cfg->redis_url = redis && *redis ? lp_strdup(redis) : NULL;
    return cfg;
fail:
    lp_cfg_destroy(&cfg);
    return NULL;
}

lp_cfg_t *lp_cfg_load_string(const char *text, const char *name, char *err)
{
    lp_ynode_t *root = lp_yaml_load_string(text, strlen(text), name, err);
    if (!root)
        return NULL;
    lp_cfg_t *cfg = s_load_tree(root, name, err);
    lp_yaml_destroy(&root);
    return cfg;
}

lp_cfg_t *lp_cfg_load(const char *path, char *err)
{
    lp_ynode_t *root = lp_yaml_load_file(path, err);
    if (!root)
        return NULL;
    lp_cfg_t *cfg = s_load_tree(root, path, err);
    lp_yaml_destroy(&root);
    return cfg;
}

static void s_deployment_free(lp_deployment_t *d)
{
    free(d->model_name);
    free(d->model);
    free(d->provider_model);
    free(d->api_base);
    free(d->public_base);
    lp_free_secret(d->api_key);
    free(d->api_version);
    free(d->id);
    free(d->mock_response);
    json_decref(d->params);
    json_decref(d->info);
    s_clientside_free(&d->clientside, d->nclientside);
}

lp_cfg_t *lp_cfg_ref(lp_cfg_t *self)
{
    self->refs++;
    return self;
}

void lp_cfg_destroy(lp_cfg_t **self_p)
{
    lp_cfg_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    if (--self->refs > 0)
        return;
    for (size_t i = 0; i < self->ndeployments; i++)
        s_deployment_free(&self->deployments[i]);
    free(self->deployments);
    free(self->groups);
    free(self->path);
    free(self->routing_strategy);
    json_decref(self->fallbacks);
    json_decref(self->context_window_fallbacks);
    json_decref(self->default_fallbacks);
    json_decref(self->cache_params);
    free(self->log_level);
    lp_free_secret(self->master_key);
    free(self->database_url);
    free(self->redis_url);
    for (size_t i = 0; i < self->nfile_values; i++)
        lp_free_secret(self->file_values[i]);
    free(self->file_values);
    free(self->redis_host);
    lp_free_secret(self->redis_password);
    for (size_t i = 0; i < self->nwarnings; i++)
        free(self->warnings[i]);
    free(self->warnings);
    free(self);
    *self_p = NULL;
}

const lp_deployment_t *lp_cfg_deployment(const lp_cfg_t *self, const char *id)
{
    for (size_t i = 0; i < self->ndeployments; i++) {
        if (strcmp(self->deployments[i].id, id) == 0)
            return &self->deployments[i];
    }
    return NULL;
}

bool lp_cfg_has_group(const lp_cfg_t *self, const char *group)
{
    for (size_t i = 0; i < self->ngroups; i++) {
        if (strcmp(self->groups[i], group) == 0)
            return true;
    }
    return false;
}

const char *lp_mode_name(lp_mode_t mode)
{
    switch (mode) {
    case LP_MODE_COMPLETION:
        return "completion";
    case LP_MODE_EMBEDDING:
        return "embedding";
    default:
        return "chat";
    }
}
