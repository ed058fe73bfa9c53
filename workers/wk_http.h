/* wk_http: libcurl's multi interface driven by the worker's lp_loop. curl's sockets join the
 * loop's epoll set through CURLMOPT_SOCKETFUNCTION, its single timeout is one loop timer
 * (CURLMOPT_TIMERFUNCTION only arms it, never calls curl), and finished transfers are handed
 * to the owner's done callback, so hundreds of provider calls run at once on one thread next
 * to the ZeroMQ socket. Connections are kept alive and reused by the multi handle. */
#ifndef WK_HTTP_H
#define WK_HTTP_H

#include <curl/curl.h>

#include "lp_loop.h"
#include "lp_util.h"

/* Open connections kept for reuse across calls. */
#define WK_HTTP_MAX_CONNECTS 512
/* Easy handles kept (reset) for the next calls: curl_easy_init and curl_easy_cleanup cost
 * more than curl_easy_reset, and a kept handle keeps its buffers. */
#define WK_HTTP_SPARE 16

typedef struct wk_http wk_http_t;

/* A transfer finished (result CURLE_OK or an error). The easy handle is still attached until
 * the callback gives it back (wk_http_release). */
typedef void(wk_http_done_fn)(CURL *easy, CURLcode result, void *arg);

/* A multi handle bound to loop. NULL if libcurl cannot create one. */
wk_http_t *wk_http_new(lp_loop_t *loop, wk_http_done_fn *done, void *arg);
/* Free it and its spare handles; every other easy handle must already be given back.
 * NULL-safe, nulls the pointer. */
void wk_http_destroy(wk_http_t **self_p);
/* An easy handle with libcurl's default options: a spare one, else a new one. NULL if libcurl
 * cannot create one. */
CURL *wk_http_easy(wk_http_t *self);
/* Give a handle back: detached if it was started (its connection closes if it was mid-body),
 * reset and kept as a spare, or freed past WK_HTTP_SPARE. NULL-safe, nulls the pointer. */
void wk_http_release(wk_http_t *self, CURL **easy_p);
/* Start a transfer. -1 if curl refuses it. */
LP_MUSTCHECK int wk_http_add(wk_http_t *self, CURL *easy);
/* Resume a transfer paused by its write callback (CURL_WRITEFUNC_PAUSE). */
void wk_http_unpause(wk_http_t *self, CURL *easy);

#endif
