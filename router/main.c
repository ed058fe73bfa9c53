/* llm-router: picks a deployment for every request and hands it to a worker. */
#define LP_LOG_MODULE "main"
#include <stdio.h>
#include <stdlib.h>

#include "lp_daemon.h"
#include "lp_log.h"
#include "lp_loop.h"
#include "lp_proto.h"
#include "rt_server.h"

int main(int argc, char **argv)
{
    lp_loop_block_signals();
    lp_opt_t opts[] = {
        LP_DAEMON_OPTS,
        {"frontend", "LP_ROUTER_FRONTEND", LP_DEFAULT_ROUTER_FRONTEND,
         "endpoint to bind for gateways", NULL},
        {"backend", "LP_ROUTER_BACKEND", LP_DEFAULT_ROUTER_BACKEND, "endpoint to bind for workers",
         NULL},
    };
    lp_cfg_t *cfg = NULL;
    int rc = lp_daemon_start(argc, argv, "router",
                             "llm-proxy router: picks deployments, "
                             "retries, and balances jobs over workers.",
                             opts, LP_ARRAY_LEN(opts), &cfg);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    char err[LP_ERR_LEN];
    const char *front = lp_opts_get(opts, LP_ARRAY_LEN(opts), "frontend");
    const char *back = lp_opts_get(opts, LP_ARRAY_LEN(opts), "backend");
    rt_server_t *srv = rt_server_new(&cfg, front, back, err);
    if (!srv) {
        lp_cfg_destroy(&cfg);
        lp_die("cannot start: %s", err);
    }
    log_info("listening: gateways on %s, workers on %s", front, back);
    rc = rt_server_run(srv, lp_opts_get(opts, LP_ARRAY_LEN(opts), "config"));
    rt_server_destroy(&srv);
    return rc == 0 ? 0 : 1;
}
