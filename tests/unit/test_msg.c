/* test_msg: the lp_msg codec over real ZeroMQ sockets (inproc ROUTER <-> DEALER). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "harness.h"
#include "lp_json.h"
#include "lp_msg.h"

#define DEALER_ID "dealer-1"
#define WAIT_MS   1000

typedef struct {
    void *ctx;
    void *router; /* bound */
    void *dealer; /* connected, routing id DEALER_ID */
} pair_t;

static int s_pair_n;

static int pair_open(pair_t *p)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://test-msg-%d", s_pair_n++);
    int zero = 0;
    p->ctx = zmq_ctx_new();
    p->router = zmq_socket(p->ctx, ZMQ_ROUTER);
    p->dealer = zmq_socket(p->ctx, ZMQ_DEALER);
    if (!p->ctx || !p->router || !p->dealer)
        return -1;
    zmq_setsockopt(p->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(p->dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(p->dealer, ZMQ_ROUTING_ID, DEALER_ID, strlen(DEALER_ID));
    if (zmq_bind(p->router, ep) < 0 || zmq_connect(p->dealer, ep) < 0)
        return -1;
    return 0;
}

static void pair_close(pair_t *p)
{
    if (p->router)
        zmq_close(p->router);
    if (p->dealer)
        zmq_close(p->dealer);
    if (p->ctx)
        zmq_ctx_term(p->ctx);
    memset(p, 0, sizeof *p);
}

/* Wait for input on a socket; true when there is some. */
static bool wait_in(void *socket, long ms)
{
    zmq_pollitem_t it = {socket, 0, ZMQ_POLLIN, 0};
    return zmq_poll(&it, 1, ms) == 1 && (it.revents & ZMQ_POLLIN);
}

/* Wait, then receive one message. */
static lp_msg_t *recv_msg(void *socket, bool from_router, char *err)
{
    if (!wait_in(socket, WAIT_MS)) {
        snprintf(err, LP_ERR_LEN, "timeout");
        return NULL;
    }
    return lp_msg_recv(socket, from_router, err);
}

/* Send raw frames (sizes given) as one multipart message. */
static int send_raw(void *socket, const void *const *frames, const size_t *sizes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (zmq_send(socket, frames[i], sizes[i], i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
            return -1;
    }
    return 0;
}

/* Send a message given as its five parts (signature, command, request id, meta, body) in the
 * wire layout: one header frame (signature, command, the id's length, the id, the meta),
 * then the body. Parts of the wrong size go as they are, so a receiver must refuse them. */
static int send_parts(void *socket, const void *const *parts, const size_t *sizes)
{
    lp_buf_t head = {0};
    uint8_t idlen = (uint8_t)sizes[2];
    lp_buf_append(&head, parts[0], sizes[0]);
    lp_buf_append(&head, parts[1], sizes[1]);
    lp_buf_append(&head, &idlen, 1);
    lp_buf_append(&head, parts[2], sizes[2]);
    lp_buf_append(&head, parts[3], sizes[3]);
    const void *frames[] = {head.data, parts[4]};
    size_t fsizes[] = {head.len, sizes[4]};
    int rc = send_raw(socket, frames, fsizes, 2);
    lp_buf_free(&head);
    return rc;
}

/* Receive a message raw (no identity frame): its meta's bytes and its body, copied. */
static bool recv_wire(void *socket, lp_buf_t *meta, lp_buf_t *body)
{
    zmq_msg_t f;
    zmq_msg_init(&f);
    bool ok = wait_in(socket, WAIT_MS) && zmq_msg_recv(&f, socket, 0) >= 0 && zmq_msg_more(&f) &&
              zmq_msg_size(&f) >= 6;
    if (ok) {
        const uint8_t *h = zmq_msg_data(&f);
        size_t at = 6 + (size_t)h[5];
        ok = zmq_msg_size(&f) >= at;
        if (ok)
            lp_buf_append(meta, h + at, zmq_msg_size(&f) - at);
    }
    ok = ok && zmq_msg_recv(&f, socket, 0) >= 0 && !zmq_msg_more(&f);
    if (ok)
        lp_buf_append(body, zmq_msg_data(&f), zmq_msg_size(&f));
    zmq_msg_close(&f);
    return ok;
}

/* A meta frame (MessagePack) from JSON text; "" gives an empty frame. Caller frees. */
static char *packed(const char *json_text, size_t *len)
{
    *len = 0;
    if (!*json_text)
        return calloc(1, 1);
    json_t *v = json_loads(json_text, JSON_DECODE_ANY, NULL);
    char *out = v ? lp_meta_encode(v, len) : NULL;
    json_decref(v);
    return out;
}

/* A received meta frame as compact JSON text (caller frees), NULL if it does not decode. */
static char *unpacked(const void *data, size_t len)
{
    char err[LP_ERR_LEN];
    json_t *v = lp_meta_decode(data, len, err);
    char *text = v ? lp_json_dump(v, NULL) : NULL;
    json_decref(v);
    return text;
}

static const uint8_t s_rid[LP_REQ_ID_LEN] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                             0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};

static void test_req_id_format(void)
{
    uint8_t id[LP_REQ_ID_LEN];
    for (int i = 0; i < LP_REQ_ID_LEN; i++)
        id[i] = (uint8_t)i;
    char buf[LP_REQ_ID_STR_LEN];
    lp_req_id_format(id, buf);
    CHECK_STR(buf, "00010203-0405-0607-0809-0a0b0c0d0e0f");
    lp_req_id_format(s_rid, buf);
    CHECK_STR(buf, "00112233-4455-6677-8899-aabbccddeeff");
    CHECK(strlen(buf) == LP_REQ_ID_STR_LEN - 1);
    lp_msg_t *m = lp_msg_new(LP_CMD_REQUEST, s_rid);
    CHECK_STR(lp_msg_req_id_str(m, buf), "00112233-4455-6677-8899-aabbccddeeff");
    lp_msg_destroy(&m);
    m = lp_msg_new(LP_CMD_HEARTBEAT, NULL);
    CHECK_STR(lp_msg_req_id_str(m, buf), "-");
    CHECK(lp_msg_req_id(m) == NULL);
    lp_msg_destroy(&m);
    CHECK(m == NULL);
    lp_msg_destroy(&m);
    uint8_t back[LP_REQ_ID_LEN];
    CHECK(lp_req_id_parse("00112233-4455-6677-8899-aabbccddeeff", back) == 0);
    CHECK(memcmp(back, s_rid, LP_REQ_ID_LEN) == 0);
    CHECK(lp_req_id_parse("00112233-4455-6677-8899-AABBCCDDEEFF", back) == 0);
    CHECK(memcmp(back, s_rid, LP_REQ_ID_LEN) == 0);
    const char *bad[] = {"",
                         "00112233-4455-6677-8899-aabbccddeef",
                         "00112233-4455-6677-8899-aabbccddeeff0",
                         "0011223344556677-8899-aabbccddeeff",
                         "00112233-4455-6677-8899-aabbccddeefg",
                         "00112233_4455-6677-8899-aabbccddeeff"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(lp_req_id_parse(bad[i], back) == -1);
}

static void test_cmd_names(void)
{
    CHECK_STR(lp_cmd_name(LP_CMD_READY), "READY");
    CHECK_STR(lp_cmd_name(LP_CMD_REQUEST), "REQUEST");
    CHECK_STR(lp_cmd_name(LP_CMD_ERROR), "ERROR");
    CHECK_STR(lp_cmd_name(LP_CMD_ACK), "ACK");
    CHECK_STR(lp_cmd_name(0), "?");
    CHECK_STR(lp_cmd_name(LP_CMD_MAX + 1), "?");
    CHECK_STR(lp_cmd_name(-1), "?");
    CHECK_STR(lp_cmd_name(255), "?");
}

static void test_new_message_accessors(void)
{
    lp_msg_t *m = lp_msg_new(LP_CMD_CHUNK, s_rid);
    CHECK(lp_msg_cmd(m) == LP_CMD_CHUNK);
    lp_msg_set_cmd(m, LP_CMD_END);
    CHECK(lp_msg_cmd(m) == LP_CMD_END);
    CHECK(memcmp(lp_msg_req_id(m), s_rid, LP_REQ_ID_LEN) == 0);
    size_t len = 99;
    CHECK(lp_msg_identity(m, &len) == NULL && len == 0);
    const json_t *meta = lp_msg_meta(m);
    CHECK(json_is_object(meta) && json_object_size(meta) == 0);
    CHECK(lp_msg_meta_str(m, "x") == NULL);
    CHECK(lp_msg_meta_int(m, "x", 5) == 5);
    json_object_set_new(lp_msg_meta_rw(m), "x", json_integer(7));
    json_object_set_new(lp_msg_meta_rw(m), "s", json_string("v"));
    CHECK(lp_msg_meta_int(m, "x", 5) == 7);
    CHECK_STR(lp_msg_meta_str(m, "s"), "v");
    lp_msg_body(m, &len);
    CHECK(len == 0);
    lp_msg_set_body(m, "abc", 3);
    const char *b = lp_msg_body(m, &len);
    CHECK(len == 3 && memcmp(b, "abc", 3) == 0);
    lp_msg_set_body(m, "", 0);
    lp_msg_body(m, &len);
    CHECK(len == 0);
    lp_msg_set_identity(m, "who", 3);
    const char *id = lp_msg_identity(m, &len);
    CHECK(len == 3 && memcmp(id, "who", 3) == 0);
    lp_msg_destroy(&m);
}

/* Every command, with and without a request id, meta and a small body: dealer -> router. */
static void test_round_trip_commands(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    bool ok = true;
    for (int cmd = 1; cmd <= LP_CMD_MAX && ok; cmd++) {
        for (int variant = 0; variant < 4 && ok; variant++) {
            bool with_id = variant & 1, with_meta = variant & 2;
            lp_msg_t *m = lp_msg_new((lp_cmd_t)cmd, with_id ? s_rid : NULL);
            if (with_meta) {
                json_object_set_new(lp_msg_meta_rw(m), "cmd", json_integer(cmd));
                json_object_set_new(lp_msg_meta_rw(m), "name", json_string("caf\xc3\xa9"));
            }
            char body[32];
            int blen = snprintf(body, sizeof body, "body-%d-%d", cmd, variant);
            lp_msg_set_body(m, body, (size_t)blen);
            if (lp_msg_send(&m, p.dealer) != 0 || m != NULL) {
                lp_msg_destroy(&m);
                ok = false;
                break;
            }
            lp_msg_t *r = recv_msg(p.router, true, err);
            if (!r) {
                ok = false;
                break;
            }
            size_t len = 0;
            const void *id = lp_msg_identity(r, &len);
            ok = ok && id && len == strlen(DEALER_ID) && memcmp(id, DEALER_ID, len) == 0;
            ok = ok && (int)lp_msg_cmd(r) == cmd;
            if (with_id)
                ok = ok && lp_msg_req_id(r) && memcmp(lp_msg_req_id(r), s_rid, 16) == 0;
            else
                ok = ok && lp_msg_req_id(r) == NULL;
            if (with_meta)
                ok = ok && lp_msg_meta_int(r, "cmd", -1) == cmd && lp_msg_meta_str(r, "name") &&
                     strcmp(lp_msg_meta_str(r, "name"), "caf\xc3\xa9") == 0;
            else
                ok = ok && json_object_size(lp_msg_meta(r)) == 0;
            const void *b = lp_msg_body(r, &len);
            ok = ok && len == (size_t)blen && memcmp(b, body, len) == 0;
            lp_msg_destroy(&r);
        }
    }
    pair_close(&p);
    CHECK(ok);
}

static bool round_trip_body(pair_t *p, size_t size)
{
    char err[LP_ERR_LEN];
    unsigned char *data = malloc(size ? size : 1);
    if (!data)
        return false;
    for (size_t i = 0; i < size; i++)
        data[i] = (unsigned char)(i * 131 + 7);
    lp_msg_t *m = lp_msg_new(LP_CMD_REQUEST, s_rid);
    lp_msg_set_body(m, data, size);
    if (lp_msg_send(&m, p->dealer) != 0) {
        lp_msg_destroy(&m);
        free(data);
        return false;
    }
    lp_msg_t *r = recv_msg(p->router, true, err);
    bool ok = r != NULL;
    if (r) {
        size_t len = 0;
        const void *b = lp_msg_body(r, &len);
        ok = len == size && (size == 0 || memcmp(b, data, size) == 0);
        lp_msg_destroy(&r);
    }
    free(data);
    return ok;
}

static void test_body_sizes(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    bool ok = round_trip_body(&p, 0) && round_trip_body(&p, 1) && round_trip_body(&p, 29) &&
              round_trip_body(&p, 4096) && round_trip_body(&p, 1 << 20);
    pair_close(&p);
    CHECK(ok);
}

/* router -> dealer: the reply reaches the peer named by its identity. */
static void test_route_back(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    lp_msg_t *m = lp_msg_new(LP_CMD_READY, NULL);
    json_object_set_new(lp_msg_meta_rw(m), "credits", json_integer(8));
    CHECK(lp_msg_send(&m, p.dealer) == 0);
    lp_msg_t *in = recv_msg(p.router, true, err);
    CHECK(in != NULL);
    CHECK(lp_msg_meta_int(in, "credits", 0) == 8);

    /* set_identity from the received identity */
    size_t idlen = 0;
    const void *id = lp_msg_identity(in, &idlen);
    lp_msg_t *reply = lp_msg_new(LP_CMD_REQUEST, s_rid);
    lp_msg_set_identity(reply, id, idlen);
    lp_msg_set_body(reply, "job", 3);
    int rc = lp_msg_send(&reply, p.router);
    lp_msg_destroy(&reply);
    lp_msg_t *got = recv_msg(p.dealer, false, err);
    bool ok = rc == 0 && got && lp_msg_cmd(got) == LP_CMD_REQUEST &&
              memcmp(lp_msg_req_id(got), s_rid, 16) == 0;
    size_t len = 99;
    ok = ok && lp_msg_identity(got, &len) == NULL && len == 0;
    const void *b = got ? lp_msg_body(got, &len) : NULL;
    ok = ok && len == 3 && memcmp(b, "job", 3) == 0;
    lp_msg_destroy(&got);

    /* move_identity: the source loses it */
    lp_msg_t *reply2 = lp_msg_new(LP_CMD_HEARTBEAT, NULL);
    lp_msg_move_identity(reply2, in);
    size_t l1 = 0, l2 = 99;
    const void *id2 = lp_msg_identity(reply2, &l1);
    ok = ok && id2 && l1 == strlen(DEALER_ID) && memcmp(id2, DEALER_ID, l1) == 0;
    ok = ok && lp_msg_identity(in, &l2) == NULL && l2 == 0;
    rc = lp_msg_send(&reply2, p.router);
    lp_msg_destroy(&reply2);
    got = recv_msg(p.dealer, false, err);
    ok = ok && rc == 0 && got && lp_msg_cmd(got) == LP_CMD_HEARTBEAT && !lp_msg_req_id(got);
    lp_msg_destroy(&got);
    lp_msg_destroy(&in);
    pair_close(&p);
    CHECK(ok);
}

/* An unknown identity on a mandatory ROUTER fails with EHOSTUNREACH and the caller keeps the
 * message. */
static void test_send_unknown_identity(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    int one = 1;
    zmq_setsockopt(p.router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    lp_msg_t *m = lp_msg_new(LP_CMD_CANCEL, s_rid);
    lp_msg_set_identity(m, "nobody", 6);
    errno = 0;
    int rc = lp_msg_send(&m, p.router);
    int e = errno;
    bool kept = m != NULL && lp_msg_cmd(m) == LP_CMD_CANCEL;
    lp_msg_destroy(&m);
    pair_close(&p);
    CHECK(rc == -1);
    CHECK(e == EHOSTUNREACH);
    CHECK(kept);
}

/* The router relays a message: meta changed with meta_rw is re-encoded; untouched meta is
 * forwarded byte for byte. */
static void test_meta_relay(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    size_t meta_len = 0;
    char *meta_text = packed("{\"model\":\"m1\",\"n\":1}", &meta_len);
    const void *frames[] = {LP_PROTO_SIGNATURE, "\x04", s_rid, meta_text, "B"};
    size_t sizes[] = {4, 1, 16, meta_len, 1};
    CHECK(send_parts(p.dealer, frames, sizes) == 0);
    lp_msg_t *in = recv_msg(p.router, true, err);
    CHECK(in != NULL);
    CHECK_STR(lp_msg_meta_str(in, "model"), "m1");
    /* relay untouched (read-only access does not mark it dirty) */
    size_t idlen;
    const void *id = lp_msg_identity(in, &idlen);
    lp_msg_t *copy = lp_msg_new(LP_CMD_REQUEST, s_rid);
    lp_msg_set_identity(copy, id, idlen);
    int rc = lp_msg_send(&in, p.router);
    if (rc != 0)
        lp_msg_destroy(&in);
    bool ok = rc == 0;
    /* raw receive on the dealer: the meta is the original bytes */
    lp_buf_t raw = {0}, body = {0};
    ok = ok && recv_wire(p.dealer, &raw, &body) && raw.len == meta_len &&
         memcmp(raw.data, meta_text, meta_len) == 0;
    lp_buf_free(&raw);
    lp_buf_free(&body);
    free(meta_text);

    /* now modify through meta_rw and relay again */
    json_object_set_new(lp_msg_meta_rw(copy), "model", json_string("m2"));
    json_object_set_new(lp_msg_meta_rw(copy), "deployment", json_integer(3));
    rc = lp_msg_send(&copy, p.router);
    if (rc != 0)
        lp_msg_destroy(&copy);
    lp_msg_t *got = recv_msg(p.dealer, false, err);
    ok = ok && rc == 0 && got && strcmp(lp_msg_meta_str(got, "model"), "m2") == 0 &&
         lp_msg_meta_int(got, "deployment", 0) == 3;
    /* received meta modified and re-sent dealer -> router */
    if (got) {
        json_object_set_new(lp_msg_meta_rw(got), "model", json_string("m3"));
        json_object_del(lp_msg_meta_rw(got), "deployment");
        lp_msg_set_cmd(got, LP_CMD_END);
        rc = lp_msg_send(&got, p.dealer);
        if (rc != 0)
            lp_msg_destroy(&got);
        lp_msg_t *back = recv_msg(p.router, true, err);
        ok = ok && rc == 0 && back && lp_msg_cmd(back) == LP_CMD_END &&
             strcmp(lp_msg_meta_str(back, "model"), "m3") == 0 &&
             lp_msg_meta_int(back, "deployment", -1) == -1 &&
             json_object_size(lp_msg_meta(back)) == 1;
        lp_msg_destroy(&back);
    }
    pair_close(&p);
    CHECK(ok);
}

/* Relay one raw meta text dealer -> router with additions; returns the text that arrived. */
static char *relay_with(pair_t *p, const char *meta_json, const char *key, json_t *value,
                        bool read_after)
{
    char err[LP_ERR_LEN];
    size_t meta_len = 0;
    char *meta = packed(meta_json, &meta_len);
    const void *frames[] = {LP_PROTO_SIGNATURE, "\x07", s_rid, meta, "B"};
    size_t sizes[] = {4, 1, 16, meta_len, 1};
    int sent = send_parts(p->dealer, frames, sizes);
    free(meta);
    if (sent < 0)
        return NULL;
    lp_msg_t *in = recv_msg(p->router, true, err);
    if (!in)
        return NULL;
    lp_msg_meta_add(in, key, value);
    lp_msg_meta_add(in, "attempts", json_integer(1));
    if (read_after && lp_msg_meta_int(in, key, -7) == -7) {
        lp_msg_destroy(&in);
        return NULL;
    }
    if (lp_msg_send(&in, p->router) < 0) {
        lp_msg_destroy(&in);
        return NULL;
    }
    char *text = NULL;
    lp_buf_t raw = {0}, body = {0};
    if (recv_wire(p->dealer, &raw, &body))
        text = unpacked(raw.data, raw.len);
    lp_buf_free(&raw);
    lp_buf_free(&body);
    return text;
}

static void test_meta_add_splices(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    /* the received members are kept as they came, the new ones follow them */
    char *t = relay_with(&p, "{\"status\":200,\"usage\":{\"total_tokens\":3}}", "group",
                         json_string("g"), false);
    CHECK_STR(t, "{\"status\":200,\"usage\":{\"total_tokens\":3},\"group\":\"g\",\"attempts\":1}");
    free(t);
    /* empty strings, as keys and values (msgpack-c gives them no pointer) */
    t = relay_with(&p, "{\"\":\"\",\"s\":[\"\",{\"\":1}]}", "group", json_string(""), false);
    CHECK_STR(t, "{\"\":\"\",\"s\":[\"\",{\"\":1}],\"group\":\"\",\"attempts\":1}");
    free(t);
    /* an empty object and an empty frame */
    t = relay_with(&p, "{}", "group", json_string("g"), false);
    CHECK_STR(t, "{\"group\":\"g\",\"attempts\":1}");
    free(t);
    t = relay_with(&p, "", "group", json_string("g"), false);
    CHECK_STR(t, "{\"group\":\"g\",\"attempts\":1}");
    free(t);
    /* a member the meta has is replaced, never sent twice (receivers reject duplicates): the
     * received one is left out, the new one follows the others */
    t = relay_with(&p, "{\"group\":\"old\",\"n\":1}", "group", json_string("new"), false);
    CHECK_STR(t, "{\"n\":1,\"group\":\"new\",\"attempts\":1}");
    free(t);
    /* reading after adding sees the additions */
    t = relay_with(&p, "{\"n\":1}", "router_us", json_integer(5), true);
    CHECK_STR(t, "{\"n\":1,\"router_us\":5,\"attempts\":1}");
    free(t);

    /* a send that fails leaves the message whole: the meta reads what was added, and adding
     * the same member again replaces it (never sent twice) */
    char err[LP_ERR_LEN];
    size_t text_len = 0;
    char *text = packed("{\"n\":1}", &text_len);
    const void *frames[] = {LP_PROTO_SIGNATURE, "\x07", s_rid, text, "B"};
    size_t sizes[] = {4, 1, 16, text_len, 1};
    CHECK(send_parts(p.dealer, frames, sizes) == 0);
    free(text);
    lp_msg_t *in = recv_msg(p.router, true, err);
    CHECK(in != NULL);
    size_t idlen = 0;
    const void *id = lp_msg_identity(in, &idlen);
    unsigned char dealer_id[256];
    memcpy(dealer_id, id, idlen);
    int one = 1;
    zmq_setsockopt(p.router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    lp_msg_set_identity(in, "nobody", 6);
    lp_msg_meta_add(in, "attempts", json_integer(1));
    CHECK(lp_msg_send(&in, p.router) == -1 && in != NULL);
    CHECK(lp_msg_meta_int(in, "attempts", 0) == 1);
    lp_msg_meta_add(in, "attempts", json_integer(2));
    lp_msg_set_identity(in, dealer_id, idlen);
    CHECK(lp_msg_send(&in, p.router) == 0);
    lp_msg_t *back = recv_msg(p.dealer, false, err);
    CHECK(back != NULL);
    CHECK(lp_msg_meta_int(back, "attempts", 0) == 2 && lp_msg_meta_int(back, "n", 0) == 1);
    lp_msg_destroy(&back);
    lp_msg_destroy(&in);
    pair_close(&p);
}

static void test_share_move_give_body(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    size_t big = 1 << 20;
    char *data = malloc(big);
    CHECK(data != NULL);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)('a' + i % 26);

    /* give: no copy */
    lp_msg_t *a = lp_msg_new(LP_CMD_REQUEST, s_rid);
    char *given = malloc(big);
    if (!given) {
        free(data);
        lp_msg_destroy(&a);
        pair_close(&p);
        CHECK(given != NULL);
    }
    memcpy(given, data, big);
    lp_msg_give_body(a, given, big);
    size_t len = 0;
    bool ok = lp_msg_body(a, &len) == given && len == big;

    /* share: same bytes (no copy for a large body), both still usable */
    lp_msg_t *b = lp_msg_new(LP_CMD_REQUEST, s_rid);
    lp_msg_set_body(b, "old", 3);
    lp_msg_share_body(b, a);
    size_t lb = 0;
    ok = ok && lp_msg_body(b, &lb) == lp_msg_body(a, &len) && lb == big && len == big;

    /* move: the source's body becomes empty */
    lp_msg_t *c = lp_msg_new(LP_CMD_REQUEST, s_rid);
    lp_msg_move_body(c, b);
    size_t lc = 0;
    ok = ok && lp_msg_body(c, &lc) == given && lc == big;
    lp_msg_body(b, &lb);
    ok = ok && lb == 0;

    /* a and c share one buffer: send both, then b (empty) */
    ok = ok && lp_msg_send(&a, p.dealer) == 0 && lp_msg_send(&c, p.dealer) == 0 &&
         lp_msg_send(&b, p.dealer) == 0;
    lp_msg_destroy(&a);
    lp_msg_destroy(&b);
    lp_msg_destroy(&c);
    for (int i = 0; i < 3 && ok; i++) {
        lp_msg_t *r = recv_msg(p.router, true, err);
        ok = r != NULL;
        if (r) {
            const void *body = lp_msg_body(r, &len);
            ok = i < 2 ? len == big && memcmp(body, data, big) == 0 : len == 0;
        }
        lp_msg_destroy(&r);
    }
    /* small bodies share too */
    lp_msg_t *s1 = lp_msg_new(LP_CMD_CHUNK, s_rid);
    lp_msg_set_body(s1, "tiny", 4);
    lp_msg_t *s2 = lp_msg_new(LP_CMD_CHUNK, s_rid);
    lp_msg_share_body(s2, s1);
    lp_msg_destroy(&s1);
    const char *sb = lp_msg_body(s2, &len);
    ok = ok && len == 4 && memcmp(sb, "tiny", 4) == 0;
    lp_msg_destroy(&s2);
    free(data);
    pair_close(&p);
    CHECK(ok);
}

static void test_msg_error(void)
{
    lp_msg_t *m = lp_msg_error(s_rid, 429, "rate_limited", "slow down");
    CHECK(m != NULL);
    bool ok = lp_msg_cmd(m) == LP_CMD_ERROR && memcmp(lp_msg_req_id(m), s_rid, 16) == 0 &&
              lp_msg_meta_int(m, "status", 0) == 429 && lp_msg_meta_str(m, "code") &&
              strcmp(lp_msg_meta_str(m, "code"), "rate_limited") == 0 &&
              json_is_false(json_object_get(lp_msg_meta(m), "retryable"));
    size_t len = 0;
    const char *body = lp_msg_body(m, &len);
    json_t *v = json_loadb(body, len, 0, NULL);
    json_t *e = json_object_get(v, "error");
    ok = ok && e && strcmp(lp_json_str(e, "message"), "slow down") == 0 &&
         strcmp(lp_json_str(e, "type"), "rate_limit_error") == 0 &&
         strcmp(lp_json_str(e, "code"), "rate_limited") == 0 &&
         json_is_null(json_object_get(e, "param"));
    json_decref(v);
    lp_msg_destroy(&m);
    CHECK(ok);

    /* code NULL: the body's code is the status; no request id */
    m = lp_msg_error(NULL, 503, NULL, "busy");
    body = lp_msg_body(m, &len);
    v = json_loadb(body, len, 0, NULL);
    e = json_object_get(v, "error");
    ok = lp_msg_req_id(m) == NULL && lp_msg_meta_int(m, "status", 0) == 503 && e &&
         strcmp(lp_json_str(e, "code"), "503") == 0 &&
         strcmp(lp_json_str(e, "type"), "service_unavailable_error") == 0;
    json_decref(v);

    /* it survives the wire */
    pair_t p = {0};
    ok = ok && pair_open(&p) == 0;
    ok = ok && lp_msg_send(&m, p.dealer) == 0;
    lp_msg_destroy(&m);
    char err[LP_ERR_LEN];
    lp_msg_t *r = ok ? recv_msg(p.router, true, err) : NULL;
    ok = ok && r && lp_msg_cmd(r) == LP_CMD_ERROR && lp_msg_meta_int(r, "status", 0) == 503 &&
         json_is_false(json_object_get(lp_msg_meta(r), "retryable"));
    lp_msg_destroy(&r);
    pair_close(&p);
    CHECK(ok);
}

static void test_recv_empty(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    snprintf(err, sizeof err, "stale");
    lp_msg_t *m = lp_msg_recv(p.router, true, err);
    bool ok = m == NULL && err[0] == '\0';
    snprintf(err, sizeof err, "stale");
    m = lp_msg_recv(p.dealer, false, err);
    ok = ok && m == NULL && err[0] == '\0';
    /* NULL err is allowed */
    ok = ok && lp_msg_recv(p.router, true, NULL) == NULL;
    pair_close(&p);
    CHECK(ok);
}

/* A good message after a bad one; returns true when it arrives intact. */
static bool good_follows(pair_t *p, void *to, void *from, bool from_router, int tag)
{
    char err[LP_ERR_LEN];
    lp_msg_t *m = lp_msg_new(LP_CMD_HEARTBEAT, s_rid);
    json_object_set_new(lp_msg_meta_rw(m), "tag", json_integer(tag));
    lp_msg_set_body(m, "good", 4);
    if (from == p->router)
        lp_msg_set_identity(m, DEALER_ID, strlen(DEALER_ID));
    if (lp_msg_send(&m, from) != 0) {
        lp_msg_destroy(&m);
        return false;
    }
    lp_msg_t *r = recv_msg(to, from_router, err);
    size_t len = 0;
    const void *b = r ? lp_msg_body(r, &len) : NULL;
    bool ok = r && lp_msg_cmd(r) == LP_CMD_HEARTBEAT && lp_msg_meta_int(r, "tag", -1) == tag &&
              len == 4 && memcmp(b, "good", 4) == 0 &&
              memcmp(lp_msg_req_id(r), s_rid, LP_REQ_ID_LEN) == 0;
    lp_msg_destroy(&r);
    /* and nothing else is left */
    char err2[LP_ERR_LEN];
    lp_msg_t *extra = lp_msg_recv(to, from_router, err2);
    ok = ok && extra == NULL && err2[0] == '\0';
    lp_msg_destroy(&extra);
    return ok;
}

typedef struct {
    const char *what;
    size_t n; /* 5: the parts of send_parts; else that many raw frames */
    const void *frames[8];
    size_t sizes[8];
} bad_case_t;

static int send_case(void *socket, const bad_case_t *c)
{
    return c->n == 5 ? send_parts(socket, c->frames, c->sizes)
                     : send_raw(socket, c->frames, c->sizes, c->n);
}

static void test_malformed(void)
{
    static char big_meta[LP_META_MAX + 2];
    memset(big_meta, ' ', sizeof big_meta);
    big_meta[0] = '{';
    big_meta[sizeof big_meta - 1] = '}';
    const char *sig = LP_PROTO_SIGNATURE;
    static const char above[1] = {LP_CMD_MAX + 1};
    char head_ok[6], head_id16[16];
    memcpy(head_ok, sig, 4);
    head_ok[4] = LP_CMD_HEARTBEAT;
    head_ok[5] = 0;
    memcpy(head_id16, head_ok, 6);
    head_id16[5] = LP_REQ_ID_LEN;
    memset(head_id16 + 6, 'i', 10);
    const bad_case_t cases[] = {
        {"signature LPX9", 5, {"LPX9", "\x02", "", "", ""}, {4, 1, 0, 0, 0}},
        {"signature short", 5, {"LPX", "\x02", "", "", ""}, {3, 1, 0, 0, 0}},
        {"signature LPX2", 5, {"LPX2", "\x02", "", "", ""}, {4, 1, 0, 0, 0}},
        {"1 frame", 1, {head_ok}, {6}},
        {"3 frames", 3, {head_ok, "", "x"}, {6, 0, 1}},
        {"header of 5 bytes", 2, {head_ok, ""}, {5, 0}},
        {"header of the signature only", 2, {sig, ""}, {4, 0}},
        {"id length 16, 10 bytes of id", 2, {head_id16, ""}, {16, 0}},
        {"command 0", 5, {sig, "\x00", "", "", ""}, {4, 1, 0, 0, 0}},
        {"command 200", 5, {sig, "\xc8", "", "", ""}, {4, 1, 0, 0, 0}},
        {"command MAX+1", 5, {sig, above, "", "", ""}, {4, 1, 0, 0, 0}},
        {"command 2 bytes", 5, {sig, "\x02\x02", "", "", ""}, {4, 2, 0, 0, 0}},
        {"command empty", 5, {sig, "", "", "", ""}, {4, 0, 0, 0, 0}},
        {"req_id 5 bytes", 5, {sig, "\x04", "abcde", "", ""}, {4, 1, 5, 0, 0}},
        {"req_id 17 bytes", 5, {sig, "\x04", "0123456789abcdefg", "", ""}, {4, 1, 17, 0, 0}},
        {"meta JSON text", 5, {sig, "\x02", "", "{\"a\":1}", ""}, {4, 1, 0, 7, 0}},
        {"meta unused byte", 5, {sig, "\x02", "", "\xc1", ""}, {4, 1, 0, 1, 0}},
        {"meta truncated", 5, {sig, "\x02", "", "\x81\xa1\x61", ""}, {4, 1, 0, 3, 0}},
        {"meta trailing", 5, {sig, "\x02", "", "\x80\x01", ""}, {4, 1, 0, 2, 0}},
        {"meta array", 5, {sig, "\x02", "", "\x92\x01\x02", ""}, {4, 1, 0, 3, 0}},
        {"meta string", 5, {sig, "\x02", "", "\xa1s", ""}, {4, 1, 0, 2, 0}},
        {"meta dup keys",
         5,
         {sig, "\x02", "", "\x82\xa1\x61\x01\xa1\x61\x02", ""},
         {4, 1, 0, 7, 0}},
        {"meta map claiming 2^32 entries",
         5,
         {sig, "\x02", "", "\xdf\xff\xff\xff\xff\xa1\x61", ""},
         {4, 1, 0, 7, 0}},
        {"meta array longer than the frame",
         5,
         {sig, "\x02", "", "\x81\xa1\x61\xdc\x00\x09\x01", ""},
         {4, 1, 0, 7, 0}},
        {"meta int key", 5, {sig, "\x02", "", "\x81\x01\x01", ""}, {4, 1, 0, 3, 0}},
        {"meta bad UTF-8", 5, {sig, "\x02", "", "\x81\xa1\x61\xa1\xff", ""}, {4, 1, 0, 5, 0}},
        {"meta NUL in string", 5, {sig, "\x02", "", "\x81\xa1\x61\xa1\x00", ""}, {4, 1, 0, 5, 0}},
        {"meta binary", 5, {sig, "\x02", "", "\x81\xa1\x61\xc4\x01\x78", ""}, {4, 1, 0, 6, 0}},
        {"meta NaN",
         5,
         {sig, "\x02", "", "\x81\xa1\x61\xcb\x7f\xf8\0\0\0\0\0\0", ""},
         {4, 1, 0, 12, 0}},
        {"meta uint64 max",
         5,
         {sig, "\x02", "", "\x81\xa1\x61\xcf\xff\xff\xff\xff\xff\xff\xff\xff", ""},
         {4, 1, 0, 12, 0}},
        {"meta too big", 5, {sig, "\x02", "", big_meta, ""}, {4, 1, 0, sizeof big_meta, 0}},
    };
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    for (size_t i = 0; i < LP_ARRAY_LEN(cases); i++) {
        const bad_case_t *c = &cases[i];
        /* dealer -> router (router side has an identity frame first) */
        int rc = send_case(p.dealer, c);
        lp_msg_t *m = rc == 0 ? recv_msg(p.router, true, err) : NULL;
        bool bad_ok = rc == 0 && m == NULL && err[0] != '\0' && strcmp(err, "timeout") != 0;
        lp_msg_destroy(&m);
        bool next_ok = bad_ok && good_follows(&p, p.router, p.dealer, true, (int)i);
        if (!bad_ok || !next_ok) {
            fprintf(stderr, "case '%s' (to router): bad_ok=%d next_ok=%d err=%s\n", c->what, bad_ok,
                    next_ok, err);
            pair_close(&p);
            CHECK(bad_ok);
            CHECK(next_ok);
        }
        /* router -> dealer (no identity on the dealer side) */
        rc = zmq_send(p.router, DEALER_ID, strlen(DEALER_ID), ZMQ_SNDMORE) < 0 ? -1 : 0;
        rc = rc == 0 ? send_case(p.router, c) : -1;
        m = rc == 0 ? recv_msg(p.dealer, false, err) : NULL;
        bad_ok = rc == 0 && m == NULL && err[0] != '\0' && strcmp(err, "timeout") != 0;
        lp_msg_destroy(&m);
        next_ok = bad_ok && good_follows(&p, p.dealer, p.router, false, 100 + (int)i);
        if (!bad_ok || !next_ok) {
            fprintf(stderr, "case '%s' (to dealer): bad_ok=%d next_ok=%d err=%s\n", c->what, bad_ok,
                    next_ok, err);
            pair_close(&p);
            CHECK(bad_ok);
            CHECK(next_ok);
        }
    }
    /* the signature error names what the peer spoke, an earlier version's five frames too */
    const void *f[] = {"LPX9", "\x02", "", "", ""};
    size_t s[] = {4, 1, 0, 0, 0};
    CHECK(send_parts(p.dealer, f, s) == 0);
    lp_msg_t *m = recv_msg(p.router, true, err);
    bool named = m == NULL && strstr(err, "LPX9") != NULL;
    lp_msg_destroy(&m);
    f[0] = "LPX2";
    CHECK(send_raw(p.dealer, f, s, 5) == 0);
    m = recv_msg(p.router, true, err);
    named = named && m == NULL && strstr(err, "LPX2") != NULL;
    lp_msg_destroy(&m);
    pair_close(&p);
    CHECK(named);
}

/* Frames at the edges of validity are accepted. */
static void test_edge_valid(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    /* a meta of exactly LP_META_MAX bytes: {"k": <str 16 of the rest>} */
    static char meta[LP_META_MAX];
    size_t str = sizeof meta - 6;
    memcpy(meta, "\x81\xa1k\xda", 4);
    meta[4] = (char)(str >> 8);
    meta[5] = (char)(str & 0xff);
    memset(meta + 6, 'v', str);
    const void *f[] = {LP_PROTO_SIGNATURE, "\x0b", "", meta, ""};
    size_t s[] = {4, 1, 0, sizeof meta, 0};
    CHECK(send_parts(p.dealer, f, s) == 0);
    lp_msg_t *m = recv_msg(p.router, true, err);
    bool ok = m && lp_msg_cmd(m) == LP_CMD_ACK &&
              json_string_length(json_object_get(lp_msg_meta(m), "k")) == str;
    lp_msg_destroy(&m);
    /* empty meta frame: an empty object */
    const void *f2[] = {LP_PROTO_SIGNATURE, "\x01", s_rid, "", "x"};
    size_t s2[] = {4, 1, 16, 0, 1};
    ok = ok && send_parts(p.dealer, f2, s2) == 0;
    m = ok ? recv_msg(p.router, true, err) : NULL;
    ok = ok && m && lp_msg_cmd(m) == LP_CMD_READY && json_is_object(lp_msg_meta(m)) &&
         json_object_size(lp_msg_meta(m)) == 0;
    lp_msg_destroy(&m);
    pair_close(&p);
    CHECK(ok);
}

/* A map written member by member decodes like any meta: every kind, strings made UTF-8,
 * more members than a fixmap holds, and the empty map. */
static void test_map_writer(void)
{
    lp_mapw_t w = {0};
    lp_mapw_str(&w, "s", "caf\xc3\xa9");
    lp_mapw_str(&w, "bad", "a\xff\xc3z");
    lp_mapw_str(&w, "none", NULL);
    lp_mapw_str(&w, "empty", "");
    lp_mapw_int(&w, "i", -42);
    lp_mapw_int(&w, "big", 1LL << 40);
    lp_mapw_real(&w, "r", 1.25);
    lp_mapw_bool(&w, "t", true);
    lp_mapw_bool(&w, "f", false);
    lp_mapw_nil(&w, "n");
    lp_mapw_real(&w, "inf", 1.0 / 0.0); /* not finite: nil, so the map still decodes */
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        lp_mapw_int(&w, key, i);
    }
    size_t len = 0;
    char *packed = lp_mapw_finish(&w, &len);
    char err[LP_ERR_LEN];
    json_t *got = lp_meta_decode(packed, len, err);
    free(packed);
    CHECK_WHY(got != NULL, err);
    json_t *want = json_pack("{s:s,s:s,s:n,s:s,s:i,s:I,s:f,s:b,s:b,s:n,s:n}", "s", "caf\xc3\xa9",
                             "bad", "a??z", "none", "empty", "", "i", -42, "big",
                             (json_int_t)(1LL << 40), "r", 1.25, "t", 1, "f", 0, "n", "inf");
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        json_object_set_new(want, key, json_integer(i));
    }
    bool same = json_equal(got, want);
    json_decref(got);
    json_decref(want);
    CHECK(same);
    CHECK(w.buf.len == 0 && w.count == 0);
    packed = lp_mapw_finish(&w, &len);
    got = lp_meta_decode(packed, len, err);
    free(packed);
    CHECK(json_is_object(got) && json_object_size(got) == 0);
    json_decref(got);
}

/* A map member (lp_mapw_map) takes the next writes; lp_msg_set_meta makes a writer's map a
 * message's meta, which its readers, an addition and the other side all see. */
static void test_set_meta(void)
{
    lp_mapw_t w = {0};
    lp_mapw_int(&w, "status", 200);
    lp_mapw_map(&w, "usage", 2);
    lp_mapw_int(&w, "prompt_tokens", 3);
    lp_mapw_int(&w, "total_tokens", 5);
    lp_mapw_str(&w, "after", "x");
    lp_msg_t *m = lp_msg_new(LP_CMD_END, s_rid);
    json_object_set_new(lp_msg_meta_rw(m), "dropped", json_true()); /* replaced whole */
    lp_msg_set_meta(m, &w);
    CHECK(w.buf.len == 0 && w.count == 0 && w.inner == 0);
    bool ok = lp_msg_meta_int(m, "status", 0) == 200 &&
              lp_msg_meta_sub_int(m, "usage", "total_tokens", 0) == 5 &&
              strcmp(lp_msg_meta_str(m, "after"), "x") == 0 && !lp_msg_meta_has(m, "dropped");
    lp_msg_meta_add(m, "group", json_string("g"));
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    int rc = lp_msg_send(&m, p.dealer);
    if (rc != 0)
        lp_msg_destroy(&m);
    lp_msg_t *got = rc == 0 ? recv_msg(p.router, true, err) : NULL;
    json_t *want = json_pack("{s:i,s:{s:i,s:i},s:s,s:s}", "status", 200, "usage", "prompt_tokens",
                             3, "total_tokens", 5, "after", "x", "group", "g");
    ok = ok && got && lp_msg_cmd(got) == LP_CMD_END && json_equal(lp_msg_meta(got), want);
    json_decref(want);
    lp_msg_destroy(&got);
    pair_close(&p);
    CHECK(ok);
}

/* lp_mview walks maps one after the other (a RECORD body), reads their members like a
 * message's, gives back each map's bytes, and refuses a bad map with a reason. */
static void test_mview(void)
{
    lp_mapw_t w = {0};
    lp_mapw_str(&w, "request_id", "r1");
    lp_mapw_int(&w, "n", -5);
    lp_mapw_real(&w, "ms", 2.5);
    lp_mapw_bool(&w, "stream", true);
    lp_mapw_nil(&w, "none");
    lp_mapw_map(&w, "usage", 1);
    lp_mapw_int(&w, "total_tokens", 9);
    size_t len1 = 0, len2 = 0;
    char *one = lp_mapw_finish(&w, &len1);
    lp_mapw_str(&w, "request_id", "r2");
    char *two = lp_mapw_finish(&w, &len2);
    lp_buf_t body = {0};
    lp_buf_append(&body, one, len1);
    lp_buf_append(&body, two, len2);
    char err[LP_ERR_LEN];
    size_t off = 0, n = 0;
    lp_mview_t *v = lp_mview_next(body.data, body.len, &off, err);
    CHECK_WHY(v != NULL, err);
    bool ok = off == len1 && lp_mview_bytes(v, &n) == (const void *)body.data && n == len1 &&
              strcmp(lp_mview_str(v, "request_id"), "r1") == 0 && lp_mview_int(v, "n", 0) == -5 &&
              lp_mview_num(v, "n", 0) == -5.0 && lp_mview_num(v, "ms", 0) == 2.5 &&
              lp_mview_int(v, "ms", 7) == 7 && lp_mview_bool(v, "stream", false) &&
              lp_mview_has(v, "none") && lp_mview_str(v, "none") == NULL &&
              !lp_mview_has(v, "absent") && lp_mview_sub_int(v, "usage", "total_tokens", 0) == 9 &&
              lp_mview_sub_int(v, "n", "total_tokens", -1) == -1;
    lp_mview_destroy(&v);
    CHECK(ok && v == NULL);
    v = lp_mview_next(body.data, body.len, &off, err);
    ok = v && off == body.len && strcmp(lp_mview_str(v, "request_id"), "r2") == 0 &&
         !lp_mview_has(v, "n");
    lp_mview_destroy(&v);
    CHECK(ok);
    /* a NULL view reads as an empty map */
    CHECK(lp_mview_str(NULL, "x") == NULL && lp_mview_int(NULL, "x", 3) == 3 &&
          !lp_mview_has(NULL, "x"));
    /* a repeated key: refused with the reason */
    off = 0;
    v = lp_mview_next("\x82\xa1\x61\x01\xa1\x61\x02", 7, &off, err);
    CHECK(v == NULL && strstr(err, "duplicate key 'a'") != NULL && off == 0);
    lp_buf_free(&body);
    free(one);
    free(two);
}

/* ---- member readers (lp_msg_meta_str/_int/_num/_bool/_has/_sub_int) ---- */

/* A MessagePack frame written byte by byte, in widths lp_meta_encode would not choose. */
typedef struct {
    uint8_t b[4096];
    size_t n;
} mp_t;

static void mp_bytes(mp_t *w, const void *p, size_t n)
{
    if (n <= sizeof w->b - w->n) {
        memcpy(w->b + w->n, p, n);
        w->n += n;
    }
}

/* A fixstr (keys and short values). */
static void mp_str(mp_t *w, const char *s)
{
    uint8_t h = (uint8_t)(0xa0 | strlen(s));
    mp_bytes(w, &h, 1);
    mp_bytes(w, s, strlen(s));
}

/* Send a meta frame dealer -> router as an END and receive it (NULL with err when refused). */
static lp_msg_t *recv_meta_body(pair_t *p, const void *meta, size_t len, const char *body,
                                char *err)
{
    const void *frames[] = {LP_PROTO_SIGNATURE, "\x07", s_rid, meta, body};
    size_t sizes[] = {4, 1, 16, len, strlen(body)};
    if (send_parts(p->dealer, frames, sizes) < 0) {
        snprintf(err, LP_ERR_LEN, "send failed");
        return NULL;
    }
    return recv_msg(p->router, true, err);
}

static lp_msg_t *recv_meta(pair_t *p, const void *meta, size_t len, char *err)
{
    return recv_meta_body(p, meta, len, "B", err);
}

/* The frame test_meta_readers reads: every kind, every integer width. */
static void s_readers_frame(mp_t *w)
{
    mp_bytes(w, "\xde\x00\x1b", 3); /* map 16, 27 members */
    mp_str(w, "s");
    mp_str(w, "str");
    mp_str(w, "s8"); /* str 8 */
    mp_bytes(w,
             "\xd9\x03"
             "abc",
             5);
    mp_str(w, "s16"); /* str 16 */
    mp_bytes(w,
             "\xda\x00\x02"
             "hi",
             5);
    mp_str(w, "e");
    mp_str(w, "");
    mp_str(w, "nfix");
    mp_bytes(w, "\xe0", 1); /* -32 */
    mp_str(w, "i8");
    mp_bytes(w, "\xd0\x80", 2);
    mp_str(w, "i8m1");
    mp_bytes(w, "\xd0\xff", 2);
    mp_str(w, "i16");
    mp_bytes(w, "\xd1\x80\x00", 3);
    mp_str(w, "i16b");
    mp_bytes(w, "\xd1\xff\x7f", 3); /* -129 */
    mp_str(w, "i16p");
    mp_bytes(w, "\xd1\x7f\xff", 3); /* 32767: no sign to extend */
    mp_str(w, "i32");
    mp_bytes(w, "\xd2\x80\x00\x00\x00", 5);
    mp_str(w, "i32b");
    mp_bytes(w, "\xd2\xff\xff\x7f\xff", 5); /* -32769 */
    mp_str(w, "i64");
    mp_bytes(w, "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    mp_str(w, "i64b");
    mp_bytes(w, "\xd3\xff\xff\xff\xff\x7f\xff\xff\xff", 9); /* -2147483649 */
    mp_str(w, "u8");
    mp_bytes(w, "\xcc\xff", 2);
    mp_str(w, "u16");
    mp_bytes(w, "\xcd\xff\xff", 3);
    mp_str(w, "u32");
    mp_bytes(w, "\xce\xff\xff\xff\xff", 5);
    mp_str(w, "u64");
    mp_bytes(w, "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9);
    mp_str(w, "f32");
    mp_bytes(w, "\xca\x3f\xc0\x00\x00", 5); /* 1.5f */
    mp_str(w, "f32b");
    mp_bytes(w, "\xca\x3d\xcc\xcc\xcd", 5); /* 0.1f */
    mp_str(w, "f64");
    mp_bytes(w, "\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a", 9); /* 0.1 */
    mp_str(w, "t");
    mp_bytes(w, "\xc3", 1);
    mp_str(w, "f");
    mp_bytes(w, "\xc2", 1);
    mp_str(w, "nil");
    mp_bytes(w, "\xc0", 1);
    mp_str(w, "arr");
    mp_bytes(w, "\x92\x01\x81\xa1n\x02", 6); /* [1, {"n": 2}] */
    mp_str(w, "obj"); /* {"o": {"n": 1}, "n": -5 (int 8), "s": "x", "z": 9, "nil": nil} */
    mp_bytes(w, "\x85", 1);
    mp_str(w, "o");
    mp_bytes(w, "\x81\xa1n\x01", 4);
    mp_str(w, "n");
    mp_bytes(w, "\xd0\xfb", 2);
    mp_str(w, "s");
    mp_str(w, "x");
    mp_str(w, "z");
    mp_bytes(w, "\x09", 1);
    mp_str(w, "nil");
    mp_bytes(w, "\xc0", 1);
    mp_str(w, "last");
    mp_bytes(w, "\x2a", 1);
}

#define WANT(cond)                                                                                 \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return #cond;                                                                          \
    } while (0)
#define WANT_STR(got, want) WANT((got) && strcmp((got), (want)) == 0)

/* What every reader must say of s_readers_frame: the first wrong reading, NULL when none. */
static const char *s_readers_wrong(lp_msg_t *m)
{
    WANT_STR(lp_msg_meta_str(m, "s"), "str");
    WANT_STR(lp_msg_meta_str(m, "s8"), "abc");
    WANT_STR(lp_msg_meta_str(m, "s16"), "hi");
    WANT_STR(lp_msg_meta_str(m, "e"), "");
    WANT(lp_msg_meta_int(m, "nfix", 0) == -32);
    WANT(lp_msg_meta_int(m, "i8", 0) == -128);
    WANT(lp_msg_meta_int(m, "i8m1", 0) == -1);
    WANT(lp_msg_meta_int(m, "i16", 0) == -32768);
    WANT(lp_msg_meta_int(m, "i16b", 0) == -129);
    WANT(lp_msg_meta_int(m, "i16p", 0) == 32767);
    WANT(lp_msg_meta_int(m, "i32", 0) == -2147483647LL - 1);
    WANT(lp_msg_meta_int(m, "i32b", 0) == -32769);
    WANT(lp_msg_meta_int(m, "i64", 0) == INT64_MIN);
    WANT(lp_msg_meta_int(m, "i64b", 0) == -2147483649LL);
    WANT(lp_msg_meta_int(m, "u8", 0) == 255);
    WANT(lp_msg_meta_int(m, "u16", 0) == 65535);
    WANT(lp_msg_meta_int(m, "u32", 0) == 4294967295LL);
    WANT(lp_msg_meta_int(m, "u64", 0) == INT64_MAX);
    WANT(lp_msg_meta_int(m, "last", 0) == 42);
    /* numbers: integers and reals of both widths */
    WANT(lp_msg_meta_num(m, "f32", 0) == 1.5);
    WANT(lp_msg_meta_num(m, "f32b", 0) == (double)0.1f);
    WANT(lp_msg_meta_num(m, "f64", 0) == 0.1);
    WANT(lp_msg_meta_num(m, "i16", 0) == -32768.0);
    WANT(lp_msg_meta_num(m, "u64", 0) == (double)INT64_MAX);
    /* booleans, nil */
    WANT(lp_msg_meta_bool(m, "t", false) == true);
    WANT(lp_msg_meta_bool(m, "f", true) == false);
    WANT(lp_msg_meta_has(m, "nil"));
    WANT(lp_msg_meta_has(m, "f") && lp_msg_meta_has(m, "e") && lp_msg_meta_has(m, "obj"));
    /* absent: the defaults */
    WANT(!lp_msg_meta_has(m, "absent") && !lp_msg_meta_has(m, "") && !lp_msg_meta_has(m, "S"));
    WANT(lp_msg_meta_str(m, "absent") == NULL);
    WANT(lp_msg_meta_int(m, "absent", 77) == 77);
    WANT(lp_msg_meta_num(m, "absent", 7.5) == 7.5);
    WANT(lp_msg_meta_bool(m, "absent", true) == true && !lp_msg_meta_bool(m, "absent", false));
    WANT(lp_msg_meta_str(m, "s8x") == NULL && lp_msg_meta_int(m, "i6", 3) == 3); /* no prefix */
    /* wrong types: the defaults, as lp_json_* give them */
    WANT(lp_msg_meta_str(m, "i8") == NULL && lp_msg_meta_str(m, "nil") == NULL &&
         lp_msg_meta_str(m, "obj") == NULL && lp_msg_meta_str(m, "t") == NULL);
    WANT(lp_msg_meta_int(m, "s", 5) == 5 && lp_msg_meta_int(m, "f64", 5) == 5 &&
         lp_msg_meta_int(m, "f32", 5) == 5 && lp_msg_meta_int(m, "t", 5) == 5 &&
         lp_msg_meta_int(m, "nil", 5) == 5 && lp_msg_meta_int(m, "obj", 5) == 5 &&
         lp_msg_meta_int(m, "arr", 5) == 5);
    WANT(lp_msg_meta_num(m, "s", 2.5) == 2.5 && lp_msg_meta_num(m, "t", 2.5) == 2.5 &&
         lp_msg_meta_num(m, "nil", 2.5) == 2.5 && lp_msg_meta_num(m, "obj", 2.5) == 2.5);
    WANT(lp_msg_meta_bool(m, "i8", true) && !lp_msg_meta_bool(m, "i8", false) &&
         lp_msg_meta_bool(m, "nil", true) && lp_msg_meta_bool(m, "s", true) &&
         !lp_msg_meta_bool(m, "e", false));
    /* members of an object member */
    WANT(lp_msg_meta_sub_int(m, "obj", "n", 0) == -5);
    WANT(lp_msg_meta_sub_int(m, "obj", "z", 0) == 9); /* after a nested object */
    WANT(lp_msg_meta_sub_int(m, "obj", "s", 6) == 6);
    WANT(lp_msg_meta_sub_int(m, "obj", "o", 6) == 6);
    WANT(lp_msg_meta_sub_int(m, "obj", "nil", 6) == 6);
    WANT(lp_msg_meta_sub_int(m, "obj", "absent", 6) == 6);
    /* of a member that is not an object, or absent */
    WANT(lp_msg_meta_sub_int(m, "arr", "n", 6) == 6);
    WANT(lp_msg_meta_sub_int(m, "s", "n", 6) == 6);
    WANT(lp_msg_meta_sub_int(m, "i8", "n", 6) == 6);
    WANT(lp_msg_meta_sub_int(m, "nil", "n", 6) == 6);
    WANT(lp_msg_meta_sub_int(m, "absent", "n", 6) == 6);
    return NULL;
}

/* Each reader on a received message, first from the frame (no tree yet), then from the tree
 * lp_msg_meta builds: the same answers. */
static void test_meta_readers(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    mp_t w = {0};
    s_readers_frame(&w);
    char err[LP_ERR_LEN];
    lp_msg_t *m = recv_meta(&p, w.b, w.n, err);
    CHECK_WHY(m != NULL, err);
    const char *wrong = s_readers_wrong(m);
    const char *s = lp_msg_meta_str(m, "s");
    /* the tree says the same */
    const json_t *meta = lp_msg_meta(m);
    bool tree_ok = json_object_size(meta) == 27 &&
                   json_integer_value(json_object_get(meta, "i64")) == INT64_MIN &&
                   json_is_real(json_object_get(meta, "f32")) &&
                   json_is_null(json_object_get(meta, "nil"));
    const char *wrong_tree = s_readers_wrong(m);
    bool s_kept = strcmp(s, "str") == 0; /* a string read from the frame outlives the tree */
    lp_msg_destroy(&m);
    pair_close(&p);
    CHECK_WHY(wrong == NULL, wrong);
    CHECK(tree_ok);
    CHECK_WHY(wrong_tree == NULL, wrong_tree);
    CHECK(s_kept);
    /* the same frame through lp_meta_decode */
    json_t *v = lp_meta_decode(w.b, w.n, err);
    CHECK_WHY(v != NULL, err);
    bool same = json_integer_value(json_object_get(v, "i32b")) == -32769 &&
                json_real_value(json_object_get(v, "f32b")) == (double)0.1f;
    json_decref(v);
    CHECK(same);
}

/* A NULL message reads as one without the member; so does a message with no meta at all. */
static void test_meta_readers_null(void)
{
    CHECK(lp_msg_meta_str(NULL, "s") == NULL);
    CHECK(lp_msg_meta_int(NULL, "i", -3) == -3);
    CHECK(lp_msg_meta_num(NULL, "n", -3.5) == -3.5);
    CHECK(lp_msg_meta_bool(NULL, "b", true) == true);
    CHECK(lp_msg_meta_bool(NULL, "b", false) == false);
    CHECK(!lp_msg_meta_has(NULL, "h"));
    CHECK(lp_msg_meta_sub_int(NULL, "p", "k", -4) == -4);
    lp_msg_t *m = lp_msg_new(LP_CMD_END, s_rid);
    bool ok = lp_msg_meta_str(m, "s") == NULL && lp_msg_meta_int(m, "i", -3) == -3 &&
              !lp_msg_meta_has(m, "h") && lp_msg_meta_sub_int(m, "p", "k", -4) == -4;
    lp_msg_destroy(&m);
    CHECK(ok);
    /* received with an empty meta frame */
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    m = recv_meta(&p, "", 0, err);
    ok = m && lp_msg_meta_str(m, "s") == NULL && lp_msg_meta_num(m, "n", 1.5) == 1.5 &&
         !lp_msg_meta_has(m, "") && lp_msg_meta_sub_int(m, "p", "k", -4) == -4;
    lp_msg_destroy(&m);
    pair_close(&p);
    CHECK(ok);
}

/* Pending additions win over the received members, before and after the tree is built; the
 * members not replaced are still read from the frame. */
static void test_meta_readers_added(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    size_t len = 0;
    char *meta =
        packed("{\"s\":\"old\",\"n\":1,\"obj\":{\"n\":2},\"keep\":\"k\",\"b\":false}", &len);
    lp_msg_t *m = recv_meta(&p, meta, len, err);
    free(meta);
    CHECK_WHY(m != NULL, err);
    lp_msg_meta_add(m, "s", json_string("new"));
    lp_msg_meta_add(m, "n", json_string("not a number"));
    lp_msg_meta_add(m, "obj", json_pack("{s:i}", "n", 5));
    lp_msg_meta_add(m, "b", json_true());
    lp_msg_meta_add(m, "added", json_real(2.5));
    lp_msg_meta_add(m, "gone", json_null());
    const char *wrong = NULL;
    for (int pass = 0; pass < 2 && !wrong; pass++) {
        if (pass == 1) /* the tree, with the additions merged */
            wrong = json_object_size(lp_msg_meta(m)) == 7 ? NULL : "tree size";
        if (!wrong && strcmp(lp_msg_meta_str(m, "s"), "new") != 0)
            wrong = "s";
        if (!wrong && (lp_msg_meta_int(m, "n", -1) != -1 || lp_msg_meta_num(m, "n", -1) != -1 ||
                       strcmp(lp_msg_meta_str(m, "n"), "not a number") != 0))
            wrong = "n";
        if (!wrong && lp_msg_meta_sub_int(m, "obj", "n", 0) != 5)
            wrong = "obj.n";
        if (!wrong && !lp_msg_meta_bool(m, "b", false))
            wrong = "b";
        if (!wrong &&
            (lp_msg_meta_num(m, "added", 0) != 2.5 || lp_msg_meta_int(m, "added", 3) != 3))
            wrong = "added";
        if (!wrong && (!lp_msg_meta_has(m, "gone") || lp_msg_meta_str(m, "gone") != NULL))
            wrong = "gone";
        if (!wrong && strcmp(lp_msg_meta_str(m, "keep"), "k") != 0)
            wrong = "keep";
        if (!wrong && lp_msg_meta_has(m, "absent"))
            wrong = "absent";
    }
    lp_msg_destroy(&m);
    pair_close(&p);
    CHECK_WHY(wrong == NULL, wrong);
}

/* The router's REQUEST to a worker: the gateway's frame shared (lp_msg_meta_copy), members
 * added; on the wire the received members as they came but the replaced one, then the
 * additions, and it decodes on the other side. The source message is left as it was. */
static void test_meta_copy_add_send(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    size_t len = 0;
    char *meta = packed("{\"model\":\"asked\",\"timeout_ms\":100,\"keep\":[1,{\"a\":true}]}", &len);
    lp_msg_t *in = recv_meta(&p, meta, len, err);
    free(meta);
    CHECK_WHY(in != NULL, err);
    const char *asked = lp_msg_meta_str(in, "model");
    lp_msg_t *m = lp_msg_new(LP_CMD_REQUEST, s_rid);
    lp_msg_meta_copy(m, in);
    lp_msg_meta_add(m, "model", json_string("group"));
    lp_msg_meta_add(m, "attempt", json_integer(1));
    bool ok = strcmp(lp_msg_meta_str(m, "model"), "group") == 0 &&
              lp_msg_meta_int(m, "timeout_ms", 0) == 100 && lp_msg_meta_int(m, "attempt", 0) == 1;
    lp_msg_share_body(m, in);
    lp_msg_set_identity(m, DEALER_ID, strlen(DEALER_ID));
    int rc = lp_msg_send(&m, p.router);
    if (rc != 0)
        lp_msg_destroy(&m);
    char *text = NULL;
    lp_buf_t raw = {0}, body = {0};
    if (rc == 0 && recv_wire(p.dealer, &raw, &body)) {
        text = unpacked(raw.data, raw.len);
        ok = ok && body.len == 1 && body.data[0] == 'B';
    }
    lp_buf_free(&raw);
    lp_buf_free(&body);
    /* the source still reads its own frame */
    ok = ok && strcmp(lp_msg_meta_str(in, "model"), "asked") == 0 && strcmp(asked, "asked") == 0 &&
         !lp_msg_meta_has(in, "attempt");
    /* a source with pending additions gives its whole meta (the tree path) */
    lp_msg_meta_add(in, "extra", json_integer(7));
    lp_msg_t *m2 = lp_msg_new(LP_CMD_REQUEST, s_rid);
    lp_msg_meta_copy(m2, in);
    lp_msg_meta_add(m2, "attempt", json_integer(2));
    ok = ok && lp_msg_meta_int(m2, "extra", 0) == 7 && lp_msg_meta_int(m2, "attempt", 0) == 2 &&
         strcmp(lp_msg_meta_str(m2, "model"), "asked") == 0;
    lp_msg_set_identity(m2, DEALER_ID, strlen(DEALER_ID));
    rc = lp_msg_send(&m2, p.router);
    if (rc != 0)
        lp_msg_destroy(&m2);
    lp_msg_t *got = rc == 0 ? recv_msg(p.dealer, false, err) : NULL;
    ok = ok && got && lp_msg_meta_int(got, "extra", 0) == 7 &&
         lp_msg_meta_int(got, "attempt", 0) == 2 && json_object_size(lp_msg_meta(got)) == 5;
    lp_msg_destroy(&got);
    lp_msg_destroy(&in);
    pair_close(&p);
    CHECK_STR(text,
              "{\"timeout_ms\":100,\"keep\":[1,{\"a\":true}],\"model\":\"group\",\"attempt\":1}");
    free(text);
    CHECK(ok);
}

/* Strings handed out by lp_msg_meta_str stay valid and unchanged while the message lives:
 * across a failed send that spliced the additions into a new frame (and released the
 * received one), for a string read from the frame and one read from an addition. */
static void test_meta_str_outlives_splice(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    size_t len = 0;
    char *meta = packed("{\"model\":\"received-model\",\"code\":\"c1\",\"n\":1}", &len);
    lp_msg_t *in = recv_meta(&p, meta, len, err);
    free(meta);
    CHECK_WHY(in != NULL, err);
    const char *from_frame = lp_msg_meta_str(in, "model");
    const char *code = lp_msg_meta_str(in, "code");
    lp_msg_meta_add(in, "model", json_string("added-model"));
    const char *from_added = lp_msg_meta_str(in, "model");
    int one = 1;
    zmq_setsockopt(p.router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    lp_msg_set_identity(in, "nobody", 6);
    int rc = lp_msg_send(&in, p.router);
    bool ok = rc == -1 && errno == EHOSTUNREACH && in != NULL;
    ok = ok && from_frame && strcmp(from_frame, "received-model") == 0;
    ok = ok && code && strcmp(code, "c1") == 0;
    ok = ok && from_added && strcmp(from_added, "added-model") == 0;
    /* the message reads the spliced meta */
    ok = ok && strcmp(lp_msg_meta_str(in, "model"), "added-model") == 0 &&
         strcmp(lp_msg_meta_str(in, "code"), "c1") == 0 && lp_msg_meta_int(in, "n", 0) == 1;
    /* a second failed splice, then the tree: the first strings still hold */
    const char *code2 = lp_msg_meta_str(in, "code");
    lp_msg_meta_add(in, "code", json_string("c2"));
    rc = lp_msg_send(&in, p.router);
    ok = ok && rc == -1 && in != NULL;
    ok = ok && json_object_size(lp_msg_meta(in)) == 3;
    ok = ok && strcmp(from_frame, "received-model") == 0 && strcmp(code, "c1") == 0 &&
         strcmp(code2, "c1") == 0 && strcmp(from_added, "added-model") == 0;
    /* and it goes whole to a known peer */
    lp_msg_set_identity(in, DEALER_ID, strlen(DEALER_ID));
    rc = ok ? lp_msg_send(&in, p.router) : -1;
    lp_msg_t *got = rc == 0 ? recv_msg(p.dealer, false, err) : NULL;
    ok = ok && got && strcmp(lp_msg_meta_str(got, "model"), "added-model") == 0 &&
         strcmp(lp_msg_meta_str(got, "code"), "c2") == 0 && lp_msg_meta_int(got, "n", 0) == 1 &&
         json_object_size(lp_msg_meta(got)) == 3;
    lp_msg_destroy(&got);
    lp_msg_destroy(&in);
    pair_close(&p);
    CHECK(ok);
}

/* A kept message owns its frames: strings read before still hold, every reader reads the
 * copy (under ASan a read of the released frame fails), and it is relayed and spliced as
 * before. Over inproc the frames are the sender's allocations, not libzmq's receive buffer,
 * but they are copied and released the same way (a body over 32 bytes, which libzmq does not
 * hold inside the zmq_msg_t). */
static void test_meta_keep(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    size_t len = 0;
    char *meta = packed("{\"deployment\":\"d-1234567890abcdef\",\"status\":200,"
                        "\"usage\":{\"prompt_tokens\":12},\"stream\":true}",
                        &len);
    static const char big[] = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n";
    lp_msg_t *in = recv_meta_body(&p, meta, len, big, err);
    free(meta);
    CHECK_WHY(in != NULL, err);
    const char *before = lp_msg_meta_str(in, "deployment");
    size_t blen = 0;
    const void *was = lp_msg_body(in, &blen);
    lp_msg_keep(in);
    size_t alen = 0;
    const char *body = lp_msg_body(in, &alen);
    bool ok = before && strcmp(before, "d-1234567890abcdef") == 0 && body != was && alen == blen &&
              alen == sizeof big - 1 && memcmp(body, big, alen) == 0;
    ok = ok && strcmp(lp_msg_meta_str(in, "deployment"), "d-1234567890abcdef") == 0 &&
         lp_msg_meta_int(in, "status", 0) == 200 && lp_msg_meta_bool(in, "stream", false) &&
         lp_msg_meta_sub_int(in, "usage", "prompt_tokens", 0) == 12 &&
         !lp_msg_meta_has(in, "model");
    /* a copy of the kept meta with an addition, spliced from the kept frame */
    lp_msg_t *m = lp_msg_new(LP_CMD_END, s_rid);
    lp_msg_meta_copy(m, in);
    lp_msg_meta_add(m, "status", json_integer(201));
    lp_msg_set_identity(m, DEALER_ID, strlen(DEALER_ID));
    int rc = lp_msg_send(&m, p.router);
    if (rc != 0)
        lp_msg_destroy(&m);
    lp_msg_t *got = rc == 0 ? recv_msg(p.dealer, false, err) : NULL;
    ok = ok && got && lp_msg_meta_int(got, "status", 0) == 201 &&
         lp_msg_meta_sub_int(got, "usage", "prompt_tokens", 0) == 12 &&
         strcmp(lp_msg_meta_str(got, "deployment"), "d-1234567890abcdef") == 0;
    lp_msg_destroy(&got);
    /* the kept message relayed as it is, then its tree */
    ok = ok && json_integer_value(json_object_get(lp_msg_meta(in), "status")) == 200;
    lp_msg_set_identity(in, DEALER_ID, strlen(DEALER_ID));
    rc = lp_msg_send(&in, p.router);
    got = rc == 0 ? recv_msg(p.dealer, false, err) : NULL;
    ok = ok && got && lp_msg_meta_int(got, "status", 0) == 200 &&
         json_object_size(lp_msg_meta(got)) == 4;
    lp_msg_destroy(&got);
    lp_msg_destroy(&in);
    pair_close(&p);
    CHECK(ok);
}

/* A meta of `levels` nested containers, the top-level map counted: maps ({"a":{"a":...{}}})
 * or arrays under one member ({"a":[[...[]]]}). */
static void s_nested(mp_t *w, int levels, bool arrays)
{
    w->n = 0;
    mp_bytes(w,
             "\x81\xa1"
             "a",
             3);
    for (int i = 2; i < levels; i++)
        mp_bytes(w,
                 arrays ? "\x91"
                        : "\x81\xa1"
                          "a",
                 arrays ? 1 : 3);
    mp_bytes(w, arrays ? "\x90" : "\x80", 1);
}

/* Levels of containers a meta may have (PROTOCOL.md): any JSON the gateway takes, and room
 * around it. */
#define META_DEPTH_MAX (LP_JSON_MAX_DEPTH + 8)

/* Containers nested META_DEPTH_MAX deep (the top-level map counted) are taken, one more
 * refused: by lp_msg_recv and by lp_meta_decode alike. */
static void test_meta_depth(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    mp_t w = {0};
    for (int arrays = 0; arrays < 2; arrays++) {
        s_nested(&w, META_DEPTH_MAX, arrays);
        lp_msg_t *m = recv_meta(&p, w.b, w.n, err);
        bool ok = m && lp_msg_meta_has(m, "a") && json_object_size(lp_msg_meta(m)) == 1;
        lp_msg_destroy(&m);
        json_t *v = lp_meta_decode(w.b, w.n, err);
        ok = ok && v != NULL;
        json_decref(v);
        s_nested(&w, META_DEPTH_MAX + 1, arrays);
        m = recv_meta(&p, w.b, w.n, err);
        bool refused = m == NULL && strstr(err, "nested too deep") != NULL;
        lp_msg_destroy(&m);
        v = lp_meta_decode(w.b, w.n, err);
        refused = refused && v == NULL && strstr(err, "nested too deep") != NULL;
        json_decref(v);
        if (!ok || !refused)
            pair_close(&p);
        CHECK(ok);
        CHECK(refused);
    }
    /* the connection still works */
    CHECK(good_follows(&p, p.router, p.dealer, true, 1));
    pair_close(&p);
}

/* A map of n members (keys "k000".."k<n-1>", one repeated when dup), maybe inside {"obj": }. */
static void s_keys(mp_t *w, int n, bool dup, bool nested)
{
    w->n = 0;
    if (nested)
        mp_bytes(w, "\x81\xa3obj", 5);
    uint8_t head[3] = {0xde, (uint8_t)(n >> 8), (uint8_t)n};
    mp_bytes(w, head, 3);
    for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%03d", dup && i == n - 7 ? 5 : i);
        mp_str(w, key);
        uint8_t v = (uint8_t)(i & 0x7f);
        mp_bytes(w, &v, 1);
    }
}

/* Distinct keys are taken, one repeated refused, at the top level and below: 40 keys (the
 * hash table) and 200 (sorted). */
static void test_meta_many_keys(void)
{
    pair_t p = {0};
    CHECK(pair_open(&p) == 0);
    char err[LP_ERR_LEN];
    mp_t w = {0};
    static const int sizes[] = {40, 200};
    for (size_t k = 0; k < LP_ARRAY_LEN(sizes); k++) {
        int n = sizes[k];
        for (int nested = 0; nested < 2; nested++) {
            s_keys(&w, n, false, nested);
            lp_msg_t *m = recv_meta(&p, w.b, w.n, err);
            bool ok = m != NULL;
            if (ok && !nested)
                ok = lp_msg_meta_int(m, "k000", -1) == 0 && lp_msg_meta_int(m, "k039", -1) == 39 &&
                     json_object_size(lp_msg_meta(m)) == (size_t)n;
            if (ok && nested)
                ok = lp_msg_meta_sub_int(m, "obj", "k039", -1) == 39 &&
                     lp_msg_meta_sub_int(m, "obj", "k005", -1) == 5;
            lp_msg_destroy(&m);
            json_t *v = lp_meta_decode(w.b, w.n, err);
            ok = ok && v != NULL;
            json_decref(v);
            s_keys(&w, n, true, nested);
            m = recv_meta(&p, w.b, w.n, err);
            bool refused = m == NULL && strstr(err, "duplicate key 'k005'") != NULL;
            lp_msg_destroy(&m);
            v = lp_meta_decode(w.b, w.n, err);
            refused = refused && v == NULL && strstr(err, "duplicate key 'k005'") != NULL;
            json_decref(v);
            if (!ok || !refused)
                pair_close(&p);
            CHECK(ok);
            CHECK_WHY(refused, err);
        }
    }
    CHECK(good_follows(&p, p.router, p.dealer, true, 2));
    pair_close(&p);
}

int main(void)
{
    RUN(test_req_id_format);
    RUN(test_cmd_names);
    RUN(test_new_message_accessors);
    RUN(test_round_trip_commands);
    RUN(test_body_sizes);
    RUN(test_route_back);
    RUN(test_send_unknown_identity);
    RUN(test_meta_relay);
    RUN(test_meta_add_splices);
    RUN(test_share_move_give_body);
    RUN(test_msg_error);
    RUN(test_recv_empty);
    RUN(test_malformed);
    RUN(test_edge_valid);
    RUN(test_map_writer);
    RUN(test_set_meta);
    RUN(test_mview);
    RUN(test_meta_readers);
    RUN(test_meta_readers_null);
    RUN(test_meta_readers_added);
    RUN(test_meta_copy_add_send);
    RUN(test_meta_str_outlives_splice);
    RUN(test_meta_keep);
    RUN(test_meta_depth);
    RUN(test_meta_many_keys);
    return th_report();
}
