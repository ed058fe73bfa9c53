/* gw_http: libmicrohttpd's callbacks. The access handler collects the body (bounded), checks
 * auth as soon as the headers are in (so an unauthorised upload is refused before it is
 * read), runs the route's handler once the body is complete, suspends the connection while
 * the router works and queues the answer when resumed. The completed callback is where a
 * request's usage record is sent and its memory freed. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <microhttpd.h>

/* MHD_AccessHandlerCallback; cls is the gw_server_t. */
enum MHD_Result gw_http_access(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **req_cls);
/* MHD_RequestCompletedCallback; cls is the gw_server_t. */
void gw_http_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                       enum MHD_RequestTerminationCode toe);

#endif
