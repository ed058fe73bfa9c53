#include "lp_loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <zmq.h>

#include "lp_time.h"

/* Raw-fd events fetched per epoll_wait; more stay queued for the next iteration. */
#define LP_LOOP_EPOLL_BATCH 128

typedef struct {
    void *socket;
    lp_socket_fn *fn;
    void *arg;
    bool removed;
} s_sock_t;

typedef struct {
    lp_fd_fn *fn;
    void *arg;
    uint32_t gen; /* bumped on every add/remove so stale epoll events are recognised */
    bool active;
} s_fd_t;

struct lp_loop {
    int epfd;
    s_sock_t *socks;
    size_t nsocks, capsocks;
    zmq_pollitem_t *items; /* socks + the epoll fd, rebuilt when dirty */
    size_t capitems;
    bool items_dirty;
    s_fd_t *fds; /* indexed by fd number */
    size_t capfds;
    lp_timer_t **heap;
    size_t heap_len, heap_cap;
    int sigfd;
    lp_signal_fn *sigfn;
    void *sigarg;
    lp_before_sleep_fn *before_sleep;
    void *before_sleep_arg;
    bool stop;
    int64_t now_ns;
};

lp_loop_t *lp_loop_new(void)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return NULL;
    lp_loop_t *self = lp_calloc(1, sizeof *self);
    self->epfd = epfd;
    self->sigfd = -1;
    self->items_dirty = true;
    self->now_ns = lp_mono_ns();
    return self;
}

void lp_loop_destroy(lp_loop_t **self_p)
{
    lp_loop_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->heap_len; i++)
        self->heap[i]->heap_index = 0;
    if (self->sigfd >= 0)
        close(self->sigfd);
    close(self->epfd);
    free(self->socks);
    free(self->items);
    free(self->fds);
    free(self->heap);
    free(self);
    *self_p = NULL;
}

int lp_loop_add_socket(lp_loop_t *self, void *socket, lp_socket_fn *fn, void *arg)
{
    for (size_t i = 0; i < self->nsocks; i++) {
        if (self->socks[i].socket == socket && !self->socks[i].removed)
            return -1;
    }
    if (self->nsocks == self->capsocks) {
        self->capsocks = self->capsocks ? self->capsocks * 2 : 4;
        self->socks = lp_realloc(self->socks, self->capsocks * sizeof *self->socks);
    }
    self->socks[self->nsocks++] = (s_sock_t){socket, fn, arg, false};
    self->items_dirty = true;
    return 0;
}

void lp_loop_remove_socket(lp_loop_t *self, void *socket)
{
    for (size_t i = 0; i < self->nsocks; i++) {
        if (self->socks[i].socket == socket)
            self->socks[i].removed = true;
    }
    self->items_dirty = true;
}

/* Drop removed sockets and rebuild the zmq_poll item array (sockets first, epoll fd last). */
static void s_rebuild_items(lp_loop_t *self)
{
    size_t j = 0;
    for (size_t i = 0; i < self->nsocks; i++) {
        if (!self->socks[i].removed)
            self->socks[j++] = self->socks[i];
    }
    self->nsocks = j;
    if (self->capitems < self->nsocks + 1) {
        self->capitems = self->nsocks + 1;
        self->items = lp_realloc(self->items, self->capitems * sizeof *self->items);
    }
    for (size_t i = 0; i < self->nsocks; i++)
        self->items[i] = (zmq_pollitem_t){self->socks[i].socket, 0, ZMQ_POLLIN, 0};
    self->items[self->nsocks] = (zmq_pollitem_t){NULL, self->epfd, ZMQ_POLLIN, 0};
    self->items_dirty = false;
}

int lp_loop_add_fd(lp_loop_t *self, int fd, uint32_t events, lp_fd_fn *fn, void *arg)
{
    lp_assert(fd >= 0);
    if ((size_t)fd < self->capfds && self->fds[fd].active) {
        errno = EEXIST; /* the existing watch stays as it is */
        return -1;
    }
    if ((size_t)fd >= self->capfds) {
        size_t cap = self->capfds ? self->capfds : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        self->fds = lp_realloc(self->fds, cap * sizeof *self->fds);
        memset(self->fds + self->capfds, 0, (cap - self->capfds) * sizeof *self->fds);
        self->capfds = cap;
    }
    s_fd_t *rec = &self->fds[fd];
    rec->gen++;
    struct epoll_event ev = {.events = events};
    ev.data.u64 = (uint64_t)(uint32_t)fd | ((uint64_t)rec->gen << 32);
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -1;
    rec->fn = fn;
    rec->arg = arg;
    rec->active = true;
    return 0;
}

int lp_loop_mod_fd(lp_loop_t *self, int fd, uint32_t events)
{
    if (fd < 0 || (size_t)fd >= self->capfds || !self->fds[fd].active) {
        errno = ENOENT;
        return -1;
    }
    struct epoll_event ev = {.events = events};
    ev.data.u64 = (uint64_t)(uint32_t)fd | ((uint64_t)self->fds[fd].gen << 32);
    return epoll_ctl(self->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void lp_loop_remove_fd(lp_loop_t *self, int fd)
{
    if (fd < 0 || (size_t)fd >= self->capfds || !self->fds[fd].active)
        return;
    /* The fd may already be closed by its owner (libcurl does that); ignore the error. */
    epoll_ctl(self->epfd, EPOLL_CTL_DEL, fd, NULL);
    self->fds[fd].active = false;
    self->fds[fd].gen++;
}

/* ---- timers: binary min-heap of armed timers, heap_index = position + 1 ---- */

static void s_heap_set(lp_loop_t *self, size_t pos, lp_timer_t *t)
{
    self->heap[pos] = t;
    t->heap_index = pos + 1;
}

static void s_heap_up(lp_loop_t *self, size_t pos)
{
    lp_timer_t *t = self->heap[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (self->heap[parent]->deadline_ns <= t->deadline_ns)
            break;
        s_heap_set(self, pos, self->heap[parent]);
        pos = parent;
    }
    s_heap_set(self, pos, t);
}

static void s_heap_down(lp_loop_t *self, size_t pos)
{
    lp_timer_t *t = self->heap[pos];
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= self->heap_len)
            break;
        if (child + 1 < self->heap_len &&
            self->heap[child + 1]->deadline_ns < self->heap[child]->deadline_ns)
            child++;
        if (t->deadline_ns <= self->heap[child]->deadline_ns)
            break;
        s_heap_set(self, pos, self->heap[child]);
        pos = child;
    }
    s_heap_set(self, pos, t);
}

void lp_timer_stop(lp_loop_t *self, lp_timer_t *timer)
{
    if (!timer->heap_index)
        return;
    size_t pos = timer->heap_index - 1;
    timer->heap_index = 0;
    lp_timer_t *last = self->heap[--self->heap_len];
    if (pos == self->heap_len)
        return;
    s_heap_set(self, pos, last);
    s_heap_up(self, pos);
    s_heap_down(self, last->heap_index - 1);
}

void lp_timer_start(lp_loop_t *self, lp_timer_t *timer, int64_t delay_ms, lp_timer_fn *fn,
                    void *arg)
{
    lp_timer_stop(self, timer);
    timer->deadline_ns = lp_mono_ns() + (delay_ms > 0 ? delay_ms : 0) * LP_NS_PER_MS;
    timer->fn = fn;
    timer->arg = arg;
    if (self->heap_len == self->heap_cap) {
        self->heap_cap = self->heap_cap ? self->heap_cap * 2 : 64;
        self->heap = lp_realloc(self->heap, self->heap_cap * sizeof *self->heap);
    }
    self->heap_len++;
    s_heap_set(self, self->heap_len - 1, timer);
    s_heap_up(self, self->heap_len - 1);
}

bool lp_timer_active(const lp_timer_t *timer)
{
    return timer->heap_index != 0;
}

/* ---- signals ---- */

static void s_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGUSR2);
}

void lp_loop_block_signals(void)
{
    sigset_t set;
    s_signal_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int s_on_signalfd(lp_loop_t *self, int fd, uint32_t events, void *arg)
{
    LP_UNUSED(events);
    LP_UNUSED(arg);
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (self->sigfn && self->sigfn(self, (int)si.ssi_signo, self->sigarg) < 0)
            return -1;
    }
    return 0;
}

int lp_loop_handle_signals(lp_loop_t *self, lp_signal_fn *fn, void *arg)
{
    sigset_t set;
    s_signal_set(&set);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (lp_loop_add_fd(self, fd, EPOLLIN, s_on_signalfd, NULL) < 0) {
        close(fd);
        return -1;
    }
    self->sigfd = fd;
    self->sigfn = fn;
    self->sigarg = arg;
    return 0;
}

void lp_loop_set_before_sleep(lp_loop_t *self, lp_before_sleep_fn *fn, void *arg)
{
    self->before_sleep = fn;
    self->before_sleep_arg = arg;
}

void lp_loop_stop(lp_loop_t *self)
{
    self->stop = true;
}

int64_t lp_loop_now_ns(const lp_loop_t *self)
{
    return self->now_ns;
}

/* Milliseconds until the next timer (rounded up so we never wake early and spin), capped by
 * the before-sleep hook; -1 = wait for input only. */
static long s_poll_timeout(lp_loop_t *self)
{
    int64_t ms = -1;
    if (self->heap_len) {
        int64_t ns = self->heap[0]->deadline_ns - lp_mono_ns();
        ms = ns <= 0 ? 0 : (ns + LP_NS_PER_MS - 1) / LP_NS_PER_MS;
    }
    if (self->before_sleep) {
        int64_t cap = self->before_sleep(self, self->before_sleep_arg);
        if (cap >= 0 && (ms < 0 || cap < ms))
            ms = cap;
    }
    return (long)ms;
}

static int s_dispatch_fds(lp_loop_t *self)
{
    struct epoll_event evs[LP_LOOP_EPOLL_BATCH];
    int n = epoll_wait(self->epfd, evs, LP_LOOP_EPOLL_BATCH, 0);
    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)evs[i].data.u64;
        uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
        if ((size_t)fd >= self->capfds)
            continue;
        s_fd_t *rec = &self->fds[fd];
        if (!rec->active || rec->gen != gen)
            continue;
        if (rec->fn(self, fd, evs[i].events, rec->arg) < 0)
            return -1;
    }
    return 0;
}

static int s_dispatch_timers(lp_loop_t *self)
{
    int64_t now = lp_mono_ns();
    while (self->heap_len && self->heap[0]->deadline_ns <= now) {
        lp_timer_t *t = self->heap[0];
        lp_timer_stop(self, t);
        if (t->fn(self, t, t->arg) < 0)
            return -1;
    }
    return 0;
}

int lp_loop_run(lp_loop_t *self)
{
    self->stop = false;
    while (!self->stop) {
        long timeout = s_poll_timeout(self);
        if (self->stop)
            break;
        if (self->items_dirty)
            s_rebuild_items(self);
        /* Handlers may add sockets: walk only the items that were polled. */
        size_t npolled = self->nsocks;
        int rc = zmq_poll(self->items, (int)npolled + 1, timeout);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        self->now_ns = lp_mono_ns();
        for (size_t i = 0; rc > 0 && i < npolled; i++) {
            if (!(self->items[i].revents & ZMQ_POLLIN) || self->socks[i].removed)
                continue;
            if (self->socks[i].fn(self, self->socks[i].socket, self->socks[i].arg) < 0)
                return 0;
        }
        if (rc > 0 && (self->items[npolled].revents & ZMQ_POLLIN)) {
            if (s_dispatch_fds(self) < 0)
                return 0;
        }
        if (s_dispatch_timers(self) < 0)
            return 0;
    }
    return 0;
}
