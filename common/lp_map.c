#include "lp_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_util.h"

typedef struct s_entry {
    struct s_entry *next;
    uint64_t hash;
    void *value;
    size_t len;
    unsigned char key[]; /* copy of the key */
} s_entry_t;

struct lp_map {
    s_entry_t **buckets;
    size_t nbuckets; /* power of two */
    size_t size;
};

/* FNV-1a: keys are ids we generate or ZeroMQ identities, not attacker-chosen text. */
static uint64_t s_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

lp_map_t *lp_map_new(void)
{
    lp_map_t *self = lp_calloc(1, sizeof *self);
    self->nbuckets = 64;
    self->buckets = lp_calloc(self->nbuckets, sizeof *self->buckets);
    return self;
}

void lp_map_destroy(lp_map_t **self_p)
{
    lp_map_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nbuckets; i++) {
        s_entry_t *e = self->buckets[i];
        while (e) {
            s_entry_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(self->buckets);
    free(self);
    *self_p = NULL;
}

static s_entry_t **s_find(const lp_map_t *self, const void *key, size_t len, uint64_t h)
{
    s_entry_t **pp = &self->buckets[h & (self->nbuckets - 1)];
    while (*pp) {
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0)
            return pp;
        pp = &(*pp)->next;
    }
    return pp;
}

static void s_grow(lp_map_t *self)
{
    size_t n = self->nbuckets * 2;
    s_entry_t **b = lp_calloc(n, sizeof *b);
    for (size_t i = 0; i < self->nbuckets; i++) {
        s_entry_t *e = self->buckets[i];
        while (e) {
            s_entry_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(self->buckets);
    self->buckets = b;
    self->nbuckets = n;
}

void *lp_map_put(lp_map_t *self, const void *key, size_t len, void *value)
{
    uint64_t h = s_hash(key, len);
    s_entry_t **pp = s_find(self, key, len, h);
    if (*pp) {
        void *old = (*pp)->value;
        (*pp)->value = value;
        return old;
    }
    s_entry_t *e = lp_malloc(sizeof *e + len);
    e->next = NULL;
    e->hash = h;
    e->value = value;
    e->len = len;
    memcpy(e->key, key, len);
    *pp = e;
    if (++self->size > self->nbuckets)
        s_grow(self);
    return NULL;
}

void *lp_map_get(const lp_map_t *self, const void *key, size_t len)
{
    s_entry_t **pp = s_find(self, key, len, s_hash(key, len));
    return *pp ? (*pp)->value : NULL;
}

void *lp_map_remove(lp_map_t *self, const void *key, size_t len)
{
    s_entry_t **pp = s_find(self, key, len, s_hash(key, len));
    s_entry_t *e = *pp;
    if (!e)
        return NULL;
    *pp = e->next;
    void *value = e->value;
    free(e);
    self->size--;
    return value;
}

size_t lp_map_size(const lp_map_t *self)
{
    return self->size;
}

void **lp_map_values(const lp_map_t *self, bool (*keep)(void *value, void *arg), void *arg,
                     size_t *n)
{
    void **out = lp_calloc(self->size ? self->size : 1, sizeof *out);
    *n = 0;
    for (size_t i = 0; i < self->nbuckets; i++)
        for (s_entry_t *e = self->buckets[i]; e; e = e->next)
            if (!keep || keep(e->value, arg))
                out[(*n)++] = e->value;
    return out;
}

size_t lp_map_remove_if(lp_map_t *self, bool (*drop)(void *value, void *arg), void *arg,
                        void (*free_value)(void *value, void *arg))
{
    size_t gone = 0;
    for (size_t i = 0; i < self->nbuckets; i++) {
        s_entry_t **pp = &self->buckets[i];
        while (*pp) {
            s_entry_t *e = *pp;
            if (drop && !drop(e->value, arg)) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            if (free_value)
                free_value(e->value, arg);
            free(e);
            self->size--;
            gone++;
        }
    }
    return gone;
}

void lp_map_each(const lp_map_t *self,
                 bool (*fn)(const void *key, size_t len, void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < self->nbuckets; i++) {
        for (s_entry_t *e = self->buckets[i]; e; e = e->next) {
            if (!fn(e->key, e->len, e->value, arg))
                return;
        }
    }
}
