#include "lp_msg.h"

#include <errno.h>
#include <msgpack.h>
#include <math.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "lp_json.h"

/* Frames after the optional identity: the header, the body. */
#define S_FRAMES 2
/* The header frame: signature, command, the request id's length (0 or 16), the request id,
 * then the meta to the frame's end. */
#define S_HEAD_FIXED (LP_PROTO_SIGNATURE_LEN + 2)

/* One item of a meta as read from its MessagePack bytes. */
typedef enum { S_NIL, S_BOOL, S_INT, S_REAL, S_STR, S_ARRAY, S_MAP } s_kind_t;
typedef struct {
    s_kind_t kind;
    union {
        bool b;
        long long i;
        double d;
        uint32_t n; /* elements of an array, members of a map */
    } v;
    const uint8_t *str; /* S_STR: its bytes (not NUL-terminated) */
    uint32_t len;       /* S_STR: their count */
} s_item_t;

/* A member of the received meta's top-level map: where its key and value lie in the frame
 * (offsets from the view's base), the value as read, and a string value as a C string (a
 * view's strings are read from there only: val.str is cleared once it is copied). */
typedef struct {
    uint32_t key, klen; /* offset and length of the key's bytes */
    uint32_t at;        /* offset of the value */
    s_item_t val;
    const char *text; /* S_STR: NUL-terminated copy */
} s_member_t;

/* A checked map, its members and their strings, in one allocation. A message's splice makes
 * its view stale but keeps it (chained) until the message goes, so strings handed out stay
 * valid. */
struct lp_mview {
    lp_mview_t *older;
    const uint8_t *base; /* the map's bytes (borrowed) */
    size_t len;
    uint32_t count;
    s_member_t members[];
};

struct lp_msg {
    zmq_msg_t identity;
    bool has_identity;
    uint8_t cmd;
    bool has_req_id;
    uint8_t req_id[LP_REQ_ID_LEN];
    zmq_msg_t head;    /* the header frame as received (or last built): resent when unchanged */
    size_t meta_off;   /* where head's meta starts */
    lp_mview_t *index; /* the meta's members when index_ok; stale views chained */
    bool index_ok;
    json_t *meta; /* the tree, built only when asked for (lp_msg_meta) */
    bool meta_dirty;
    json_t *extra; /* members to add on send (lp_msg_meta_add), NULL when none */
    zmq_msg_t body;
};

lp_msg_t *lp_msg_new(lp_cmd_t cmd, const uint8_t *req_id)
{
    lp_msg_t *self = lp_calloc(1, sizeof *self);
    self->cmd = (uint8_t)cmd;
    if (req_id) {
        memcpy(self->req_id, req_id, LP_REQ_ID_LEN);
        self->has_req_id = true;
    }
    zmq_msg_init(&self->identity);
    zmq_msg_init(&self->head);
    zmq_msg_init(&self->body);
    return self;
}

void lp_msg_destroy(lp_msg_t **self_p)
{
    lp_msg_t *self = *self_p;
    if (!self)
        return;
    zmq_msg_close(&self->identity);
    zmq_msg_close(&self->head);
    zmq_msg_close(&self->body);
    while (self->index) {
        lp_mview_t *older = self->index->older;
        free(self->index);
        self->index = older;
    }
    json_decref(self->meta);
    json_decref(self->extra);
    free(self);
    *self_p = NULL;
}

const char *lp_cmd_name(int cmd)
{
    static const char *names[] = {"?",      "READY", "HEARTBEAT", "DISCONNECT", "REQUEST",
                                  "HEAD",   "CHUNK", "END",       "ERROR",      "CANCEL",
                                  "RECORD", "ACK",   "CREDIT",    "QUERY"};
    return cmd >= 0 && (size_t)cmd < LP_ARRAY_LEN(names) ? names[cmd] : "?";
}

/* ---- metas written from jansson values (a tree changed through lp_msg_meta_rw, a QUERY's
 * arguments): MessagePack (PROTOCOL.md) ---- */

static void s_pack_key(msgpack_packer *pk, const char *key)
{
    size_t n = strlen(key);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, key, n);
}

static void s_pack(msgpack_packer *pk, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        msgpack_pack_map(pk, json_object_size(v));
        const char *key;
        json_t *x;
        json_object_foreach((json_t *)v, key, x)
        {
            s_pack_key(pk, key);
            s_pack(pk, x);
        }
        break;
    }
    case JSON_ARRAY: {
        msgpack_pack_array(pk, json_array_size(v));
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) s_pack(pk, x);
        break;
    }
    case JSON_STRING: {
        size_t n = json_string_length(v);
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, json_string_value(v), n);
        break;
    }
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(v));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(v));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    default:
        msgpack_pack_nil(pk);
        break;
    }
}

/* msgpack-c's writer callback: append to an lp_buf (which starts small, unlike an sbuffer). */
static int s_buf_write(void *buf, const char *data, size_t len)
{
    lp_buf_append(buf, data, len);
    return 0;
}

char *lp_meta_encode(const json_t *meta, size_t *len)
{
    lp_buf_t b = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, s_buf_write);
    s_pack(&pk, meta);
    return lp_buf_steal(&b, len);
}

/* ---- maps written member by member ---- */

/* A map's header goes first but its count is known last: room for the largest (map 32,
 * which every decoder takes whatever the count) is kept, the count written at the end. */
static void s_map32_start(lp_buf_t *b)
{
    lp_buf_append(b, "\xdf\0\0\0\0", 5);
}

static void s_map32_count(lp_buf_t *b, size_t at, uint32_t count)
{
    for (int i = 0; i < 4; i++)
        b->data[at + 1 + (size_t)i] = (char)(count >> (24 - 8 * i));
}

static msgpack_packer s_mapw_key(lp_mapw_t *w, const char *key)
{
    if (w->buf.len == 0)
        s_map32_start(&w->buf);
    if (w->inner)
        w->inner--;
    else
        w->count++;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w->buf, s_buf_write);
    s_pack_key(&pk, key);
    return pk;
}

void lp_mapw_str(lp_mapw_t *w, const char *key, const char *value)
{
    msgpack_packer pk = s_mapw_key(w, key);
    if (!value) {
        msgpack_pack_nil(&pk);
        return;
    }
    size_t n = strlen(value);
    msgpack_pack_str(&pk, n);
    size_t at = w->buf.len;
    msgpack_pack_str_body(&pk, value, n);
    lp_utf8_scrub(w->buf.data + at, n);
}

void lp_mapw_int(lp_mapw_t *w, const char *key, long long value)
{
    msgpack_packer pk = s_mapw_key(w, key);
    msgpack_pack_int64(&pk, value);
}

void lp_mapw_real(lp_mapw_t *w, const char *key, double value)
{
    msgpack_packer pk = s_mapw_key(w, key);
    if (isfinite(value))
        msgpack_pack_double(&pk, value);
    else
        msgpack_pack_nil(&pk); /* receivers refuse a meta with a number that is not finite */
}

void lp_mapw_bool(lp_mapw_t *w, const char *key, bool value)
{
    msgpack_packer pk = s_mapw_key(w, key);
    if (value)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
}

void lp_mapw_nil(lp_mapw_t *w, const char *key)
{
    msgpack_packer pk = s_mapw_key(w, key);
    msgpack_pack_nil(&pk);
}

void lp_mapw_map(lp_mapw_t *w, const char *key, uint32_t members)
{
    lp_assert(w->inner == 0); /* one level */
    msgpack_packer pk = s_mapw_key(w, key);
    msgpack_pack_map(&pk, members);
    w->inner = members;
}

char *lp_mapw_finish(lp_mapw_t *w, size_t *len)
{
    lp_assert(w->inner == 0); /* a map member got all its members */
    if (w->buf.len == 0)
        lp_buf_append(&w->buf, "\x80", 1); /* the empty map */
    else
        s_map32_count(&w->buf, 0, w->count);
    w->count = 0;
    w->inner = 0;
    return lp_buf_steal(&w->buf, len);
}

/* ---- reading metas: one checking pass over the MessagePack bytes, no library objects ---- */

/* Levels of containers a meta may have, the map itself the first: room for any JSON the
 * gateway accepts (a key's metadata travels in a QUERY's meta) and the members around it. */
#define S_DEPTH_MAX (LP_JSON_MAX_DEPTH + 8)

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    const char *why; /* what was wrong, when a read failed */
} s_reader_t;

static uint64_t s_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The next n bytes, or NULL when the data ends first. */
static const uint8_t *s_take(s_reader_t *r, size_t n)
{
    if (n > r->len - r->pos) {
        r->why = "not MessagePack, or a container longer than the data";
        return NULL;
    }
    const uint8_t *at = r->p + r->pos;
    r->pos += n;
    return at;
}

/* A big-endian unsigned of n bytes. */
static bool s_take_be(s_reader_t *r, size_t n, uint64_t *v)
{
    const uint8_t *q = s_take(r, n);
    if (q)
        *v = s_be(q, n);
    return q != NULL;
}

/* A container's count: every element takes at least a byte, so no container may promise more
 * than the bytes left (a 5-byte header could otherwise claim 2^32 members). */
static bool s_count(s_reader_t *r, s_item_t *it, s_kind_t kind, uint64_t n)
{
    it->kind = kind;
    it->v.n = (uint32_t)n;
    if (n > (r->len - r->pos) / (kind == S_MAP ? 2 : 1)) {
        r->why = "not MessagePack, or a container longer than the data";
        return false;
    }
    return true;
}

static bool s_string(s_reader_t *r, s_item_t *it, uint64_t n)
{
    it->kind = S_STR;
    it->len = (uint32_t)n;
    it->str = s_take(r, (size_t)n);
    return it->str != NULL;
}

/* One item's header (a string's bytes too; a container's elements follow it). */
static bool s_read(s_reader_t *r, s_item_t *it)
{
    const uint8_t *h = s_take(r, 1);
    if (!h)
        return false;
    uint8_t b = *h;
    uint64_t u = 0;
    if (b <= 0x7f || b >= 0xe0) {
        it->kind = S_INT;
        it->v.i = (int8_t)b;
        return true;
    }
    if (b <= 0x8f)
        return s_count(r, it, S_MAP, b & 0x0f);
    if (b <= 0x9f)
        return s_count(r, it, S_ARRAY, b & 0x0f);
    if (b <= 0xbf)
        return s_string(r, it, b & 0x1f);
    switch (b) {
    case 0xc0:
        it->kind = S_NIL;
        return true;
    case 0xc2:
    case 0xc3:
        it->kind = S_BOOL;
        it->v.b = b == 0xc3;
        return true;
    case 0xca: {
        if (!s_take_be(r, 4, &u))
            return false;
        uint32_t bits = (uint32_t)u;
        float f;
        memcpy(&f, &bits, sizeof f);
        it->kind = S_REAL;
        it->v.d = f;
        break;
    }
    case 0xcb:
        if (!s_take_be(r, 8, &u))
            return false;
        it->kind = S_REAL;
        memcpy(&it->v.d, &u, sizeof it->v.d);
        break;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        if (!s_take_be(r, (size_t)1 << (b - 0xcc), &u))
            return false;
        if (u > (uint64_t)INT64_MAX) {
            r->why = "an integer past 2^63";
            return false;
        }
        it->kind = S_INT;
        it->v.i = (long long)u;
        return true;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t n = (size_t)1 << (b - 0xd0);
        if (!s_take_be(r, n, &u))
            return false;
        if (n < 8 && (u >> (8 * n - 1)) & 1)
            u |= ~(uint64_t)0 << (8 * n); /* sign extension */
        it->kind = S_INT;
        it->v.i = (long long)(int64_t)u;
        return true;
    }
    case 0xd9:
    case 0xda:
    case 0xdb:
        return s_take_be(r, (size_t)1 << (b - 0xd9), &u) && s_string(r, it, u);
    case 0xdc:
    case 0xdd:
        return s_take_be(r, b == 0xdc ? 2 : 4, &u) && s_count(r, it, S_ARRAY, u);
    case 0xde:
    case 0xdf:
        return s_take_be(r, b == 0xde ? 2 : 4, &u) && s_count(r, it, S_MAP, u);
    default: /* bin, ext, and 0xc1 (never used) */
        r->why = "binary or extension data";
        return false;
    }
    if (!isfinite(it->v.d)) {
        r->why = "a number that is not finite";
        return false;
    }
    return true;
}

/* A string as jansson takes it: UTF-8 without NUL (as the JSON meta was). */
static bool s_text_ok(const s_item_t *it)
{
    const char *p = (const char *)it->str;
    return !memchr(p, 0, it->len) && lp_utf8_valid(p, it->len, NULL);
}

typedef struct {
    const uint8_t *p;
    uint32_t len;
} s_key_t;

static int s_key_cmp(const void *a, const void *b)
{
    const s_key_t *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->p, y->p, x->len);
}

/* True when two of a map's n keys are equal: pairwise for a few, through a small hash table
 * for the usual sizes (an END has about 25 members, a record about 40), sorted for more. */
static bool s_keys_repeat(s_key_t *keys, uint32_t n, s_key_t *dup)
{
    enum { SLOTS = 256 }; /* a power of two, at least twice the keys it takes */
    if (n <= 8) {
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = 0; j < i; j++)
                if (s_key_cmp(&keys[i], &keys[j]) == 0) {
                    *dup = keys[i];
                    return true;
                }
        return false;
    }
    if (n <= SLOTS / 2) {
        uint16_t slot[SLOTS] = {0}; /* key index + 1; 0 = free */
        for (uint32_t i = 0; i < n; i++) {
            uint32_t h = 2166136261u; /* FNV-1a */
            for (uint32_t j = 0; j < keys[i].len; j++)
                h = (h ^ keys[i].p[j]) * 16777619u;
            for (uint32_t at = h & (SLOTS - 1);; at = (at + 1) & (SLOTS - 1)) {
                if (!slot[at]) {
                    slot[at] = (uint16_t)(i + 1);
                    break;
                }
                if (s_key_cmp(&keys[slot[at] - 1], &keys[i]) == 0) {
                    *dup = keys[i];
                    return true;
                }
            }
        }
        return false;
    }
    qsort(keys, n, sizeof *keys, s_key_cmp);
    for (uint32_t i = 1; i < n; i++)
        if (s_key_cmp(&keys[i], &keys[i - 1]) == 0) {
            *dup = keys[i];
            return true;
        }
    return false;
}

static bool s_check(s_reader_t *r, unsigned depth, s_item_t *it);

/* The members of the top-level map, noted while it is checked. Arrays here grow with what
 * is read, never by the count a header claims (a forged count is refused later). */
typedef struct {
    s_member_t *m, *stack; /* m starts as the caller's stack array, never freed here */
    uint32_t n, cap;
} s_members_t;

/* Make room for one more element in *array (n used, *cap allocated, stack = the caller's
 * first array, which is never freed). */
static void *s_grow(void *array, void *stack, uint32_t n, uint32_t *cap, size_t size)
{
    if (n < *cap)
        return array;
    *cap *= 2;
    void *bigger = lp_malloc(*cap * size);
    memcpy(bigger, array, n * size);
    if (array != stack)
        free(array);
    return bigger;
}

/* The members of a map whose header was read: string keys, each once, valid values. With
 * `members`, the top level's are noted there. */
static bool s_check_map(s_reader_t *r, unsigned depth, uint32_t n, s_members_t *members)
{
    s_key_t small[64];
    s_key_t *keys = small;
    uint32_t cap = LP_ARRAY_LEN(small);
    bool ok = true;
    for (uint32_t i = 0; ok && i < n; i++) {
        s_item_t k, v;
        if (!s_read(r, &k))
            ok = false;
        else if (k.kind != S_STR || !s_text_ok(&k)) {
            r->why = "a map key that is not a UTF-8 string";
            ok = false;
        } else {
            keys = s_grow(keys, small, i, &cap, sizeof *keys);
            keys[i] = (s_key_t){k.str, k.len};
            size_t at = r->pos;
            ok = s_check(r, depth + 1, &v);
            if (ok && members) {
                members->m = s_grow(members->m, members->stack, members->n, &members->cap,
                                    sizeof *members->m);
                members->m[members->n++] =
                    (s_member_t){(uint32_t)(k.str - r->p), k.len, (uint32_t)at, v, NULL};
            }
        }
    }
    s_key_t dup;
    if (ok && s_keys_repeat(keys, n, &dup)) {
        static __thread char why[80];
        snprintf(why, sizeof why, "duplicate key '%.*s'", (int)LP_MIN(dup.len, 40), dup.p);
        r->why = why;
        ok = false;
    }
    if (keys != small)
        free(keys);
    return ok;
}

/* Read one item and everything inside it, checking it is what a meta may hold. */
static bool s_check(s_reader_t *r, unsigned depth, s_item_t *it)
{
    if (!s_read(r, it))
        return false;
    if (it->kind == S_STR && !s_text_ok(it)) {
        r->why = "a string that is not UTF-8 without NUL";
        return false;
    }
    if (it->kind != S_ARRAY && it->kind != S_MAP)
        return true;
    if (depth > S_DEPTH_MAX) {
        r->why = "containers nested too deep";
        return false;
    }
    if (it->kind == S_MAP)
        return s_check_map(r, depth, it->v.n, NULL);
    s_item_t x;
    for (uint32_t i = 0; i < it->v.n; i++)
        if (!s_check(r, depth + 1, &x))
            return false;
    return true;
}

/* Step over an item already checked (s_check) and everything inside it. */
static void s_skip(s_reader_t *r)
{
    s_item_t it;
    if (!s_read(r, &it))
        return;
    uint64_t n = it.kind == S_MAP ? 2 * (uint64_t)it.v.n : it.kind == S_ARRAY ? it.v.n : 0;
    for (uint64_t i = 0; i < n; i++)
        s_skip(r);
}

/* The jansson value of an item already checked (s_check). */
static json_t *s_tree(s_reader_t *r)
{
    s_item_t it;
    s_read(r, &it);
    switch (it.kind) {
    case S_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; i < it.v.n; i++) {
            s_item_t k;
            s_read(r, &k);
            json_object_setn_new_nocheck(m, (const char *)k.str, k.len, s_tree(r));
        }
        return m;
    }
    case S_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < it.v.n; i++)
            json_array_append_new(a, s_tree(r));
        return a;
    }
    case S_STR:
        return json_stringn_nocheck((const char *)it.str, it.len);
    case S_INT:
        return json_integer(it.v.i);
    case S_REAL:
        return json_real(it.v.d);
    case S_BOOL:
        return json_boolean(it.v.b);
    default:
        return json_null();
    }
}

/* The header of the map that must open r's data; false with the reason in r->why. */
static bool s_read_map(s_reader_t *r, s_item_t *top)
{
    if (!s_read(r, top))
        return false;
    if (top->kind != S_MAP) {
        r->why = "not a map";
        return false;
    }
    return true;
}

json_t *lp_meta_decode(const void *data, size_t len, char *err)
{
    s_reader_t r = {(const uint8_t *)data, len, 0, NULL};
    s_item_t top;
    if (!s_read_map(&r, &top) || !s_check_map(&r, 1, top.v.n, NULL)) {
        lp_err_set(err, "%s", r.why);
        return NULL;
    }
    if (r.pos != len) {
        lp_err_set(err, "%zu bytes after the map", len - r.pos);
        return NULL;
    }
    r.pos = 0;
    return s_tree(&r);
}

/* The meta's bytes: the end of the header frame (none in a message built here). */
static const uint8_t *s_meta_bytes(lp_msg_t *self, size_t *len)
{
    size_t size = zmq_msg_size(&self->head);
    *len = size > self->meta_off ? size - self->meta_off : 0;
    return (const uint8_t *)zmq_msg_data(&self->head) + self->meta_off;
}

/* Check the map at p (within len) and note its members; NULL with a reason in err. */
static lp_mview_t *s_view(const uint8_t *p, size_t len, char *err)
{
    s_reader_t r = {p, len, 0, NULL};
    s_item_t top;
    if (!s_read_map(&r, &top)) {
        lp_err_set(err, "%s", r.why);
        return NULL;
    }
    s_member_t small[32];
    s_members_t ms = {small, small, 0, LP_ARRAY_LEN(small)};
    bool checked = s_check_map(&r, 1, top.v.n, &ms);
    lp_mview_t *v = NULL;
    if (!checked) {
        lp_err_set(err, "%s", r.why);
    } else {
        /* the members, then each string value with its NUL (at most the map's size) */
        v = lp_malloc(sizeof *v + ms.n * sizeof(s_member_t) + r.pos + ms.n);
        v->older = NULL;
        v->base = p;
        v->len = r.pos;
        v->count = ms.n;
        memcpy(v->members, ms.m, ms.n * sizeof(s_member_t));
    }
    if (ms.m != small)
        free(ms.m);
    if (!v)
        return NULL;
    char *t = (char *)(v->members + v->count);
    for (uint32_t i = 0; i < v->count; i++) {
        s_member_t *m = &v->members[i];
        if (m->val.kind == S_STR) {
            memcpy(t, m->val.str, m->val.len);
            t[m->val.len] = '\0';
            m->text = t;
            m->val.str = NULL; /* read from text from now on */
            t += m->val.len + 1;
        }
    }
    return v;
}

lp_mview_t *lp_mview_next(const void *data, size_t len, size_t *off, char *err)
{
    lp_assert(*off <= len);
    lp_mview_t *v = s_view((const uint8_t *)data + *off, len - *off, err);
    if (v)
        *off += v->len;
    return v;
}

void lp_mview_destroy(lp_mview_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

const void *lp_mview_bytes(const lp_mview_t *self, size_t *len)
{
    *len = self->len;
    return self->base;
}

json_t *lp_mview_tree(const lp_mview_t *self)
{
    s_reader_t r = {self->base, self->len, 0, NULL};
    return s_tree(&r);
}

static const s_member_t *s_mview_find(const lp_mview_t *v, const char *key)
{
    if (!v)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < v->count; i++) {
        const s_member_t *m = &v->members[i];
        if (m->klen == klen && memcmp(v->base + m->key, key, klen) == 0)
            return m;
    }
    return NULL;
}

/* Members read as the lp_json_* readers read them from an object (a NULL view: none). */
const char *lp_mview_str(const lp_mview_t *self, const char *key)
{
    const s_member_t *m = s_mview_find(self, key);
    return m && m->val.kind == S_STR ? m->text : NULL;
}

long long lp_mview_int(const lp_mview_t *self, const char *key, long long def)
{
    const s_member_t *m = s_mview_find(self, key);
    return m && m->val.kind == S_INT ? m->val.v.i : def;
}

double lp_mview_num(const lp_mview_t *self, const char *key, double def)
{
    const s_member_t *m = s_mview_find(self, key);
    if (m && m->val.kind == S_INT)
        return (double)m->val.v.i;
    return m && m->val.kind == S_REAL ? m->val.v.d : def;
}

bool lp_mview_bool(const lp_mview_t *self, const char *key, bool def)
{
    const s_member_t *m = s_mview_find(self, key);
    return m && m->val.kind == S_BOOL ? m->val.v.b : def;
}

bool lp_mview_has(const lp_mview_t *self, const char *key)
{
    return s_mview_find(self, key) != NULL;
}

long long lp_mview_sub_int(const lp_mview_t *self, const char *parent, const char *key,
                           long long def)
{
    const s_member_t *m = s_mview_find(self, parent);
    if (!m || m->val.kind != S_MAP)
        return def;
    s_reader_t r = {self->base, self->len, m->at, NULL};
    s_item_t map, k, x;
    s_read(&r, &map);
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map.v.n; i++) {
        s_read(&r, &k);
        if (k.len == klen && memcmp(k.str, key, klen) == 0)
            return s_read(&r, &x) && x.kind == S_INT ? x.v.i : def;
        s_skip(&r);
    }
    return def;
}

/* Check the message's meta (the whole rest of its header frame) and note its members as
 * the current view; -1 with a reason when it is not a valid meta. */
static int s_index(lp_msg_t *self, char *err)
{
    size_t len = 0;
    const uint8_t *p = s_meta_bytes(self, &len);
    lp_mview_t *v = s_view(p, len, err);
    if (v && v->len != len) {
        lp_err_set(err, "%zu bytes after the map", len - v->len);
        lp_mview_destroy(&v);
    }
    if (!v)
        return -1;
    v->older = self->index;
    self->index = v;
    self->index_ok = true;
    return 0;
}

/* The message's current view of its received meta (NULL when it has none). */
static const lp_mview_t *s_msg_view(lp_msg_t *self)
{
    if (!self)
        return NULL;
    if (!self->index_ok) {
        char err[LP_ERR_LEN];
        size_t len = 0;
        s_meta_bytes(self, &len);
        if (len == 0 || s_index(self, err) < 0)
            return NULL; /* cannot fail: the frame was checked when it came */
    }
    return self->index;
}

/* Read and drop whatever is left of a multipart message. */
static void s_drain(void *socket, zmq_msg_t *frame)
{
    int more = 0;
    size_t sz = sizeof more;
    while (zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        if (zmq_msg_recv(frame, socket, ZMQ_DONTWAIT) < 0)
            break;
    }
}

/* A header frame's signature, for a log line about a peer speaking another version. */
static bool s_signature_ok(const zmq_msg_t *head, char *err)
{
    const char *p = zmq_msg_data((zmq_msg_t *)head);
    size_t n = zmq_msg_size((zmq_msg_t *)head);
    if (n >= LP_PROTO_SIGNATURE_LEN && memcmp(p, LP_PROTO_SIGNATURE, LP_PROTO_SIGNATURE_LEN) == 0)
        return true;
    char seen[LP_PROTO_SIGNATURE_LEN + 1] = {0};
    for (size_t i = 0; i < LP_MIN(n, LP_PROTO_SIGNATURE_LEN); i++)
        seen[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
    lp_err_set(err, "protocol mismatch: peer speaks '%s', this build speaks %s", seen,
               LP_PROTO_SIGNATURE);
    return false;
}

lp_msg_t *lp_msg_recv(void *socket, bool from_router, char *err)
{
    if (err)
        err[0] = '\0';
    zmq_msg_t frames[S_FRAMES + 1];
    size_t want = S_FRAMES + (from_router ? 1 : 0), base = from_router ? 1 : 0;
    size_t got = 0;
    for (size_t i = 0; i < want; i++)
        zmq_msg_init(&frames[i]);
    lp_msg_t *self = NULL;
    bool more = true;
    for (; got < want && more; got++) {
        if (zmq_msg_recv(&frames[got], socket, ZMQ_DONTWAIT) < 0) {
            if (got == 0 && errno == EAGAIN)
                goto done; /* nothing waiting */
            lp_err_set(err, "receive failed after %zu frames: %s", got, zmq_strerror(errno));
            goto done;
        }
        more = zmq_msg_more(&frames[got]);
    }
    if (more)
        s_drain(socket, &frames[want - 1]);
    /* A peer of another version is named, whatever its frames look like. */
    if (got > base && !s_signature_ok(&frames[base], err))
        goto done;
    if (got < want || more) {
        lp_err_set(err, "message has %s frames, expected %zu", more ? "more" : "fewer", want);
        goto done;
    }
    zmq_msg_t *head = &frames[base];
    const uint8_t *h = zmq_msg_data(head);
    size_t size = zmq_msg_size(head);
    if (size < S_HEAD_FIXED) {
        lp_err_set(err, "header frame of %zu bytes", size);
        goto done;
    }
    if (h[LP_PROTO_SIGNATURE_LEN] == 0 || h[LP_PROTO_SIGNATURE_LEN] > LP_CMD_MAX) {
        lp_err_set(err, "unknown command %u", h[LP_PROTO_SIGNATURE_LEN]);
        goto done;
    }
    size_t idlen = h[LP_PROTO_SIGNATURE_LEN + 1];
    if ((idlen != 0 && idlen != LP_REQ_ID_LEN) || size < S_HEAD_FIXED + idlen) {
        lp_err_set(err, "request id of %zu bytes", LP_MIN(idlen, size - S_HEAD_FIXED));
        goto done;
    }
    if (size - S_HEAD_FIXED - idlen > LP_META_MAX) {
        lp_err_set(err, "meta of %zu bytes", size - S_HEAD_FIXED - idlen);
        goto done;
    }
    self = lp_msg_new((lp_cmd_t)h[LP_PROTO_SIGNATURE_LEN], idlen ? h + S_HEAD_FIXED : NULL);
    zmq_msg_move(&self->head, head);
    self->meta_off = S_HEAD_FIXED + idlen;
    char merr[LP_ERR_LEN];
    if (size > self->meta_off && s_index(self, merr) < 0) {
        lp_err_set(err, "meta is not a MessagePack map: %s", merr);
        lp_msg_destroy(&self);
        goto done;
    }
    if (from_router) {
        zmq_msg_move(&self->identity, &frames[0]);
        self->has_identity = true;
    }
    zmq_msg_move(&self->body, &frames[base + 1]);
done:
    for (size_t i = 0; i < want; i++)
        zmq_msg_close(&frames[i]);
    return self;
}

/* Send one frame; the first may fail with EAGAIN, later ones cannot (multipart is atomic). */
static int s_send_frame(void *socket, zmq_msg_t *frame, bool more)
{
    return zmq_msg_send(frame, socket, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) < 0 ? -1 : 0;
}

static void s_free_frame(void *data, void *hint)
{
    LP_UNUSED(hint);
    free(data);
}

/* Make a malloc'd buffer a frame's content without copying it (the frame frees it). */
static void s_give_frame(zmq_msg_t *frame, void *data, size_t len)
{
    zmq_msg_close(frame);
    if (zmq_msg_init_data(frame, data, len, s_free_frame, NULL) < 0) {
        /* Cannot happen with a valid buffer; keep ownership rules simple anyway. */
        free(data);
        zmq_msg_init(frame);
    }
}

/* The tree of the meta, decoded from the frame the first time it is asked for. */
static json_t *s_meta_tree(lp_msg_t *self)
{
    if (!self->meta) {
        const lp_mview_t *v = s_msg_view(self);
        self->meta = v ? lp_mview_tree(v) : json_object();
    }
    return self->meta;
}

/* Fold pending additions into the meta object (it is re-encoded whole on send). */
static void s_merge_extra(lp_msg_t *self)
{
    if (!self->extra)
        return;
    json_object_update(s_meta_tree(self), self->extra);
    json_decref(self->extra);
    self->extra = NULL;
    self->meta_dirty = true;
}

/* Start a header frame in b: signature, command, the request id's length and the id. */
static void s_head_start(const lp_msg_t *self, lp_buf_t *b)
{
    uint8_t fixed[2] = {self->cmd, self->has_req_id ? LP_REQ_ID_LEN : 0};
    lp_buf_append(b, LP_PROTO_SIGNATURE, LP_PROTO_SIGNATURE_LEN);
    lp_buf_append(b, fixed, sizeof fixed);
    if (self->has_req_id)
        lp_buf_append(b, self->req_id, LP_REQ_ID_LEN);
}

/* Make b (a header whose meta starts at meta_off) the header frame. */
static void s_head_set(lp_msg_t *self, lp_buf_t *b, size_t meta_off)
{
    size_t len = 0;
    char *data = lp_buf_steal(b, &len);
    s_give_frame(&self->head, data, len); /* releases the one received */
    self->meta_off = meta_off;
}

/* True when the header frame says this message's command and request id (a received
 * message relayed as it came, or a copied meta under the same id). */
static bool s_head_current(lp_msg_t *self)
{
    const uint8_t *h = zmq_msg_data(&self->head);
    size_t idlen = self->has_req_id ? LP_REQ_ID_LEN : 0;
    return zmq_msg_size(&self->head) >= S_HEAD_FIXED + idlen &&
           self->meta_off == S_HEAD_FIXED + idlen && h[LP_PROTO_SIGNATURE_LEN] == self->cmd &&
           h[LP_PROTO_SIGNATURE_LEN + 1] == idlen &&
           (!idlen || memcmp(h + S_HEAD_FIXED, self->req_id, idlen) == 0);
}

/* A new header frame with the meta as it is: the tree re-encoded when it changed, else the
 * received members as they came except those an addition replaces (no key ever appears
 * twice) followed by the additions, else the received meta as it came. */
static void s_head_build(lp_msg_t *self)
{
    lp_buf_t b = {0};
    s_head_start(self, &b);
    size_t meta_off = b.len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, s_buf_write);
    size_t len = 0;
    const uint8_t *meta = s_meta_bytes(self, &len);
    if (self->meta_dirty) {
        s_pack(&pk, self->meta);
        self->meta_dirty = false;
    } else if (self->extra) {
        s_reader_t r = {meta, len, 0, NULL};
        s_item_t top = {.kind = S_MAP};
        if (len > 0)
            s_read(&r, &top); /* a map: the frame was checked on receipt */
        s_map32_start(&b);
        uint32_t count = 0;
        for (uint32_t i = 0; i < top.v.n; i++) {
            size_t from = r.pos;
            s_item_t k;
            s_read(&r, &k);
            s_skip(&r);
            if (!json_object_getn(self->extra, (const char *)k.str, k.len)) {
                lp_buf_append(&b, meta + from, r.pos - from);
                count++;
            }
        }
        const char *key;
        json_t *v;
        json_object_foreach(self->extra, key, v)
        {
            s_pack_key(&pk, key);
            s_pack(&pk, v);
            count++;
        }
        s_map32_count(&b, meta_off, count);
        /* The tree, if built, says the same as the frame now (a failed send leaves it whole).
         * The additions stay until the message goes (lp_msg_destroy, after a send too): a
         * string read from one must outlive a failed send; a send again writes them again in
         * place of the members this one wrote. */
        if (self->meta)
            json_object_update(self->meta, self->extra);
    } else {
        lp_buf_append(&b, meta, len);
    }
    s_head_set(self, &b, meta_off);
    self->index_ok = false; /* strings already handed out stay valid */
}

int lp_msg_send(lp_msg_t **self_p, void *socket)
{
    lp_msg_t *self = *self_p;
    if (self->meta_dirty)
        s_merge_extra(self);
    if (self->meta_dirty || self->extra || !s_head_current(self))
        s_head_build(self);
    /* The first frame decides: if it goes, the rest go (ZeroMQ multipart atomicity). */
    if (self->has_identity) {
        zmq_msg_t id;
        zmq_msg_init(&id);
        zmq_msg_copy(&id, &self->identity);
        if (s_send_frame(socket, &id, true) < 0) {
            int saved = errno;
            zmq_msg_close(&id);
            errno = saved;
            return -1;
        }
        zmq_msg_close(&id);
    }
    if (s_send_frame(socket, &self->head, true) < 0 || s_send_frame(socket, &self->body, false) < 0)
        return -1;
    lp_msg_destroy(self_p);
    return 0;
}

lp_cmd_t lp_msg_cmd(const lp_msg_t *self)
{
    return (lp_cmd_t)self->cmd;
}

void lp_msg_set_cmd(lp_msg_t *self, lp_cmd_t cmd)
{
    self->cmd = (uint8_t)cmd;
}

const uint8_t *lp_msg_req_id(const lp_msg_t *self)
{
    return self->has_req_id ? self->req_id : NULL;
}

void lp_req_id_format(const uint8_t *b, char *buf)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < LP_REQ_ID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            buf[o++] = '-';
        buf[o++] = hex[b[i] >> 4];
        buf[o++] = hex[b[i] & 15];
    }
    buf[o] = '\0';
}

int lp_req_id_parse(const char *text, uint8_t *id)
{
    size_t o = 0;
    for (size_t i = 0; i < LP_REQ_ID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            if (text[o++] != '-')
                return -1;
        }
        int hi = OPENSSL_hexchar2int((unsigned char)text[o]);
        int lo = hi < 0 ? -1 : OPENSSL_hexchar2int((unsigned char)text[o + 1]);
        if (lo < 0)
            return -1;
        id[i] = (uint8_t)(hi << 4 | lo);
        o += 2;
    }
    return text[o] == '\0' ? 0 : -1;
}

const char *lp_msg_req_id_str(const lp_msg_t *self, char *buf)
{
    if (!self->has_req_id) {
        buf[0] = '-';
        buf[1] = '\0';
        return buf;
    }
    lp_req_id_format(self->req_id, buf);
    return buf;
}

void lp_msg_set_identity(lp_msg_t *self, const void *data, size_t len)
{
    zmq_msg_close(&self->identity);
    zmq_msg_init_size(&self->identity, len);
    memcpy(zmq_msg_data(&self->identity), data, len);
    self->has_identity = true;
}

const void *lp_msg_identity(const lp_msg_t *self, size_t *len)
{
    if (!self->has_identity) {
        *len = 0;
        return NULL;
    }
    *len = zmq_msg_size((zmq_msg_t *)&self->identity);
    return zmq_msg_data((zmq_msg_t *)&self->identity);
}

void lp_msg_move_identity(lp_msg_t *self, lp_msg_t *src)
{
    zmq_msg_move(&self->identity, &src->identity);
    self->has_identity = src->has_identity;
    src->has_identity = false;
}

const json_t *lp_msg_meta(lp_msg_t *self)
{
    s_meta_tree(self);
    s_merge_extra(self);
    return self->meta;
}

json_t *lp_msg_meta_rw(lp_msg_t *self)
{
    lp_msg_meta(self);
    self->meta_dirty = true;
    return self->meta;
}

void lp_msg_meta_add(lp_msg_t *self, const char *key, json_t *value)
{
    if (self->meta_dirty) {
        json_object_set_new(self->meta, key, value);
        return;
    }
    if (!self->extra)
        self->extra = json_object();
    json_object_set_new(self->extra, key, value);
}

void lp_msg_set_meta(lp_msg_t *self, lp_mapw_t *w)
{
    size_t len = 0;
    char *map = lp_mapw_finish(w, &len);
    lp_buf_t b = {0};
    s_head_start(self, &b);
    size_t meta_off = b.len;
    lp_buf_append(&b, map, len);
    free(map);
    s_head_set(self, &b, meta_off);
    json_decref(self->meta);
    json_decref(self->extra);
    self->meta = self->extra = NULL;
    self->meta_dirty = false;
    self->index_ok = false;
}

void lp_msg_meta_copy(lp_msg_t *self, lp_msg_t *src)
{
    if (src->meta_dirty || src->extra) {
        json_object_update(lp_msg_meta_rw(self), (json_t *)lp_msg_meta(src));
        return;
    }
    zmq_msg_copy(&self->head, &src->head); /* shared, not copied */
    self->meta_off = src->meta_off;
    self->index_ok = false;
    json_decref(self->meta);
    self->meta = NULL;
    self->meta_dirty = false;
}

/* The jansson object a member is read from: the pending additions when they hold it, else
 * the tree once there is one; NULL when the received frame is read (its view). */
static const json_t *s_json_holder(const lp_msg_t *self, const char *key)
{
    if (self && self->extra && json_object_get(self->extra, key))
        return self->extra;
    return self ? self->meta : NULL;
}

const char *lp_msg_meta_str(lp_msg_t *self, const char *key)
{
    const json_t *o = s_json_holder(self, key);
    return o ? lp_json_str(o, key) : lp_mview_str(s_msg_view(self), key);
}

long long lp_msg_meta_int(lp_msg_t *self, const char *key, long long def)
{
    const json_t *o = s_json_holder(self, key);
    return o ? lp_json_int(o, key, def) : lp_mview_int(s_msg_view(self), key, def);
}

double lp_msg_meta_num(lp_msg_t *self, const char *key, double def)
{
    const json_t *o = s_json_holder(self, key);
    return o ? lp_json_num(o, key, def) : lp_mview_num(s_msg_view(self), key, def);
}

bool lp_msg_meta_bool(lp_msg_t *self, const char *key, bool def)
{
    const json_t *o = s_json_holder(self, key);
    return o ? lp_json_bool(o, key, def) : lp_mview_bool(s_msg_view(self), key, def);
}

bool lp_msg_meta_has(lp_msg_t *self, const char *key)
{
    const json_t *o = s_json_holder(self, key);
    return o ? json_object_get(o, key) != NULL : lp_mview_has(s_msg_view(self), key);
}

long long lp_msg_meta_sub_int(lp_msg_t *self, const char *parent, const char *key, long long def)
{
    const json_t *o = s_json_holder(self, parent);
    return o ? lp_json_int(json_object_get(o, parent), key, def)
             : lp_mview_sub_int(s_msg_view(self), parent, key, def);
}

const void *lp_msg_body(lp_msg_t *self, size_t *len)
{
    *len = zmq_msg_size(&self->body);
    return zmq_msg_data(&self->body);
}

void lp_msg_set_body(lp_msg_t *self, const void *data, size_t len)
{
    zmq_msg_close(&self->body);
    zmq_msg_init_size(&self->body, len);
    if (len)
        memcpy(zmq_msg_data(&self->body), data, len);
}

void lp_msg_give_body(lp_msg_t *self, void *data, size_t len)
{
    s_give_frame(&self->body, data, len);
}

void lp_msg_move_body(lp_msg_t *self, lp_msg_t *src)
{
    zmq_msg_move(&self->body, &src->body);
}

/* libzmq's receive buffer (ZMQ_IN_BATCH_SIZE, 8 KiB by default): a received frame larger
 * than it has an allocation of its own, and one of 32 bytes or less lies in its zmq_msg_t. */
#define S_ZMQ_IN_BATCH 8192

/* The frame's bytes moved into an allocation of their own; returns where they are now, NULL
 * when they stay (empty, held in the zmq_msg_t itself, too large to lie in libzmq's buffer,
 * or no memory for the copy: then the frame is as it was). */
static const uint8_t *s_own_frame(zmq_msg_t *frame)
{
    size_t len = zmq_msg_size(frame);
    uintptr_t at = (uintptr_t)zmq_msg_data(frame);
    if (len == 0 || len > S_ZMQ_IN_BATCH || (at >= (uintptr_t)frame && at < (uintptr_t)(frame + 1)))
        return NULL;
    zmq_msg_t copy;
    if (zmq_msg_init_size(&copy, len) < 0)
        return NULL;
    memcpy(zmq_msg_data(&copy), zmq_msg_data(frame), len);
    zmq_msg_move(frame, &copy); /* releases the received bytes */
    return zmq_msg_data(frame);
}

void lp_msg_keep(lp_msg_t *self)
{
    const uint8_t *now = s_own_frame(&self->head);
    /* The current view of the header frame's meta follows it (its strings are copies of its
     * own); stale views are read only for those copies. */
    if (now && self->index_ok)
        self->index->base = now + self->meta_off;
    s_own_frame(&self->body);
    s_own_frame(&self->identity);
}

void lp_msg_share_body(lp_msg_t *self, lp_msg_t *src)
{
    zmq_msg_copy(&self->body, &src->body);
}

lp_msg_t *lp_msg_error(const uint8_t *req_id, int status, const char *code, const char *message)
{
    lp_msg_t *self = lp_msg_new(LP_CMD_ERROR, req_id);
    json_t *meta = lp_msg_meta_rw(self);
    json_object_set_new(meta, "status", json_integer(status));
    if (code)
        json_object_set_new(meta, "code", json_string(code));
    json_object_set_new(meta, "retryable", json_false());
    size_t len = 0;
    char *body = lp_error_body(status, NULL, code, NULL, message, &len);
    lp_msg_give_body(self, body, len);
    return self;
}
