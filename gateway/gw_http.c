#define LP_LOG_MODULE "gw_http"
#include "gw_http.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw_auth.h"
#include "gw_conn.h"
#include "gw_record.h"
#include "gw_req.h"
#include "gw_routes.h"
#include "lp_log.h"

static size_t s_max_body(const gw_req_t *req)
{
    return (size_t)req->srv->cfg->max_request_size_mb * 1024 * 1024;
}

/* 413, and the connection closed: what follows a refused body is not to be read. */
static void s_too_large(gw_req_t *req)
{
    req->close = true;
    gw_req_fail(req, 413, "request_too_large", NULL,
                "request body larger than general_settings.max_request_size_mb (%d MB)",
                req->srv->cfg->max_request_size_mb);
}

typedef struct {
    int content_lengths;
    char content_length[32];
    bool differing, transfer_encoding, unknown_encoding, nul;
} s_framing_t;

static enum MHD_Result s_on_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    LP_UNUSED(kind);
    s_framing_t *f = cls;
    if (strlen(key) != key_size || (value && strlen(value) != value_size))
        f->nul = true;
    if (!value)
        return MHD_YES;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (f->content_lengths++ && strcmp(f->content_length, value) != 0)
            f->differing = true;
        lp_strlcpy(f->content_length, value, sizeof f->content_length);
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_encoding = true;
        f->unknown_encoding |= strcasecmp(value, "chunked") != 0;
    }
    return MHD_YES;
}

/* MHD hands over the path without its query: add the arguments back ("&k=v"). */
static enum MHD_Result s_on_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                size_t key_size, const char *value, size_t value_size)
{
    LP_UNUSED(kind);
    LP_UNUSED(key);
    *(size_t *)cls += key_size + (value ? value_size + 1 : 0) + 1;
    return MHD_YES;
}

/* A request whose length two HTTP parsers could read differently (RFC 9112 6.3: differing
 * Content-Lengths, Content-Length with Transfer-Encoding, a coding other than chunked) or
 * with a NUL in a header is refused and its connection closed: behind another proxy it
 * could smuggle a second request past the first one's checks. */
static bool s_framing_ok(gw_req_t *req, const char *url)
{
    size_t url_len = strlen(url);
    MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, s_on_arg, &url_len);
    if (url_len > GW_URL_MAX) {
        req->close = true;
        gw_req_fail(req, 414, "uri_too_long", NULL, "the request URL is longer than %d bytes",
                    GW_URL_MAX);
        return false;
    }
    s_framing_t f = {0};
    MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, s_on_header, &f);
    const char *why = f.nul                                      ? "a header holds a NUL byte"
                      : f.differing                              ? "Content-Length is given twice"
                      : f.transfer_encoding && f.content_lengths ? "Content-Length is given with "
                                                                   "Transfer-Encoding"
                      : f.unknown_encoding ? "Transfer-Encoding other than chunked"
                                           : NULL;
    if (!why)
        return true;
    req->close = true;
    gw_req_fail(req, 400, "bad_request_framing", NULL, "malformed request: %s", why);
    return false;
}

static bool s_over_limit(gw_req_t *req)
{
    if (!gw_conn_over_cap(req->cx))
        return false;
    req->close = true;
    gw_req_fail(req, 503, "too_many_connections", NULL,
                "the gateway holds %zu client connections, its limit: retry shortly",
                req->srv->max_connections);
    return true;
}

/* First call for a request: route it, authorise it, refuse an oversize declared body. */
static void s_begin(gw_req_t *req, const char *url, const char *method)
{
    if (s_over_limit(req) || !s_framing_ok(req, url))
        return;
    bool known = false;
    req->route = gw_route_find(method, url, &known);
    if (!req->route) {
        if (known)
            gw_req_fail(req, 405, "method_not_allowed", NULL, "%s is not allowed on %s", method,
                        url);
        else
            gw_req_fail(req, 404, "not_found", NULL, "no route %s %.200s", method, url);
        return;
    }
    req->call = req->route->call;
    /* A pending key lookup runs while the body arrives; the handler waits for it. */
    gw_access_t access = req->route->access;
    if (access == GW_ACCESS_METRICS)
        access = req->srv->cfg->metrics_auth ? GW_ACCESS_ADMIN : GW_ACCESS_PUBLIC;
    if (access != GW_ACCESS_PUBLIC &&
        gw_auth_check(req, access == GW_ACCESS_ADMIN) == GW_AUTH_REFUSED)
        return;
    const char *cl = gw_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    long long declared = 0;
    if (cl && lp_parse_ll(cl, 0, LLONG_MAX, &declared) == 0 && (size_t)declared > s_max_body(req))
        s_too_large(req);
}

enum MHD_Result gw_http_access(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **req_cls)
{
    LP_UNUSED(version);
    gw_server_t *srv = cls;
    gw_req_t *req = *req_cls;
    if (!req) {
        req = gw_req_new(srv, conn);
        req->cx = gw_conn_of(conn);
        gw_conn_headers(req->cx);
        *req_cls = req;
        s_begin(req, url, method);
        if (req->state == GW_REQ_ANSWERED)
            return gw_req_queue(req); /* MHD closes the connection if a body was coming */
        return MHD_YES;
    }
    if (*upload_data_size) {
        gw_conn_body(req->cx, *upload_data_size);
        if (req->state == GW_REQ_READING && !req->too_big) {
            if (req->body.len + *upload_data_size > s_max_body(req)) {
                /* The rest is dropped as it comes and the 413 goes out when the body ends:
                 * libmicrohttpd 0.9.75 takes no response while a body is being received
                 * (one that never ends meets the connection timeout). */
                req->too_big = true;
                lp_buf_free(&req->body);
            } else {
                lp_buf_append(&req->body, upload_data, *upload_data_size);
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    gw_conn_serving(req->cx);
    switch (req->state) {
    case GW_REQ_READING:
        if (req->too_big) {
            s_too_large(req);
            return gw_req_queue(req);
        }
        if (req->key_pending) {
            gw_req_suspend(req); /* resumed (or answered) when the key is known */
            return MHD_YES;
        }
        req->route->handle(req);
        if (req->state == GW_REQ_WAITING || req->state == GW_REQ_HELD) {
            gw_req_suspend(req);
            return MHD_YES;
        }
        return req->state == GW_REQ_ANSWERED ? gw_req_queue(req) : MHD_NO;
    case GW_REQ_ANSWERED:
        return gw_req_queue(req);
    case GW_REQ_HELD:
    case GW_REQ_WAITING:
        /* Resumed without an answer (a hang-up seen while held): keep it parked. */
        gw_req_suspend(req);
        return MHD_YES;
    default:
        return MHD_YES;
    }
}

void gw_http_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                       enum MHD_RequestTerminationCode toe)
{
    LP_UNUSED(conn);
    gw_server_t *srv = cls;
    gw_req_t *req = *req_cls;
    if (!req)
        return;
    *req_cls = NULL;
    gw_conn_ready(req->cx);
    if (req->state == GW_REQ_WAITING || (req->streaming && !req->out.done)) {
        /* The client went while the router still had the request (a stream cut by the
         * client, or shutdown): stop the upstream work. */
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            req->client_gone = true;
        gw_abandon(req, 499, "client_closed_request", "the client closed the connection");
    }
    srv->stats.requests++;
    gw_record_once(req, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    rlog_debug(req->idstr, "%d done (%s)", req->status,
               toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "sent" : "client gone");
    gw_req_destroy(&req);
}
