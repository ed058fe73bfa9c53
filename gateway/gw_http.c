#define LP_LOG_MODULE "gw_http"
#include "gw_http.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "gw_auth.h"
#include "gw_record.h"
#include "gw_req.h"
#include "gw_routes.h"
#include "lp_log.h"

static size_t s_max_body(const gw_req_t *req)
{
    return (size_t)req->srv->cfg->max_request_size_mb * 1024 * 1024;
}

/* First call for a request: route it, authorise it, refuse an oversize declared body. */
static void s_begin(gw_req_t *req, const char *url, const char *method)
{
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
        gw_req_fail(req, 413, "request_too_large", NULL,
                    "request body larger than general_settings.max_request_size_mb (%d MB)",
                    req->srv->cfg->max_request_size_mb);
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
        *req_cls = req;
        s_begin(req, url, method);
        if (req->state == GW_REQ_ANSWERED)
            return gw_req_queue(req); /* MHD closes the connection if a body was coming */
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (req->state == GW_REQ_READING && !req->too_big) {
            if (req->body.len + *upload_data_size > s_max_body(req)) {
                req->too_big = true;
                lp_buf_free(&req->body);
            } else {
                lp_buf_append(&req->body, upload_data, *upload_data_size);
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    switch (req->state) {
    case GW_REQ_READING:
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
    if (req->state == GW_REQ_WAITING || (req->streaming && !req->out.done)) {
        /* The client went while the router still had the request (a stream cut by the
         * client, or shutdown): stop the upstream work. */
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            req->client_gone = true;
        gw_abandon(req, 499, "client_closed_request", "the client closed the connection");
    }
    srv->stats.requests++;
    /* Every model call leaves a record; counting tokens is not one. */
    if (req->call != GW_CALL_NONE && req->call != GW_CALL_COUNT_TOKENS && req->authed)
        gw_record_send(req, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    rlog_debug(req->idstr, "%d done (%s)", req->status,
               toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "sent" : "client gone");
    gw_req_destroy(&req);
}
