/* fuzz_yaml: lp_yaml_load_string, the YAML-to-tree layer under the config loader (anchors and
 * aliases expanded, `<<` merges applied, nesting and alias expansion bounded). A tree that loads
 * must be well formed: scalars with text and no children, mappings with scalar keys and no
 * duplicate key, positions from 1. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lp_yaml.h"

static size_t s_nodes;

/* Recursive like the loader itself; aliases may nest deeper than LP_YAML_MAX_DEPTH (a copy of
 * a deep anchor under a deep alias), bounded by LP_YAML_MAX_COPIES. */
static void s_walk(const lp_ynode_t *n)
{
    FZ_CHECK(n != NULL, "NULL node");
    FZ_CHECK(n->line >= 1 && n->col >= 1, "node at %d:%d", n->line, n->col);
    s_nodes++;
    (void)lp_yaml_type_name(n);
    (void)lp_yaml_is_null(n);
    switch (n->type) {
    case LP_YAML_SCALAR:
        FZ_CHECK(n->value != NULL && n->n == 0, "scalar without text or with children");
        break;
    case LP_YAML_MAP:
        for (size_t i = 0; i < n->n; i++) {
            FZ_CHECK(n->keys[i] && n->keys[i]->type == LP_YAML_SCALAR, "non-scalar key");
            FZ_CHECK(lp_yaml_get(n, n->keys[i]->value) == n->items[i], "duplicate key '%s'",
                     n->keys[i]->value);
            s_walk(n->keys[i]);
            s_walk(n->items[i]);
        }
        break;
    case LP_YAML_SEQ:
        FZ_CHECK(n->keys == NULL, "list with keys");
        for (size_t i = 0; i < n->n; i++)
            s_walk(n->items[i]);
        FZ_CHECK(lp_yaml_get(n, "x") == NULL, "lp_yaml_get on a list");
        break;
    default:
        fz_fail("node of type %d", (int)n->type);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[LP_ERR_LEN] = "";
    lp_ynode_t *root = lp_yaml_load_string((const char *)data, size, "fuzz.yaml", err);
    if (root) {
        s_nodes = 0;
        s_walk(root);
        /* Alias copies are bounded; the document itself holds at most one node per byte
         * or so, plus merges (which copy each merged entry once more). */
        FZ_CHECK(s_nodes <= 4 * ((size_t)LP_YAML_MAX_COPIES + size + 16),
                 "%zu nodes from %zu bytes", s_nodes, size);
        lp_yaml_destroy(&root);
        FZ_CHECK(root == NULL, "lp_yaml_destroy did not null the pointer");
    } else {
        FZ_CHECK(err[0] != '\0', "refused without a reason");
    }
    return 0;
}
