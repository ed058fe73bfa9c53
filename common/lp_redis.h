/* lp_redis: one Redis connection on the daemon's lp_loop (hiredis' async API), with the
 * bounded waits a request path needs. Every command has a deadline (timeout_ms); a missed
 * deadline or a lost connection opens the breaker: the connection is dropped, commands fail
 * at once (-1) so callers use their in-process fallback, and reconnection is retried with
 * back-off. The owner learns of each outage and recovery through the state callback, to log
 * it once rather than per request. Secrets in the URL never reach a message. */
#ifndef LP_REDIS_H
#define LP_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "lp_loop.h"
#include "lp_util.h"

/* Reconnect back-off bounds. */
#define LP_REDIS_BACKOFF_MIN_MS 100
#define LP_REDIS_BACKOFF_MAX_MS 5000

typedef struct lp_redis lp_redis_t;

/* A command's outcome: reply (borrowed, valid during the call), or NULL with why. */
typedef void(lp_redis_fn)(void *arg, const redisReply *reply, const char *why);
/* The connection went up (true) or down (false, with why). */
typedef void(lp_redis_state_fn)(void *arg, bool up, const char *why);

/* A client for url (redis://[user:password@]host[:port][/db] or rediss:// refused), each
 * command bounded by timeout_ms. Connects in the background. NULL + err on a bad URL. */
lp_redis_t *lp_redis_new(lp_loop_t *loop, const char *url, int timeout_ms,
                         lp_redis_state_fn *state_fn, void *state_arg, char *err);
/* Disconnect and free; pending commands get their callback with why = "closing".
 * NULL-safe, nulls the pointer. */
void lp_redis_destroy(lp_redis_t **self_p);
/* Send a command. -1 when Redis is down (nothing queued, fn not called): use the fallback.
 * Otherwise fn is called exactly once, by the deadline at the latest. */
LP_MUSTCHECK int lp_redis_command(lp_redis_t *self, lp_redis_fn *fn, void *arg, int argc,
                                  const char **argv, const size_t *lens);
/* True while connected (and authenticated). */
bool lp_redis_up(const lp_redis_t *self);
/* "host:port" for messages (never the password). */
const char *lp_redis_where(const lp_redis_t *self);

#endif
