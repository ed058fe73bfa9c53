/* lp_loop: the one event loop every daemon runs, on one thread.
 *
 * ZeroMQ sockets are polled with zmq_poll; every raw file descriptor (libmicrohttpd's epoll
 * fd, libcurl's sockets, libpq's socket, the signalfd) lives in one internal epoll set that
 * is itself one item of that poll, so fds come and go without rebuilding the poll set.
 * Timers are intrusive (embedded in their owner, never allocated by the loop) and kept in a
 * min-heap on the monotonic clock; the poll timeout is the next deadline, capped by the
 * before-sleep hook. A handler returns -1 to stop the loop. */
#ifndef LP_LOOP_H
#define LP_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "lp_util.h"

typedef struct lp_loop lp_loop_t;
typedef struct lp_timer lp_timer_t;

/* A ZeroMQ socket has input. Return 0, or -1 to stop the loop. */
typedef int(lp_socket_fn)(lp_loop_t *loop, void *socket, void *arg);
/* A raw fd is ready; events are EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP bits. */
typedef int(lp_fd_fn)(lp_loop_t *loop, int fd, uint32_t events, void *arg);
/* A timer expired (it is no longer active; restart it for a period). */
typedef int(lp_timer_fn)(lp_loop_t *loop, lp_timer_t *timer, void *arg);
/* A signal from the loop's signalfd (SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2). */
typedef int(lp_signal_fn)(lp_loop_t *loop, int signo, void *arg);
/* Called before each sleep; returns the longest the loop may sleep in ms, or -1 for no cap. */
typedef int64_t(lp_before_sleep_fn)(lp_loop_t *loop, void *arg);

/* Embed in the owning object and zero it; the loop only links it into its heap. */
struct lp_timer {
    int64_t deadline_ns; /* monotonic */
    size_t heap_index;   /* 0 = not armed; otherwise position + 1 */
    lp_timer_fn *fn;
    void *arg;
};

/* Create a loop; NULL if epoll cannot be created. */
lp_loop_t *lp_loop_new(void);
/* Destroy the loop (sockets and fds are not closed: their owners close them). */
void lp_loop_destroy(lp_loop_t **self_p);

/* Poll a ZeroMQ socket for input. -1 if the socket is already registered. */
LP_MUSTCHECK int lp_loop_add_socket(lp_loop_t *self, void *socket, lp_socket_fn *fn, void *arg);
/* Stop polling a socket; safe to call from any handler. */
void lp_loop_remove_socket(lp_loop_t *self, void *socket);

/* Watch a raw fd for epoll events (EPOLLIN, EPOLLOUT, ...); -1 with errno on failure. */
LP_MUSTCHECK int lp_loop_add_fd(lp_loop_t *self, int fd, uint32_t events, lp_fd_fn *fn, void *arg);
/* Change the events of a watched fd. */
LP_MUSTCHECK int lp_loop_mod_fd(lp_loop_t *self, int fd, uint32_t events);
/* Stop watching an fd (call before closing it); events already fetched for it are dropped. */
void lp_loop_remove_fd(lp_loop_t *self, int fd);

/* Arm (or re-arm) a timer to fire once after delay_ms. */
void lp_timer_start(lp_loop_t *self, lp_timer_t *timer, int64_t delay_ms, lp_timer_fn *fn,
                    void *arg);
/* Disarm a timer; no-op when it is not armed. */
void lp_timer_stop(lp_loop_t *self, lp_timer_t *timer);
/* True while the timer is armed. */
bool lp_timer_active(const lp_timer_t *timer);

/* Deliver SIGINT/SIGTERM/SIGHUP/SIGUSR1/SIGUSR2 through a signalfd. Those signals must have
 * been blocked (lp_loop_block_signals) before any thread was started. */
LP_MUSTCHECK int lp_loop_handle_signals(lp_loop_t *self, lp_signal_fn *fn, void *arg);
/* Block the loop's signals in the calling thread (call first thing in main) and ignore
 * SIGPIPE. */
void lp_loop_block_signals(void);

/* Set the before-sleep hook. */
void lp_loop_set_before_sleep(lp_loop_t *self, lp_before_sleep_fn *fn, void *arg);
/* Run until a handler returns -1 or lp_loop_stop is called; returns 0, or -1 on a poll error. */
int lp_loop_run(lp_loop_t *self);
/* Make lp_loop_run return after the current iteration. */
void lp_loop_stop(lp_loop_t *self);
/* Monotonic time in ns cached at the start of this iteration (cheap "now" for handlers). */
int64_t lp_loop_now_ns(const lp_loop_t *self);

#endif
