/* fuzz_cfg: lp_cfg_load_string, the typed loader of litellm-config.yaml, on any text. A
 * config that loads must be consistent (every deployment complete, ids unique and found by
 * lp_cfg_deployment, every model_name a group); one that fails must say why.
 *
 * environment_variables in a config calls setenv(): this target is linked with
 * -Wl,--wrap=setenv,--wrap=getenv so those calls land in a small table that is emptied after
 * every input (the process environment would otherwise grow without bound and change later
 * runs). getenv() reads the table first, then the real environment. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lp_cfg.h"

#define S_ENV_MAX 64

char *__real_getenv(const char *name);
int __real_setenv(const char *name, const char *value, int overwrite);
char *__wrap_getenv(const char *name);
int __wrap_setenv(const char *name, const char *value, int overwrite);

static struct {
    char *name;
    char *value;
} s_env[S_ENV_MAX];
static size_t s_nenv;

char *__wrap_getenv(const char *name)
{
    for (size_t i = 0; name && i < s_nenv; i++) {
        if (strcmp(s_env[i].name, name) == 0)
            return s_env[i].value;
    }
    return __real_getenv(name);
}

int __wrap_setenv(const char *name, const char *value, int overwrite)
{
    if (!name || !*name || strchr(name, '=')) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < s_nenv; i++) {
        if (strcmp(s_env[i].name, name) == 0) {
            if (overwrite) {
                free(s_env[i].value);
                s_env[i].value = lp_strdup(value);
            }
            return 0;
        }
    }
    if (!overwrite && __real_getenv(name))
        return 0;
    if (s_nenv == S_ENV_MAX) {
        errno = ENOMEM;
        return -1;
    }
    s_env[s_nenv].name = lp_strdup(name);
    s_env[s_nenv].value = lp_strdup(value);
    s_nenv++;
    return 0;
}

static void s_env_reset(void)
{
    for (size_t i = 0; i < s_nenv; i++) {
        free(s_env[i].name);
        free(s_env[i].value);
    }
    s_nenv = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* fz_setup's own setenv (the master key) went to the table too: make it real. */
    fz_setup();
    for (size_t i = 0; i < s_nenv; i++)
        FZ_CHECK(__real_setenv(s_env[i].name, s_env[i].value, 1) == 0, "setenv %s", s_env[i].name);
    s_env_reset();
    return 0;
}

static void s_check(const lp_cfg_t *cfg)
{
    FZ_CHECK(cfg->master_key && strncmp(cfg->master_key, "sk-", 3) == 0 &&
                 strlen(cfg->master_key) >= LP_MASTER_KEY_MIN_LEN,
             "loaded with a bad master key");
    FZ_CHECK(cfg->routing_strategy != NULL, "no routing strategy");
    FZ_CHECK(cfg->num_retries >= 0, "num_retries %d", cfg->num_retries);
    FZ_CHECK(cfg->ngroups <= cfg->ndeployments, "more groups than deployments");
    for (size_t i = 0; i < cfg->ndeployments; i++) {
        const lp_deployment_t *d = &cfg->deployments[i];
        FZ_CHECK(d->model_name && *d->model_name, "deployment %zu without model_name", i);
        FZ_CHECK(d->model && d->provider && d->provider_model, "deployment %zu incomplete", i);
        FZ_CHECK(d->id && *d->id, "deployment %zu without id", i);
        FZ_CHECK(d->api_base || d->mock_response, "deployment %zu without api_base", i);
        FZ_CHECK(json_is_object(d->params) && json_is_object(d->info),
                 "deployment %zu params/info not objects", i);
        FZ_CHECK(lp_cfg_deployment(cfg, d->id) == d, "deployment %zu not found by its id", i);
        FZ_CHECK(lp_cfg_has_group(cfg, d->model_name), "deployment %zu: group missing", i);
        (void)lp_mode_name(d->mode);
    }
    for (size_t i = 0; i < cfg->ngroups; i++) {
        for (size_t j = 0; j < i; j++)
            FZ_CHECK(strcmp(cfg->groups[i], cfg->groups[j]) != 0, "group listed twice");
    }
    for (size_t i = 0; i < cfg->nwarnings; i++)
        FZ_CHECK(cfg->warnings[i] != NULL, "NULL warning");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    FZ_CHECK(text != NULL, "out of memory");
    memcpy(text, data, size);
    text[size] = '\0';
    char err[LP_ERR_LEN] = "";
    lp_cfg_t *cfg = lp_cfg_load_string(text, "fuzz.yaml", err);
    if (cfg) {
        s_check(cfg);
        lp_cfg_destroy(&cfg);
        FZ_CHECK(cfg == NULL, "lp_cfg_destroy did not null the pointer");
    } else {
        FZ_CHECK(err[0] != '\0', "refused without a reason");
        FZ_CHECK(strncmp(err, "fuzz.yaml", 9) == 0, "error does not name the file: %s", err);
    }
    free(text);
    s_env_reset();
    return 0;
}
