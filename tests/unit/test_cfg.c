/* test_cfg: lp_cfg (LiteLLM config) and lp_yaml (the YAML tree under it), loaded from
 * strings. Every test starts from a known environment (env_reset). */
#include <ctype.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "harness.h"
#include "lp_cfg.h"
#include "lp_clientside.h"
#include "lp_crypto.h"
#include "lp_price.h"
#include "lp_yaml.h"

#define GOOD_KEY "sk-unit-test-0123456789abcdef"
#define NAME     "t.yaml"

static const char *s_cleared_env[] = {
    "OPENAI_API_KEY",     "OPENAI_API_BASE",     "GROQ_API_KEY",        "GROQ_API_BASE",
    "ANTHROPIC_API_KEY",  "ANTHROPIC_API_BASE",  "GEMINI_API_KEY",      "GEMINI_API_BASE",
    "OPENROUTER_API_KEY", "OPENROUTER_API_BASE", "CEREBRAS_API_KEY",    "CEREBRAS_API_BASE",
    "VOYAGE_API_KEY",     "VOYAGE_API_BASE",     "HUGGINGFACE_API_KEY", "HUGGINGFACE_API_BASE",
    "DATABASE_URL",       "REDIS_URL",           "TEST_CFG_KEY",        "TEST_CFG_RPM",
    "TEST_CFG_EV_KEY",    "TEST_CFG_EV_RPM",     "TEST_CFG_MK",         "TEST_CFG_HDR",
    "TEST_CFG_UNSET",
};

/* A valid master key in the environment and no provider variables. */
static void env_reset(void)
{
    for (size_t i = 0; i < LP_ARRAY_LEN(s_cleared_env); i++)
        unsetenv(s_cleared_env[i]);
    setenv("LITELLM_MASTER_KEY", GOOD_KEY, 1);
}

static lp_cfg_t *load(const char *text, char *err)
{
    err[0] = '\0';
    return lp_cfg_load_string(text, NAME, err);
}

/* True when err starts with "t.yaml:<line>:". */
static bool err_at_line(const char *err, int line)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, NAME ":%d:", line);
    return strncmp(err, prefix, strlen(prefix)) == 0;
}

/* True when some warning contains needle (and, when line > 0, is at that line). */
static bool has_warning(const lp_cfg_t *cfg, const char *needle, int line)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, NAME ":%d:", line);
    for (size_t i = 0; i < cfg->nwarnings; i++) {
        if (strstr(cfg->warnings[i], needle) &&
            (line <= 0 || strncmp(cfg->warnings[i], prefix, strlen(prefix)) == 0))
            return true;
    }
    return false;
}

static bool is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++) {
        if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
            return false;
    }
    return true;
}

/* ---- a full LiteLLM-shaped config ---- */

static const char *s_full = "model_list:\n"                                    /* 1 */
                            "  - model_name: gpt-4o\n"                         /* 2 */
                            "    litellm_params:\n"                            /* 3 */
                            "      model: openai/gpt-4o\n"                     /* 4 */
                            "      api_key: os.environ/TEST_CFG_KEY\n"         /* 5 */
                            "      rpm: 100\n"                                 /* 6 */
                            "      tpm: 20000\n"                               /* 7 */
                            "      weight: 2\n"                                /* 8 */
                            "      timeout: 30\n"                              /* 9 */
                            "      stream_timeout: 5.5\n"                      /* 10 */
                            "      max_retries: 3\n"                           /* 11 */
                            "      order: 1\n"                                 /* 12 */
                            "      temperature: 0.25\n"                        /* 13 */
                            "      max_tokens: 256\n"                          /* 14 */
                            "      seed: \"42\"\n"                             /* 15 */
                            "      input_cost_per_token: 0.000001\n"           /* 16 */
                            "    model_info:\n"                                /* 17 */
                            "      id: gpt4o-primary\n"                        /* 18 */
                            "      mode: chat\n"                               /* 19 */
                            "  - model_name: claude\n"                         /* 20 */
                            "    litellm_params:\n"                            /* 21 */
                            "      model: anthropic/claude-3-5-sonnet\n"       /* 22 */
                            "      api_version: \"2023-06-01\"\n"              /* 23 */
                            "  - model_name: gpt-4o\n"                         /* 24 */
                            "    litellm_params:\n"                            /* 25 */
                            "      model: groq/llama-3.1-8b-instant\n"         /* 26 */
                            "      api_base: https://groq.example.test/v1//\n" /* 27 */
                            "      api_key: gsk-literal-key\n"                 /* 28 */
                            "  - model_name: embed\n"                          /* 29 */
                            "    litellm_params:\n"                            /* 30 */
                            "      model: gemini/text-embedding-004\n"         /* 31 */
                            "    model_info:\n"                                /* 32 */
                            "      mode: embedding\n"                          /* 33 */
                            "      output_cost_per_token: 0.5\n"               /* 34 */
                            "  - model_name: claude\n"                         /* 35 */
                            "    litellm_params:\n"                            /* 36 */
                            "      model: gpt-4o-mini\n"                       /* 37 */
                            "router_settings:\n"                               /* 38 */
                            "  routing_strategy: simple-shuffle\n"             /* 39 */
                            "  num_retries: 4\n"                               /* 40 */
                            "  timeout: 45\n"                                  /* 41 */
                            "  stream_timeout: 12\n"                           /* 42 */
                            "  allowed_fails: 2\n"                             /* 43 */
                            "  cooldown_time: 30\n"                            /* 44 */
                            "  retry_after: 1.5\n"                             /* 45 */
                            "  fallbacks: [{gpt-4o: [claude]}]\n"              /* 46 */
                            "litellm_settings:\n"                              /* 47 */
                            "  drop_params: true\n"                            /* 48 */
                            "  request_timeout: 120\n"                         /* 49 */
                            "  set_verbose: true\n"                            /* 50 */
                            "  cache: false\n"                                 /* 51 */
                            "general_settings:\n"                              /* 52 */
                            "  master_key: sk-general-settings-0123456789\n"   /* 53 */
                            "  database_url: postgresql://u:p@localhost/db\n"  /* 54 */
                            "  proxy_batch_write_at: 5\n"                      /* 55 */
                            "  max_request_size_mb: 10\n";                     /* 56 */

static void test_full_config(void)
{
    env_reset();
    setenv("TEST_CFG_KEY", "sk-openai-from-env", 1);
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load(s_full, err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    CHECK_STR(cfg->path, NAME);
    CHECK(cfg->ndeployments == 5);

    const lp_deployment_t *d = &cfg->deployments[0];
    CHECK_STR(d->model_name, "gpt-4o");
    CHECK_STR(d->model, "openai/gpt-4o");
    CHECK(d->provider && strcmp(d->provider->name, "openai") == 0);
    CHECK_STR(d->provider_model, "gpt-4o");
    CHECK_STR(d->api_base, "https://api.openai.com/v1");
    CHECK_STR(d->api_key, "sk-openai-from-env");
    CHECK_STR(d->id, "gpt4o-primary");
    CHECK(d->rpm == 100 && d->tpm == 20000);
    CHECK(d->weight == 2);
    CHECK(d->timeout_s == 30 && d->stream_timeout_s == 5.5);
    CHECK(d->max_retries == 3 && d->order == 1);
    CHECK(d->mode == LP_MODE_CHAT);
    CHECK(d->input_cost_per_token == 0.000001);
    CHECK(d->output_cost_per_token < 0);
    CHECK(d->line == 2);
    /* extra params pass through; the ones read into fields do not */
    CHECK(json_is_real(json_object_get(d->params, "temperature")));
    CHECK(json_real_value(json_object_get(d->params, "temperature")) == 0.25);
    CHECK(json_is_integer(json_object_get(d->params, "max_tokens")));
    CHECK(json_integer_value(json_object_get(d->params, "max_tokens")) == 256);
    CHECK(json_is_string(json_object_get(d->params, "seed")));
    CHECK_STR(json_string_value(json_object_get(d->params, "seed")), "42");
    CHECK(json_object_get(d->params, "model") == NULL);
    CHECK(json_object_get(d->params, "api_key") == NULL);
    CHECK(json_object_get(d->params, "rpm") == NULL);
    CHECK(json_object_get(d->params, "input_cost_per_token") == NULL);
    CHECK(json_object_size(d->params) == 3);
    CHECK_STR(json_string_value(json_object_get(d->info, "id")), "gpt4o-primary");
    CHECK_STR(json_string_value(json_object_get(d->info, "mode")), "chat");

    d = &cfg->deployments[1];
    CHECK_STR(d->model_name, "claude");
    CHECK(d->provider && d->provider->wire == LP_WIRE_ANTHROPIC);
    CHECK_STR(d->provider_model, "claude-3-5-sonnet");
    CHECK_STR(d->api_base, "https://api.anthropic.com");
    CHECK_STR(d->api_version, "2023-06-01");
    CHECK(d->api_key == NULL);
    CHECK(is_hex64(d->id));
    CHECK(d->max_retries == -1);
    CHECK(d->rpm == 0 && d->weight == 0);
    CHECK(json_is_object(d->params) && json_object_size(d->params) == 0);
    CHECK(json_is_object(d->info) && json_object_size(d->info) == 0);

    d = &cfg->deployments[2];
    CHECK(d->provider && strcmp(d->provider->name, "groq") == 0);
    CHECK_STR(d->provider_model, "llama-3.1-8b-instant");
    CHECK_STR(d->api_base, "https://groq.example.test/v1");
    CHECK_STR(d->api_key, "gsk-literal-key");

    d = &cfg->deployments[3];
    CHECK(d->provider && d->provider->wire == LP_WIRE_GEMINI);
    CHECK_STR(d->api_base, "https://generativelanguage.googleapis.com");
    CHECK(d->mode == LP_MODE_EMBEDDING);
    CHECK_STR(lp_mode_name(d->mode), "embedding");
    CHECK(d->output_cost_per_token == 0.5);
    CHECK(d->input_cost_per_token < 0);

    d = &cfg->deployments[4];
    CHECK(d->provider && strcmp(d->provider->name, "openai") == 0);
    CHECK_STR(d->provider_model, "gpt-4o-mini");

    /* groups: distinct model_names in file order */
    CHECK(cfg->ngroups == 3);
    CHECK_STR(cfg->groups[0], "gpt-4o");
    CHECK_STR(cfg->groups[1], "claude");
    CHECK_STR(cfg->groups[2], "embed");
    CHECK(lp_cfg_has_group(cfg, "claude"));
    CHECK(!lp_cfg_has_group(cfg, "nope"));
    CHECK(lp_cfg_deployment(cfg, "gpt4o-primary") == &cfg->deployments[0]);
    CHECK(lp_cfg_deployment(cfg, cfg->deployments[2].id) == &cfg->deployments[2]);
    CHECK(lp_cfg_deployment(cfg, "missing") == NULL);

    /* router_settings */
    CHECK_STR(cfg->routing_strategy, "simple-shuffle");
    CHECK(cfg->num_retries == 4);
    CHECK(cfg->timeout_s == 45); /* router timeout wins over request_timeout */
    CHECK(cfg->stream_timeout_s == 12);
    CHECK(cfg->allowed_fails == 2);
    CHECK(cfg->cooldown_time_s == 30);
    CHECK(cfg->retry_after_s == 1.5);
    CHECK(json_is_array(cfg->fallbacks) && json_array_size(cfg->fallbacks) == 1);
    json_t *fb = json_object_get(json_array_get(cfg->fallbacks, 0), "gpt-4o");
    CHECK(json_is_array(fb));
    CHECK_STR(json_string_value(json_array_get(fb, 0)), "claude");
    /* litellm_settings */
    CHECK(cfg->drop_params == true);
    CHECK(cfg->request_timeout_s == 120);
    CHECK_STR(cfg->log_level, "debug");
    CHECK(cfg->cache == false);
    /* general_settings (the config's master key beats the environment) */
    CHECK_STR(cfg->master_key, "sk-general-settings-0123456789");
    CHECK_STR(cfg->database_url, "postgresql://u:p@localhost/db");
    CHECK(cfg->proxy_batch_write_at_s == 5);
    CHECK(cfg->max_request_size_mb == 10);
    CHECK(cfg->redis_url == NULL);
    lp_cfg_destroy(&cfg);
    CHECK(cfg == NULL);
    lp_cfg_destroy(&cfg);
}

static void test_defaults(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("model_list:\n"
                         "  - model_name: m\n"
                         "    litellm_params:\n"
                         "      model: openai/gpt-4o\n",
                         err);
    CHECK(cfg != NULL);
    CHECK(cfg->nwarnings == 0);
    CHECK_STR(cfg->master_key, GOOD_KEY);
    CHECK_STR(cfg->routing_strategy, "simple-shuffle");
    CHECK(cfg->num_retries == 2);
    CHECK(cfg->timeout_s == 600);
    CHECK(cfg->allowed_fails == 3);
    CHECK(cfg->cooldown_time_s == 5);
    CHECK(cfg->max_request_size_mb == 32);
    CHECK(cfg->proxy_batch_write_at_s == 10);
    CHECK(cfg->drop_params == false);
    CHECK(cfg->log_level == NULL);
    CHECK(cfg->database_url == NULL);
    CHECK(cfg->fallbacks == NULL);
    CHECK(cfg->deployments[0].mode == LP_MODE_CHAT);
    CHECK(cfg->deployments[0].api_key == NULL);
    lp_cfg_destroy(&cfg);

    /* litellm_settings.request_timeout alone sets the router timeout; the environment fills
     * the provider key, the database and redis URLs */
    setenv("OPENAI_API_KEY", "sk-provider-env", 1);
    setenv("DATABASE_URL", "postgresql://env/db", 1);
    setenv("REDIS_URL", "redis://localhost:6379", 1);
    cfg = load("model_list:\n"
               "  - model_name: m\n"
               "    litellm_params: {model: openai/gpt-4o}\n"
               "litellm_settings:\n"
               "  request_timeout: 77\n"
               "  num_retries: 5\n",
               err);
    env_reset();
    CHECK(cfg != NULL);
    CHECK(cfg->timeout_s == 77);
    CHECK(cfg->num_retries == 5);
    CHECK_STR(cfg->deployments[0].api_key, "sk-provider-env");
    CHECK_STR(cfg->database_url, "postgresql://env/db");
    CHECK_STR(cfg->redis_url, "redis://localhost:6379");
    lp_cfg_destroy(&cfg);
}

/* ---- os.environ/ ---- */

static void test_environ_refs(void)
{
    env_reset();
    setenv("TEST_CFG_KEY", "sk-secret-abc", 1);
    setenv("TEST_CFG_RPM", "250", 1);
    setenv("TEST_CFG_HDR", "header-value", 1);
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("model_list:\n"
                         "  - model_name: m\n"
                         "    litellm_params:\n"
                         "      model: openai/gpt-4o\n"
                         "      api_key: os.environ/TEST_CFG_KEY\n"
                         "      rpm: os.environ/TEST_CFG_RPM\n"
                         "      extra_headers: {X-Test: os.environ/TEST_CFG_HDR}\n",
                         err);
    CHECK(cfg != NULL);
    const lp_deployment_t *d = &cfg->deployments[0];
    CHECK_STR(d->api_key, "sk-secret-abc");
    CHECK(d->rpm == 250);
    json_t *h = json_object_get(d->params, "extra_headers");
    CHECK(json_is_object(h));
    CHECK_STR(json_string_value(json_object_get(h, "X-Test")), "header-value");
    lp_cfg_destroy(&cfg);

    /* a non-numeric variable behind rpm fails, at the line of the reference */
    setenv("TEST_CFG_RPM", "many", 1);
    cfg = load("model_list:\n"
               "  - model_name: m\n"
               "    litellm_params:\n"
               "      model: openai/gpt-4o\n"
               "      rpm: os.environ/TEST_CFG_RPM\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 5));
    CHECK(strstr(err, "rpm") != NULL);

    /* an unset variable is not an error; the value stays unset (an unset api_key is
     * normal, anything else is worth a warning) */
    cfg = load("model_list:\n"
               "  - model_name: m\n"
               "    litellm_params:\n"
               "      model: openai/gpt-4o\n"
               "      api_key: os.environ/TEST_CFG_UNSET\n"
               "      tpm: os.environ/TEST_CFG_UNSET\n",
               err);
    CHECK(cfg != NULL);
    CHECK(cfg->deployments[0].api_key == NULL);
    CHECK(cfg->deployments[0].tpm == 0);
    CHECK(has_warning(cfg, "TEST_CFG_UNSET", 6));
    CHECK(!has_warning(cfg, "TEST_CFG_UNSET", 5));
    lp_cfg_destroy(&cfg);

    /* os.environ/ without a name is an error */
    cfg = load("model_list:\n"
               "  - model_name: m\n"
               "    litellm_params:\n"
               "      model: openai/gpt-4o\n"
               "      api_key: os.environ/\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 5));
    env_reset();
}

/* ---- providers and api_base ---- */

static void test_providers(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("model_list:\n"
                         "  - model_name: a\n"
                         "    litellm_params: {model: openai/gpt-4o}\n"
                         "  - model_name: b\n"
                         "    litellm_params: {model: groq/llama3-8b}\n"
                         "  - model_name: c\n"
                         "    litellm_params: {model: anthropic/claude-3-haiku}\n"
                         "  - model_name: d\n"
                         "    litellm_params: {model: gemini/gemini-1.5-pro}\n"
                         "  - model_name: e\n"
                         "    litellm_params: {model: gpt-4o}\n"
                         "  - model_name: f\n"
                         "    litellm_params: {model: openrouter/meta/llama-3}\n"
                         "  - model_name: g\n"
                         "    litellm_params:\n"
                         "      model: huggingface/bge\n"
                         "      api_base: http://tei.local:8080/\n",
                         err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    CHECK(cfg->ndeployments == 7);
    static const char *names[] = {"openai", "groq",       "anthropic",  "gemini",
                                  "openai", "openrouter", "huggingface"};
    static const char *bases[] = {
        "https://api.openai.com/v1", "https://api.groq.com/openai/v1",
        "https://api.anthropic.com", "https://generativelanguage.googleapis.com",
        "https://api.openai.com/v1", "https://openrouter.ai/api/v1",
        "http://tei.local:8080"};
    static const char *pmodels[] = {
        "gpt-4o", "llama3-8b", "claude-3-haiku", "gemini-1.5-pro", "gpt-4o", "meta/llama-3", "bge"};
    for (size_t i = 0; i < 7; i++) {
        const lp_deployment_t *d = &cfg->deployments[i];
        CHECK(d->provider != NULL);
        CHECK_STR(d->provider->name, names[i]);
        CHECK_STR(d->api_base, bases[i]);
        CHECK_STR(d->provider_model, pmodels[i]);
    }
    lp_cfg_destroy(&cfg);

    /* unknown prefix: error naming the line of the model */
    cfg = load("model_list:\n"
               "  - model_name: a\n"
               "    litellm_params:\n"
               "      rpm: 5\n"
               "      model: mystery/model-x\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 5));
    CHECK(strstr(err, "mystery/model-x") != NULL);

    /* huggingface has no default base: api_base is required */
    cfg = load("model_list:\n"
               "  - model_name: a\n"
               "    litellm_params:\n"
               "      model: huggingface/bge\n",
               err);
    CHECK(cfg == NULL);
    CHECK(strstr(err, "api_base") != NULL);
    /* ... unless the deployment only mocks */
    cfg = load("model_list:\n"
               "  - model_name: a\n"
               "    litellm_params:\n"
               "      model: huggingface/bge\n"
               "      mock_response: hi\n",
               err);
    CHECK(cfg != NULL);
    CHECK(cfg->deployments[0].api_base == NULL);
    CHECK_STR(cfg->deployments[0].mock_response, "hi");
    lp_cfg_destroy(&cfg);

    /* the provider's base variable replaces the default, not a configured base */
    setenv("OPENAI_API_BASE", "http://local-openai:9000/v1/", 1);
    cfg = load("model_list:\n"
               "  - model_name: a\n"
               "    litellm_params: {model: openai/gpt-4o}\n"
               "  - model_name: b\n"
               "    litellm_params: {model: openai/gpt-4o-mini, api_base: 'http://x/v1'}\n",
               err);
    env_reset();
    CHECK(cfg != NULL);
    CHECK_STR(cfg->deployments[0].api_base, "http://local-openai:9000/v1");
    CHECK_STR(cfg->deployments[1].api_base, "http://x/v1");
    lp_cfg_destroy(&cfg);

    /* model is required */
    cfg = load("model_list:\n"
               "  - model_name: a\n"
               "    litellm_params:\n"
               "      rpm: 5\n",
               err);
    CHECK(cfg == NULL);
    CHECK(strstr(err, "model") != NULL);
    /* model_name is required */
    cfg = load("model_list:\n"
               "  - litellm_params: {model: openai/gpt-4o}\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 2));
    CHECK(strstr(err, "model_name") != NULL);
}

/* ---- deployment ids ---- */

static const char *s_two = "model_list:\n"
                           "  - model_name: m\n"
                           "    litellm_params:\n"
                           "      model: openai/gpt-4o\n"
                           "      api_key: os.environ/TEST_CFG_KEY\n"
                           "  - model_name: m\n"
                           "    litellm_params:\n"
                           "      model: openai/gpt-4o\n"
                           "      api_key: os.environ/TEST_CFG_KEY\n"
                           "      rpm: 10\n";

static void test_deployment_ids(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    setenv("TEST_CFG_KEY", "sk-first-value", 1);
    lp_cfg_t *a = load(s_two, err);
    CHECK(a != NULL);
    setenv("TEST_CFG_KEY", "sk-second-value", 1);
    lp_cfg_t *b = load(s_two, err);
    env_reset();
    if (!b)
        lp_cfg_destroy(&a);
    CHECK(b != NULL);
    bool ok = is_hex64(a->deployments[0].id) && is_hex64(a->deployments[1].id) &&
              strcmp(a->deployments[0].id, a->deployments[1].id) != 0 &&
              strcmp(a->deployments[0].id, b->deployments[0].id) == 0 &&
              strcmp(a->deployments[1].id, b->deployments[1].id) == 0 &&
              strcmp(a->deployments[0].api_key, "sk-first-value") == 0 &&
              strcmp(b->deployments[0].api_key, "sk-second-value") == 0;
    /* the id is the sha256 of the entry as written (references unresolved) */
    char hex[LP_SHA256_HEX_LEN];
    const char *canon = "{\"litellm_params\":{\"api_key\":\"os.environ/TEST_CFG_KEY\","
                        "\"model\":\"openai/gpt-4o\"},\"model_name\":\"m\"}";
    lp_sha256_hex(canon, strlen(canon), hex);
    bool canon_ok = strcmp(a->deployments[0].id, hex) == 0;
    lp_cfg_destroy(&a);
    lp_cfg_destroy(&b);
    CHECK(ok);
    CHECK(canon_ok);

    /* the id does not depend on the model_name alone: a different group, a different id */
    lp_cfg_t *c = load("model_list:\n"
                       "  - model_name: m1\n"
                       "    litellm_params: {model: openai/gpt-4o}\n"
                       "  - model_name: m2\n"
                       "    litellm_params: {model: openai/gpt-4o}\n",
                       err);
    CHECK(c != NULL);
    ok = strcmp(c->deployments[0].id, c->deployments[1].id) != 0;
    lp_cfg_destroy(&c);
    CHECK(ok);
}

static void test_duplicate_id(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("model_list:\n"
                         "  - model_name: a\n"
                         "    litellm_params: {model: openai/gpt-4o}\n"
                         "    model_info: {id: same}\n"
                         "  - model_name: b\n"
                         "    litellm_params: {model: openai/gpt-4o-mini}\n"
                         "    model_info: {id: same}\n",
                         err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 5));
    CHECK(strstr(err, "same") != NULL);
    /* an empty id is refused too */
    cfg = load("model_list:\n"
               "  - model_name: a\n"
               "    litellm_params: {model: openai/gpt-4o}\n"
               "    model_info: {id: ''}\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 4));
}

/* ---- errors carry file:line:col ---- */

static void test_error_positions(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    /* non-numeric rpm */
    lp_cfg_t *cfg = load("model_list:\n"
                         "  - model_name: a\n"
                         "    litellm_params:\n"
                         "      model: openai/gpt-4o\n"
                         "      rpm: lots\n",
                         err);
    CHECK(cfg == NULL);
    CHECK(strncmp(err, NAME ":5:12:", strlen(NAME ":5:12:")) == 0);
    CHECK(strstr(err, "rpm") != NULL && strstr(err, "lots") != NULL);
    /* negative rpm */
    cfg = load("model_list:\n"
               "  - model_name: a\n"
               "    litellm_params:\n"
               "      model: openai/gpt-4o\n"
               "      tpm: 5\n"
               "      rpm: -3\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 6));
    /* bad bool */
    cfg = load("litellm_settings:\n"
               "  cache: false\n"
               "  drop_params: maybe\n",
               err);
    CHECK(cfg == NULL);
    CHECK(strncmp(err, NAME ":3:16:", strlen(NAME ":3:16:")) == 0);
    CHECK(strstr(err, "drop_params") != NULL);
    /* negative num_retries */
    cfg = load("router_settings:\n"
               "  num_retries: -1\n",
               err);
    CHECK(cfg == NULL);
    CHECK(strncmp(err, NAME ":2:16:", strlen(NAME ":2:16:")) == 0);
    CHECK(strstr(err, "num_retries") != NULL);
    /* num_retries above the limit */
    cfg = load("\n\nrouter_settings: {num_retries: 21}\n", err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 3));
    /* timeout 0 is out of range, a word is not a number */
    cfg = load("router_settings:\n  timeout: 0\n", err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 2));
    cfg = load("router_settings:\n  cooldown_time: soon\n", err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 2));
    /* model_list that is a mapping */
    cfg = load("general_settings: {}\n"
               "model_list:\n"
               "  model_name: a\n"
               "  litellm_params: {model: openai/gpt-4o}\n",
               err);
    CHECK(cfg == NULL);
    CHECK(strncmp(err, NAME ":3:3:", strlen(NAME ":3:3:")) == 0);
    CHECK(strstr(err, "model_list") != NULL);
    /* a list item that is not a mapping */
    cfg = load("model_list:\n"
               "  - just-a-string\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 2));
    /* a section of the wrong type */
    cfg = load("router_settings:\n"
               "  - a\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 2));
    /* a mapping where a value is expected */
    cfg = load("general_settings:\n"
               "  max_request_size_mb:\n"
               "    a: 1\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 3));
    /* bad mode */
    cfg = load("model_list:\n"
               "  - model_name: a\n"
               "    litellm_params: {model: openai/gpt-4o}\n"
               "    model_info:\n"
               "      mode: image\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 5));
    CHECK(strstr(err, "image") != NULL);
    /* the root must be a mapping */
    cfg = load("- a\n- b\n", err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 1));
}

/* ---- warnings ---- */

static void test_warnings(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("model_list:\n"                    /* 1 */
                         "  - model_name: a\n"              /* 2 */
                         "    litellm_params:\n"            /* 3 */
                         "      model: openai/gpt-4o\n"     /* 4 */
                         "      max_parallel_requests: 4\n" /* 5 */
                         "    extra_thing: 1\n"             /* 6 */
                         "router_settings:\n"               /* 7 */
                         "  no_such_router_key: 1\n"        /* 8 */
                         "  retry_policy: {}\n"             /* 9 */
                         "  routing_strategy: least-busy\n" /* 10 */
                         "litellm_settings:\n"              /* 11 */
                         "  callbacks: [langfuse]\n"        /* 12 */
                         "general_settings:\n"              /* 13 */
                         "  alerting: [slack]\n"            /* 14 */
                         "  mystery: 2\n"                   /* 15 */
                         "unknown_section:\n"               /* 16 */
                         "  x: 1\n",                        /* 17 */
                         err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    CHECK(has_warning(cfg, "max_parallel_requests", 5));
    CHECK(has_warning(cfg, "extra_thing", 6));
    CHECK(has_warning(cfg, "no_such_router_key", 8));
    CHECK(has_warning(cfg, "retry_policy", 9));
    CHECK(has_warning(cfg, "callbacks", 12));
    CHECK(has_warning(cfg, "alerting", 14));
    CHECK(has_warning(cfg, "mystery", 15));
    CHECK(has_warning(cfg, "unknown_section", 16));
    size_t n = cfg->nwarnings;
    /* every strategy the router implements loads without a warning */
    CHECK_STR(cfg->routing_strategy, "least-busy");
    lp_cfg_destroy(&cfg);
    CHECK(n == 8);
}

static void test_unknown_strategy(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("model_list: []\n"
                         "router_settings:\n"
                         "  routing_strategy: cost-based-routing\n",
                         err);
    bool refused = cfg == NULL;
    lp_cfg_destroy(&cfg);
    CHECK(refused);
    CHECK(strstr(err, ":3:") && strstr(err, "routing_strategy"));
}

/* ---- master key ---- */

static void test_master_key_placement(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("router_settings:\n"
                         "  master_key: sk-placed-in-router-0123\n",
                         err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 2));
    CHECK(strstr(err, "general_settings") != NULL);
    CHECK(strstr(err, "sk-placed-in-router-0123") == NULL); /* the secret is not echoed */
    cfg = load("litellm_settings:\n"
               "  drop_params: true\n"
               "  master_key: sk-placed-in-litellm-0123\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 3));
    cfg = load("master_key: sk-placed-at-top-0123456\n", err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 1));
    cfg = load("router_settings:\n"
               "  database_url: postgresql://x\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 2));
}

static void test_master_key_sources(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    /* missing everywhere */
    unsetenv("LITELLM_MASTER_KEY");
    lp_cfg_t *cfg = load("general_settings: {}\n", err);
    CHECK(cfg == NULL);
    CHECK(strstr(err, "LITELLM_MASTER_KEY") != NULL);
    setenv("LITELLM_MASTER_KEY", "", 1);
    cfg = load("general_settings:\n  master_key: ''\n", err);
    CHECK(cfg == NULL);
    CHECK(strstr(err, "LITELLM_MASTER_KEY") != NULL);
    /* from the environment when the config has none (or an empty one) */
    env_reset();
    cfg = load("general_settings:\n  master_key: ''\n", err);
    CHECK(cfg != NULL);
    CHECK_STR(cfg->master_key, GOOD_KEY);
    lp_cfg_destroy(&cfg);
    /* through os.environ/ */
    setenv("TEST_CFG_MK", "sk-through-environ-ref-99", 1);
    cfg = load("general_settings:\n  master_key: os.environ/TEST_CFG_MK\n", err);
    CHECK(cfg != NULL);
    CHECK_STR(cfg->master_key, "sk-through-environ-ref-99");
    lp_cfg_destroy(&cfg);
    env_reset();
}

static void test_master_key_weak(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    setenv("LITELLM_MASTER_KEY", "sk-1234", 1);
    lp_cfg_t *cfg = load("", err);
    CHECK(cfg == NULL);
    CHECK(strstr(err, "LITELLM_MASTER_KEY") != NULL);
    env_reset();
    static const char *weak[] = {
        "sk-1234",                 /* documentation example */
        "sk-litellm-master-key",   /* long enough, but a published example */
        "sk-short",                /* too short */
        "sk-123456789012",         /* 15 characters */
        "pk-0123456789abcdefghij", /* wrong prefix */
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(weak); i++) {
        char text[128];
        snprintf(text, sizeof text, "general_settings:\n  master_key: %s\n", weak[i]);
        cfg = load(text, err);
        bool loaded = cfg != NULL;
        lp_cfg_destroy(&cfg);
        CHECK(!loaded);
        CHECK(err_at_line(err, 2));
        CHECK(strstr(err, weak[i]) == NULL); /* never echoed */
    }
    /* exactly LP_MASTER_KEY_MIN_LEN characters is enough */
    cfg = load("general_settings:\n  master_key: sk-1234567890123\n", err);
    CHECK(cfg != NULL);
    lp_cfg_destroy(&cfg);
}

/* ---- YAML features ---- */

static void test_flow_style(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg =
        load("model_list: [{model_name: a, litellm_params: {model: openai/gpt-4o, rpm: 3}},\n"
             "             {model_name: b, litellm_params: {model: 'groq/x', stop: [a, 'b']}}]\n"
             "router_settings: {num_retries: 1, fallbacks: [{a: [b]}]}\n",
             err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    CHECK(cfg->ndeployments == 2);
    CHECK(cfg->deployments[0].rpm == 3);
    CHECK(cfg->deployments[1].line == 2);
    json_t *stop = json_object_get(cfg->deployments[1].params, "stop");
    CHECK(json_is_array(stop) && json_array_size(stop) == 2);
    CHECK_STR(json_string_value(json_array_get(stop, 1)), "b");
    CHECK(cfg->num_retries == 1);
    CHECK(json_is_array(cfg->fallbacks));
    lp_cfg_destroy(&cfg);
}

static void test_anchors_and_merge(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("x-common: &common\n"
                         "  rpm: 10\n"
                         "  temperature: 0.5\n"
                         "x-more: &more\n"
                         "  tpm: 99\n"
                         "  rpm: 11\n"
                         "model_list:\n"
                         "  - model_name: &name shared\n"
                         "    litellm_params:\n"
                         "      <<: *common\n"
                         "      model: openai/gpt-4o\n"
                         "  - model_name: *name\n"
                         "    litellm_params:\n"
                         "      model: openai/gpt-4o-mini\n"
                         "      rpm: 20\n"
                         "      <<: [*common, *more]\n"
                         "  - model_name: other\n"
                         "    litellm_params: &p3 {model: groq/a, weight: 4}\n"
                         "  - model_name: merged-first\n"
                         "    litellm_params:\n"
                         "      <<: *common\n"
                         "      rpm: 30\n"
                         "      model: openai/x\n"
                         "  - model_name: other2\n"
                         "    litellm_params: *p3\n",
                         err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    CHECK(cfg->ndeployments == 5);
    /* merged keys, explicit keys win, the first merged map wins over later ones */
    CHECK_STR(cfg->deployments[0].model_name, "shared");
    CHECK(cfg->deployments[0].rpm == 10);
    CHECK(json_real_value(json_object_get(cfg->deployments[0].params, "temperature")) == 0.5);
    CHECK_STR(cfg->deployments[1].model_name, "shared");
    CHECK(cfg->deployments[1].rpm == 20);
    CHECK(cfg->deployments[1].tpm == 99);
    CHECK(json_object_get(cfg->deployments[1].params, "temperature") != NULL);
    CHECK(json_object_get(cfg->deployments[1].params, "<<") == NULL);
    /* an explicit key after the merge wins too (no duplicate-key error) */
    CHECK(cfg->deployments[3].rpm == 30);
    CHECK(json_real_value(json_object_get(cfg->deployments[3].params, "temperature")) == 0.5);
    CHECK(cfg->deployments[4].weight == 4);
    CHECK_STR(cfg->deployments[4].model, "groq/a");
    CHECK(cfg->ngroups == 4);
    /* the x- sections are unknown top-level keys: warnings */
    CHECK(has_warning(cfg, "x-common", 1));
    lp_cfg_destroy(&cfg);

    /* an unknown alias is an error */
    cfg = load("model_list:\n"
               "  - model_name: *nothing\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 2));
    /* merging a scalar is an error */
    cfg = load("a: &s text\n"
               "b:\n"
               "  <<: *s\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 3));
}

/* An anchor placed on the value of a `<<` merge key must stay usable by later aliases. */
static void test_anchor_on_merge_value(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("model_list:\n"
                         "  - model_name: a\n"
                         "    litellm_params:\n"
                         "      model: openai/gpt-4o\n"
                         "      <<: &limits {rpm: 5, tpm: 50}\n"
                         "  - model_name: b\n"
                         "    litellm_params:\n"
                         "      model: openai/gpt-4o-mini\n"
                         "      <<: *limits\n",
                         err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    bool ok = cfg->ndeployments == 2 && cfg->deployments[0].rpm == 5 &&
              cfg->deployments[1].rpm == 5 && cfg->deployments[1].tpm == 50;
    lp_cfg_destroy(&cfg);
    CHECK(ok);
}

static void test_duplicate_keys(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("router_settings:\n"
                         "  num_retries: 1\n"
                         "  timeout: 5\n"
                         "  num_retries: 2\n",
                         err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 4));
    CHECK(strstr(err, "duplicate") != NULL && strstr(err, "num_retries") != NULL);
    /* in flow style too, and at the top level */
    cfg = load("a: {x: 1, x: 2}\n", err);
    CHECK(cfg == NULL);
    CHECK(strstr(err, "duplicate") != NULL);
    cfg = load("general_settings: {}\ngeneral_settings: {}\n", err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 2));
}

static void test_yaml_syntax_error(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("model_list:\n"
                         "  - model_name: a\n"
                         "    litellm_params: {model: openai/gpt-4o\n"
                         "router_settings:\n"
                         "  num_retries: 1\n",
                         err);
    CHECK(cfg == NULL);
    CHECK(strncmp(err, NAME ":", strlen(NAME ":")) == 0);
    long line = strtol(err + strlen(NAME ":"), NULL, 10);
    CHECK(line >= 3 && line <= 6);
    /* bad indentation */
    cfg = load("router_settings:\n"
               "  num_retries: 1\n"
               " timeout: 2\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 3));
    /* a tab where indentation is expected */
    cfg = load("router_settings:\n\tnum_retries: 1\n", err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 2));
}

/* Only one YAML document is allowed: a second one is refused, not silently ignored. */
static void test_yaml_second_document(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg;
    cfg = load("a: 1\n---\nb: 2\n", err);
    bool loaded = cfg != NULL;
    lp_cfg_destroy(&cfg);
    CHECK(!loaded);
    CHECK(strstr(err, "document") != NULL);
}

static void test_empty_document(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    static const char *texts[] = {"", "# only a comment\n", "\n\n"};
    for (size_t i = 0; i < LP_ARRAY_LEN(texts); i++) {
        lp_cfg_t *cfg = load(texts[i], err);
        CHECK(cfg != NULL);
        bool ok = cfg->ndeployments == 0 && cfg->ngroups == 0 &&
                  strcmp(cfg->master_key, GOOD_KEY) == 0 && has_warning(cfg, "model_list", 0);
        lp_cfg_destroy(&cfg);
        CHECK(ok);
    }
    /* null sections are fine */
    lp_cfg_t *cfg = load("model_list:\nrouter_settings: ~\nlitellm_settings: null\n", err);
    CHECK(cfg != NULL);
    CHECK(cfg->ndeployments == 0);
    lp_cfg_destroy(&cfg);
}

static void test_environment_variables(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    /* the section is read before the rest, wherever it is in the file */
    lp_cfg_t *cfg = load("model_list:\n"
                         "  - model_name: a\n"
                         "    litellm_params:\n"
                         "      model: openai/gpt-4o\n"
                         "      api_key: os.environ/TEST_CFG_EV_KEY\n"
                         "      rpm: os.environ/TEST_CFG_EV_RPM\n"
                         "environment_variables:\n"
                         "  TEST_CFG_EV_KEY: sk-from-env-section\n"
                         "  TEST_CFG_EV_RPM: 77\n",
                         err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    CHECK_STR(cfg->deployments[0].api_key, "sk-from-env-section");
    CHECK(cfg->deployments[0].rpm == 77);
    lp_cfg_destroy(&cfg);
    CHECK(getenv("TEST_CFG_EV_KEY") &&
          strcmp(getenv("TEST_CFG_EV_KEY"), "sk-from-env-section") == 0);
    /* a nested value is an error */
    cfg = load("environment_variables:\n"
               "  A: [1, 2]\n",
               err);
    CHECK(cfg == NULL);
    CHECK(err_at_line(err, 2));
    env_reset();
}

static void test_params_types(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("model_list:\n"
                         "  - model_name: a\n"
                         "    litellm_params:\n"
                         "      model: openai/gpt-4o\n"
                         "      temperature: 0.7\n"
                         "      max_tokens: 100\n"
                         "      top_p: '0.9'\n"
                         "      n: \"2\"\n"
                         "      stream: true\n"
                         "      logprobs: False\n"
                         "      user: ~\n"
                         "      stop: [\"\\n\", END]\n"
                         "      name: hello\n"
                         "      neg: -5\n"
                         "      exp: 1e3\n",
                         err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    const json_t *p = cfg->deployments[0].params;
    CHECK(json_is_real(json_object_get(p, "temperature")));
    CHECK(json_real_value(json_object_get(p, "temperature")) == 0.7);
    CHECK(json_is_integer(json_object_get(p, "max_tokens")));
    CHECK(json_integer_value(json_object_get(p, "max_tokens")) == 100);
    CHECK(json_is_string(json_object_get(p, "top_p")));
    CHECK_STR(json_string_value(json_object_get(p, "top_p")), "0.9");
    CHECK(json_is_string(json_object_get(p, "n")));
    CHECK(json_is_true(json_object_get(p, "stream")));
    CHECK(json_is_false(json_object_get(p, "logprobs")));
    CHECK(json_is_null(json_object_get(p, "user")));
    CHECK(json_is_array(json_object_get(p, "stop")));
    CHECK_STR(json_string_value(json_array_get(json_object_get(p, "stop"), 0)), "\n");
    CHECK_STR(json_string_value(json_object_get(p, "name")), "hello");
    CHECK(json_integer_value(json_object_get(p, "neg")) == -5);
    CHECK(json_is_number(json_object_get(p, "exp")));
    CHECK(json_number_value(json_object_get(p, "exp")) == 1000);
    CHECK(json_object_size(p) == 11);
    lp_cfg_destroy(&cfg);
}

static void test_model_info_mode(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("model_list:\n"
                         "  - model_name: e\n"
                         "    litellm_params: {model: openai/text-embedding-3-small}\n"
                         "    model_info: {mode: embedding, base_model: x, max_tokens: 8191}\n"
                         "  - model_name: c\n"
                         "    litellm_params: {model: openai/gpt-3.5-turbo-instruct}\n"
                         "    model_info:\n"
                         "      mode: completion\n"
                         "  - model_name: n\n"
                         "    litellm_params: {model: openai/gpt-4o}\n"
                         "    model_info:\n",
                         err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    CHECK(cfg->deployments[0].mode == LP_MODE_EMBEDDING);
    CHECK(cfg->deployments[1].mode == LP_MODE_COMPLETION);
    CHECK(cfg->deployments[2].mode == LP_MODE_CHAT);
    CHECK_STR(lp_mode_name(LP_MODE_COMPLETION), "completion");
    CHECK_STR(lp_mode_name(LP_MODE_CHAT), "chat");
    /* model_info is kept as given (not resolved into params) */
    const json_t *info = cfg->deployments[0].info;
    CHECK_STR(json_string_value(json_object_get(info, "base_model")), "x");
    CHECK(json_integer_value(json_object_get(info, "max_tokens")) == 8191);
    CHECK(json_object_get(cfg->deployments[0].params, "mode") == NULL);
    lp_cfg_destroy(&cfg);
}

static void test_yaml_tree(void)
{
    char err[LP_ERR_LEN] = "";
    const char *text = "a:\n"
                       "  b: [1, \"two\", ~]\n"
                       "  c: 'null'\n"
                       "d: null\n";
    lp_ynode_t *root = lp_yaml_load_string(text, strlen(text), "y.yaml", err);
    CHECK(root != NULL);
    CHECK(root->type == LP_YAML_MAP && root->n == 2);
    lp_ynode_t *a = lp_yaml_get(root, "a");
    lp_ynode_t *b = lp_yaml_get(a, "b");
    bool ok = a && a->type == LP_YAML_MAP && a->line == 2 && a->col == 3 && b &&
              b->type == LP_YAML_SEQ && b->n == 3 && b->line == 2 && b->col == 6 &&
              strcmp(b->items[1]->value, "two") == 0 && !b->items[1]->plain && b->items[0]->plain &&
              lp_yaml_is_null(b->items[2]) && !lp_yaml_is_null(lp_yaml_get(a, "c")) &&
              lp_yaml_is_null(lp_yaml_get(root, "d")) && lp_yaml_get(root, "zz") == NULL &&
              lp_yaml_get(b, "x") == NULL && strcmp(lp_yaml_type_name(b), "list") == 0 &&
              strcmp(lp_yaml_type_name(a), "mapping") == 0 &&
              strcmp(lp_yaml_type_name(b->items[0]), "string") == 0;
    lp_yaml_destroy(&root);
    CHECK(root == NULL);
    CHECK(ok);
    /* nesting beyond the limit is refused, not a stack overflow */
    char deep[LP_YAML_MAX_DEPTH * 2 + 200];
    size_t o = 0;
    for (int i = 0; i < LP_YAML_MAX_DEPTH + 10; i++)
        deep[o++] = '[';
    for (int i = 0; i < LP_YAML_MAX_DEPTH + 10; i++)
        deep[o++] = ']';
    deep[o] = '\0';
    root = lp_yaml_load_string(deep, o, "y.yaml", err);
    CHECK(root == NULL);
    CHECK(strstr(err, "deep") != NULL);
    /* NUL inside a string is refused */
    root = lp_yaml_load_string("a: \"x\\0y\"\n", 10, "y.yaml", err);
    CHECK(root == NULL);
    CHECK(err[0] != '\0');
}

/* NAME_FILE stands in for NAME (Docker and Kubernetes secrets). */
static void test_env_files(void)
{
    env_reset();
    char dir[] = "/tmp/lp-cfg-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char kpath[300], mpath[300];
    snprintf(kpath, sizeof kpath, "%s/openai", dir);
    snprintf(mpath, sizeof mpath, "%s/master", dir);
    FILE *f = fopen(kpath, "w");
    CHECK(f != NULL);
    fputs("sk-from-a-file-0123456789\n", f);
    fclose(f);
    f = fopen(mpath, "w");
    CHECK(f != NULL);
    fputs(GOOD_KEY "\r\n", f);
    fclose(f);
    unsetenv("LITELLM_MASTER_KEY");
    setenv("LITELLM_MASTER_KEY_FILE", mpath, 1);
    setenv("TEST_UPSTREAM_KEY_FILE", kpath, 1);
    setenv("OPENAI_API_KEY_FILE", kpath, 1);
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg =
        load("model_list:\n"
             "  - model_name: a\n"
             "    litellm_params: {model: openai/x, api_key: os.environ/TEST_UPSTREAM_KEY}\n"
             "  - model_name: b\n"
             "    litellm_params: {model: openai/y}\n",
             err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_STR(cfg->master_key, GOOD_KEY);
        CHECK_STR(cfg->deployments[0].api_key, "sk-from-a-file-0123456789");
        CHECK_STR(cfg->deployments[1].api_key, "sk-from-a-file-0123456789");
    }
    lp_cfg_destroy(&cfg);
    /* An unreadable file is an error naming the variable, never a silent empty key. */
    setenv("TEST_UPSTREAM_KEY_FILE", "/nonexistent/secret", 1);
    cfg = load("model_list:\n"
               "  - model_name: a\n"
               "    litellm_params: {model: openai/x, api_key: os.environ/TEST_UPSTREAM_KEY}\n",
               err);
    CHECK(cfg == NULL);
    CHECK(strstr(err, "TEST_UPSTREAM_KEY_FILE=/nonexistent/secret") != NULL);
    unsetenv("TEST_UPSTREAM_KEY_FILE");
    unsetenv("OPENAI_API_KEY_FILE");
    unsetenv("LITELLM_MASTER_KEY_FILE");
    unlink(kpath);
    unlink(mpath);
    rmdir(dir);
    env_reset();
}

/* lp_clientside: client-chosen api_base / api_key only as the config allows. The body lives
 * until the next call (out borrows from it). */
static json_t *s_body;

static int clientside(const lp_cfg_t *cfg, const char *group, const char *body_json,
                      lp_clientside_req_t *out, char *why)
{
    const lp_deployment_t *d = NULL;
    for (size_t i = 0; i < cfg->ndeployments && !d; i++)
        if (!strcmp(cfg->deployments[i].model_name, group))
            d = &cfg->deployments[i];
    json_decref(s_body);
    s_body = json_loads(body_json, 0, NULL);
    return lp_clientside_check(cfg, d, s_body, out, why);
}

static void test_clientside_rules(void)
{
    env_reset();
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = load("model_list:\n"
                         "  - model_name: closed\n"
                         "    litellm_params: {model: openai/x, api_key: sk-server}\n"
                         "  - model_name: any\n"
                         "    litellm_params:\n"
                         "      model: openai/x\n"
                         "      api_key: sk-server\n"
                         "      configurable_clientside_auth_params: [api_base, api_key]\n"
                         "  - model_name: pinned\n"
                         "    litellm_params:\n"
                         "      model: openai/x\n"
                         "      api_key: sk-server\n"
                         "      configurable_clientside_auth_params:\n"
                         "        - api_base: 'https://[a-z]+\\.example\\.com/v1'\n",
                         err);
    CHECK_WHY(cfg != NULL, err);
    lp_clientside_req_t r;
    char why[LP_ERR_LEN];
    CHECK(clientside(cfg, "closed", "{\"model\": \"closed\"}", &r, why) == 0);
    CHECK(clientside(cfg, "closed", "{\"api_base\": \"https://a.example.com/v1\"}", &r, why) < 0);
    CHECK_STR(r.field, "api_base");
    CHECK(strstr(why, "allow_client_side_credentials") != NULL);
    CHECK(clientside(cfg, "closed", "{\"api_key\": \"sk-c\"}", &r, why) < 0);
    CHECK_STR(r.field, "api_key");
    /* any base, but the server's key never goes to it: the client's must come along */
    CHECK(clientside(cfg, "any", "{\"base_url\": \"https://h.test/v1\"}", &r, why) < 0);
    CHECK_STR(r.field, "base_url");
    CHECK(strstr(why, "needs api_key") != NULL);
    CHECK(clientside(cfg, "any", "{\"api_base\": \"https://h.test/v1\", \"api_key\": \"sk-c\"}", &r,
                     why) == 1);
    CHECK_STR(r.base, "https://h.test/v1");
    CHECK_STR(r.key, "sk-c");
    CHECK(clientside(cfg, "any", "{\"api_key\": \"sk-c\"}", &r, why) == 1);
    CHECK(r.base == NULL && !strcmp(r.key, "sk-c"));
    /* URLs: http(s), a host, no credentials; api_base and base_url agree */
    static const char *bad[] = {"ftp://h.test/v1",       "h.test/v1",
                                "https://u:p@h.test/v1", "https://u@h.test/v1",
                                "file:///etc/passwd",    ""};
    for (size_t i = 0; i < LP_ARRAY_LEN(bad); i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"api_base\": \"%s\", \"api_key\": \"k\"}", bad[i]);
        CHECK_WHY(clientside(cfg, "any", body, &r, why) < 0, bad[i]);
    }
    CHECK(clientside(cfg, "any",
                     "{\"api_base\": \"https://a.test\", \"base_url\": \"https://b.test\", "
                     "\"api_key\": \"k\"}",
                     &r, why) < 0);
    CHECK(clientside(cfg, "any", "{\"api_base\": 5, \"api_key\": \"k\"}", &r, why) < 0);
    /* a pattern names hosts the server's key may go to; it matches from the start */
    CHECK(clientside(cfg, "pinned", "{\"api_base\": \"https://eu.example.com/v1\"}", &r, why) == 1);
    CHECK(r.key == NULL);
    static const char *off[] = {"https://eu.example.com.evil.test/v1",
                                "https://evil.test/?https://eu.example.com/v1",
                                "http://eu.example.com/v1", "https://eu.example.com/v1/x"};
    for (size_t i = 0; i < LP_ARRAY_LEN(off); i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"api_base\": \"%s\"}", off[i]);
        CHECK_WHY(clientside(cfg, "pinned", body, &r, why) < 0, off[i]);
    }
    CHECK(clientside(cfg, "pinned", "{\"api_key\": \"sk-c\"}", &r, why) < 0);
    /* keys and bases go into headers and request lines: visible ASCII only */
    CHECK(clientside(cfg, "any", "{\"api_key\": \"sk-c\\r\\nX-Evil: 1\"}", &r, why) < 0);
    CHECK(clientside(cfg, "any", "{\"api_key\": \"sk c\"}", &r, why) < 0);
    CHECK(clientside(cfg, "any",
                     "{\"api_base\": \"https://h.test/v1\\r\\nX: 1\", \"api_key\": \"k\"}", &r,
                     why) < 0);
    CHECK(clientside(cfg, "any",
                     "{\"api_base\": \"https://h.test\\\\@e.test/v1\", \"api_key\": \"k\"}", &r,
                     why) < 0);
    /* the call's own deployment: the client's base and key, the rest borrowed */
    CHECK(clientside(cfg, "any", "{\"api_base\": \"https://h.test/v1//\", \"api_key\": \"sk-c\"}",
                     &r, why) == 1);
    lp_deployment_t *own = lp_clientside_deployment(&cfg->deployments[1], &r);
    CHECK_STR(own->api_base, "https://h.test/v1");
    CHECK_STR(own->api_key, "sk-c");
    CHECK(own->model_name == cfg->deployments[1].model_name);
    lp_clientside_deployment_free(&own);
    CHECK(own == NULL);
    lp_cfg_destroy(&cfg);
    /* a pattern's host part must have matched the host: not a path, query or fragment */
    cfg = load("model_list:\n"
               "  - model_name: loose\n"
               "    litellm_params:\n"
               "      model: openai/x\n"
               "      api_key: sk-server\n"
               "      configurable_clientside_auth_params:\n"
               "        - api_base: 'https://.*api\\.example\\.com/v1'\n",
               err);
    CHECK_WHY(cfg != NULL, err);
    CHECK(clientside(cfg, "loose", "{\"api_base\": \"https://eu.api.example.com/v1\"}", &r, why) ==
          1);
    CHECK(r.named);
    static const char *smuggled[] = {
        "https://evil.test/api.example.com/v1", "https://evil.test/x?api.example.com/v1",
        "https://evil.test/x#api.example.com/v1", "https://evil.test/%2eapi.example.com/v1"};
    for (size_t i = 0; i < LP_ARRAY_LEN(smuggled); i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"api_base\": \"%s\"}", smuggled[i]);
        CHECK_WHY(clientside(cfg, "loose", body, &r, why) < 0, smuggled[i]);
        /* with the client's own key it may go, without the deployment's parameters */
        snprintf(body, sizeof body, "{\"api_base\": \"%s\", \"api_key\": \"k\"}", smuggled[i]);
        CHECK_WHY(clientside(cfg, "loose", body, &r, why) == 1 && !r.named, smuggled[i]);
        lp_deployment_t *copy = lp_clientside_deployment(&cfg->deployments[0], &r);
        CHECK(json_object_size(copy->params) == 0);
        lp_clientside_deployment_free(&copy);
    }
    lp_cfg_destroy(&cfg);
    /* a stray ')' cannot take a pattern out of its anchors: refused, or never matching */
    cfg = load("model_list:\n"
               "  - model_name: stray\n"
               "    litellm_params:\n"
               "      model: openai/x\n"
               "      api_key: sk-server\n"
               "      configurable_clientside_auth_params:\n"
               "        - api_base: 'https://a\\.example\\.com)|(.*'\n",
               err);
    CHECK(!cfg ||
          clientside(cfg, "stray", "{\"api_base\": \"https://evil.test/v1\"}", &r, why) < 0);
    lp_cfg_destroy(&cfg);
    /* proxy-wide: every group, still never the server's key to a client's host */
    cfg = load("general_settings: {allow_client_side_credentials: true}\n"
               "model_list:\n"
               "  - model_name: closed\n"
               "    litellm_params: {model: openai/x, api_key: sk-server}\n",
               err);
    CHECK_WHY(cfg != NULL, err);
    CHECK(clientside(cfg, "closed", "{\"api_key\": \"sk-c\"}", &r, why) == 1);
    CHECK(clientside(cfg, "closed", "{\"api_base\": \"https://h.test\"}", &r, why) < 0);
    CHECK(clientside(cfg, "closed", "{\"api_base\": \"https://h.test\", \"api_key\": \"k\"}", &r,
                     why) == 1);
    lp_cfg_destroy(&cfg);
    /* config errors name the line */
    static const char *wrong[] = {"[api_version]", "api_base", "[{api_key: 'x'}]",
                                  "[{api_base: '(unclosed'}]"};
    for (size_t i = 0; i < LP_ARRAY_LEN(wrong); i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/x\n"
                 "      configurable_clientside_auth_params: %s\n",
                 wrong[i]);
        cfg = load(text, err);
        CHECK_WHY(cfg == NULL && err_at_line(err, 5) &&
                      strstr(err, "configurable_clientside_auth_params"),
                  err);
        lp_cfg_destroy(&cfg);
    }
}

/* 1 blocked, 0 allowed, -1 not an address. */
static int blocked(const char *ip)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    bool v6 = strchr(ip, ':') != NULL;
    ss.ss_family = v6 ? AF_INET6 : AF_INET;
    if (inet_pton(ss.ss_family, ip, v6 ? (void *)&a6->sin6_addr : (void *)&a4->sin_addr) != 1)
        return -1;
    return lp_clientside_blocked((struct sockaddr *)&ss);
}

static void test_clientside_addresses(void)
{
    static const char *no[] = {"127.0.0.1",
                               "127.1.2.3",
                               "0.0.0.0",
                               "169.254.169.254",
                               "100.100.100.200",
                               "224.0.0.1",
                               "::1",
                               "::",
                               "::ffff:127.0.0.1",
                               "fe80::1",
                               "ff02::1",
                               "fd00:ec2::254",
                               "::ffff:169.254.169.254",
                               "64:ff9b::7f00:1",
                               "2002:7f00:1::1",
                               "2002:a9fe:a9fe::",
                               "fec0::1",
                               "240.0.0.1",
                               "255.255.255.255"};
    for (size_t i = 0; i < LP_ARRAY_LEN(no); i++)
        CHECK_WHY(blocked(no[i]) == 1, no[i]);
    static const char *yes[] = {"93.184.215.14",   "10.1.2.3",           "192.0.2.2",
                                "2606:4700::1111", "64:ff9b::5db8:d70e", "2002:5db8:d70e::1",
                                "fd00::2"};
    for (size_t i = 0; i < LP_ARRAY_LEN(yes); i++)
        CHECK_WHY(blocked(yes[i]) == 0, yes[i]);
}

/* What the proxy shows of a base (headers, meta, spend rows): never credentials or query. */
static void test_public_base(void)
{
    const char *cases[][2] = {
        {"https://user:secret@api.example.com:8443/v1?key=sk-x#frag",
         "https://api.example.com:8443/v1"},
        {"http://127.0.0.1:9000/", "http://127.0.0.1:9000"},
        {"https://api.openai.com/v1", "https://api.openai.com/v1"},
        {"not a url", ""},
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(cases); i++) {
        char *got = lp_public_base(cases[i][0]);
        CHECK_STR(got, cases[i][1]);
        free(got);
    }
    char *none = lp_public_base(NULL);
    CHECK_STR(none, "");
    free(none);
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = lp_cfg_load_string("general_settings: {master_key: sk-test-master-key-123}\n"
                                       "model_list:\n"
                                       "  - model_name: g\n"
                                       "    litellm_params: {model: openai/m, api_base: "
                                       "'https://u:p@h.example/v1?x=1'}\n",
                                       "t", err);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK(cfg->deployments[0].public_base == NULL);
        lp_public_bases(cfg);
        CHECK_STR(cfg->deployments[0].public_base, "https://h.example/v1");
        lp_cfg_destroy(&cfg);
    }
}

/* Costs come from the deployment's prices, else the table ("provider/model", then "model");
 * a table price past LP_PRICE_MAX counts as absent, so a cost is always finite. */
static void test_price_table(void)
{
    char path[] = "/tmp/lp-prices-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *table = "{\"openai/m1\": {\"input_cost_per_token\": 0.5, "
                        "\"output_cost_per_token\": 2},"
                        " \"m2\": {\"input_cost_per_token\": 1e300, "
                        "\"output_cost_per_token\": 3}}";
    CHECK(write(fd, table, strlen(table)) == (ssize_t)strlen(table));
    close(fd);
    char err[LP_ERR_LEN] = "";
    lp_prices_t *p = lp_prices_load(path, err);
    unlink(path);
    CHECK_WHY(err[0] == '\0', err);
    CHECK(lp_prices_size(p) == 2);
    lp_deployment_t d = {.id = "d1",
                         .provider = lp_provider_by_name("openai"),
                         .provider_model = "m1",
                         .input_cost_per_token = -1,
                         .output_cost_per_token = -1};
    bool known = false, first = false;
    CHECK(lp_price_cost(p, &d, 10, 1, &known, &first) == 7.0 && known && !first);
    d.input_cost_per_token = 1; /* the deployment's own price wins */
    CHECK(lp_price_cost(p, &d, 10, 1, &known, &first) == 12.0);
    d = (lp_deployment_t){.id = "d2",
                          .provider = lp_provider_by_name("openai"),
                          .provider_model = "m2",
                          .input_cost_per_token = -1,
                          .output_cost_per_token = -1};
    CHECK(lp_price_cost(p, &d, 1000000, 1, &known, &first) == 3.0 && known);
    d = (lp_deployment_t){.id = "d3",
                          .provider = lp_provider_by_name("openai"),
                          .provider_model = "none",
                          .input_cost_per_token = -1,
                          .output_cost_per_token = -1};
    CHECK(lp_price_cost(p, &d, 5, 5, &known, &first) == 0 && !known && first);
    CHECK(lp_price_cost(p, &d, 5, 5, &known, &first) == 0 && !known && !first);
    lp_prices_destroy(&p);
}

int main(void)
{
    RUN(test_full_config);
    RUN(test_defaults);
    RUN(test_environ_refs);
    RUN(test_providers);
    RUN(test_deployment_ids);
    RUN(test_duplicate_id);
    RUN(test_error_positions);
    RUN(test_warnings);
    RUN(test_unknown_strategy);
    RUN(test_master_key_placement);
    RUN(test_master_key_sources);
    RUN(test_master_key_weak);
    RUN(test_flow_style);
    RUN(test_anchors_and_merge);
    RUN(test_duplicate_keys);
    RUN(test_yaml_syntax_error);
    RUN(test_yaml_second_document);
    RUN(test_empty_document);
    RUN(test_environment_variables);
    RUN(test_params_types);
    RUN(test_model_info_mode);
    RUN(test_yaml_tree);
    /* last: under ASan a use-after-free aborts the process */
    RUN(test_anchor_on_merge_value);
    RUN(test_env_files);
    RUN(test_clientside_rules);
    RUN(test_clientside_addresses);
    RUN(test_public_base);
    RUN(test_price_table);
    json_decref(s_body);
    unsetenv("TEST_CFG_EV_KEY");
    return th_report();
}
