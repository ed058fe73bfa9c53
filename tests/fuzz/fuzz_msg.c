/* fuzz_msg: lp_msg_recv, the one decoder of protocol messages, on any multipart message.
 *
 * Input: byte 0 = flags, byte 1 = frame count (1..8), then each frame as a 2-byte
 * little-endian length and that many bytes (a length of 0xFFFF stands for a header frame
 * whose meta is LP_META_MAX + 1 bytes; missing bytes make short or empty frames).
 * flags bit 0: send from a DEALER to a ROUTER (the ROUTER adds the identity frame) and decode
 *              with from_router = true; otherwise send over a PAIR and decode with
 *              from_router = bit 2 (the first frame is then the identity);
 * flags bit 1: change the meta before sending the decoded message back;
 * flags bit 3: add members with lp_msg_meta_add (one replacing "model", which the meta may
 *              have) before sending it back, so the splice path writes the meta;
 * flags bit 4: keep the decoded message (lp_msg_keep: its frames copied) before reading it.
 * Sockets are created once (inproc). Every message must be consumed whole; a decoded message
 * must be valid (known command, 16-byte or no request id, meta an object), its member readers
 * (which read the frame, not a tree) must say what the tree says, and sending it back with
 * lp_msg_send must decode to the same message. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "fuzz.h"
#include "lp_json.h"
#include "lp_msg.h"

#define S_MAX_FRAMES 8
#define S_WAIT_MS    2000

static void *s_ctx, *s_pair_a, *s_pair_b, *s_dealer, *s_router;

static void *s_socket(int type)
{
    void *s = zmq_socket(s_ctx, type);
    FZ_CHECK(s != NULL, "zmq_socket: %s", zmq_strerror(zmq_errno()));
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_setup();
    s_ctx = zmq_ctx_new();
    FZ_CHECK(s_ctx != NULL, "zmq_ctx_new");
    s_pair_a = s_socket(ZMQ_PAIR);
    s_pair_b = s_socket(ZMQ_PAIR);
    s_router = s_socket(ZMQ_ROUTER);
    s_dealer = s_socket(ZMQ_DEALER);
    zmq_setsockopt(s_dealer, ZMQ_ROUTING_ID, "fuzz-dealer", 11);
    FZ_CHECK(zmq_bind(s_pair_b, "inproc://fuzz-pair") == 0 &&
                 zmq_connect(s_pair_a, "inproc://fuzz-pair") == 0 &&
                 zmq_bind(s_router, "inproc://fuzz-router") == 0 &&
                 zmq_connect(s_dealer, "inproc://fuzz-router") == 0,
             "inproc set-up: %s", zmq_strerror(zmq_errno()));
    return 0;
}

static bool s_wait(void *socket, long ms)
{
    zmq_pollitem_t it = {socket, 0, ZMQ_POLLIN, 0};
    return zmq_poll(&it, 1, ms) == 1 && (it.revents & ZMQ_POLLIN);
}

/* Receive one message that must be there. */
static lp_msg_t *s_recv(void *socket, bool from_router, char *err)
{
    FZ_CHECK(s_wait(socket, S_WAIT_MS), "message did not arrive");
    lp_msg_t *m = lp_msg_recv(socket, from_router, err);
    FZ_CHECK(m || err[0], "lp_msg_recv: neither a message nor a reason");
    FZ_CHECK(!s_wait(socket, 0), "frames left on the socket after lp_msg_recv");
    return m;
}

/* Before any tree is built, each member reader must agree with the tree decoded from the same
 * frame: for every member, and for every member of an object member (parent.key). */
static void s_check_readers(lp_msg_t *m, const void *frame, size_t len)
{
    char err[LP_ERR_LEN];
    json_t *tree = len ? lp_meta_decode(frame, len, err) : json_object();
    FZ_CHECK(tree != NULL, "an accepted meta does not decode: %s", err);
    const char *key;
    json_t *v;
    json_object_foreach(tree, key, v)
    {
        FZ_CHECK(lp_msg_meta_has(m, key), "member '%s' not found", key);
        const char *s = lp_msg_meta_str(m, key);
        FZ_CHECK(json_is_string(v) ? s && strcmp(s, json_string_value(v)) == 0 : s == NULL,
                 "string member '%s'", key);
        FZ_CHECK(lp_msg_meta_int(m, key, -7) == lp_json_int(tree, key, -7), "integer member '%s'",
                 key);
        double n = lp_msg_meta_num(m, key, -7.5), want = lp_json_num(tree, key, -7.5);
        FZ_CHECK(n == want, "number member '%s': %g, not %g", key, n, want);
        FZ_CHECK(lp_msg_meta_bool(m, key, true) == lp_json_bool(tree, key, true) &&
                     lp_msg_meta_bool(m, key, false) == lp_json_bool(tree, key, false),
                 "boolean member '%s'", key);
        const char *sub;
        json_t *x;
        json_object_foreach(json_is_object(v) ? v : NULL, sub, x)
        {
            FZ_CHECK(lp_msg_meta_sub_int(m, key, sub, -7) == lp_json_int(v, sub, -7),
                     "integer member '%s.%s'", key, sub);
        }
    }
    /* (unless the fuzzer wrote that very key, then it was checked above) */
    FZ_CHECK(json_object_get(tree, "fuzz-absent") ||
                 (!lp_msg_meta_has(m, "fuzz-absent") && lp_msg_meta_str(m, "fuzz-absent") == NULL &&
                  lp_msg_meta_sub_int(m, "fuzz-absent", "x", -7) == -7),
             "an absent member was found");
    json_decref(tree);
}

/* What a decoded message must be, with every accessor exercised. */
static void s_check(lp_msg_t *m, bool expect_identity)
{
    lp_cmd_t cmd = lp_msg_cmd(m);
    FZ_CHECK(cmd >= 1 && cmd <= LP_CMD_MAX, "decoded command %d", (int)cmd);
    FZ_CHECK(strcmp(lp_cmd_name((int)cmd), "?") != 0, "command %d has no name", (int)cmd);
    char idstr[LP_REQ_ID_STR_LEN];
    const char *s = lp_msg_req_id_str(m, idstr);
    FZ_CHECK(strlen(s) == (lp_msg_req_id(m) ? 36u : 1u), "request id text '%s'", s);
    FZ_CHECK(json_is_object(lp_msg_meta(m)), "meta is not an object");
    (void)lp_msg_meta_str(m, "model");
    (void)lp_msg_meta_int(m, "status", 0);
    size_t len = 0;
    const void *body = lp_msg_body(m, &len);
    FZ_CHECK(len == 0 || body != NULL, "body of %zu bytes without data", len);
    size_t ilen = 0;
    const void *id = lp_msg_identity(m, &ilen);
    FZ_CHECK(expect_identity ? id != NULL : id == NULL, "identity %s", id ? "present" : "missing");
}

/* Send m back the way it came and check it decodes to the same message. */
static void s_round_trip(lp_msg_t *m, bool modify, bool add, void *send_on, void *recv_on,
                         bool recv_from_router)
{
    if (modify)
        json_object_set_new(lp_msg_meta_rw(m), "fuzz", json_integer(42));
    /* What the other side must read (taken before any addition: reading the whole meta
     * after one would fold it into the tree, and the send would not splice). */
    json_t *meta = json_deep_copy(lp_msg_meta(m));
    if (add) {
        json_t *added = json_pack("{s:s,s:i}", "model", "fuzz-group", "fuzz-added", 7);
        const char *key;
        json_t *v;
        json_object_foreach(added, key, v) lp_msg_meta_add(m, key, json_incref(v));
        json_object_update(meta, added);
        json_decref(added);
        FZ_CHECK(strcmp(lp_msg_meta_str(m, "model"), "fuzz-group") == 0,
                 "an addition does not read back");
    }
    lp_cmd_t cmd = lp_msg_cmd(m);
    const uint8_t *rid = lp_msg_req_id(m);
    uint8_t id[LP_REQ_ID_LEN];
    if (rid)
        memcpy(id, rid, sizeof id);
    size_t len = 0;
    const void *b = lp_msg_body(m, &len);
    void *body = malloc(len ? len : 1);
    FZ_CHECK(body != NULL, "out of memory");
    if (len)
        memcpy(body, b, len);
    FZ_CHECK(lp_msg_send(&m, send_on) == 0, "lp_msg_send: %s", zmq_strerror(zmq_errno()));
    FZ_CHECK(m == NULL, "lp_msg_send kept the message");
    char err[LP_ERR_LEN];
    lp_msg_t *back = s_recv(recv_on, recv_from_router, err);
    FZ_CHECK(back != NULL, "a message sent by lp_msg_send does not decode: %s", err);
    FZ_CHECK(lp_msg_cmd(back) == cmd, "command changed");
    FZ_CHECK(rid ? lp_msg_req_id(back) && memcmp(lp_msg_req_id(back), id, sizeof id) == 0
                 : lp_msg_req_id(back) == NULL,
             "request id changed");
    FZ_CHECK(json_equal(lp_msg_meta(back), meta), "meta changed");
    size_t blen = 0;
    const void *bb = lp_msg_body(back, &blen);
    FZ_CHECK(blen == len && (len == 0 || memcmp(bb, body, len) == 0), "body changed");
    lp_msg_destroy(&back);
    json_decref(meta);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t flags = data[0];
    size_t nframes = 1 + data[1] % S_MAX_FRAMES;
    bool via_router = flags & 1;
    bool modify = flags & 2;
    bool add = flags & 8;
    bool keep = flags & 16;
    bool pair_identity = !via_router && (flags & 4);
    void *out = via_router ? s_dealer : s_pair_a;
    void *in = via_router ? s_router : s_pair_b;
    size_t off = 2;
    char *big = NULL;
    const uint8_t *meta = NULL; /* the header frame's meta, if the message has one */
    size_t meta_len = 0, head_at = pair_identity ? 1 : 0;
    for (size_t f = 0; f < nframes; f++) {
        size_t len = 0;
        const void *frame = "";
        if (off + 2 <= size) {
            len = (size_t)data[off] | (size_t)data[off + 1] << 8;
            off += 2;
        }
        if (len == 0xFFFF) {
            len = 6 + LP_META_MAX + 1;
            if (!big) {
                big = malloc(len);
                FZ_CHECK(big != NULL, "out of memory");
                memcpy(big, LP_PROTO_SIGNATURE "\x02\x00", 6); /* HEARTBEAT, no request id */
                memset(big + 6, '{', len - 6);
            }
            frame = big;
        } else {
            len = len < size - off ? len : size - off;
            frame = data + off;
            off += len;
        }
        if (f == head_at && len >= 6 && len >= 6 + (size_t)((const uint8_t *)frame)[5]) {
            meta = (const uint8_t *)frame + 6 + ((const uint8_t *)frame)[5];
            meta_len = len - 6 - ((const uint8_t *)frame)[5];
        }
        int rc = zmq_send(out, frame, len, ZMQ_DONTWAIT | (f + 1 < nframes ? ZMQ_SNDMORE : 0));
        FZ_CHECK(rc >= 0, "zmq_send: %s", zmq_strerror(zmq_errno()));
    }

    char err[LP_ERR_LEN];
    bool from_router = via_router || pair_identity;
    lp_msg_t *m = s_recv(in, from_router, err);
    if (m && keep)
        lp_msg_keep(m);
    if (m)
        s_check_readers(m, meta, meta_len);
    free(big);
    if (!m)
        return 0;
    s_check(m, from_router);
    if (via_router)
        s_round_trip(m, modify, add, s_router, s_dealer, false);
    else
        s_round_trip(m, modify, add, s_pair_b, s_pair_a, pair_identity);
    return 0;
}
