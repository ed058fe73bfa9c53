/* lp_msg: the one encoder/decoder of protocol messages (lp_proto.h, PROTOCOL.md). Nothing
 * else in the tree knows the frame order or the meta's encoding (MessagePack). A received
 * meta is checked in one pass that notes its top-level members; the lp_msg_meta_<type>
 * readers take them from there, and a jansson tree is built only for lp_msg_meta(). Metas
 * of known members (the worker's, usage records) are written field by field (lp_mapw,
 * lp_msg_set_meta), others from jansson values.
 * Bodies travel as zmq_msg_t: moved or shared between messages without copying. */
#ifndef LP_MSG_H
#define LP_MSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_buf.h"
#include "lp_proto.h"
#include "lp_util.h"

/* Text form of a request id: a canonical UUID, 36 chars + NUL. */
#define LP_REQ_ID_STR_LEN 37

typedef struct lp_msg lp_msg_t;

/* A new message. req_id (LP_REQ_ID_LEN bytes) may be NULL for link-level commands. */
lp_msg_t *lp_msg_new(lp_cmd_t cmd, const uint8_t *req_id);
/* Free a message; NULL-safe, nulls the pointer. */
void lp_msg_destroy(lp_msg_t **self_p);

/* Receive one message without blocking. from_router: the socket is a ROUTER, so an identity
 * frame comes first. Returns NULL with err[0] == 0 when nothing is waiting, NULL with a
 * reason in err (LP_ERR_LEN) when the message was malformed (it is consumed and dropped). */
lp_msg_t *lp_msg_recv(void *socket, bool from_router, char *err);
/* Send without blocking; on success the message is destroyed and *self_p nulled. On failure
 * returns -1 with errno (EAGAIN: peer queue full, EHOSTUNREACH: unknown identity) and the
 * message stays with the caller. */
LP_MUSTCHECK int lp_msg_send(lp_msg_t **self_p, void *socket);

lp_cmd_t lp_msg_cmd(const lp_msg_t *self);
/* Change the command (a message sent on under another name; tests use it). */
void lp_msg_set_cmd(lp_msg_t *self, lp_cmd_t cmd);
/* The request id bytes, or NULL when the message has none. */
const uint8_t *lp_msg_req_id(const lp_msg_t *self);
/* Request id as UUID text into buf[LP_REQ_ID_STR_LEN] ("-" when none); returns buf. */
const char *lp_msg_req_id_str(const lp_msg_t *self, char *buf);
/* Format any 16-byte id as UUID text. */
void lp_req_id_format(const uint8_t *id, char *buf);
/* Parse UUID text (the form lp_req_id_format writes, either case) into id; -1 when it is
 * not one. */
int lp_req_id_parse(const char *text, uint8_t *id);

/* Routing identity (ROUTER sockets): set to address a peer, read to know the sender. */
void lp_msg_set_identity(lp_msg_t *self, const void *data, size_t len);
const void *lp_msg_identity(const lp_msg_t *self, size_t *len);
/* Move the identity of src into self (src loses it). */
void lp_msg_move_identity(lp_msg_t *self, lp_msg_t *src);

/* Meta object, read-only (borrowed; an empty object when the message had none). Built from
 * the frame on first use: for a few members the readers below are cheaper. */
const json_t *lp_msg_meta(lp_msg_t *self);
/* Meta object to modify (borrowed); it is re-encoded on send. */
json_t *lp_msg_meta_rw(lp_msg_t *self);
/* Add the member key = value (reference taken) to the meta, the relay's cheap path: on send
 * it follows the received members, which are neither decoded nor re-encoded (a received
 * member of the same name is left out, so no key appears twice). Readers see it at once. */
void lp_msg_meta_add(lp_msg_t *self, const char *key, json_t *value);
/* Give self (a new message, meta empty) src's meta: the received frame shared when src's
 * meta is unchanged, so lp_msg_meta_add on self is the cheap path too. */
void lp_msg_meta_copy(lp_msg_t *self, lp_msg_t *src);
/* One member of the meta, as the lp_json_* readers read it from an object: a string
 * (borrowed, valid while the message lives and the member is not replaced: lp_msg_meta_add of
 * the same key, lp_msg_meta_rw, lp_msg_set_meta; NULL when absent or not a string), an integer,
 * a number (integer or real), a boolean, present at all (null included), or an integer
 * member of an object member (parent.key). Without a tree they read the received frame.
 * self may be NULL (as a message without the member). */
const char *lp_msg_meta_str(lp_msg_t *self, const char *key);
long long lp_msg_meta_int(lp_msg_t *self, const char *key, long long def);
double lp_msg_meta_num(lp_msg_t *self, const char *key, double def);
bool lp_msg_meta_bool(lp_msg_t *self, const char *key, bool def);
bool lp_msg_meta_has(lp_msg_t *self, const char *key);
long long lp_msg_meta_sub_int(lp_msg_t *self, const char *parent, const char *key, long long def);

/* A view of one MessagePack map (a meta, or one usage record of a RECORD body): checked in
 * one pass as a received meta is, its top-level members noted, read like a message's meta
 * without a jansson tree. It borrows the bytes: keep them while the view is used. */
typedef struct lp_mview lp_mview_t;
/* Check the map at data + *off and view it (*off moves past it); NULL with a reason in err
 * (LP_ERR_LEN). */
lp_mview_t *lp_mview_next(const void *data, size_t len, size_t *off, char *err);
void lp_mview_destroy(lp_mview_t **self_p);
/* The map's bytes. */
const void *lp_mview_bytes(const lp_mview_t *self, size_t *len);
/* The map as a new jansson object (decoded without a second check: the view checked it). */
json_t *lp_mview_tree(const lp_mview_t *self);
/* Members, as lp_msg_meta_str & co read them (self may be NULL; strings live as the view). */
const char *lp_mview_str(const lp_mview_t *self, const char *key);
long long lp_mview_int(const lp_mview_t *self, const char *key, long long def);
double lp_mview_num(const lp_mview_t *self, const char *key, double def);
bool lp_mview_bool(const lp_mview_t *self, const char *key, bool def);
bool lp_mview_has(const lp_mview_t *self, const char *key);
long long lp_mview_sub_int(const lp_mview_t *self, const char *parent, const char *key,
                           long long def);

/* A meta's encoding, a MessagePack map (PROTOCOL.md): a tree encoded into a new buffer
 * (caller frees); exactly one map decoded into a tree (NULL with a reason in err, LP_ERR_LEN). */
char *lp_meta_encode(const json_t *meta, size_t *len);
json_t *lp_meta_decode(const void *data, size_t len, char *err);

/* A map written member by member, without a jansson object: a RECORD's usage record has a
 * fixed shape and is written once per request. The decoder reads it like any meta. Strings
 * are C strings (NULL writes nil); a byte that is not UTF-8 becomes '?', as lp_json_text
 * does, so the map always decodes. */
typedef struct {
    lp_buf_t buf;
    uint32_t count;
    uint32_t inner; /* members still owed to a map member (lp_mapw_map) */
} lp_mapw_t;
void lp_mapw_str(lp_mapw_t *w, const char *key, const char *value);
void lp_mapw_int(lp_mapw_t *w, const char *key, long long value);
void lp_mapw_real(lp_mapw_t *w, const char *key, double value);
void lp_mapw_bool(lp_mapw_t *w, const char *key, bool value);
void lp_mapw_nil(lp_mapw_t *w, const char *key);
/* A map member of `members` members: the next that many writes go into it (one level). */
void lp_mapw_map(lp_mapw_t *w, const char *key, uint32_t members);
/* The map (caller frees); the writer is empty again. */
char *lp_mapw_finish(lp_mapw_t *w, size_t *len);
/* Make the map w holds the meta (w is emptied), in place of any the message had: the cheap
 * way to write a meta of known members. */
void lp_msg_set_meta(lp_msg_t *self, lp_mapw_t *w);

/* A message kept past the turn it arrived in (a stream's HEAD, held for the usage record; a
 * router's job; a stream's END or CHUNK waiting for a slow client): its frames are copied into
 * memory of their own. A received frame may lie in libzmq's receive buffer (8 KiB), which
 * stays allocated while any message in it lives, so a kept message would hold the whole
 * buffer. Frames larger than that buffer, or of 32 bytes or less (held in the zmq_msg_t),
 * never lie in it and are not copied. Meta strings read from it stay valid; body and identity
 * pointers taken before do not. */
void lp_msg_keep(lp_msg_t *self);

/* Body bytes (borrowed, valid until the body changes); *len may be 0. */
const void *lp_msg_body(lp_msg_t *self, size_t *len);
/* Copy bytes into the body. */
void lp_msg_set_body(lp_msg_t *self, const void *data, size_t len);
/* Take ownership of a malloc'd buffer as the body, without copying. */
void lp_msg_give_body(lp_msg_t *self, void *data, size_t len);
/* Move src's body into self (src's body becomes empty). */
void lp_msg_move_body(lp_msg_t *self, lp_msg_t *src);
/* Share src's body with self (reference counted for large bodies, no copy). */
void lp_msg_share_body(lp_msg_t *self, lp_msg_t *src);

/* An ERROR for req_id: meta {status, code, retryable:false}, body = the OpenAI error JSON with
 * type from the status and code (NULL = the status as a string). */
lp_msg_t *lp_msg_error(const uint8_t *req_id, int status, const char *code, const char *message);

/* Name of a command for logs ("REQUEST"), "?" when unknown. */
const char *lp_cmd_name(int cmd);

#endif
