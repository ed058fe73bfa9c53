#include "lp_msg.h"

#include <errno.h>
#include <msgpack.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "lp_json.h"

/* Frames after the optional identity: signature, command, request id, meta, body. */
#define S_FRAMES 5

struct lp_msg {
    zmq_msg_t identity;
    bool has_identity;
    uint8_t cmd;
    bool has_req_id;
    uint8_t req_id[LP_REQ_ID_LEN];
    zmq_msg_t meta_raw; /* as received; resent untouched unless meta_dirty */
    json_t *meta;
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
    zmq_msg_init(&self->meta_raw);
    zmq_msg_init(&self->body);
    return self;
}

void lp_msg_destroy(lp_msg_t **self_p)
{
    lp_msg_t *self = *self_p;
    if (!self)
        return;
    zmq_msg_close(&self->identity);
    zmq_msg_close(&self->meta_raw);
    zmq_msg_close(&self->body);
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

/* ---- the meta frame: a MessagePack map (PROTOCOL.md), read into and written from jansson
 * values, so every daemon keeps the json_t API while no JSON text is lexed or written ---- */

static void s_pack(msgpack_packer *pk, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        msgpack_pack_map(pk, json_object_size(v));
        const char *key;
        json_t *x;
        json_object_foreach((json_t *)v, key, x)
        {
            size_t n = strlen(key);
            msgpack_pack_str(pk, n);
            msgpack_pack_str_body(pk, key, n);
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

/* The map header goes first but its count is known last: room for the largest (map 32,
 * which every decoder takes whatever the count) is kept at the start. */
#define S_MAPW_HEAD 5

static msgpack_packer s_mapw_key(lp_mapw_t *w, const char *key)
{
    if (w->buf.len == 0)
        lp_buf_append(&w->buf, "\xdf\0\0\0\0", S_MAPW_HEAD);
    w->count++;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w->buf, s_buf_write);
    size_t n = strlen(key);
    msgpack_pack_str(&pk, n);
    msgpack_pack_str_body(&pk, key, n);
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
    msgpack_pack_double(&pk, value);
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

char *lp_mapw_finish(lp_mapw_t *w, size_t *len)
{
    if (w->buf.len == 0)
        lp_buf_append(&w->buf, "\x80", 1); /* the empty map */
    else
        for (int i = 0; i < 4; i++)
            w->buf.data[1 + i] = (char)(w->count >> (24 - 8 * i));
    w->count = 0;
    return lp_buf_steal(&w->buf, len);
}

/* A MessagePack string's bytes: msgpack-c gives an empty one no pointer, jansson wants one. */
static const char *s_str(const msgpack_object *o)
{
    return o->via.str.size ? o->via.str.ptr : "";
}

/* A MessagePack string as jansson takes it: UTF-8 without NUL (as the JSON meta was). */
static bool s_text_ok(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR && !memchr(s_str(o), 0, o->via.str.size);
}

static json_t *s_unpack(const msgpack_object *o, char *err)
{
    switch (o->type) {
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (!s_text_ok(&kv->key)) {
                lp_err_set(err, "a map key that is not a UTF-8 string");
                json_decref(m);
                return NULL;
            }
            const char *k = s_str(&kv->key);
            size_t klen = kv->key.via.str.size;
            json_t *v = s_unpack(&kv->val, err);
            if (!v || json_object_setn_new(m, k, klen, v) < 0) {
                if (v)
                    lp_err_set(err, "a map key that is not UTF-8");
                json_decref(m);
                return NULL;
            }
            if (json_object_size(m) != i + 1) { /* the key replaced an earlier member */
                lp_err_set(err, "duplicate key '%.*s'", (int)LP_MIN(klen, 40), k);
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            json_t *v = s_unpack(&o->via.array.ptr[i], err);
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        return a;
    }
    case MSGPACK_OBJECT_STR: {
        json_t *v = s_text_ok(o) ? json_stringn(s_str(o), o->via.str.size) : NULL;
        if (!v)
            lp_err_set(err, "a string that is not UTF-8 without NUL");
        return v;
    }
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            lp_err_set(err, "an integer past 2^63");
            return NULL;
        }
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        json_t *v = json_real(o->via.f64); /* NULL for NaN and infinities */
        if (!v)
            lp_err_set(err, "a number that is not finite");
        return v;
    }
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_NIL:
        return json_null();
    default:
        lp_err_set(err, "binary or extension data");
        return NULL;
    }
}

static uint64_t s_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* msgpack-c's C unpacker allocates a container's elements by its declared count before
 * reading them (its C++ side has limits, the C side none), so a 5-byte header claiming 2^32
 * entries would ask for 128 GiB. Walk the headers first: every element takes at least one
 * byte, so no container may promise more elements than bytes remain. */
static bool s_counts_bounded(const uint8_t *p, size_t len, size_t *end)
{
    size_t pos = 0;
    uint64_t expected = 1; /* items still to read */
    while (expected > 0) {
        if (pos >= len || expected > len - pos)
            return false;
        uint8_t b = p[pos++];
        expected--;
        uint64_t items = 0, skip = 0; /* elements it adds; bytes after the type byte */
        size_t lenbytes = 0;          /* size of a length or count field */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, false, true */
        } else if (b <= 0x8f) {
            items = 2u * (b & 0x0f);
        } else if (b <= 0x9f) {
            items = b & 0x0f;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else if (b == 0xc4 || b == 0xd9) { /* bin 8, str 8 */
            lenbytes = 1;
        } else if (b == 0xc5 || b == 0xda) {
            lenbytes = 2;
        } else if (b == 0xc6 || b == 0xdb) {
            lenbytes = 4;
        } else if (b >= 0xc7 && b <= 0xc9) { /* ext 8/16/32: length, then a type byte */
            lenbytes = (size_t)1 << (b - 0xc7);
            skip = 1;
        } else if (b == 0xca || b == 0xcb) {
            skip = b == 0xca ? 4 : 8;
        } else if (b >= 0xcc && b <= 0xd3) { /* (u)int 8..64 */
            skip = (uint64_t)1 << ((b - 0xcc) & 3);
        } else if (b >= 0xd4 && b <= 0xd8) { /* fixext 1..16 and its type byte */
            skip = 1 + ((uint64_t)1 << (b - 0xd4));
        } else if (b == 0xdc || b == 0xdd) {
            if (len - pos < (b == 0xdc ? 2u : 4u))
                return false;
            items = s_be(p + pos, b == 0xdc ? 2 : 4);
            pos += b == 0xdc ? 2 : 4;
        } else if (b == 0xde || b == 0xdf) {
            if (len - pos < (b == 0xde ? 2u : 4u))
                return false;
            items = 2 * s_be(p + pos, b == 0xde ? 2 : 4);
            pos += b == 0xde ? 2 : 4;
        } else {
            return false; /* 0xc1: never used */
        }
        if (lenbytes) {
            if (len - pos < lenbytes)
                return false;
            skip += s_be(p + pos, lenbytes);
            pos += lenbytes;
        }
        if (skip > len - pos)
            return false;
        pos += (size_t)skip;
        expected += items;
    }
    *end = pos;
    return true;
}

json_t *lp_meta_decode_next(const void *data, size_t len, size_t *off, char *err)
{
    const uint8_t *p = (const uint8_t *)data + *off;
    size_t left = len - *off, end = 0;
    if (!s_counts_bounded(p, left, &end)) {
        lp_err_set(err, "not MessagePack, or a container longer than the data");
        return NULL;
    }
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 2048)) {
        lp_err_set(err, "out of memory");
        return NULL;
    }
    msgpack_object o;
    size_t used = 0;
    json_t *map = NULL;
    msgpack_unpack_return rc = msgpack_unpack((const char *)p, end, &used, &zone, &o);
    if (rc != MSGPACK_UNPACK_SUCCESS || used != end)
        lp_err_set(err, "not MessagePack");
    else if (o.type != MSGPACK_OBJECT_MAP)
        lp_err_set(err, "not a map");
    else if ((map = s_unpack(&o, err)) != NULL)
        *off += end;
    msgpack_zone_destroy(&zone);
    return map;
}

json_t *lp_meta_decode(const void *data, size_t len, char *err)
{
    size_t off = 0;
    json_t *meta = lp_meta_decode_next(data, len, &off, err);
    if (meta && off != len) {
        lp_err_set(err, "%zu bytes after the map", len - off);
        json_decref(meta);
        return NULL;
    }
    return meta;
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

static bool s_more(void *socket)
{
    int more = 0;
    size_t sz = sizeof more;
    return zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &sz) == 0 && more;
}

lp_msg_t *lp_msg_recv(void *socket, bool from_router, char *err)
{
    if (err)
        err[0] = '\0';
    zmq_msg_t frames[S_FRAMES + 1];
    size_t want = S_FRAMES + (from_router ? 1 : 0);
    size_t got = 0;
    for (size_t i = 0; i < want; i++)
        zmq_msg_init(&frames[i]);
    lp_msg_t *self = NULL;
    for (; got < want; got++) {
        if (zmq_msg_recv(&frames[got], socket, ZMQ_DONTWAIT) < 0) {
            if (got == 0 && errno == EAGAIN)
                goto done; /* nothing waiting */
            lp_err_set(err, "receive failed after %zu frames: %s", got, zmq_strerror(errno));
            goto done;
        }
        if (got + 1 < want && !zmq_msg_more(&frames[got])) {
            lp_err_set(err, "message has %zu frames, expected %zu", got + 1, want);
            got++;
            goto done;
        }
    }
    if (s_more(socket)) {
        s_drain(socket, &frames[0]);
        lp_err_set(err, "message has more than %zu frames", want);
        goto done;
    }
    size_t base = from_router ? 1 : 0;
    zmq_msg_t *sig = &frames[base], *cmd = &frames[base + 1], *rid = &frames[base + 2],
              *meta = &frames[base + 3];
    if (zmq_msg_size(sig) != LP_PROTO_SIGNATURE_LEN ||
        memcmp(zmq_msg_data(sig), LP_PROTO_SIGNATURE, LP_PROTO_SIGNATURE_LEN) != 0) {
        char seen[8] = {0};
        size_t n = LP_MIN(zmq_msg_size(sig), 4);
        for (size_t i = 0; i < n; i++) {
            char c = ((char *)zmq_msg_data(sig))[i];
            seen[i] = c >= 0x20 && c < 0x7f ? c : '?';
        }
        lp_err_set(err, "protocol mismatch: peer speaks '%s', this build speaks %s", seen,
                   LP_PROTO_SIGNATURE);
        goto done;
    }
    if (zmq_msg_size(cmd) != 1 || ((uint8_t *)zmq_msg_data(cmd))[0] == 0 ||
        ((uint8_t *)zmq_msg_data(cmd))[0] > LP_CMD_MAX) {
        lp_err_set(err, "unknown command frame");
        goto done;
    }
    if (zmq_msg_size(rid) != 0 && zmq_msg_size(rid) != LP_REQ_ID_LEN) {
        lp_err_set(err, "request id of %zu bytes", zmq_msg_size(rid));
        goto done;
    }
    if (zmq_msg_size(meta) > LP_META_MAX) {
        lp_err_set(err, "meta frame of %zu bytes", zmq_msg_size(meta));
        goto done;
    }
    json_t *parsed = NULL;
    if (zmq_msg_size(meta) > 0) {
        char merr[LP_ERR_LEN];
        parsed = lp_meta_decode(zmq_msg_data(meta), zmq_msg_size(meta), merr);
        if (!parsed) {
            lp_err_set(err, "meta is not a MessagePack map: %s", merr);
            goto done;
        }
    }
    self = lp_msg_new((lp_cmd_t)((uint8_t *)zmq_msg_data(cmd))[0],
                      zmq_msg_size(rid) ? zmq_msg_data(rid) : NULL);
    self->meta = parsed;
    if (from_router) {
        zmq_msg_move(&self->identity, &frames[0]);
        self->has_identity = true;
    }
    zmq_msg_move(&self->meta_raw, meta);
    zmq_msg_move(&self->body, &frames[base + 4]);
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

static int s_send_bytes(void *socket, const void *data, size_t len, bool more)
{
    return zmq_send(socket, data, len, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) < 0 ? -1 : 0;
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

/* Fold pending additions into the meta object (it is re-encoded whole on send). */
static void s_merge_extra(lp_msg_t *self)
{
    if (!self->extra)
        return;
    if (!self->meta)
        self->meta = json_object();
    json_object_update(self->meta, self->extra);
    json_decref(self->extra);
    self->extra = NULL;
    self->meta_dirty = true;
}

/* Add the pending members to the received meta without re-encoding it: a new map header
 * with the larger count, the received members as they came, the new ones. A member the
 * meta already has is replaced instead (the whole meta is re-encoded), so no key ever
 * appears twice. */
static void s_splice_extra(lp_msg_t *self)
{
    const char *key;
    json_t *v;
    json_object_foreach(self->extra, key, v)
    {
        if (json_object_get(self->meta, key)) {
            s_merge_extra(self);
            return;
        }
    }
    const uint8_t *raw = zmq_msg_data(&self->meta_raw);
    size_t size = zmq_msg_size(&self->meta_raw), head = 0;
    uint32_t count = 0;
    if (size >= 1 && raw[0] >= 0x80 && raw[0] <= 0x8f) { /* fixmap */
        count = raw[0] & 0x0f;
        head = 1;
    } else if (size >= 3 && raw[0] == 0xde) { /* map 16 */
        count = (uint32_t)raw[1] << 8 | raw[2];
        head = 3;
    } else if (size >= 5 && raw[0] == 0xdf) { /* map 32 */
        count = (uint32_t)raw[1] << 24 | (uint32_t)raw[2] << 16 | (uint32_t)raw[3] << 8 | raw[4];
        head = 5;
    }
    size_t extra = json_object_size(self->extra);
    if (!head || extra == 0 || count > UINT32_MAX - extra) {
        s_merge_extra(self); /* nothing received to keep */
        return;
    }
    lp_buf_t b = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, s_buf_write);
    msgpack_pack_map(&pk, count + extra);
    lp_buf_append(&b, raw + head, size - head);
    json_object_foreach(self->extra, key, v)
    {
        size_t n = strlen(key);
        msgpack_pack_str(&pk, n);
        msgpack_pack_str_body(&pk, key, n);
        s_pack(&pk, v);
    }
    size_t len = 0;
    char *data = lp_buf_steal(&b, &len);
    s_give_frame(&self->meta_raw, data, len); /* releases the received frame */
    /* The object says the same as the frame now (a message whose send failed stays whole). */
    json_object_update(self->meta, self->extra);
    json_decref(self->extra);
    self->extra = NULL;
}

int lp_msg_send(lp_msg_t **self_p, void *socket)
{
    lp_msg_t *self = *self_p;
    if (self->extra && !self->meta_dirty)
        s_splice_extra(self);
    else
        s_merge_extra(self);
    if (self->meta_dirty) {
        size_t len = 0;
        char *packed = lp_meta_encode(self->meta, &len);
        s_give_frame(&self->meta_raw, packed, len);
        self->meta_dirty = false;
    }
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
    if (s_send_bytes(socket, LP_PROTO_SIGNATURE, LP_PROTO_SIGNATURE_LEN, true) < 0)
        return -1;
    if (s_send_bytes(socket, &self->cmd, 1, true) < 0 ||
        s_send_bytes(socket, self->req_id, self->has_req_id ? LP_REQ_ID_LEN : 0, true) < 0 ||
        s_send_frame(socket, &self->meta_raw, true) < 0 ||
        s_send_frame(socket, &self->body, false) < 0)
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
    s_merge_extra(self);
    if (!self->meta)
        self->meta = json_object();
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

const char *lp_msg_meta_str(lp_msg_t *self, const char *key)
{
    return lp_json_str(lp_msg_meta(self), key);
}

long long lp_msg_meta_int(lp_msg_t *self, const char *key, long long def)
{
    return lp_json_int(lp_msg_meta(self), key, def);
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
