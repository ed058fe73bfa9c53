#include "rt_pool.h"

#include <stdlib.h>
#include <string.h>

#include "lp_util.h"

struct rt_pool {
    rt_worker_t **workers;
    size_t n, cap;
    size_t next; /* rotation point for ties */
};

rt_pool_t *rt_pool_new(void)
{
    return lp_calloc(1, sizeof(rt_pool_t));
}

static void s_worker_free(rt_worker_t *w)
{
    free(w->identity);
    free(w);
}

void rt_pool_destroy(rt_pool_t **self_p)
{
    rt_pool_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        s_worker_free(self->workers[i]);
    free(self->workers);
    free(self);
    *self_p = NULL;
}

rt_worker_t *rt_pool_get(rt_pool_t *self, const void *id, size_t len)
{
    for (size_t i = 0; i < self->n; i++) {
        rt_worker_t *w = self->workers[i];
        if (w->idlen == len && memcmp(w->identity, id, len) == 0)
            return w;
    }
    return NULL;
}

rt_worker_t *rt_pool_add(rt_pool_t *self, const void *id, size_t len, int capacity,
                         const char *name)
{
    rt_worker_t *w = lp_calloc(1, sizeof *w);
    w->identity = lp_malloc(len);
    memcpy(w->identity, id, len);
    w->idlen = len;
    w->capacity = capacity;
    lp_strlcpy(w->name, name, sizeof w->name);
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 8;
        self->workers = lp_realloc(self->workers, self->cap * sizeof *self->workers);
    }
    self->workers[self->n++] = w;
    return w;
}

void rt_pool_remove(rt_pool_t *self, rt_worker_t *worker)
{
    for (size_t i = 0; i < self->n; i++) {
        if (self->workers[i] == worker) {
            self->workers[i] = self->workers[--self->n];
            s_worker_free(worker);
            return;
        }
    }
}

rt_worker_t *rt_pool_pick(rt_pool_t *self)
{
    rt_worker_t *best = NULL;
    int best_free = 0;
    for (size_t k = 0; k < self->n; k++) {
        rt_worker_t *w = self->workers[(self->next + k) % self->n];
        int free_credits = w->capacity - w->inflight;
        if (!w->draining && free_credits > best_free) {
            best = w;
            best_free = free_credits;
        }
    }
    if (self->n)
        self->next = (self->next + 1) % self->n;
    return best;
}

size_t rt_pool_size(const rt_pool_t *self)
{
    return self->n;
}

int rt_pool_credits(const rt_pool_t *self)
{
    int sum = 0;
    for (size_t i = 0; i < self->n; i++) {
        const rt_worker_t *w = self->workers[i];
        if (!w->draining && w->capacity > w->inflight)
            sum += w->capacity - w->inflight;
    }
    return sum;
}

rt_worker_t *rt_pool_at(rt_pool_t *self, size_t i)
{
    return i < self->n ? self->workers[i] : NULL;
}
