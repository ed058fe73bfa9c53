/* gw_auth: who is calling. The key comes from `Authorization: Bearer`, `x-api-key`,
 * `x-litellm-api-key` or `api-key`, as LiteLLM accepts it. The master key is compared in
 * constant time; any other key is a virtual key, looked up by its sha256 (gw_keys). Only the
 * sha256 is kept. Failures say nothing about which keys exist. */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include "gw_req.h"

/* Longest key accepted; anything longer is not a key. */
#define GW_KEY_MAX 512

typedef enum {
    GW_AUTH_OK,      /* req->authed (req->is_master, or req->key set) */
    GW_AUTH_PENDING, /* a virtual key's row is being read; req resumes when it is known */
    GW_AUTH_REFUSED, /* req was answered (401 or 503) */
} gw_auth_t;

/* Authorise req. master_only: any other key is refused with 403 at once (admin routes never
 * look a virtual key up, and answer the same whether it exists or not). */
gw_auth_t gw_auth_check(gw_req_t *req, bool master_only);

#endif
