/* gw_server: the gateway daemon's state and event loop. libmicrohttpd runs in external epoll
 * mode inside the same loop as the ZeroMQ links (DEALER to the router, DEALER to the
 * logger), on one thread: an HTTP request that needs a provider is suspended, travels to the
 * router as a REQUEST, and is resumed when its END or ERROR comes back, so no thread ever
 * waits on an upstream. The struct is shared by the gateway's modules (gw_http, gw_routes,
 * gw_record) and by nothing else. */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "lp_cfg.h"
#include "lp_loop.h"
#include "lp_map.h"

/* Idle HTTP keep-alive connections are closed after this many seconds. */
#define GW_CONNECTION_TIMEOUT_S 120
/* Open client connections served by default (--max-connections; each costs one fd and MHD's
 * per-connection memory). Up to GW_CONNECTION_SLACK more are accepted only to be answered
 * 503 and closed; past both, new connections wait in the kernel's listen queue. */
#define GW_CONNECTION_LIMIT 10000
#define GW_CONNECTION_SLACK 512
/* libmicrohttpd's memory per connection (its default is 32 KiB): request line and headers
 * (larger ones are answered 431, as uvicorn's 16 KiB h11 limit does for LiteLLM) and the
 * send buffer. Held streams cost about this much each. */
#define GW_CONNECTION_MEMORY (16 * 1024)
/* Redis command deadline: a slower Redis counts as down (the in-process fallback runs). */
#define GW_REDIS_TIMEOUT_MS 200
/* Slack added to the longest a request may legitimately take before the gateway gives up. */
#define GW_DEADLINE_SLACK_MS 10000

typedef struct gw_server gw_server_t;

typedef struct {
    uint64_t requests;        /* HTTP requests completed */
    uint64_t records_sent;    /* usage records handed to the logger link */
    uint64_t records_dropped; /* usage records the logger link could not take */
} gw_stats_t;

struct gw_server {
    lp_cfg_t *cfg;
    void *zctx;
    void *router;               /* DEALER to the router's frontend */
    void *logger;               /* DEALER to the loggers */
    struct gw_outbox *outbox;   /* usage records until a logger acknowledges them */
    struct gw_metrics *metrics; /* /metrics counters */
    struct gw_keys *keys;       /* virtual keys (cache and lookups) */
    struct gw_limits *limits;   /* key rate limits and budgets */
    struct gw_cache *cache;     /* response cache, NULL when off */
    struct lp_redis *redis;     /* shared counters and key cache (REDIS_URL), or NULL */
    struct lp_prices *prices;   /* price table (estimates what a request may cost) */
    unsigned pings;             /* heartbeats sent to the router (every 4th asks for stats) */
    lp_loop_t *loop;
    struct MHD_Daemon *httpd;
    int httpd_fd;           /* MHD's epoll fd, watched by our loop */
    lp_map_t *inflight;     /* request id -> gw_req_t waiting for the router */
    size_t live;            /* requests not yet complete (a drain waits for them all) */
    struct gw_conn *conns;  /* client connections open (gw_conn) */
    size_t connections;     /* how many */
    size_t max_connections; /* served; past it, 503 and close */
    uint64_t slow_cut;      /* connections closed for sending their request too slowly */
    int64_t swept_ns;       /* last gw_conn_sweep */
    lp_map_t *pending;      /* request id -> record waiting for a cancelled job's usage */
    lp_map_t *health;       /* health check id -> gw_health_t of the /health request */
    char *master_hash;      /* sha256 hex of the master key (spend rows name it so) */
    char *config_path;      /* reread on SIGHUP */
    int64_t started_wall_ns;
    lp_timer_t heartbeat;
    lp_timer_t hello; /* fast pings at start */
    unsigned hellos;
    lp_timer_t drain;
    lp_timer_t httpd_timer; /* MHD_get_timeout: MHD needs a run by then */
    int64_t router_expiry_ns;
    bool router_alive;
    long long workers; /* as the router last reported */
    int64_t logger_expiry_ns;
    bool logger_alive;
    char db_state[32]; /* as the logger last reported */
    bool resumed;      /* a connection was resumed this turn: run MHD */
    bool stopping;
    bool closing; /* the loop runs on only to hand the last records to a logger */
    gw_stats_t stats;
};

/* Where and how many clients a gateway serves. */
typedef struct {
    int port;                 /* 0 = ephemeral */
    unsigned max_connections; /* at once; past it, 503 and close */
    unsigned max_per_ip;      /* from one address at once; 0 = no limit */
} gw_listen_t;

/* A gateway listening as told, with links to the router and the logger; takes the config and
 * the price table. NULL with a reason in err. */
gw_server_t *gw_server_new(lp_cfg_t **cfg, struct lp_prices **prices, const gw_listen_t *listen,
                           const char *router, const char *logger, char *err);
/* Stop and free; suspended requests are answered 503 first. NULL-safe, nulls the pointer. */
void gw_server_destroy(gw_server_t **self_p);
/* Run until SIGINT/SIGTERM (which drain first); 0 on a clean stop. SIGHUP rereads
 * config_path. */
int gw_server_run(gw_server_t *self, const char *config_path);
/* The TCP port the gateway listens on. */
int gw_server_port(const gw_server_t *self);

#endif
