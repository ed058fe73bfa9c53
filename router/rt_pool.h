/* rt_pool: the workers connected to this router, with their capacity (credits) and liveness.
 * A worker's credits are its announced capacity minus the jobs the router has given it and
 * not yet seen finish, so a busy worker is never sent more than it can take. */
#ifndef RT_POOL_H
#define RT_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_pool rt_pool_t;

typedef struct {
    unsigned char *identity; /* ZeroMQ routing id of the worker's DEALER (owned) */
    size_t idlen;
    int capacity;      /* calls the worker runs at once (from READY) */
    int inflight;      /* jobs given to it and not finished */
    int64_t expiry_ns; /* dead when the monotonic clock passes this */
    bool draining;     /* sent DISCONNECT: finish, take nothing new */
    char name[48];     /* "pid@host" from READY, for logs */
} rt_worker_t;

/* Create an empty pool. */
rt_pool_t *rt_pool_new(void);
/* Destroy the pool and its workers; NULL-safe, nulls the pointer. */
void rt_pool_destroy(rt_pool_t **self_p);
/* Worker by identity, or NULL. Borrowed. */
rt_worker_t *rt_pool_get(rt_pool_t *self, const void *id, size_t len);
/* Add a worker (identity copied). Borrowed pointer, owned by the pool. */
rt_worker_t *rt_pool_add(rt_pool_t *self, const void *id, size_t len, int capacity,
                         const char *name);
/* Remove and free a worker. */
void rt_pool_remove(rt_pool_t *self, rt_worker_t *worker);
/* The worker with the most free credits (ties rotate), or NULL if nobody has any. */
rt_worker_t *rt_pool_pick(rt_pool_t *self);
/* Number of workers, and free credits summed over all of them. */
size_t rt_pool_size(const rt_pool_t *self);
int rt_pool_credits(const rt_pool_t *self);
/* The i-th worker (0 <= i < size), for heartbeats and expiry scans. */
rt_worker_t *rt_pool_at(rt_pool_t *self, size_t i);

#endif
