#include "lp_zmq.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void *lp_zmq_socket(void *ctx, int type, const char *endpoint, bool bind, bool immediate, char *err)
{
    void *s = zmq_socket(ctx, type);
    if (!s) {
        lp_err_set(err, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    int zero = 0, one = 1, hwm = LP_ZMQ_HWM;
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) < 0 ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm) < 0 ||
        (type == ZMQ_ROUTER && zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one) < 0) ||
        (immediate && zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one) < 0)) {
        lp_err_set(err, "zmq_setsockopt: %s", zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    /* A comma-separated list connects to several peers (e.g. two loggers). */
    char *list = lp_strdup(endpoint);
    char *save = NULL;
    for (char *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        int rc = bind ? zmq_bind(s, ep) : zmq_connect(s, ep);
        if (rc < 0) {
            lp_err_set(err, "%s %s: %s", bind ? "bind" : "connect", ep, zmq_strerror(zmq_errno()));
            free(list);
            zmq_close(s);
            return NULL;
        }
    }
    free(list);
    return s;
}

void lp_zmq_close(void **socket_p)
{
    if (*socket_p) {
        zmq_close(*socket_p);
        *socket_p = NULL;
    }
}
