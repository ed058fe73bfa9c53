/* lp_yaml: a YAML document (libyaml events) turned into a small tree of nodes that remember
 * their line and column, so config errors can name file:line:col. Aliases are expanded
 * (deep copies) and `<<` merge keys applied. The tree owns all its strings. */
#ifndef LP_YAML_H
#define LP_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "lp_util.h"

/* Deepest nesting accepted; a config never needs more, and it bounds recursion. */
#define LP_YAML_MAX_DEPTH 64
/* Most nodes alias expansion may create (a "billion laughs" file is refused). */
#define LP_YAML_MAX_COPIES 100000

typedef enum { LP_YAML_SCALAR, LP_YAML_MAP, LP_YAML_SEQ } lp_yaml_type_t;

typedef struct lp_ynode lp_ynode_t;
struct lp_ynode {
    lp_yaml_type_t type;
    int line, col;      /* 1-based position of the node in the file */
    char *value;        /* SCALAR: the text (never NULL) */
    bool plain;         /* SCALAR: unquoted (so `null`, `~`, `true` have their YAML meaning) */
    lp_ynode_t **items; /* MAP: values; SEQ: items */
    lp_ynode_t **keys;  /* MAP: key scalars, parallel to items */
    size_t n;
};

/* Parse a file; NULL with "file:line:col: reason" in err on failure. */
lp_ynode_t *lp_yaml_load_file(const char *path, char *err);
/* Parse a string (name is used in error messages). */
lp_ynode_t *lp_yaml_load_string(const char *text, size_t len, const char *name, char *err);
/* Free a tree; NULL-safe, nulls the pointer. */
void lp_yaml_destroy(lp_ynode_t **node_p);
/* Map lookup by key text; NULL when absent or node is not a map. Borrowed. */
lp_ynode_t *lp_yaml_get(const lp_ynode_t *map, const char *key);
/* True for a plain null scalar (`null`, `~`, `Null`, `NULL` or empty). */
bool lp_yaml_is_null(const lp_ynode_t *node);
/* Short type name for messages: "string", "mapping", "list". */
const char *lp_yaml_type_name(const lp_ynode_t *node);

#endif
