/* lp_daemon: the start-up every daemon shares: options (--config, --log-level, --help and
 * the daemon's own), logging, the config file and its warnings. */
#ifndef LP_DAEMON_H
#define LP_DAEMON_H

#include <stdbool.h>

#include "lp_cfg.h"
#include "lp_opts.h"

/* Default config path, relative to the working directory (make run starts in the tree). */
#define LP_DEFAULT_CONFIG "configs/litellm-config.yaml"

/* The options every daemon has; put them first in its table. */
#define LP_DAEMON_OPTS                                                                             \
    {"config", "CONFIG", LP_DEFAULT_CONFIG, "LiteLLM config file", NULL},                          \
        {"log-level", "LITELLM_LOG", NULL, "error, warn, info or debug", NULL},                    \
    {                                                                                              \
        "sched", "LP_SCHED", "batch",                                                              \
            "CPU scheduling: batch (SCHED_BATCH: fewer context switches between the daemons) or "  \
            "other (the kernel's default)",                                                        \
            NULL                                                                                   \
    }

/* Parse options, start logging as `name`, set the scheduling policy (before any thread
 * starts: ZeroMQ's I/O thread inherits it), load the config (warnings logged once).
 * Returns 0 to run, 1 to exit 0 (--help), -1 to exit with status 1 or 2 (already logged). */
LP_MUSTCHECK int lp_daemon_start(int argc, char **argv, const char *name, const char *summary,
                                 lp_opt_t *opts, size_t nopts, lp_cfg_t **cfg_out);
/* Reload the config at path for SIGHUP; NULL (logged) when the new file is bad, so the
 * caller keeps the old one. */
lp_cfg_t *lp_daemon_reload(const char *path);
/* Run-time log level: SIGUSR1 switches to debug (every request's path through the daemons
 * can then be followed by its req= id), SIGUSR2 back to the level set at start. True when
 * signo was one of them. */
bool lp_daemon_log_signal(int signo);

#endif
