/* lp_map: a hash map from byte-string keys (copied in) to borrowed pointers. Used for request
 * ids, ZeroMQ identities and names. Values are owned by the caller. */
#ifndef LP_MAP_H
#define LP_MAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct lp_map lp_map_t;

/* Create an empty map. */
lp_map_t *lp_map_new(void);
/* Destroy the map (not the values); NULL-safe, nulls the pointer. */
void lp_map_destroy(lp_map_t **self_p);
/* Insert or replace; returns the previous value or NULL. */
void *lp_map_put(lp_map_t *self, const void *key, size_t len, void *value);
/* Value for key or NULL. */
void *lp_map_get(const lp_map_t *self, const void *key, size_t len);
/* Remove key; returns the value it had or NULL. */
void *lp_map_remove(lp_map_t *self, const void *key, size_t len);
/* Number of entries. */
size_t lp_map_size(const lp_map_t *self);
/* Call fn for every entry; fn must not modify the map. Stops early when fn returns false. */
void lp_map_each(const lp_map_t *self,
                 bool (*fn)(const void *key, size_t len, void *value, void *arg), void *arg);
/* The values for which keep(value, arg) is true (keep NULL: all) in a malloc'd array the
 * caller frees, *n of them: for acting on entries in ways that change the map. */
void **lp_map_values(const lp_map_t *self, bool (*keep)(void *value, void *arg), void *arg,
                     size_t *n);
/* Remove the entries for which drop(value, arg) is true (drop NULL: all), each value
 * handed to free_value(value, arg) when given; returns how many went. */
size_t lp_map_remove_if(lp_map_t *self, bool (*drop)(void *value, void *arg), void *arg,
                        void (*free_value)(void *value, void *arg));

#endif
