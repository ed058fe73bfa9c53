/* gw_keys: virtual keys as the gateway sees them. A key is known by the sha256 of its text
 * (the "token" of LiteLLM_VerificationToken). Rows are read through the logger (which holds
 * the database connection) and cached here for ttl (general_settings.user_api_key_cache_ttl,
 * default GW_KEY_TTL_MS), so a key check costs no round trip on the hot path; a key deleted
 * or blocked elsewhere stops working within that time (at once on the gateway that changed
 * it). With REDIS_URL the rows are also shared through Redis (lp:key:<token>, same ttl),
 * so a key read by one gateway costs the others no database read either. Requests presenting
 * the same uncached key wait on one lookup. When the database cannot be reached, keys
 * already cached keep working and unknown keys are refused with 503. Budgets and limits are
 * gw_limits' business. */
#ifndef GW_KEYS_H
#define GW_KEYS_H

#include <jansson.h>
#include <stdbool.h>

#include "gw_req.h"

/* Default cache lifetime of a key row. */
#define GW_KEY_TTL_MS 10000
/* Unknown keys are remembered this long, so a bad key cannot hammer the database. */
#define GW_KEY_MISS_TTL_MS 2000
/* Keys cached at most before expired entries are purged. */
#define GW_KEYS_MAX 100000
/* How long a key lookup may take before the request is answered 503. */
#define GW_KEY_LOOKUP_MS 5000

typedef struct gw_keys gw_keys_t;

gw_keys_t *gw_keys_new(gw_server_t *srv, int64_t ttl_ms);
void gw_keys_destroy(gw_keys_t **self_p);
/* Authorise req with the virtual key whose sha256 is token. true when decided now (req->key
 * set, or req answered 401/503); false when req waits for a lookup (req->key_pending), to be
 * answered or resumed when it ends. */
bool gw_keys_resolve(gw_keys_t *self, gw_req_t *req, const char *token);
/* A logger reply to a key lookup: true when it was one (consumed). */
bool gw_keys_reply(gw_keys_t *self, lp_msg_t **msg);
/* req is going away: stop waiting for its lookup. */
void gw_keys_forget(gw_keys_t *self, gw_req_t *req);
/* Drop the cached row of token here and in Redis (after an update or delete here). */
void gw_keys_evict(gw_keys_t *self, const char *token);
#endif
