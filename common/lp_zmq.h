/* lp_zmq: ZeroMQ sockets created with the options every link of the proxy needs (no linger,
 * bounded queues, ROUTER_MANDATORY so a send to a vanished peer is an error, not silence). */
#ifndef LP_ZMQ_H
#define LP_ZMQ_H

#include <stdbool.h>

#include "lp_util.h"

/* Queue bound per peer, in messages, both directions. */
#define LP_ZMQ_HWM 100000

/* A socket of type (ZMQ_ROUTER, ZMQ_DEALER) bound (bind) or connected to endpoint (a
 * comma-separated list binds or connects to each).
 * immediate: a DEALER queues nothing for peers not yet connected (fail fast).
 * NULL with a reason in err. */
void *lp_zmq_socket(void *ctx, int type, const char *endpoint, bool bind, bool immediate,
                    char *err);
/* Close a socket; NULL-safe, nulls the pointer. */
void lp_zmq_close(void **socket_p);

#endif
