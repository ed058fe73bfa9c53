#include "lp_jscan.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "lp_json.h"

/* One open container. */
typedef struct {
    bool array;
    size_t members;         /* members or elements so far, the current one included */
    size_t key_start;       /* the current member's key (its opening quote) */
    size_t prev_member_end; /* end of the member before the current one */
    size_t last_value_end;  /* end of the last member's value */
    size_t key_len;         /* the current member's key, when it fits */
    bool key_long;
    char key[LP_JSCAN_KEY];
} s_level_t;

struct lp_jscan {
    yajl_handle yajl;
    const char *data;
    size_t len;
    lp_jscan_fn *fn;
    void *arg;
    int open;               /* containers open around the current value */
    size_t prev_end;        /* just past the token before the current one */
    size_t end;             /* just past the current token */
    size_t container_start; /* the current OBJECT/ARRAY/CLOSE's bracket */
    size_t top_end;         /* just past the top-level value, once it is complete */
    bool container;
    bool completing; /* in yajl_complete_parse: a number ending the text is reported */
    char *err;
    bool stopped;
    s_level_t level[LP_JSCAN_PATH];
    size_t start[LP_JSON_MAX_DEPTH]; /* each open container's opening bracket */
};

static bool s_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

size_t lp_jscan_blanks(const char *p, size_t len)
{
    size_t n = 0;
    while (n < len && s_space(p[n]))
        n++;
    return n;
}

/* The level holding the current value, or NULL at the top or beyond the tracked depth. */
static s_level_t *s_parent(const lp_jscan_t *s)
{
    return s->open > 0 && s->open <= LP_JSCAN_PATH ? (s_level_t *)&s->level[s->open - 1] : NULL;
}

/* A value begins: count it as an array's element. */
static void s_value_begins(lp_jscan_t *s)
{
    s_level_t *p = s_parent(s);
    if (p && p->array)
        p->members++;
}

/* A value ended: remember where, for cutting the next member. */
static void s_value_ends(lp_jscan_t *s)
{
    s_level_t *p = s_parent(s);
    if (p)
        p->last_value_end = s->end;
}

/* Report the current token to the callback; 1 continues the parse (yajl's convention). */
static int s_emit(lp_jscan_t *s, lp_jscan_kind_t kind, const char *text, size_t len)
{
    s->end = s->completing ? s->len : yajl_get_bytes_consumed(s->yajl);
    bool go = s->fn(s, kind, text, len, s->arg);
    if (kind != LP_JSCAN_OBJECT && kind != LP_JSCAN_ARRAY) {
        s_value_ends(s);
        if (s->open == 0)
            s->top_end = s->end;
    }
    s->prev_end = s->end;
    return go ? 1 : 0;
}

static int s_scalar(void *ctx, lp_jscan_kind_t kind, const char *text, size_t len)
{
    lp_jscan_t *s = ctx;
    s->container = false;
    s_value_begins(s);
    return s_emit(s, kind, text, len);
}

static int s_null(void *ctx)
{
    return s_scalar(ctx, LP_JSCAN_NULL, NULL, 0);
}

static int s_bool(void *ctx, int value)
{
    return value ? s_scalar(ctx, LP_JSCAN_BOOL, "true", 4)
                 : s_scalar(ctx, LP_JSCAN_BOOL, "false", 5);
}

static int s_number(void *ctx, const char *text, size_t len)
{
    return s_scalar(ctx, LP_JSCAN_NUMBER, text, len);
}

static int s_string(void *ctx, const unsigned char *text, size_t len)
{
    return s_scalar(ctx, LP_JSCAN_STRING, (const char *)text, len);
}

static int s_open(lp_jscan_t *s, bool array)
{
    if (s->open >= LP_JSON_MAX_DEPTH) {
        lp_jscan_stop(s, "JSON nested deeper than %d levels", LP_JSON_MAX_DEPTH);
        return 0;
    }
    s_value_begins(s);
    s->container = true;
    s->container_start = yajl_get_bytes_consumed(s->yajl) - 1;
    if (!s_emit(s, array ? LP_JSCAN_ARRAY : LP_JSCAN_OBJECT, NULL, 0))
        return 0;
    if (s->open < LP_JSCAN_PATH)
        s->level[s->open] = (s_level_t){.array = array};
    s->start[s->open++] = s->container_start;
    return 1;
}

static int s_start_map(void *ctx)
{
    return s_open(ctx, false);
}

static int s_start_array(void *ctx)
{
    return s_open(ctx, true);
}

static int s_close(void *ctx)
{
    lp_jscan_t *s = ctx;
    s->open--;
    s->container = true;
    s->container_start = s->start[s->open];
    return s_emit(s, LP_JSCAN_CLOSE, NULL, 0);
}

static int s_key(void *ctx, const unsigned char *key, size_t len)
{
    lp_jscan_t *s = ctx;
    s->end = yajl_get_bytes_consumed(s->yajl);
    if (s->open <= LP_JSCAN_PATH) {
        s_level_t *p = &s->level[s->open - 1];
        p->prev_member_end = p->members ? p->last_value_end : 0;
        p->members++;
        size_t at = s->prev_end;
        while (at < s->len && s->data[at] != '"')
            at++; /* only blanks and a comma before it: yajl has checked them */
        p->key_start = at;
        p->key_long = len >= sizeof p->key;
        p->key_len = p->key_long ? 0 : len;
        memcpy(p->key, key, p->key_len);
    }
    s->prev_end = s->end;
    return 1;
}

/* The 4 hex digits after "\\u" at p (len bytes left), or -1. */
static long s_hex4(const char *p, size_t len)
{
    if (len < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = OPENSSL_hexchar2int((unsigned char)p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* yajl decodes a lone surrogate escape ("\\ud83d" without its low half) to '?' and lets a
 * low half pass alone; the text is relayed as written and strict clients refuse both. A
 * backslash only ever stands in a string (elsewhere yajl refuses it), and each escape
 * consumes the character after it, so walking the backslashes finds every \\u escape. */
static bool s_surrogates_paired(const char *data, size_t len, size_t *bad)
{
    if (!data)
        return true;
    const char *p = data, *end = data + len;
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        if (end - p < 2)
            return true; /* yajl will refuse the text */
        if (p[1] != 'u') {
            p += 2;
            continue;
        }
        long u = s_hex4(p + 2, (size_t)(end - p - 2));
        if (u < 0)
            return true; /* not an escape: yajl will refuse the text */
        bool high = u >= 0xD800 && u <= 0xDBFF, low = u >= 0xDC00 && u <= 0xDFFF;
        long next = high && end - p >= 12 && p[6] == '\\' && p[7] == 'u'
                        ? s_hex4(p + 8, (size_t)(end - p - 8))
                        : -1;
        if (low || (high && !(next >= 0xDC00 && next <= 0xDFFF))) {
            *bad = (size_t)(p - data);
            return false;
        }
        p += high ? 12 : 6;
    }
    return true;
}

static const yajl_callbacks s_callbacks = {
    .yajl_null = s_null,
    .yajl_boolean = s_bool,
    .yajl_number = s_number,
    .yajl_string = s_string,
    .yajl_start_map = s_start_map,
    .yajl_map_key = s_key,
    .yajl_end_map = s_close,
    .yajl_start_array = s_start_array,
    .yajl_end_array = s_close,
};

int lp_jscan_run(const char *data, size_t len, lp_jscan_fn *fn, void *arg, char *err)
{
    /* yajl's own check lets overlong forms and surrogates through; this one does not. */
    size_t bad = 0;
    if (!lp_utf8_valid(data, len, &bad))
        return lp_err_set(err, "invalid UTF-8 at byte %zu", bad);
    if (!s_surrogates_paired(data, len, &bad))
        return lp_err_set(err, "unpaired UTF-16 surrogate escape at byte %zu", bad);
    /* yajl takes form feeds and vertical tabs for blanks; JSON (and the client) does not. */
    const char *ctl = data ? memchr(data, '\f', len) : NULL;
    if (!ctl && data)
        ctl = memchr(data, '\v', len);
    if (ctl)
        return lp_err_set(err, "control character 0x%02x at byte %zu", (unsigned)*ctl,
                          (size_t)(ctl - data));
    lp_jscan_t s = {.data = data, .len = len, .fn = fn, .arg = arg, .err = err};
    s.yajl = yajl_alloc(&s_callbacks, NULL, &s);
    lp_assert(s.yajl != NULL); /* only fails when out of memory */
    yajl_config(s.yajl, yajl_dont_validate_strings, 1);
    const unsigned char *text = (const unsigned char *)(data ? data : "");
    yajl_status st = yajl_parse(s.yajl, text, len);
    if (st == yajl_status_ok) {
        s.completing = true;
        st = yajl_complete_parse(s.yajl);
    }
    int rc = 0;
    if (st == yajl_status_ok) {
        /* yajl ends a complete value without looking at an unfinished token after it. */
        size_t rest = s.top_end + lp_jscan_blanks(data + s.top_end, len - s.top_end);
        if (rest < len)
            rc = lp_err_set(err, "trailing bytes after the JSON value at byte %zu", rest);
    } else {
        rc = -1;
        if (!s.stopped) {
            unsigned char *why = yajl_get_error(s.yajl, 0, text, len);
            size_t n = why ? strcspn((const char *)why, "\n") : 0;
            /* yajl counts from the start of the last buffer it was given: at completion, an
             * empty one after the text. */
            lp_err_set(err, "%.*s at byte %zu", (int)n, why ? (const char *)why : "invalid JSON",
                       s.completing ? len : yajl_get_bytes_consumed(s.yajl));
            yajl_free_error(s.yajl, why);
        }
    }
    yajl_free(s.yajl);
    return rc;
}

bool lp_jscan_stop(lp_jscan_t *s, const char *fmt, ...)
{
    if (s->err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->err, LP_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    s->stopped = true;
    return false;
}

int lp_jscan_depth(const lp_jscan_t *s)
{
    return s->open;
}

bool lp_jscan_at(const lp_jscan_t *s, const char *path)
{
    if (s->open > LP_JSCAN_PATH)
        return false;
    const char *p = path;
    for (int i = 0; i < s->open; i++) {
        const s_level_t *l = &s->level[i];
        if (!*p)
            return false; /* the path is shorter (and "" is only the top level) */
        if (p[0] == '*' && (p[1] == '.' || p[1] == '\0')) {
            p++;
        } else {
            if (l->array || l->key_long)
                return false;
            size_t k = 0; /* the component, up to '.' or the end, against the key */
            while (k < l->key_len && p[k] == l->key[k] && p[k] != '.' && p[k] != '\0')
                k++;
            if (k != l->key_len || (p[k] != '.' && p[k] != '\0'))
                return false;
            p += k;
        }
        if (*p == '.' && i + 1 < s->open)
            p++;
        else if (i + 1 < s->open)
            return false; /* the path is shorter */
    }
    return *p == '\0';
}

const char *lp_jscan_key(const lp_jscan_t *s, size_t *len)
{
    const s_level_t *l = s_parent(s);
    if (!l || l->array || l->key_long)
        return NULL;
    *len = l->key_len;
    return l->key;
}

bool lp_jscan_key_is(const lp_jscan_t *s, const char *name)
{
    size_t n = 0;
    const char *key = lp_jscan_key(s, &n);
    return key && strlen(name) == n && memcmp(key, name, n) == 0;
}

size_t lp_jscan_start(const lp_jscan_t *s)
{
    if (s->container)
        return s->container_start;
    size_t at = s->prev_end;
    while (at < s->len && (s_space(s->data[at]) || s->data[at] == ':' || s->data[at] == ','))
        at++;
    return at;
}

size_t lp_jscan_end(const lp_jscan_t *s)
{
    return s->end;
}

void lp_jscan_member_span(const lp_jscan_t *s, size_t *from, size_t *to)
{
    const s_level_t *p = s_parent(s);
    lp_assert(p && !p->array);
    if (p->members > 1) {
        *from = p->prev_member_end; /* ", key: value" */
        *to = s->end;
        return;
    }
    *from = p->key_start; /* the first member: "key: value," */
    size_t at = s->end + lp_jscan_blanks(s->data + s->end, s->len - s->end);
    *to = at < s->len && s->data[at] == ',' ? at + 1 : s->end;
}

/* A number's text without a fraction or an exponent (yajl has checked the rest). */
static bool s_integer_text(const char *text, size_t len)
{
    return text && len > 0 && !memchr(text, '.', len) && !memchr(text, 'e', len) &&
           !memchr(text, 'E', len);
}

long long lp_jscan_count(const char *text, size_t len, long long def)
{
    if (!s_integer_text(text, len))
        return def;
    if (text[0] == '-')
        return 0;
    long long n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return def;
        n = n * 10 + (text[i] - '0');
        if (n > LP_TOKENS_MAX)
            return LP_TOKENS_MAX;
    }
    return n;
}

bool lp_jscan_int(const char *text, size_t len, long long *out)
{
    char buf[24]; /* the longest long long has 20 characters */
    if (!s_integer_text(text, len) || len >= sizeof buf)
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    errno = 0;
    char *end = NULL;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

void lp_jscan_splice(lp_buf_t *out, const char *text, size_t len, const lp_jscan_edit_t *edits,
                     size_t n)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        lp_assert(edits[i].from >= at && edits[i].to >= edits[i].from && edits[i].to <= len);
        lp_buf_append(out, text + at, edits[i].from - at);
        lp_buf_append(out, edits[i].with, edits[i].with_len);
        at = edits[i].to;
    }
    lp_buf_append(out, text + at, len - at);
}
