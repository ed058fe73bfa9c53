/* gw_req: one HTTP request in the gateway, from its first header to the moment libmicrohttpd
 * reports it complete (MHD_OPTION_NOTIFY_COMPLETED, the only place it is freed). It holds
 * the body as it arrives, who is calling, and the answer once known: a local one (health,
 * models, errors) or the router's END/ERROR message, whose body is sent without a copy. */
#ifndef GW_REQ_H
#define GW_REQ_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "gw_server.h"
#include "gw_stream.h"
#include "lp_buf.h"
#include "lp_crypto.h"
#include "lp_loop.h"
#include "lp_msg.h"

/* Longest request URL accepted (414 past it). */
#define GW_URL_MAX 8192
/* A suspended request's client socket is watched for a hang-up once the wait is this long. */
#define GW_WATCH_AFTER_MS 50
/* The block size of a stream's response. libmicrohttpd 0.9.75 reads a chunked response's
 * bytes straight into the connection's write buffer, so this buffer (allocated and zeroed
 * with every response) serves only HTTP/1.0 clients: 8 KiB of it cost 8 KB per held stream. */
#define GW_STREAM_BLOCK 1024

typedef enum {
    GW_CALL_NONE = 0,
    GW_CALL_CHAT,
    GW_CALL_COMPLETION,
    GW_CALL_EMBEDDING,
    GW_CALL_MESSAGES,     /* Anthropic's /v1/messages */
    GW_CALL_COUNT_TOKENS, /* /v1/messages/count_tokens */
} gw_call_t;

/* The request speaks Anthropic's dialect: its errors take Anthropic's shape. */
#define GW_ANTHROPIC(call) ((call) == GW_CALL_MESSAGES || (call) == GW_CALL_COUNT_TOKENS)

typedef enum {
    GW_REQ_READING,  /* headers seen, body arriving */
    GW_REQ_HELD,     /* suspended, waiting for a local check (rate limits in Redis) */
    GW_REQ_WAITING,  /* suspended, the router has it */
    GW_REQ_ANSWERED, /* answer ready, not yet queued with MHD */
    GW_REQ_QUEUED,   /* handed to MHD */
} gw_req_state_t;

typedef struct gw_route gw_route_t;
struct gw_health;
typedef struct gw_req gw_req_t;

struct gw_req {
    gw_server_t *srv;
    struct MHD_Connection *conn;
    struct gw_conn *cx; /* its connection's record (deadlines, cap) */
    const gw_route_t *route;
    gw_req_state_t state;
    lp_buf_t body;
    bool too_big;
    bool close; /* answer with Connection: close (a malformed or oversize request) */
    uint8_t id[LP_REQ_ID_LEN];
    char idstr[LP_REQ_ID_STR_LEN];
    int64_t start_ns, start_wall_ns;
    int64_t sent_ns;   /* when the REQUEST left for the router */
    int64_t answer_ns; /* when the answer was known */
    bool authed;
    bool recorded;                    /* its usage record went (gw_record_once) */
    bool is_master;                   /* the caller holds the master key */
    char key_hash[LP_SHA256_HEX_LEN]; /* sha256 of the caller's key */
    json_t *key;                      /* the virtual key's row (NULL for the master key) */
    bool key_pending;                 /* waiting for the key's row */
    void *key_wait;                   /* the gw_keys entry it waits on */
    void *limits_wait;                /* the gw_limits reservation it waits on */
    /* x-ratelimit-* headers of a key with limits (-1 = none) and retry-after (0 = none). */
    long long rl_limit_requests, rl_remaining_requests, rl_limit_tokens, rl_remaining_tokens;
    int retry_after_s;

    /* model calls */
    gw_call_t call;
    json_t *json;               /* the parsed body, until it is sent upstream */
    struct gw_cache_req *cache; /* response cache state (owned), NULL when not cached */
    char *group;
    char *user;
    bool stream;

    /* the answer */
    int status;
    lp_msg_t *reply; /* END/ERROR from the router (owned) */
    char *local;     /* or a body built here (owned) */
    size_t local_len;
    const char *content_type;
    lp_timer_t deadline;
    long long attempt_ms;   /* per-attempt timeout, the idle limit of a stream */
    long long prompt_guess; /* prompt tokens as reserved: body bytes / 4 */

    /* streams and suspension */
    bool streaming;           /* a HEAD came: the SSE response is queued with MHD */
    gw_stream_t out;          /* stream bytes waiting for MHD */
    lp_msg_t *head;           /* the HEAD (its meta describes the deployment) */
    bool suspended;           /* the connection is suspended (waiting, or the reader is starved) */
    int watch_fd;             /* client socket watched for hang-up while suspended, -1 when not */
    lp_timer_t watch_timer;   /* starts the watch when a suspension outlasts GW_WATCH_AFTER_MS */
    bool client_gone;         /* the client hung up before the answer was complete */
    struct gw_health *health; /* GET /health: the checks in flight (owned) */
    /* Requests answered from a logger read: shapes the reply (NULL = relay it as is). */
    void (*on_reply)(gw_req_t *req, lp_msg_t **reply);
    json_t *aux; /* what on_reply needs (owned) */
};

/* A request on conn; the id is fresh and random. */
gw_req_t *gw_req_new(gw_server_t *srv, struct MHD_Connection *conn);
/* Free; NULL-safe, nulls the pointer. Only from the completed callback (or shutdown). */
void gw_req_destroy(gw_req_t **self_p);

/* Answer with a JSON body built here (takes the malloc'd body). */
void gw_req_answer(gw_req_t *self, int status, char *body, size_t len);
/* Answer with an OpenAI-shaped error; code NULL = status as a string; param may be NULL. */
void gw_req_fail(gw_req_t *self, int status, const char *code, const char *param, const char *fmt,
                 ...) LP_PRINTF(5, 6);
/* Answer with the router's END or ERROR (taken). */
void gw_req_answer_reply(gw_req_t *self, lp_msg_t **reply);
/* Hand the answer to MHD with the proxy's headers. MHD_NO when MHD refuses it. */
enum MHD_Result gw_req_queue(gw_req_t *self);
/* Value of a request header (case-insensitive), or NULL. Borrowed from MHD. */
const char *gw_req_header(gw_req_t *self, const char *name);

/* Suspend the connection while the answer is not there; past GW_WATCH_AFTER_MS the client
 * socket is watched so a hang-up is noticed (MHD does not see one on a suspended
 * connection). */
void gw_req_suspend(gw_req_t *self);
/* Resume a suspended connection (no-op otherwise); MHD runs it before the loop sleeps. */
void gw_req_resume(gw_req_t *self);
/* The router's HEAD (taken): the answer is a stream from now on. */
void gw_req_stream_begin(gw_req_t *self, lp_msg_t **head);
/* Queue an SSE error event for the client (a stream that cannot go on). */
void gw_req_stream_error(gw_req_t *self, const void *error_json, size_t len);

#endif
