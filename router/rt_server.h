/* rt_server: the router daemon. A ROUTER socket faces the gateways (frontend), another the
 * workers (backend). It reads only message headers (command, request id, meta), never a
 * body: it picks a deployment for each REQUEST, hands the job to the worker with the most
 * credit, relays the worker's HEAD/CHUNK/END/ERROR back to the gateway that asked, retries
 * retryable failures on another deployment, and moves the jobs of a worker that stops
 * heartbeating to another worker when nothing reached the client yet. */
#ifndef RT_SERVER_H
#define RT_SERVER_H

#include "lp_cfg.h"
#include "lp_util.h"

/* Jobs that may wait for a worker with credit before new ones are refused with 503. */
#define RT_QUEUE_MAX 10000
/* Longest a job waits in that queue for a worker (a restarted worker rejoins well within). */
#define RT_QUEUE_WAIT_MS 5000
/* A gateway not heard from this long (it heartbeats every LP_HEARTBEAT_MS) is taken for
 * dead: its jobs are cancelled. Longer than the gateway's own view of the router (1 s), so a
 * brief stall on either side cancels nothing. */
#define RT_GATEWAY_SILENT_MS 3000
/* Base of the back-off before a retry on a deployment already tried (doubling per retry),
 * when the provider named no retry-after. */
#define RT_BACKOFF_BASE_MS 100
/* Longest back-off the router will sit through before a retry. */
#define RT_BACKOFF_MAX_MS 10000
/* Model groups one request may fall back to at most (LiteLLM's max_fallbacks default). */
#define RT_MAX_FALLBACKS 5

typedef struct rt_server rt_server_t;

/* A router bound to the two endpoints; takes the config. NULL with a reason in err. */
rt_server_t *rt_server_new(lp_cfg_t **cfg, const char *frontend, const char *backend, char *err);
/* Stop and free; NULL-safe, nulls the pointer. */
void rt_server_destroy(rt_server_t **self_p);
/* Run until SIGINT/SIGTERM; 0 on a clean stop. SIGHUP rereads config_path (model_list and
 * router_settings) without dropping the jobs in flight; a bad file is refused and logged. */
int rt_server_run(rt_server_t *self, const char *config_path);

#endif
