/* gw_keyadm: LiteLLM's key management endpoints. POST /key/generate (the key is returned
 * once, "sk-" + 22 URL-safe characters from the CSPRNG, and only its sha256 is stored),
 * GET /key/info, POST /key/update, /key/delete, /key/block, /key/unblock, GET /key/list.
 * Bodies are checked field by field (unknown fields, wrong types and negative limits are
 * 400s) before anything is written; writes are single statements in the logger. */
#ifndef GW_KEYADM_H
#define GW_KEYADM_H

#include "gw_req.h"

/* Shortest custom key accepted (LiteLLM's MINIMUM_CUSTOM_KEY_LENGTH). */
#define GW_KEY_MIN_LEN 16
/* Random bytes in a generated key (LiteLLM's token_urlsafe(16)). */
#define GW_KEY_RANDOM_BYTES 16

void gw_key_generate(gw_req_t *req);
void gw_key_update(gw_req_t *req);
void gw_key_delete(gw_req_t *req);
void gw_key_block(gw_req_t *req);
void gw_key_unblock(gw_req_t *req);
void gw_key_info(gw_req_t *req);
void gw_key_list(gw_req_t *req);
/* Seconds in a LiteLLM duration ("30s", "30m", "30h", "30d", "2w", "1mo"), -1 if invalid. */
long long gw_duration_seconds(const char *text);

#endif
