/* gw_auth: who is calling. The key comes from `Authorization: Bearer`, `x-api-key`,
 * `x-litellm-api-key` or `api-key`, as LiteLLM accepts it; it is compared with the master
 * key in constant time and only its sha256 is kept. Failures say nothing about which keys
 * exist. */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include "gw_req.h"

/* Longest key accepted; anything longer is not a key. */
#define GW_KEY_MAX 512

/* Authorise req. true when allowed (req->key_hash set); otherwise the request is answered
 * with 401 and false returned. */
bool gw_auth_check(gw_req_t *req);

#endif
