/* llm-worker: makes the provider calls, many at once, for the router. */
#define LP_LOG_MODULE "main"
#include <curl/curl.h>
#include <stdlib.h>

#include "lp_daemon.h"
#include "lp_log.h"
#include "lp_loop.h"
#include "lp_price.h"
#include "lp_proto.h"
#include "wk_server.h"

int main(int argc, char **argv)
{
    lp_loop_block_signals();
    lp_opt_t opts[] = {
        LP_DAEMON_OPTS,
        {"router", "LP_ROUTER_BACKEND", LP_DEFAULT_ROUTER_BACKEND,
         "router backend endpoint to connect to", NULL},
        {"max-calls", "WORKER_MAX_CALLS", "256", "provider calls this worker runs at once", NULL},
        {"prices", "LP_MODEL_PRICES", LP_DEFAULT_PRICES,
         "model price table (LiteLLM's model_prices_and_context_window.json format)", NULL},
    };
    size_t n = LP_ARRAY_LEN(opts);
    lp_cfg_t *cfg = NULL;
    int rc =
        lp_daemon_start(argc, argv, "worker",
                        "llm-proxy worker: calls the providers for the router.", opts, n, &cfg);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    long long calls = 0;
    if (lp_parse_ll(lp_opts_get(opts, n, "max-calls"), 1, 100000, &calls) < 0)
        lp_die("--max-calls must be a whole number from 1 to 100000");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        lp_die("cannot initialise libcurl");
    char err[LP_ERR_LEN] = "";
    lp_prices_t *prices = lp_prices_load(lp_opts_get(opts, n, "prices"), err);
    if (err[0])
        log_warn("price table: %s; costs come only from the deployments' own prices", err);
    else
        log_info("price table: %zu model(s)", lp_prices_size(prices));
    wk_server_t *srv =
        wk_server_new(&cfg, &prices, lp_opts_get(opts, n, "router"), (int)calls, err);
    if (!srv) {
        lp_prices_destroy(&prices);
        lp_cfg_destroy(&cfg);
        lp_die("cannot start: %s", err);
    }
    rc = wk_server_run(srv, lp_opts_get(opts, n, "config"));
    wk_server_destroy(&srv);
    curl_global_cleanup();
    return rc == 0 ? 0 : 1;
}
