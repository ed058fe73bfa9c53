/* llm-logger: usage records to PostgreSQL and one line per request on stdout. */
#define LP_LOG_MODULE "main"
#include <stdlib.h>
#include <string.h>

#include "lg_server.h"
#include "lp_daemon.h"
#include "lp_log.h"
#include "lp_loop.h"
#include "lp_proto.h"

int main(int argc, char **argv)
{
    lp_loop_block_signals();
    lp_opt_t opts[] = {
        LP_DAEMON_OPTS,
        {"bind", "LP_LOGGER", LP_DEFAULT_LOGGER, "endpoint to bind for gateways", NULL},
        {"format", "LOG_FORMAT", "text", "stdout lines: text or json", NULL},
        {"spool", "LP_SPOOL", "llm-logger.spool",
         "durable queue file in front of PostgreSQL (one per logger)", NULL},
        {"spool-max-mb", "LP_SPOOL_MAX_MB", "1024",
         "largest spool file in MB; past it, records wait in the gateways", NULL},
        {"summary-interval", "LOG_SUMMARY_INTERVAL", "60",
         "seconds between per-model summary lines (0: none)", NULL},
    };
    size_t n = LP_ARRAY_LEN(opts);
    lp_cfg_t *cfg = NULL;
    int rc = lp_daemon_start(argc, argv, "logger",
                             "llm-proxy logger: writes usage records to PostgreSQL and prints "
                             "one line per request.",
                             opts, n, &cfg);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    const char *format = lp_opts_get(opts, n, "format");
    if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0) {
        lp_cfg_destroy(&cfg);
        lp_die("--format must be text or json");
    }
    double summary_s = 0;
    if (lp_parse_double(lp_opts_get(opts, n, "summary-interval"), &summary_s) < 0 ||
        summary_s < 0 || summary_s > 86400) {
        lp_cfg_destroy(&cfg);
        lp_die("--summary-interval must be a number of seconds from 0 to 86400");
    }
    double spool_mb = 0;
    if (lp_parse_double(lp_opts_get(opts, n, "spool-max-mb"), &spool_mb) < 0 || spool_mb < 0.01 ||
        spool_mb > 1048576) {
        lp_cfg_destroy(&cfg);
        lp_die("--spool-max-mb must be a number of MB from 0.01 to 1048576");
    }
    char err[LP_ERR_LEN];
    lg_server_t *srv = lg_server_new(&cfg, lp_opts_get(opts, n, "bind"),
                                     lp_opts_get(opts, n, "spool"), (off_t)(spool_mb * 1024 * 1024),
                                     strcmp(format, "json") == 0 ? LG_FORMAT_JSON : LG_FORMAT_TEXT,
                                     summary_s, err);
    if (!srv) {
        lp_cfg_destroy(&cfg);
        lp_die("cannot start: %s", err);
    }
    rc = lg_server_run(srv);
    lg_server_destroy(&srv);
    return rc == 0 ? 0 : 1;
}
