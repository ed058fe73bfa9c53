#define LP_LOG_MODULE "wk_http"
#include "wk_http.h"

#include <stdlib.h>
#include <sys/epoll.h>

#include "lp_log.h"

struct wk_http {
    CURLM *multi;
    lp_loop_t *loop;
    lp_timer_t timer;
    wk_http_done_fn *done;
    void *arg;
    CURL *spare[WK_HTTP_SPARE];
    size_t nspare;
};

/* Hand every finished transfer to the owner. */
static void s_drain_info(wk_http_t *self)
{
    int left = 0;
    CURLMsg *m;
    while ((m = curl_multi_info_read(self->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        /* m does not survive curl_multi_remove_handle: copy what we need first. */
        CURL *easy = m->easy_handle;
        CURLcode result = m->data.result;
        self->done(easy, result, self->arg);
    }
}

static int s_on_fd(lp_loop_t *loop, int fd, uint32_t events, void *arg)
{
    LP_UNUSED(loop);
    wk_http_t *self = arg;
    int flags = 0;
    if (events & (EPOLLIN | EPOLLHUP))
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & EPOLLERR)
        flags |= CURL_CSELECT_ERR;
    int running = 0;
    curl_multi_socket_action(self->multi, fd, flags, &running);
    s_drain_info(self);
    return 0;
}

static int s_on_timer(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    wk_http_t *self = arg;
    int running = 0;
    curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    s_drain_info(self);
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in a socket into the loop's epoll set.
 * socketp is curl's per-socket slot: non-NULL once the fd is registered. */
static int s_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    LP_UNUSED(easy);
    wk_http_t *self = userp;
    if (what == CURL_POLL_REMOVE) {
        lp_loop_remove_fd(self->loop, fd);
        curl_multi_assign(self->multi, fd, NULL);
        return 0;
    }
    uint32_t ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= EPOLLOUT;
    if (!socketp) {
        if (lp_loop_add_fd(self->loop, fd, ev, s_on_fd, self) < 0) {
            log_errno("cannot watch curl socket %d", fd);
            return -1;
        }
        curl_multi_assign(self->multi, fd, self);
    } else if (lp_loop_mod_fd(self->loop, fd, ev) < 0) {
        log_errno("cannot change curl socket %d", fd);
        return -1;
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: arm (or disarm) the one loop timer; never call curl from here. */
static int s_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    LP_UNUSED(multi);
    wk_http_t *self = userp;
    if (timeout_ms < 0)
        lp_timer_stop(self->loop, &self->timer);
    else
        lp_timer_start(self->loop, &self->timer, timeout_ms, s_on_timer, self);
    return 0;
}

wk_http_t *wk_http_new(lp_loop_t *loop, wk_http_done_fn *done, void *arg)
{
    CURLM *multi = curl_multi_init();
    if (!multi)
        return NULL;
    wk_http_t *self = lp_calloc(1, sizeof *self);
    self->multi = multi;
    self->loop = loop;
    self->done = done;
    self->arg = arg;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, s_socket_cb);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, s_timer_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, self);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)WK_HTTP_MAX_CONNECTS);
    return self;
}

void wk_http_destroy(wk_http_t **self_p)
{
    wk_http_t *self = *self_p;
    if (!self)
        return;
    lp_timer_stop(self->loop, &self->timer);
    while (self->nspare)
        curl_easy_cleanup(self->spare[--self->nspare]);
    curl_multi_cleanup(self->multi);
    free(self);
    *self_p = NULL;
}

CURL *wk_http_easy(wk_http_t *self)
{
    return self->nspare ? self->spare[--self->nspare] : curl_easy_init();
}

void wk_http_release(wk_http_t *self, CURL **easy_p)
{
    CURL *easy = *easy_p;
    if (!easy)
        return;
    curl_multi_remove_handle(self->multi, easy); /* CURLM_OK when it was never added */
    if (self->nspare < WK_HTTP_SPARE) {
        /* Options (URL, headers, body, callbacks and their data) back to the defaults. */
        curl_easy_reset(easy);
        self->spare[self->nspare++] = easy;
    } else {
        curl_easy_cleanup(easy);
    }
    *easy_p = NULL;
}

int wk_http_add(wk_http_t *self, CURL *easy)
{
    return curl_multi_add_handle(self->multi, easy) == CURLM_OK ? 0 : -1;
}

void wk_http_unpause(wk_http_t *self, CURL *easy)
{
    LP_UNUSED(self);
    curl_easy_pause(easy, CURLPAUSE_CONT);
}
