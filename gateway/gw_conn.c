#define LP_LOG_MODULE "gw_conn"
#include "gw_conn.h"

#include <stdlib.h>
#include <sys/socket.h>

#include "lp_log.h"
#include "lp_time.h"

typedef enum {
    S_HEADERS, /* waiting for a request's headers */
    S_BODY,    /* receiving a body */
    S_SERVING, /* the request is in the gateway's hands */
} s_phase_t;

struct gw_conn {
    gw_conn_t *prev, *next;
    int fd;
    s_phase_t phase;
    int64_t since_ns; /* when the phase began */
    size_t body_bytes;
    bool over_cap;
    bool cut; /* shut down by a sweep */
};

void gw_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                    enum MHD_ConnectionNotificationCode toe)
{
    gw_server_t *srv = cls;
    gw_conn_t *self = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        self = lp_calloc(1, sizeof *self);
        self->fd = ci ? ci->connect_fd : -1;
        self->since_ns = lp_mono_ns();
        self->over_cap = ++srv->connections > srv->max_connections;
        self->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = self;
        srv->conns = self;
        *socket_context = self;
    } else if (self) {
        srv->connections--;
        if (self->prev)
            self->prev->next = self->next;
        else
            srv->conns = self->next;
        if (self->next)
            self->next->prev = self->prev;
        free(self);
        *socket_context = NULL;
    }
}

gw_conn_t *gw_conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

bool gw_conn_over_cap(const gw_conn_t *self)
{
    return self && self->over_cap;
}

static void s_phase(gw_conn_t *self, s_phase_t phase)
{
    if (!self)
        return;
    self->phase = phase;
    self->since_ns = lp_mono_ns();
    self->body_bytes = 0;
}

void gw_conn_headers(gw_conn_t *self)
{
    s_phase(self, S_BODY);
}

void gw_conn_body(gw_conn_t *self, size_t n)
{
    if (self)
        self->body_bytes += n;
}

void gw_conn_serving(gw_conn_t *self)
{
    s_phase(self, S_SERVING);
}

void gw_conn_ready(gw_conn_t *self)
{
    s_phase(self, S_HEADERS);
}

static bool s_late(const gw_conn_t *self, int64_t now_ns)
{
    int64_t age = now_ns - self->since_ns;
    if (self->phase == S_HEADERS)
        return age > (int64_t)GW_CONNECTION_TIMEOUT_S * LP_NS_PER_S;
    if (self->phase == S_BODY && age > (int64_t)GW_BODY_GRACE_S * LP_NS_PER_S)
        return (double)self->body_bytes < (double)age / 1e9 * GW_BODY_MIN_RATE;
    return false;
}

void gw_conn_sweep(gw_server_t *srv, int64_t now_ns)
{
    size_t headers = 0, bodies = 0;
    for (gw_conn_t *c = srv->conns; c; c = c->next) {
        if (c->cut || c->fd < 0 || !s_late(c, now_ns))
            continue;
        c->cut = shutdown(c->fd, SHUT_RDWR) == 0;
        if (c->phase == S_HEADERS)
            headers++;
        else
            bodies++;
    }
    if (headers || bodies)
        log_info("closed %zu connection(s) whose request headers took over %d s and %zu whose "
                 "body came slower than %d bytes/s",
                 headers, GW_CONNECTION_TIMEOUT_S, bodies, GW_BODY_MIN_RATE);
    srv->slow_cut += headers + bodies;
}
