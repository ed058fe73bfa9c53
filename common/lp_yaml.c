#include "lp_yaml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct {
    char *name;
    lp_ynode_t *node; /* borrowed from the tree being built */
} s_anchor_t;

typedef struct {
    yaml_parser_t parser;
    const char *name;
    char *err;
    s_anchor_t *anchors;
    size_t nanchors;
    lp_ynode_t **retired; /* merged `<<` values: anchors may point into them until the end */
    size_t nretired;
    size_t copies; /* nodes created by alias expansion, against LP_YAML_MAX_COPIES */
} s_ctx_t;

static lp_ynode_t *s_node_new(lp_yaml_type_t type, const yaml_mark_t *mark)
{
    lp_ynode_t *n = lp_calloc(1, sizeof *n);
    n->type = type;
    n->line = (int)mark->line + 1;
    n->col = (int)mark->column + 1;
    return n;
}

static void s_node_push(lp_ynode_t *parent, lp_ynode_t *key, lp_ynode_t *value)
{
    /* Grow by powers of two: capacity is implied by n. */
    if ((parent->n & (parent->n - 1)) == 0) {
        size_t cap = parent->n ? parent->n * 2 : 1;
        parent->items = lp_realloc(parent->items, cap * sizeof *parent->items);
        if (parent->type == LP_YAML_MAP)
            parent->keys = lp_realloc(parent->keys, cap * sizeof *parent->keys);
    }
    if (parent->type == LP_YAML_MAP)
        parent->keys[parent->n] = key;
    parent->items[parent->n++] = value;
}

void lp_yaml_destroy(lp_ynode_t **node_p)
{
    lp_ynode_t *n = *node_p;
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        lp_yaml_destroy(&n->items[i]);
        if (n->keys)
            lp_yaml_destroy(&n->keys[i]);
    }
    free(n->items);
    free(n->keys);
    free(n->value);
    free(n);
    *node_p = NULL;
}

static size_t s_count(const lp_ynode_t *n)
{
    size_t c = 1;
    for (size_t i = 0; i < n->n; i++)
        c += s_count(n->items[i]) + (n->keys ? 1 : 0);
    return c;
}

static lp_ynode_t *s_copy(const lp_ynode_t *src)
{
    lp_ynode_t *n = lp_calloc(1, sizeof *n);
    *n = *src;
    n->items = NULL;
    n->keys = NULL;
    n->n = 0;
    n->value = src->value ? lp_strdup(src->value) : NULL;
    for (size_t i = 0; i < src->n; i++)
        s_node_push(n, src->keys ? s_copy(src->keys[i]) : NULL, s_copy(src->items[i]));
    return n;
}

static int s_fail(s_ctx_t *ctx, const yaml_mark_t *mark, const char *msg)
{
    return lp_err_set(ctx->err, "%s:%zu:%zu: %s", ctx->name, mark->line + 1, mark->column + 1, msg);
}

static int s_parser_fail(s_ctx_t *ctx)
{
    yaml_parser_t *p = &ctx->parser;
    return lp_err_set(ctx->err, "%s:%zu:%zu: %s%s%s", ctx->name, p->problem_mark.line + 1,
                      p->problem_mark.column + 1, p->problem ? p->problem : "invalid YAML",
                      p->context ? " " : "", p->context ? p->context : "");
}

static void s_anchor_add(s_ctx_t *ctx, const yaml_char_t *name, lp_ynode_t *node)
{
    if (!name)
        return;
    ctx->anchors = lp_realloc(ctx->anchors, (ctx->nanchors + 1) * sizeof *ctx->anchors);
    ctx->anchors[ctx->nanchors++] = (s_anchor_t){lp_strdup((const char *)name), node};
}

static lp_ynode_t *s_anchor_find(s_ctx_t *ctx, const char *name)
{
    for (size_t i = ctx->nanchors; i > 0; i--) {
        if (strcmp(ctx->anchors[i - 1].name, name) == 0)
            return ctx->anchors[i - 1].node;
    }
    return NULL;
}

static int s_parse_node(s_ctx_t *ctx, yaml_event_t *ev, int depth, lp_ynode_t **out);

/* Apply a `<<` merge: copy keys of the merged map(s) that the target does not have. */
static int s_merge(s_ctx_t *ctx, lp_ynode_t *map, lp_ynode_t *src, const yaml_mark_t *mark)
{
    if (src->type == LP_YAML_SEQ) {
        for (size_t i = 0; i < src->n; i++) {
            if (s_merge(ctx, map, src->items[i], mark) < 0)
                return -1;
        }
        return 0;
    }
    if (src->type != LP_YAML_MAP)
        return s_fail(ctx, mark, "`<<` merge value must be a mapping or a list of mappings");
    for (size_t i = 0; i < src->n; i++) {
        if (!lp_yaml_get(map, src->keys[i]->value))
            s_node_push(map, s_copy(src->keys[i]), s_copy(src->items[i]));
    }
    return 0;
}

static int s_next(s_ctx_t *ctx, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&ctx->parser, ev))
        return s_parser_fail(ctx);
    return 0;
}

static int s_parse_map(s_ctx_t *ctx, lp_ynode_t *map, int depth)
{
    lp_ynode_t **merges = NULL; /* `<<` values, applied once the explicit keys are in */
    yaml_mark_t *marks = NULL;
    size_t nmerges = 0;
    int result = -1;
    for (;;) {
        yaml_event_t ev;
        if (s_next(ctx, &ev) < 0)
            goto done;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            result = 0;
            for (size_t i = 0; result == 0 && i < nmerges; i++)
                result = s_merge(ctx, map, merges[i], &marks[i]);
            goto done;
        }
        yaml_mark_t mark = ev.start_mark;
        lp_ynode_t *key = NULL, *value = NULL;
        int rc = s_parse_node(ctx, &ev, depth + 1, &key);
        yaml_event_delete(&ev);
        if (rc < 0)
            goto done;
        if (key->type != LP_YAML_SCALAR) {
            lp_yaml_destroy(&key);
            s_fail(ctx, &mark, "mapping keys must be plain strings");
            goto done;
        }
        yaml_event_t vev;
        if (s_next(ctx, &vev) < 0) {
            lp_yaml_destroy(&key);
            goto done;
        }
        rc = s_parse_node(ctx, &vev, depth + 1, &value);
        yaml_event_delete(&vev);
        if (rc < 0) {
            lp_yaml_destroy(&key);
            goto done;
        }
        if (key->plain && strcmp(key->value, "<<") == 0) {
            /* Merged at the end of the mapping, so keys written here win wherever they are
             * (YAML's merge rule). Anchors may name the value (or the key): keep both. */
            ctx->retired = lp_realloc(ctx->retired, (ctx->nretired + 2) * sizeof *ctx->retired);
            ctx->retired[ctx->nretired++] = key;
            ctx->retired[ctx->nretired++] = value;
            merges = lp_realloc(merges, (nmerges + 1) * sizeof *merges);
            merges[nmerges] = value;
            marks = lp_realloc(marks, (nmerges + 1) * sizeof *marks);
            marks[nmerges++] = mark;
            continue;
        }
        if (lp_yaml_get(map, key->value)) {
            char msg[LP_ERR_LEN];
            snprintf(msg, sizeof msg, "duplicate key '%.64s'", key->value);
            lp_yaml_destroy(&key);
            lp_yaml_destroy(&value);
            s_fail(ctx, &mark, msg);
            goto done;
        }
        s_node_push(map, key, value);
    }
done:
    free(merges);
    free(marks);
    return result;
}

static int s_parse_seq(s_ctx_t *ctx, lp_ynode_t *seq, int depth)
{
    for (;;) {
        yaml_event_t ev;
        if (s_next(ctx, &ev) < 0)
            return -1;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        lp_ynode_t *item = NULL;
        int rc = s_parse_node(ctx, &ev, depth + 1, &item);
        yaml_event_delete(&ev);
        if (rc < 0)
            return -1;
        s_node_push(seq, NULL, item);
    }
}

/* Build the node that starts with ev (the caller deletes ev). */
static int s_parse_node(s_ctx_t *ctx, yaml_event_t *ev, int depth, lp_ynode_t **out)
{
    if (depth > LP_YAML_MAX_DEPTH)
        return s_fail(ctx, &ev->start_mark, "nesting too deep");
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        lp_ynode_t *n = s_node_new(LP_YAML_SCALAR, &ev->start_mark);
        n->value = lp_strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (strlen(n->value) != ev->data.scalar.length) {
            lp_yaml_destroy(&n);
            return s_fail(ctx, &ev->start_mark, "NUL byte inside a string");
        }
        s_anchor_add(ctx, ev->data.scalar.anchor, n);
        *out = n;
        return 0;
    }
    case YAML_MAPPING_START_EVENT: {
        lp_ynode_t *n = s_node_new(LP_YAML_MAP, &ev->start_mark);
        if (s_parse_map(ctx, n, depth) < 0) {
            lp_yaml_destroy(&n);
            return -1;
        }
        s_anchor_add(ctx, ev->data.mapping_start.anchor, n);
        *out = n;
        return 0;
    }
    case YAML_SEQUENCE_START_EVENT: {
        lp_ynode_t *n = s_node_new(LP_YAML_SEQ, &ev->start_mark);
        if (s_parse_seq(ctx, n, depth) < 0) {
            lp_yaml_destroy(&n);
            return -1;
        }
        s_anchor_add(ctx, ev->data.sequence_start.anchor, n);
        *out = n;
        return 0;
    }
    case YAML_ALIAS_EVENT: {
        lp_ynode_t *target = s_anchor_find(ctx, (const char *)ev->data.alias.anchor);
        if (!target)
            return s_fail(ctx, &ev->start_mark, "unknown alias");
        /* Aliases are copied: bound the total so nested aliases cannot explode. */
        ctx->copies += s_count(target);
        if (ctx->copies > LP_YAML_MAX_COPIES)
            return s_fail(ctx, &ev->start_mark, "aliases expand to too many nodes");
        *out = s_copy(target);
        return 0;
    }
    default:
        return s_fail(ctx, &ev->start_mark, "unexpected YAML event");
    }
}

static lp_ynode_t *s_load(s_ctx_t *ctx)
{
    lp_ynode_t *root = NULL;
    yaml_event_t ev;
    /* Skip STREAM_START and DOCUMENT_START; an empty stream is an empty mapping. */
    for (;;) {
        if (s_next(ctx, &ev) < 0)
            return NULL;
        if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        break;
    }
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_mark_t mark = ev.start_mark;
        yaml_event_delete(&ev);
        return s_node_new(LP_YAML_MAP, &mark);
    }
    int rc = s_parse_node(ctx, &ev, 0, &root);
    yaml_event_delete(&ev);
    if (rc < 0)
        return NULL;
    if (s_next(ctx, &ev) < 0) {
        lp_yaml_destroy(&root);
        return NULL;
    }
    bool more = ev.type != YAML_DOCUMENT_END_EVENT;
    yaml_event_delete(&ev);
    if (!more) {
        /* After the document, the stream must end: a second document is refused. */
        if (s_next(ctx, &ev) < 0) {
            lp_yaml_destroy(&root);
            return NULL;
        }
        more = ev.type != YAML_STREAM_END_EVENT;
        yaml_mark_t mark = ev.start_mark;
        yaml_event_delete(&ev);
        if (more) {
            lp_yaml_destroy(&root);
            s_fail(ctx, &mark, "only one YAML document is allowed");
            return NULL;
        }
    }
    return root;
}

static void s_ctx_fini(s_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nanchors; i++)
        free(ctx->anchors[i].name);
    free(ctx->anchors);
    for (size_t i = 0; i < ctx->nretired; i++)
        lp_yaml_destroy(&ctx->retired[i]);
    free(ctx->retired);
    yaml_parser_delete(&ctx->parser);
}

lp_ynode_t *lp_yaml_load_string(const char *text, size_t len, const char *name, char *err)
{
    s_ctx_t ctx = {.name = name, .err = err};
    if (!yaml_parser_initialize(&ctx.parser)) {
        lp_err_set(err, "%s: cannot initialise the YAML parser", name);
        return NULL;
    }
    yaml_parser_set_input_string(&ctx.parser, (const unsigned char *)text, len);
    lp_ynode_t *root = s_load(&ctx);
    s_ctx_fini(&ctx);
    return root;
}

lp_ynode_t *lp_yaml_load_file(const char *path, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        lp_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    s_ctx_t ctx = {.name = path, .err = err};
    if (!yaml_parser_initialize(&ctx.parser)) {
        fclose(f);
        lp_err_set(err, "%s: cannot initialise the YAML parser", path);
        return NULL;
    }
    yaml_parser_set_input_file(&ctx.parser, f);
    lp_ynode_t *root = s_load(&ctx);
    s_ctx_fini(&ctx);
    fclose(f);
    return root;
}

lp_ynode_t *lp_yaml_get(const lp_ynode_t *map, const char *key)
{
    if (!map || map->type != LP_YAML_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++) {
        if (strcmp(map->keys[i]->value, key) == 0)
            return map->items[i];
    }
    return NULL;
}

bool lp_yaml_is_null(const lp_ynode_t *node)
{
    if (!node || node->type != LP_YAML_SCALAR || !node->plain)
        return false;
    const char *v = node->value;
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

const char *lp_yaml_type_name(const lp_ynode_t *node)
{
    switch (node->type) {
    case LP_YAML_MAP:
        return "mapping";
    case LP_YAML_SEQ:
        return "list";
    default:
        return "string";
    }
}
