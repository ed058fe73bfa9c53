/* gw_cache: the response cache (litellm_settings.cache + cache_params). An answer is stored
 * under the sha256 of what decides it: the namespace, the tenant (the caller's team, else
 * its key; nothing with cache_params.scope: global), the model group, the call type and the
 * request body without the fields that cannot change the answer (stream, stream_options,
 * user, metadata, cache, timeouts, tags, retries, fallbacks ...), as canonical JSON (keys
 * sorted). In Redis the entry is "<namespace>:{<sha256>}" (hash-tagged for Redis Cluster);
 * the local cache is an LRU bounded in bytes and entries.
 *
 * Chat and text completions are stored as one JSON response: a streamed answer is
 * assembled from the chunks the client saw (content, reasoning, tool calls, finish reason,
 * usage) and stored only when it ended cleanly; a hit is served as JSON, or as an SSE stream
 * to a streaming request. A streamed /v1/messages answer is kept as the Anthropic
 * events it was (only when it ended with message_stop) and replayed as they were. Embeddings are
 * stored per input, so a batch sends upstream only the inputs not cached and the answer is merged
 * back in order.
 *
 * Per request: body "cache": {"no-cache", "no-store", "ttl", "s-maxage", "namespace"} and
 * the Cache-Control header (no-cache, no-store, max-age/s-maxage). A Redis read waits at
 * most GW_CACHE_WAIT_MS; a slow or absent Redis is a miss, and the outage is logged once. */
#ifndef GW_CACHE_H
#define GW_CACHE_H

#include <jansson.h>
#include <stdbool.h>

#include "gw_req.h"

/* Longest a request waits for a Redis cache read before it goes upstream. */
#define GW_CACHE_WAIT_MS 10
/* Defaults of cache_params.ttl (seconds) and the local cache's bounds. */
#define GW_CACHE_TTL_S       600
#define GW_CACHE_LOCAL_MB    64
#define GW_CACHE_LOCAL_ITEMS 100000
/* Embedding batches with more inputs than this are not cached. */
#define GW_CACHE_MAX_INPUTS 2048
/* A streamed answer larger than this is not stored. */
#define GW_CACHE_STREAM_MAX (8 * 1024 * 1024)

typedef struct gw_cache gw_cache_t;
typedef struct gw_cache_req gw_cache_req_t;

/* The cache configured for srv, or NULL when caching is off (err[0] == '\0') or its
 * settings are wrong (err says which). */
gw_cache_t *gw_cache_new(gw_server_t *srv, char *err);
void gw_cache_destroy(gw_cache_t **self_p);
/* "redis" or "local", for /health/readiness. */
const char *gw_cache_type(const gw_cache_t *self);

/* Before the call: answer req from the cache, or call miss(req) to send it upstream (now,
 * or when Redis has answered; req is then GW_REQ_HELD). body is the parsed request. NULL
 * self = no cache: miss(req) at once. */
void gw_cache_check(gw_cache_t *self, gw_req_t *req, const json_t *body,
                    void (*miss)(gw_req_t *req));
/* Stream bytes sent to the client: kept while the answer may still be stored. */
void gw_cache_stream_bytes(gw_req_t *req, const void *data, size_t len);
/* The upstream answer is in (req->reply, END): store it, and for a partly cached embedding
 * batch merge the cached inputs back into the answer. */
void gw_cache_answered(gw_cache_t *self, gw_req_t *req);
/* req was answered from the cache. */
bool gw_cache_hit(const gw_req_t *req);
/* The entry's key (sha256 hex) when req was answered from the cache, else NULL. */
const char *gw_cache_key(const gw_req_t *req);
/* Free req's cache state (a Redis answer still due is ignored). */
void gw_cache_forget(gw_req_t *req);

#endif
