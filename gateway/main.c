/* llm-gateway: the HTTP front door (OpenAI-compatible API) of llm-proxy. */
#define LP_LOG_MODULE "main"
#include <stdlib.h>
#include <sys/resource.h>

#include "gw_server.h"
#include "lp_daemon.h"
#include "lp_log.h"
#include "lp_loop.h"
#include "lp_price.h"
#include "lp_proto.h"

/* File descriptors the gateway needs besides its client connections (sockets to the router,
 * logger and Redis, epoll, files, ZeroMQ's own). */
#define FDS_RESERVED 128

/* Raise the soft limit on open files to what max_connections needs, as far as the hard
 * limit allows; past it, serve fewer connections (said once) rather than fail accept(). */
static long long s_fit_fd_limit(long long max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return max_connections;
    rlim_t need = (rlim_t)(max_connections + GW_CONNECTION_SLACK + FDS_RESERVED);
    if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return max_connections;
    }
    if (rl.rlim_cur >= need)
        return max_connections;
    long long fit = (long long)rl.rlim_cur - GW_CONNECTION_SLACK - FDS_RESERVED;
    fit = fit < 1 ? 1 : fit;
    log_warn("the open file limit (%llu) allows %lld client connections, not %lld: raise it "
             "(ulimit -n, or nofile in compose/Kubernetes) to serve more",
             (unsigned long long)rl.rlim_cur, fit, max_connections);
    return fit;
}

int main(int argc, char **argv)
{
    lp_loop_block_signals();
    lp_opt_t opts[] = {
        LP_DAEMON_OPTS,
        {"port", "PORT", "4000", "HTTP port to listen on (0 = any free port)", NULL},
        {"max-connections", "LP_MAX_CONNECTIONS", LP_STR(GW_CONNECTION_LIMIT),
         "client connections served at once; more are answered 503 and closed", NULL},
        {"max-connections-per-ip", "LP_MAX_CONNECTIONS_PER_IP", "0",
         "client connections from one address at once, more are closed (0: no limit; "
         "behind a load balancer every client has its address)",
         NULL},
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
    long long max_connections = 0, per_ip = 0;
    if (lp_parse_ll(lp_opts_get(opts, n, "max-connections"), 1, 1000000, &max_connections) < 0)
        lp_die("--max-connections/LP_MAX_CONNECTIONS must be a number from 1 to 1000000");
    if (lp_parse_ll(lp_opts_get(opts, n, "max-connections-per-ip"), 0, 1000000, &per_ip) < 0)
        lp_die("--max-connections-per-ip/LP_MAX_CONNECTIONS_PER_IP must be a number from 0 to "
               "1000000");
    gw_listen_t listen = {.port = (int)port,
                          .max_connections = (unsigned)s_fit_fd_limit(max_connections),
                          .max_per_ip = (unsigned)per_ip};
    char err[LP_ERR_LEN] = "";
    lp_prices_t *prices = lp_prices_load(lp_opts_get(opts, n, "prices"), err);
    if (err[0])
        log_warn("price table: %s; budgets reserve only the deployments' own prices", err);
    gw_server_t *srv = gw_server_new(&cfg, &prices, &listen, lp_opts_get(opts, n, "router"),
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
