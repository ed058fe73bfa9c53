/* llm-gateway: the HTTP front door (OpenAI-compatible API) of llm-proxy. */
#define LP_LOG_MODULE "main"
#include <stdlib.h>

#include "gw_server.h"
#include "lp_daemon.h"
#include "lp_log.h"
#include "lp_loop.h"
#include "lp_price.h"
#include "lp_proto.h"

int main(int argc, char **argv)
{
    lp_loop_block_signals();
    lp_opt_t opts[] = {
        LP_DAEMON_OPTS,
        {"port", "PORT", "4000", "HTTP port to listen on (0 = any free port)", NULL},
        {"router", "LP_ROUTER_FRONTEND", LP_DEFAULT_ROUTER_FRONTEND,
         "router frontend endpoint to connect to", NULL},
        {"logger", "LP_LOGGER", LP_DEFAULT_LOGGER, "logger endpoint to connect to", NULL},
        {"prices", "LP_MODEL_PRICES", LP_DEFAULT_PRICES,
         "model price table, for the cost a budget reserves before a call", NULL},
    };
    size_t n = LP_ARRAY_LEN(opts);
    lp_cfg_t *cfg = NULL;
    int rc = lp_daemon_start(argc, argv, "gateway",
                             "llm-proxy gateway: the OpenAI-compatible HTTP API.", opts, n, &cfg);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    long long port = 0;
    if (lp_parse_ll(lp_opts_get(opts, n, "port"), 0, 65535, &port) < 0)
        lp_die("--port/PORT must be a number from 0 to 65535");
    char err[LP_ERR_LEN] = "";
    lp_prices_t *prices = lp_prices_load(lp_opts_get(opts, n, "prices"), err);
    if (err[0])
        log_warn("price table: %s; budgets reserve only the deployments' own prices", err);
    gw_server_t *srv = gw_server_new(&cfg, &prices, (int)port, lp_opts_get(opts, n, "router"),
                                     lp_opts_get(opts, n, "logger"), err);
    if (!srv) {
        lp_prices_destroy(&prices);
        lp_cfg_destroy(&cfg);
        lp_die("cannot start: %s", err);
    }
    rc = gw_server_run(srv, lp_opts_get(opts, n, "config"));
    gw_server_destroy(&srv);
    return rc == 0 ? 0 : 1;
}
