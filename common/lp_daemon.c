#define LP_LOG_MODULE "daemon"
#include "lp_daemon.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#include "lp_log.h"

/* The level chosen at start (SIGUSR2 returns to it). */
static lp_log_level_t s_start_level = LP_LOG_INFO;

/* --sched: the daemons pass each message through up to four threads; with the default
 * policy each wake-up preempts the sender, with SCHED_BATCH the sender finishes its turn
 * first (docs/ARCHITECTURE.md has the figures). */
static int s_sched(const char *policy)
{
    if (strcmp(policy, "other") == 0)
        return 0;
    if (strcmp(policy, "batch") != 0) {
        log_error("--sched/LP_SCHED: '%s' is not batch or other", policy);
        return -1;
    }
    struct sched_param param = {0};
    if (sched_setscheduler(0, SCHED_BATCH, &param) < 0)
        log_warn("--sched batch: sched_setscheduler: %s (running with the default policy)",
                 strerror(errno));
    return 0;
}

static void s_log_warnings(const lp_cfg_t *cfg)
{
    for (size_t i = 0; i < cfg->nwarnings; i++)
        log_warn("config: %s", cfg->warnings[i]);
}

int lp_daemon_start(int argc, char **argv, const char *name, const char *summary, lp_opt_t *opts,
                    size_t nopts, lp_cfg_t **cfg_out)
{
    char err[LP_ERR_LEN];
    lp_log_init(name, LP_LOG_INFO);
    int rc = lp_opts_parse(argc, argv, summary, opts, nopts, err);
    if (rc == 1)
        return 1;
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        return -1;
    }
    const char *level = lp_opts_get(opts, nopts, "log-level");
    lp_log_level_t lvl = LP_LOG_INFO;
    if (level && lp_log_parse_level(level, &lvl) < 0) {
        log_error("--log-level/LITELLM_LOG: '%s' is not error, warn, info or debug", level);
        return -1;
    }
    lp_log_set_level(lvl);
    if (s_sched(lp_opts_get(opts, nopts, "sched")) < 0)
        return -1;
    const char *path = lp_opts_get(opts, nopts, "config");
    lp_cfg_t *cfg = lp_cfg_load(path, err);
    if (!cfg) {
        log_error("config: %s", err);
        return -1;
    }
    if (!level && cfg->log_level && lp_log_parse_level(cfg->log_level, &lvl) == 0)
        lp_log_set_level(lvl);
    s_start_level = lp_log_level;
    s_log_warnings(cfg);
    *cfg_out = cfg;
    return 0;
}

bool lp_daemon_log_signal(int signo)
{
    if (signo == SIGUSR1) {
        lp_log_set_level(LP_LOG_DEBUG);
        log_info("SIGUSR1: log level debug (SIGUSR2 returns to the start level)");
        return true;
    }
    if (signo == SIGUSR2) {
        log_info("SIGUSR2: log level back to the start level");
        lp_log_set_level(s_start_level);
        return true;
    }
    return false;
}

lp_cfg_t *lp_daemon_reload(const char *path)
{
    char err[LP_ERR_LEN];
    lp_cfg_t *cfg = lp_cfg_load(path, err);
    if (!cfg) {
        log_error("SIGHUP: reload rejected, the running config stays in force: %s", err);
        return NULL;
    }
    s_log_warnings(cfg);
    return cfg;
}
