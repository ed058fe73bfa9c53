/* lp_cfg: LiteLLM's litellm-config.yaml, loaded once into typed settings.
 *
 * Every os.environ/NAME (and LITELLM_MASTER_KEY, DATABASE_URL, REDIS_URL, provider keys)
 * may come from the file NAME_FILE names instead (Docker and Kubernetes secrets).
 * Sections: model_list (deployments; entries sharing model_name form a model group),
 * router_settings, litellm_settings, general_settings, environment_variables. Any string
 * value `os.environ/NAME` is read from the environment. Keys LiteLLM has that llm-proxy
 * does not implement, and unknown keys, become warnings (lp_cfg_warnings) for the daemon to
 * log; wrong types and out-of-range values fail the load with "file:line:col: key: reason".
 * The loaded object is immutable; lp_cfg_ref adds owners, the last lp_cfg_destroy frees it. */
#ifndef LP_CFG_H
#define LP_CFG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lp_provider.h"
#include "lp_util.h"

/* Shortest master key accepted: "sk-" plus enough randomness not to be guessed. */
#define LP_MASTER_KEY_MIN_LEN 16

typedef enum { LP_MODE_CHAT = 0, LP_MODE_COMPLETION, LP_MODE_EMBEDDING } lp_mode_t;

/* The highest price per token accepted, from the config or the price table (USD): higher
 * is a mistake, and costs stay finite. */
#define LP_PRICE_MAX 1e6

/* One entry of litellm_params.configurable_clientside_auth_params (lp_clientside). */
typedef struct {
    char *param;   /* "api_base" or "api_key" */
    char *pattern; /* the whole base must match it; NULL = any value */
    void *re;      /* the compiled pattern (regex_t) */
} lp_clientside_t;

typedef struct {
    char *model_name;              /* the model group clients ask for */
    char *model;                   /* litellm_params.model, "provider/name" */
    const lp_provider_t *provider; /* from the model prefix */
    char *provider_model;          /* model name sent to the provider (after the prefix) */
    char *api_base;                /* configured base, or the provider's default; NULL if none */
    char *public_base;       /* api_base as it may be shown (lp_public_bases; NULL until then) */
    char *api_key;           /* secret: never logged or sent to another daemon */
    char *api_version;       /* e.g. anthropic-version; NULL = provider default */
    char *id;                /* model_info.id, else sha256 of the unresolved entry */
    char *mock_response;     /* litellm_params.mock_response: answer without a call */
    double weight;           /* simple-shuffle weight; 0 = not given */
    long long rpm, tpm;      /* 0 = unlimited */
    double timeout_s;        /* whole call; 0 = router default */
    double stream_timeout_s; /* time to first byte of a stream; 0 = router default */
    int max_retries;         /* -1 = router default */
    int order;               /* priority tier, 0 = none */
    lp_mode_t mode;          /* model_info.mode */
    double input_cost_per_token; /* < 0 = use the price table */
    double output_cost_per_token;
    json_t *params; /* other litellm_params (temperature, max_tokens, extra_headers...) */
    json_t *info;   /* model_info as given, for /model/info */
    lp_clientside_t *clientside; /* what a request may choose itself (lp_clientside) */
    size_t nclientside;
    int line; /* where the entry starts in the file */
} lp_deployment_t;

typedef struct lp_cfg lp_cfg_t;

struct lp_cfg {
    int refs; /* owners (lp_cfg_ref); the daemons are single-threaded */
    char *path;
    lp_deployment_t *deployments;
    size_t ndeployments;
    char **groups; /* distinct model_names, in file order (borrowed from deployments) */
    size_t ngroups;

    /* router_settings */
    char *routing_strategy;
    int num_retries;
    double timeout_s;
    double stream_timeout_s;
    int allowed_fails;
    double cooldown_time_s;
    double retry_after_s;
    json_t *fallbacks;
    json_t *context_window_fallbacks;
    json_t *default_fallbacks;
    char *redis_host; /* shared state when REDIS_URL is not set */
    int redis_port;
    char *redis_password; /* secret */

    /* litellm_settings */
    bool drop_params;
    double request_timeout_s;
    char *log_level; /* from set_verbose / json_logs / LITELLM_LOG; NULL = default */
    bool cache;
    json_t *cache_params;
    bool metrics_auth; /* require_auth_for_metrics_endpoint */

    /* general_settings */
    char *master_key; /* secret */
    char *database_url;
    char *redis_url; /* REDIS_URL */
    double proxy_batch_write_at_s;
    int max_request_size_mb;
    double key_cache_ttl_s;  /* user_api_key_cache_ttl */
    bool limits_fail_closed; /* Redis down: refuse keys with limits (else count in process) */
    bool allow_client_side_credentials; /* requests may set api_base/api_key (lp_clientside) */

    char **file_values; /* secrets read from NAME_FILE (borrowed by the fields above) */
    size_t nfile_values;
    char **warnings; /* for the daemon to log once at start */
    size_t nwarnings;
};

/* Load and validate a config file. Returns NULL with "file:line:col: key: reason" in err.
 * The master key is required here (config or LITELLM_MASTER_KEY) for every daemon. */
lp_cfg_t *lp_cfg_load(const char *path, char *err);
/* Same from a string (tests); name stands for the file name in messages. */
lp_cfg_t *lp_cfg_load_string(const char *text, const char *name, char *err);
/* One more owner of the config (a reload swaps the daemon's config while calls begun under
 * the old one still point into it). Returns self. */
lp_cfg_t *lp_cfg_ref(lp_cfg_t *self);
/* Drop an owner; the last one frees it. NULL-safe, nulls the pointer. */
void lp_cfg_destroy(lp_cfg_t **self_p);

/* Deployment by id; NULL if none. Borrowed. */
const lp_deployment_t *lp_cfg_deployment(const lp_cfg_t *self, const char *id);
/* True when model_name is a configured group. */
bool lp_cfg_has_group(const lp_cfg_t *self, const char *group);
/* Name of a mode ("chat", "completion", "embedding"). */
const char *lp_mode_name(lp_mode_t mode);

#endif
