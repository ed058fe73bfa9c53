/* gw_record: the usage record of a finished model request (success, error, or client gone),
 * sent to the logger as a RECORD. Its fields are LiteLLM's spend-log columns plus the proxy's
 * own (attempts, timings, error code); see proto/PROTOCOL.md. It never contains a secret:
 * the caller's key appears only as its sha256. */
#ifndef GW_RECORD_H
#define GW_RECORD_H

#include <jansson.h>
#include <stdbool.h>

#include "gw_req.h"
#include "lp_crypto.h"
#include "lp_msg.h"

/* How long a cancelled request's record waits for the worker's usage before it goes as is. */
#define GW_PENDING_MS 3000

/* The record's fields that name the deployment, in gw_record_t.deployment. */
enum {
    GW_REC_MODEL,    /* "model": the provider's name for it */
    GW_REC_MODEL_ID, /* "model_id": the deployment's id */
    GW_REC_PROVIDER, /* "custom_llm_provider" */
    GW_REC_API_BASE, /* "api_base" */
    GW_REC_WORKER,   /* "worker" */
    GW_REC_DEPLOYMENT_FIELDS
};

/* One usage record, as plain fields until it is written for the logger (MessagePack, no
 * jansson object: there is one per request). Strings are owned; NULL is a null field. */
typedef struct gw_record {
    char request_id[LP_REQ_ID_STR_LEN];
    const char *call_type;
    char api_key[LP_SHA256_HEX_LEN]; /* the sha256 of the caller's key */
    char *model_group, *requested_group, *user;
    bool stream;
    char *deployment[GW_REC_DEPLOYMENT_FIELDS];
    long long prompt_tokens, completion_tokens, total_tokens;
    bool usage_estimated;
    double spend;
    long long attempts, retries, fallbacks;
    long long upstream_us, ttft_us, router_us, worker_us; /* -1: unknown */
    int64_t start_ns, end_ns, completion_ns;              /* wall clock */
    bool success;
    int http_status;
    char *error_code;
    int64_t duration_ns, gateway_ns; /* gateway_ns -1: not measured */
    bool cache_hit;
    char *cache_key;
    bool client_gone;
} gw_record_t;

/* The record of req. delivered: the answer reached the client. */
gw_record_t *gw_record_new(const gw_req_t *req, bool delivered);
void gw_record_destroy(gw_record_t **self_p);
/* Fill the fields that come from a worker's END/ERROR meta (usage, cost, where the call
 * went, attempts, timings); msg NULL: zeros and nulls. */
void gw_record_apply(gw_record_t *rec, lp_msg_t *msg);
/* Build and hand the request's record to the logger link, once (never blocks; counted when
 * dropped): as soon as the answer from the router is complete, before it is written to the
 * client (so a gateway killed while writing it loses no record), else when libmicrohttpd
 * is done with the request. Only authenticated model calls leave one (not count_tokens). A
 * cancelled request's record is held until the worker's last word (gw_pending). */
void gw_record_once(gw_req_t *req, bool delivered);

/* Pending records: a request the gateway gave up on (client gone, timeout) still gets its
 * worker's final END/ERROR, with the tokens used so far; its record waits for it. */
/* Expect the final word for request id. */
void gw_pending_open(gw_server_t *srv, const uint8_t *id);
/* A final END/ERROR for a request no longer in flight: true when it belonged to a pending
 * record (the message is consumed). */
bool gw_pending_final(gw_server_t *srv, lp_msg_t **msg);
/* Drop every pending entry, sending the records that are complete enough (shutdown). */
void gw_pending_flush(gw_server_t *srv);

#endif
