/* fuzz_request: the gateway's validation of a client request body, through the real route
 * handlers (gateway/gw_routes.c s_model_call, reached with gw_route_find) for
 * /v1/chat/completions, /v1/completions and /v1/embeddings, without a network:
 *  - the request has no MHD connection; this file defines MHD_lookup_connection_value, which
 *    the linker prefers to libmicrohttpd's, so headers (Content-Type, x-litellm-timeout) come
 *    from here;
 *  - the server has what the handler uses (config, loop, an empty price table, in-process key
 *    cache and limits, no Redis) and its router link is marked dead (router_expiry_ns = 0),
 *    so a request that passes validation, admitted as the master key's (no key limits), is
 *    answered 503 router_unavailable by gw_forward instead of being sent.
 * Every request must end answered with a well-formed OpenAI error; one that passed validation
 * must hold what the handler checked (a known model group and the call's required field). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "gw_keys.h"
#include "gw_limits.h"
#include "gw_req.h"
#include "gw_routes.h"
#include "gw_server.h"
#include "lp_json.h"
#include "lp_loop.h"
#include "lp_price.h"

static gw_server_t s_srv;
static const char *s_content_type;
static const char *s_timeout;

/* Header lookups of gw_req_header land here: the connection is NULL. */
const char *MHD_lookup_connection_value(struct MHD_Connection *connection, enum MHD_ValueKind kind,
                                        const char *key)
{
    (void)connection;
    if (kind != MHD_HEADER_KIND || !key)
        return NULL;
    if (strcasecmp(key, "Content-Type") == 0)
        return s_content_type;
    if (strcasecmp(key, "x-litellm-timeout") == 0)
        return s_timeout;
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    s_srv.cfg = (lp_cfg_t *)fz_cfg();
    s_srv.loop = lp_loop_new();
    char err[LP_ERR_LEN] = "";
    s_srv.prices = lp_prices_load(NULL, err);
    s_srv.keys = gw_keys_new(&s_srv, 0);
    s_srv.limits = gw_limits_new(&s_srv);
    FZ_CHECK(s_srv.loop && s_srv.prices && s_srv.keys && s_srv.limits, "harness: server: %s", err);
    s_srv.router_expiry_ns = 0; /* the router is "not answering": nothing is sent */
    return 0;
}

/* What the handler promised about a body it let through. */
static void s_check_passed(gw_call_t call, const uint8_t *data, size_t size)
{
    char err[LP_ERR_LEN];
    json_t *body = lp_json_parse((const char *)data, size, err);
    FZ_CHECK(json_is_object(body), "a body that is not a JSON object passed: %s", err);
    const char *model = lp_json_str(body, "model");
    FZ_CHECK(model && lp_cfg_has_group(s_srv.cfg, model), "unknown model passed");
    json_t *stream = json_object_get(body, "stream");
    FZ_CHECK(!stream || json_is_boolean(stream) || json_is_null(stream), "bad stream passed");
    if (call == GW_CALL_CHAT) {
        json_t *msgs = json_object_get(body, "messages");
        FZ_CHECK(json_is_array(msgs) && json_array_size(msgs) > 0, "chat without messages");
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m)
        {
            FZ_CHECK(json_is_object(m) && json_is_string(json_object_get(m, "role")),
                     "message %zu without a role passed", i);
        }
    } else if (call == GW_CALL_COMPLETION) {
        json_t *p = json_object_get(body, "prompt");
        FZ_CHECK(json_is_string(p) || json_is_array(p), "completion without prompt passed");
    } else if (call == GW_CALL_EMBEDDING) {
        json_t *in = json_object_get(body, "input");
        FZ_CHECK(json_is_string(in) || (json_is_array(in) && json_array_size(in) > 0),
                 "embedding without input passed");
    }
    json_decref(body);
}

/* One request through the route's handler. */
static void s_one(const char *path, const uint8_t *data, size_t size)
{
    bool known = false;
    const gw_route_t *route = gw_route_find("POST", path, &known);
    FZ_CHECK(route && route->handle, "harness: no route for %s", path);
    gw_req_t *req = gw_req_new(&s_srv, NULL);
    req->route = route;
    req->call = route->call;
    lp_buf_append(&req->body, data, size);
    route->handle(req);
    FZ_CHECK(req->state == GW_REQ_ANSWERED, "%s: request left unanswered (state %d)", path,
             (int)req->state);
    FZ_CHECK(req->status == 400 || req->status == 415 || req->status == 503,
             "%s: unexpected status %d", path, req->status);
    char err[LP_ERR_LEN];
    json_t *answer = lp_json_parse(req->local, req->local_len, err);
    json_t *e = json_object_get(answer, "error");
    FZ_CHECK(json_is_string(json_object_get(e, "message")) &&
                 json_is_string(json_object_get(e, "type")) &&
                 json_is_string(json_object_get(e, "code")),
             "%s: answer is not an OpenAI error (%s): %.*s", path, err, (int)req->local_len,
             req->local ? req->local : "");
    if (req->status == 503) {
        FZ_CHECK(strcmp(json_string_value(json_object_get(e, "code")), "router_unavailable") == 0,
                 "%s: 503 that is not router_unavailable", path);
        FZ_CHECK(req->group && lp_cfg_has_group(s_srv.cfg, req->group), "%s: no group", path);
        s_check_passed(route->call, data, size);
    }
    json_decref(answer);
    gw_req_destroy(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *content_types[] = {
        NULL,         "application/json", "application/json; charset=utf-8", " Application/JSON",
        "text/plain", "application/jsonx"};
    static const char *timeouts[] = {NULL, "30", "0.25", "-1", "1e999", "abc", "86401", ""};
    s_content_type = "application/json";
    s_timeout = NULL;
    s_one("/v1/chat/completions", data, size);
    s_one("/v1/completions", data, size);
    s_one("/v1/embeddings", data, size);
    /* Once more with headers picked by the input. */
    fz_rng_t rng;
    fz_rng_seed(&rng, data, size);
    s_content_type =
        content_types[fz_rng_next(&rng) % (sizeof content_types / sizeof *content_types)];
    s_timeout = timeouts[fz_rng_next(&rng) % (sizeof timeouts / sizeof *timeouts)];
    s_one("/chat/completions", data, size);
    return 0;
}
