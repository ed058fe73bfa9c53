/* test_loop: lp_loop timers, raw fds, ZeroMQ sockets, stop, signals. Short delays only. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <zmq.h>

#include "harness.h"
#include "lp_loop.h"
#include "lp_time.h"

/* ---- timers ---- */

typedef struct {
    int order[16];
    int n;
    int stop_at; /* return -1 when n reaches this */
    lp_timer_t timers[4];
} rec_t;

static int rec_fire(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    rec_t *r = arg;
    int idx = (int)(timer - r->timers);
    if (r->n < 16)
        r->order[r->n++] = idx;
    return r->stop_at && r->n >= r->stop_at ? -1 : 0;
}

static void test_timer_order(void)
{
    lp_loop_t *loop = lp_loop_new();
    CHECK(loop != NULL);
    rec_t r = {.stop_at = 3};
    int64_t t0 = lp_mono_ns();
    lp_timer_start(loop, &r.timers[0], 30, rec_fire, &r);
    lp_timer_start(loop, &r.timers[1], 10, rec_fire, &r);
    lp_timer_start(loop, &r.timers[2], 20, rec_fire, &r);
    bool active = lp_timer_active(&r.timers[0]) && lp_timer_active(&r.timers[1]) &&
                  lp_timer_active(&r.timers[2]);
    int rc = lp_loop_run(loop);
    int64_t ms = (lp_mono_ns() - t0) / LP_NS_PER_MS;
    bool inactive = !lp_timer_active(&r.timers[0]) && !lp_timer_active(&r.timers[1]) &&
                    !lp_timer_active(&r.timers[2]);
    lp_loop_destroy(&loop);
    CHECK(loop == NULL);
    CHECK(active);
    CHECK(rc == 0);
    CHECK(r.n == 3);
    CHECK(r.order[0] == 1 && r.order[1] == 2 && r.order[2] == 0);
    CHECK(inactive);
    CHECK(ms >= 30 && ms < 300);
}

/* Many timers with shuffled deadlines come out sorted (exercises the heap). */
typedef struct {
    lp_timer_t t;
    int64_t delay;
} many_t;

typedef struct {
    int64_t last_deadline;
    int fired;
    bool sorted;
    int total;
} many_state_t;

static many_state_t s_many;

static int many_fire(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(arg);
    if (timer->deadline_ns < s_many.last_deadline)
        s_many.sorted = false;
    s_many.last_deadline = timer->deadline_ns;
    return ++s_many.fired == s_many.total ? -1 : 0;
}

static void test_timer_heap(void)
{
    lp_loop_t *loop = lp_loop_new();
    CHECK(loop != NULL);
    static many_t m[200];
    s_many = (many_state_t){0, 0, true, 0};
    for (int i = 0; i < 200; i++) {
        m[i].delay = (i * 7919) % 23; /* 0..22 ms */
        lp_timer_start(loop, &m[i].t, m[i].delay, many_fire, NULL);
    }
    /* stop a third of them, from various heap positions */
    for (int i = 0; i < 200; i += 3)
        lp_timer_stop(loop, &m[i].t);
    s_many.total = 200 - 67;
    int rc = lp_loop_run(loop);
    bool none_left = true;
    for (int i = 0; i < 200; i++)
        none_left = none_left && !lp_timer_active(&m[i].t);
    lp_loop_destroy(&loop);
    CHECK(rc == 0);
    CHECK(s_many.fired == 200 - 67);
    CHECK(s_many.sorted);
    CHECK(none_left);
}

static void test_timer_stop_never_fires(void)
{
    lp_loop_t *loop = lp_loop_new();
    CHECK(loop != NULL);
    rec_t r = {.stop_at = 1};
    lp_timer_start(loop, &r.timers[0], 5, rec_fire, &r);
    lp_timer_start(loop, &r.timers[1], 15, rec_fire, &r);
    lp_timer_stop(loop, &r.timers[0]);
    lp_timer_stop(loop, &r.timers[0]); /* twice is a no-op */
    bool stopped = !lp_timer_active(&r.timers[0]);
    lp_timer_stop(loop, &r.timers[3]); /* never armed: no-op */
    int rc = lp_loop_run(loop);
    lp_loop_destroy(&loop);
    CHECK(stopped);
    CHECK(rc == 0);
    CHECK(r.n == 1);
    CHECK(r.order[0] == 1);
}

static void test_timer_rearm_moves(void)
{
    lp_loop_t *loop = lp_loop_new();
    CHECK(loop != NULL);
    rec_t r = {.stop_at = 2};
    int64_t t0 = lp_mono_ns();
    lp_timer_start(loop, &r.timers[0], 5, rec_fire, &r);
    lp_timer_start(loop, &r.timers[1], 400, rec_fire, &r);
    lp_timer_start(loop, &r.timers[2], 20, rec_fire, &r);
    /* move 0 later (after 2) and 1 much earlier (before 2) */
    lp_timer_start(loop, &r.timers[0], 40, rec_fire, &r);
    lp_timer_start(loop, &r.timers[1], 1, rec_fire, &r);
    int rc = lp_loop_run(loop);
    int64_t ms = (lp_mono_ns() - t0) / LP_NS_PER_MS;
    bool zero_pending = lp_timer_active(&r.timers[0]);
    lp_loop_destroy(&loop);
    CHECK(rc == 0);
    CHECK(r.n == 2);
    CHECK(r.order[0] == 1 && r.order[1] == 2);
    CHECK(zero_pending);
    CHECK(ms < 200);
}

/* A timer that re-arms itself from its handler is periodic. */
typedef struct {
    lp_timer_t t;
    int count;
} periodic_t;

static int periodic_fire(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    periodic_t *p = arg;
    if (lp_timer_active(timer))
        return -1; /* must be disarmed when its handler runs */
    if (++p->count == 5)
        return -1;
    lp_timer_start(loop, timer, 2, periodic_fire, p);
    return 0;
}

static void test_timer_periodic(void)
{
    lp_loop_t *loop = lp_loop_new();
    CHECK(loop != NULL);
    periodic_t p = {0};
    lp_timer_start(loop, &p.t, 0, periodic_fire, &p);
    int rc = lp_loop_run(loop);
    lp_loop_destroy(&loop);
    CHECK(rc == 0);
    CHECK(p.count == 5);
}

/* A handler returning -1 stops the run; timers not yet due stay armed. */
static void test_handler_minus_one_stops(void)
{
    lp_loop_t *loop = lp_loop_new();
    CHECK(loop != NULL);
    rec_t r = {.stop_at = 1};
    lp_timer_start(loop, &r.timers[0], 2, rec_fire, &r);
    lp_timer_start(loop, &r.timers[1], 60, rec_fire, &r);
    int64_t t0 = lp_mono_ns();
    int rc = lp_loop_run(loop);
    int64_t ms = (lp_mono_ns() - t0) / LP_NS_PER_MS;
    bool pending = lp_timer_active(&r.timers[1]);
    /* running again continues with what is left */
    r.stop_at = 2;
    int rc2 = lp_loop_run(loop);
    lp_loop_destroy(&loop);
    CHECK(rc == 0 && rc2 == 0);
    CHECK(ms < 50);
    CHECK(pending);
    CHECK(r.n == 2 && r.order[1] == 1);
}

static int stop_fire(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(timer);
    int *n = arg;
    (*n)++;
    lp_loop_stop(loop);
    return 0;
}

static void test_stop_from_timer(void)
{
    lp_loop_t *loop = lp_loop_new();
    CHECK(loop != NULL);
    int n = 0;
    rec_t r = {0};
    lp_timer_t t;
    memset(&t, 0, sizeof t);
    lp_timer_start(loop, &t, 3, stop_fire, &n);
    lp_timer_start(loop, &r.timers[0], 80, rec_fire, &r);
    int64_t t0 = lp_mono_ns();
    int rc = lp_loop_run(loop);
    int64_t ms = (lp_mono_ns() - t0) / LP_NS_PER_MS;
    lp_timer_stop(loop, &r.timers[0]);
    lp_loop_destroy(&loop);
    CHECK(rc == 0);
    CHECK(n == 1);
    CHECK(r.n == 0);
    CHECK(ms < 60);
}

/* ---- before-sleep hook ---- */

typedef struct {
    int calls;
} hook_t;

static int64_t hook_fn(lp_loop_t *loop, void *arg)
{
    hook_t *h = arg;
    if (++h->calls == 4)
        lp_loop_stop(loop);
    return 1; /* cap the sleep at 1 ms */
}

static void test_before_sleep(void)
{
    lp_loop_t *loop = lp_loop_new();
    CHECK(loop != NULL);
    hook_t h = {0};
    lp_loop_set_before_sleep(loop, hook_fn, &h);
    int64_t t0 = lp_mono_ns();
    int64_t before = lp_loop_now_ns(loop);
    /* no timers, no input: only the hook's cap wakes the loop */
    int rc = lp_loop_run(loop);
    int64_t ms = (lp_mono_ns() - t0) / LP_NS_PER_MS;
    int64_t after = lp_loop_now_ns(loop);
    lp_loop_destroy(&loop);
    CHECK(rc == 0);
    CHECK(h.calls == 4);
    CHECK(ms < 100);
    CHECK(after > before);
}

/* ---- raw fds ---- */

typedef struct {
    int rfd, wfd;
    int calls;
    uint32_t events;
    bool remove_on_read;
    lp_timer_t write1, write2, end;
} fd_state_t;

static int fd_fn(lp_loop_t *loop, int fd, uint32_t events, void *arg)
{
    fd_state_t *s = arg;
    char buf[16];
    s->calls++;
    s->events = events;
    if (read(fd, buf, sizeof buf) < 0)
        return -1;
    if (s->remove_on_read)
        lp_loop_remove_fd(loop, fd);
    return 0;
}

static int write_fire(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    fd_state_t *s = arg;
    return write(s->wfd, "x", 1) == 1 ? 0 : -1;
}

static int end_fire(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    LP_UNUSED(arg);
    return -1;
}

static void test_fd_handler(void)
{
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    lp_loop_t *loop = lp_loop_new();
    fd_state_t s = {.rfd = p[0], .wfd = p[1], .remove_on_read = true};
    bool added = loop && lp_loop_add_fd(loop, p[0], EPOLLIN, fd_fn, &s) == 0;
    if (added) {
        lp_timer_start(loop, &s.write1, 2, write_fire, &s);
        lp_timer_start(loop, &s.write2, 10, write_fire, &s);
        lp_timer_start(loop, &s.end, 25, end_fire, &s);
    }
    int rc = added ? lp_loop_run(loop) : -1;
    /* the second byte is still in the pipe: nobody read it after the removal */
    char c;
    ssize_t left = read(p[0], &c, 1);
    /* mod on a removed fd fails with ENOENT */
    errno = 0;
    int mod = loop ? lp_loop_mod_fd(loop, p[0], EPOLLIN) : 0;
    int mod_errno = errno;
    if (loop)
        lp_loop_remove_fd(loop, p[0]); /* removing twice is harmless */
    lp_loop_destroy(&loop);
    close(p[0]);
    close(p[1]);
    CHECK(added);
    CHECK(rc == 0);
    CHECK(s.calls == 1);
    CHECK(s.events & EPOLLIN);
    CHECK(left == 1);
    CHECK(mod == -1 && mod_errno == ENOENT);
}

static int fd_stop_fn(lp_loop_t *loop, int fd, uint32_t events, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(fd);
    LP_UNUSED(events);
    int *n = arg;
    (*n)++;
    return -1;
}

/* A readable fd handler that returns -1 stops the loop; EPOLLOUT via mod_fd. */
static void test_fd_stop_and_mod(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    lp_loop_t *loop = lp_loop_new();
    int n = 0;
    lp_timer_t guard;
    memset(&guard, 0, sizeof guard);
    /* watch the write end for nothing, then switch to EPOLLOUT (always writable) */
    bool ok = loop && lp_loop_add_fd(loop, p[1], 0, fd_stop_fn, &n) == 0 &&
              lp_loop_mod_fd(loop, p[1], EPOLLOUT) == 0;
    if (ok) {
        lp_timer_start(loop, &guard, 200, end_fire, NULL);
        ok = lp_loop_run(loop) == 0;
        lp_timer_stop(loop, &guard);
        lp_loop_remove_fd(loop, p[1]);
    }
    lp_loop_destroy(&loop);
    close(p[0]);
    close(p[1]);
    CHECK(ok);
    CHECK(n == 1);
}

/* Adding an fd that is already watched fails, and must not break the existing watch. */
static void test_fd_add_twice_keeps_watch(void)
{
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    lp_loop_t *loop = lp_loop_new();
    fd_state_t s = {.rfd = p[0], .wfd = p[1]};
    bool first = loop && lp_loop_add_fd(loop, p[0], EPOLLIN, fd_fn, &s) == 0;
    bool second_fails = loop && lp_loop_add_fd(loop, p[0], EPOLLIN, fd_fn, &s) < 0;
    int rc = -1;
    if (first) {
        lp_timer_start(loop, &s.write1, 1, write_fire, &s);
        lp_timer_start(loop, &s.end, 30, end_fire, &s);
        rc = lp_loop_run(loop);
        lp_timer_stop(loop, &s.end);
        lp_loop_remove_fd(loop, p[0]);
    }
    lp_loop_destroy(&loop);
    close(p[0]);
    close(p[1]);
    CHECK(first);
    CHECK(second_fails);
    CHECK(rc == 0);
    CHECK(s.calls == 1);
}

/* ---- ZeroMQ sockets ---- */

typedef struct {
    int calls;
    char last[16];
    void *peer;
    lp_timer_t send1, send2, end;
    bool remove_after_first;
} zsock_state_t;

static int zsock_fn(lp_loop_t *loop, void *socket, void *arg)
{
    zsock_state_t *s = arg;
    char buf[16] = {0};
    int n = zmq_recv(socket, buf, sizeof buf - 1, ZMQ_DONTWAIT);
    if (n < 0)
        return 0;
    s->calls++;
    memcpy(s->last, buf, sizeof s->last);
    if (s->remove_after_first)
        lp_loop_remove_socket(loop, socket);
    return 0;
}

static int zsend_fire(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    zsock_state_t *s = arg;
    const char *text = timer == &s->send1 ? "one" : "two";
    return zmq_send(s->peer, text, strlen(text), 0) < 0 ? -1 : 0;
}

static void test_zmq_socket(void)
{
    void *ctx = zmq_ctx_new();
    CHECK(ctx != NULL);
    void *a = zmq_socket(ctx, ZMQ_PAIR);
    void *b = zmq_socket(ctx, ZMQ_PAIR);
    int zero = 0;
    zmq_setsockopt(a, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(b, ZMQ_LINGER, &zero, sizeof zero);
    bool ok = zmq_bind(a, "inproc://test-loop") == 0 && zmq_connect(b, "inproc://test-loop") == 0;
    lp_loop_t *loop = lp_loop_new();
    zsock_state_t s = {.peer = b};
    ok = ok && loop && lp_loop_add_socket(loop, a, zsock_fn, &s) == 0;
    /* the same socket twice is refused */
    bool dup_refused = ok && lp_loop_add_socket(loop, a, zsock_fn, &s) == -1;
    int rc = -1;
    if (ok) {
        lp_timer_start(loop, &s.send1, 2, zsend_fire, &s);
        lp_timer_start(loop, &s.end, 30, end_fire, &s);
        rc = lp_loop_run(loop);
    }
    int calls1 = s.calls;
    char last1[16];
    memcpy(last1, s.last, sizeof last1);
    /* removed: input is no longer dispatched */
    int rc2 = -1;
    if (ok) {
        lp_loop_remove_socket(loop, a);
        lp_timer_start(loop, &s.send2, 2, zsend_fire, &s);
        lp_timer_start(loop, &s.end, 30, end_fire, &s);
        rc2 = lp_loop_run(loop);
    }
    int calls2 = s.calls;
    /* and it can be added again after the removal */
    int rc3 = -1;
    if (ok && lp_loop_add_socket(loop, a, zsock_fn, &s) == 0) {
        lp_timer_start(loop, &s.end, 30, end_fire, &s);
        rc3 = lp_loop_run(loop);
    }
    lp_loop_destroy(&loop);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
    CHECK(ok);
    CHECK(dup_refused);
    CHECK(rc == 0 && rc2 == 0 && rc3 == 0);
    CHECK(calls1 == 1);
    CHECK_STR(last1, "one");
    CHECK(calls2 == 1);
    CHECK(s.calls == 2);
    CHECK_STR(s.last, "two");
}

/* A socket handler may remove its own socket. */
static void test_zmq_remove_in_handler(void)
{
    void *ctx = zmq_ctx_new();
    CHECK(ctx != NULL);
    void *a = zmq_socket(ctx, ZMQ_PAIR);
    void *b = zmq_socket(ctx, ZMQ_PAIR);
    int zero = 0;
    zmq_setsockopt(a, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(b, ZMQ_LINGER, &zero, sizeof zero);
    bool ok =
        zmq_bind(a, "inproc://test-loop-rm") == 0 && zmq_connect(b, "inproc://test-loop-rm") == 0;
    lp_loop_t *loop = lp_loop_new();
    zsock_state_t s = {.peer = b, .remove_after_first = true};
    ok = ok && loop && lp_loop_add_socket(loop, a, zsock_fn, &s) == 0;
    int rc = -1;
    if (ok) {
        lp_timer_start(loop, &s.send1, 1, zsend_fire, &s);
        lp_timer_start(loop, &s.send2, 8, zsend_fire, &s);
        lp_timer_start(loop, &s.end, 30, end_fire, &s);
        rc = lp_loop_run(loop);
    }
    lp_loop_destroy(&loop);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
    CHECK(ok);
    CHECK(rc == 0);
    CHECK(s.calls == 1);
}

/* A socket handler may add another socket (only removal is promised safe from handlers, but
 * adding is not forbidden): the loop must neither read past its poll items nor miss the new
 * socket's input. */
typedef struct {
    void *a, *b, *c, *d;
    int a_calls, c_calls;
    lp_timer_t send_a, send_c, end;
} add_state_t;

static int add_c_fn(lp_loop_t *loop, void *socket, void *arg)
{
    LP_UNUSED(loop);
    add_state_t *s = arg;
    char buf[8];
    if (zmq_recv(socket, buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
        s->c_calls++;
    return 0;
}

static int add_a_fn(lp_loop_t *loop, void *socket, void *arg)
{
    add_state_t *s = arg;
    char buf[8];
    if (zmq_recv(socket, buf, sizeof buf, ZMQ_DONTWAIT) < 0)
        return 0;
    s->a_calls++;
    return lp_loop_add_socket(loop, s->c, add_c_fn, s);
}

static int add_send_fire(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    add_state_t *s = arg;
    void *to = timer == &s->send_a ? s->b : s->d;
    return zmq_send(to, "m", 1, 0) < 0 ? -1 : 0;
}

static void test_add_socket_from_handler(void)
{
    void *ctx = zmq_ctx_new();
    CHECK(ctx != NULL);
    add_state_t s = {0};
    s.a = zmq_socket(ctx, ZMQ_PAIR);
    s.b = zmq_socket(ctx, ZMQ_PAIR);
    s.c = zmq_socket(ctx, ZMQ_PAIR);
    s.d = zmq_socket(ctx, ZMQ_PAIR);
    int zero = 0;
    void *all[] = {s.a, s.b, s.c, s.d};
    for (int i = 0; i < 4; i++)
        zmq_setsockopt(all[i], ZMQ_LINGER, &zero, sizeof zero);
    bool ok = zmq_bind(s.a, "inproc://test-loop-add-a") == 0 &&
              zmq_connect(s.b, "inproc://test-loop-add-a") == 0 &&
              zmq_bind(s.c, "inproc://test-loop-add-c") == 0 &&
              zmq_connect(s.d, "inproc://test-loop-add-c") == 0;
    lp_loop_t *loop = lp_loop_new();
    ok = ok && loop && lp_loop_add_socket(loop, s.a, add_a_fn, &s) == 0;
    int rc = -1;
    if (ok) {
        lp_timer_start(loop, &s.send_a, 2, add_send_fire, &s);
        lp_timer_start(loop, &s.send_c, 10, add_send_fire, &s);
        lp_timer_start(loop, &s.end, 30, end_fire, &s);
        rc = lp_loop_run(loop);
    }
    lp_loop_destroy(&loop);
    for (int i = 0; i < 4; i++)
        zmq_close(all[i]);
    zmq_ctx_term(ctx);
    CHECK(ok);
    CHECK(rc == 0);
    CHECK(s.a_calls == 1);
    CHECK(s.c_calls == 1);
}

/* ---- signals ---- */

static int sig_fn(lp_loop_t *loop, int signo, void *arg)
{
    LP_UNUSED(loop);
    int *got = arg;
    *got = signo;
    return -1;
}

static int raise_fire(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    LP_UNUSED(arg);
    return raise(SIGUSR1) == 0 ? 0 : -1;
}

static void test_signals(void)
{
    lp_loop_t *loop = lp_loop_new();
    CHECK(loop != NULL);
    int got = 0;
    lp_timer_t t, guard;
    memset(&t, 0, sizeof t);
    memset(&guard, 0, sizeof guard);
    bool ok = lp_loop_handle_signals(loop, sig_fn, &got) == 0;
    int rc = -1;
    if (ok) {
        lp_timer_start(loop, &t, 1, raise_fire, NULL);
        lp_timer_start(loop, &guard, 200, end_fire, NULL);
        rc = lp_loop_run(loop);
        lp_timer_stop(loop, &guard);
    }
    lp_loop_destroy(&loop);
    CHECK(ok);
    CHECK(rc == 0);
    CHECK(got == SIGUSR1);
}

int main(void)
{
    /* as the daemons do, before any thread (ZeroMQ's) starts */
    lp_loop_block_signals();
    RUN(test_timer_order);
    RUN(test_timer_heap);
    RUN(test_timer_stop_never_fires);
    RUN(test_timer_rearm_moves);
    RUN(test_timer_periodic);
    RUN(test_handler_minus_one_stops);
    RUN(test_stop_from_timer);
    RUN(test_before_sleep);
    RUN(test_fd_handler);
    RUN(test_fd_stop_and_mod);
    RUN(test_fd_add_twice_keeps_watch);
    RUN(test_zmq_socket);
    RUN(test_zmq_remove_in_handler);
    RUN(test_signals);
    /* last: under ASan the out-of-bounds read aborts the process */
    RUN(test_add_socket_from_handler);
    return th_report();
}
