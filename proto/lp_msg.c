#include "lp_msg.h"

#include <errno.h>
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
        char jerr[LP_ERR_LEN];
        parsed = lp_json_parse(zmq_msg_data(meta), zmq_msg_size(meta), jerr);
        if (!json_is_object(parsed)) {
            json_decref(parsed);
            lp_err_set(err, "meta is not a JSON object: %s", parsed ? "wrong type" : jerr);
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

/* Add the pending members to the received meta text without re-encoding it: the text up to
 * its closing brace, a comma, the new members. A member the meta already has is replaced
 * instead (the whole meta is re-encoded), so no key ever appears twice. */
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
    const char *raw = zmq_msg_data(&self->meta_raw);
    size_t end = zmq_msg_size(&self->meta_raw);
    while (end > 0 && raw[end - 1] != '}')
        end--;
    if (end == 0 || json_object_size(self->extra) == 0) {
        s_merge_extra(self); /* nothing received to keep */
        return;
    }
    size_t add_len = 0;
    char *add = lp_json_dump(self->extra, &add_len); /* "{...}" */
    bool members = self->meta && json_object_size(self->meta) > 0;
    size_t keep = end - 1, len = keep + (members ? 1 : 0) + add_len - 1;
    zmq_msg_t out;
    if (zmq_msg_init_size(&out, len) < 0) {
        free(add);
        s_merge_extra(self); /* no memory for the copy: re-encode on send instead */
        return;
    }
    char *o = zmq_msg_data(&out);
    memcpy(o, raw, keep);
    if (members)
        o[keep++] = ',';
    memcpy(o + keep, add + 1, add_len - 1);
    free(add);
    zmq_msg_move(&self->meta_raw, &out); /* releases the received text */
    zmq_msg_close(&out);
    /* The object says the same as the text now (a message whose send failed stays whole). */
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
        char *text = lp_json_dump(self->meta, &len);
        zmq_msg_close(&self->meta_raw);
        zmq_msg_init_size(&self->meta_raw, len);
        memcpy(zmq_msg_data(&self->meta_raw), text, len);
        free(text);
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

static int s_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int lp_req_id_parse(const char *text, uint8_t *id)
{
    size_t o = 0;
    for (size_t i = 0; i < LP_REQ_ID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            if (text[o++] != '-')
                return -1;
        }
        int hi = s_hex_digit(text[o]);
        int lo = hi < 0 ? -1 : s_hex_digit(text[o + 1]);
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

static void s_free_body(void *data, void *hint)
{
    LP_UNUSED(hint);
    free(data);
}

void lp_msg_give_body(lp_msg_t *self, void *data, size_t len)
{
    zmq_msg_close(&self->body);
    if (zmq_msg_init_data(&self->body, data, len, s_free_body, NULL) < 0) {
        /* Cannot happen with a valid buffer; keep ownership rules simple anyway. */
        free(data);
        zmq_msg_init(&self->body);
    }
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
