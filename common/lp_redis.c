#include "lp_redis.h"

#include <curl/curl.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "lp_time.h"

typedef struct s_cmd s_cmd_t;
struct s_cmd {
    s_cmd_t *prev, *next;
    lp_redis_t *owner;
    lp_redis_fn *fn; /* NULL for the connection's own AUTH/SELECT */
    void *arg;
    lp_timer_t timer;
    bool done; /* the caller already has its answer (timeout): ignore hiredis' */
};

typedef enum { S_DOWN, S_CONNECTING, S_READY, S_UP } s_state_t;

struct lp_redis {
    lp_loop_t *loop;
    char host[256];
    int port;
    char *user, *password;
    int db;
    char where[300];
    int timeout_ms;
    redisAsyncContext *ac;
    int fd;
    uint32_t events;
    s_state_t state;
    s_cmd_t *head, *tail; /* pending, oldest first */
    lp_timer_t retry, connect_timer;
    int64_t backoff_ms;
    lp_redis_state_fn *state_fn;
    void *state_arg;
    bool destroying;
};

static void s_connect(lp_redis_t *self);

/* ---- event hooks: hiredis asks for read/write interest, the loop delivers ---- */

static int s_on_fd(lp_loop_t *loop, int fd, uint32_t events, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(fd);
    lp_redis_t *self = arg;
    if (self->ac && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        redisAsyncHandleRead(self->ac);
    if (self->ac && (events & EPOLLOUT))
        redisAsyncHandleWrite(self->ac);
    return 0;
}

static void s_update(lp_redis_t *self, uint32_t events)
{
    if (!self->ac)
        return;
    int fd = self->ac->c.fd;
    if (events == 0) {
        if (self->fd >= 0)
            lp_loop_remove_fd(self->loop, self->fd);
        self->fd = -1;
    } else if (self->fd < 0) {
        if (lp_loop_add_fd(self->loop, fd, events, s_on_fd, self) == 0)
            self->fd = fd;
    } else if (lp_loop_mod_fd(self->loop, fd, events) < 0) {
        return;
    }
    self->events = events;
}

static void s_add_read(void *p)
{
    lp_redis_t *self = p;
    s_update(self, self->events | EPOLLIN);
}

static void s_del_read(void *p)
{
    lp_redis_t *self = p;
    s_update(self, self->events & ~(uint32_t)EPOLLIN);
}

static void s_add_write(void *p)
{
    lp_redis_t *self = p;
    s_update(self, self->events | EPOLLOUT);
}

static void s_del_write(void *p)
{
    lp_redis_t *self = p;
    s_update(self, self->events & ~(uint32_t)EPOLLOUT);
}

/* hiredis is freeing the context: forget its fd. */
static void s_cleanup(void *p)
{
    lp_redis_t *self = p;
    if (self->fd >= 0)
        lp_loop_remove_fd(self->loop, self->fd);
    self->fd = -1;
    self->events = 0;
    self->ac = NULL;
}

/* ---- state ---- */

static int s_on_retry(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    s_connect(arg);
    return 0;
}

/* The connection is unusable: tell the owner once, drop the context (hiredis answers every
 * pending command with an error), and try again later. */
static void s_down(lp_redis_t *self, const char *why)
{
    bool was_up = self->state == S_UP;
    if (self->state == S_DOWN && !self->ac)
        return;
    self->state = S_DOWN;
    lp_timer_stop(self->loop, &self->connect_timer);
    redisAsyncContext *ac = self->ac;
    self->ac = NULL; /* freeing calls back into s_down (set-up commands): free once */
    if (ac)
        redisAsyncFree(ac); /* inside a hiredis callback this only marks it; freed after */
    if (was_up && self->state_fn && !self->destroying)
        self->state_fn(self->state_arg, false, why);
    if (!self->destroying) {
        lp_timer_start(self->loop, &self->retry, self->backoff_ms, s_on_retry, self);
        self->backoff_ms = LP_MIN(self->backoff_ms * 2, LP_REDIS_BACKOFF_MAX_MS);
    }
}

static void s_up(lp_redis_t *self)
{
    lp_timer_stop(self->loop, &self->connect_timer);
    self->state = S_UP;
    self->backoff_ms = LP_REDIS_BACKOFF_MIN_MS;
    if (self->state_fn)
        self->state_fn(self->state_arg, true, NULL);
}

static void s_unlink(lp_redis_t *self, s_cmd_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (self->head == c)
        self->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else if (self->tail == c)
        self->tail = c->prev;
    c->prev = c->next = NULL;
}

/* hiredis' answer to one command (NULL reply: the connection went). */
static void s_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    LP_UNUSED(ac);
    s_cmd_t *c = privdata;
    lp_redis_t *self = c->owner;
    const redisReply *reply = r;
    lp_timer_stop(self->loop, &c->timer);
    s_unlink(self, c);
    if (!c->fn) {
        /* AUTH or SELECT while connecting. */
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            free(c);
            s_down(self, reply ? "authentication or SELECT refused" : "connection lost");
            return;
        }
        if (!self->head)
            s_up(self); /* the last set-up command answered */
        free(c);
        return;
    }
    if (!c->done)
        c->fn(c->arg, reply, reply ? NULL : "connection lost");
    free(c);
}

static int s_on_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    s_cmd_t *c = arg;
    lp_redis_t *self = c->owner;
    if (c->fn && !c->done) {
        c->done = true;
        c->fn(c->arg, NULL, "timeout");
    }
    /* A slow Redis holds every later command too: drop the connection (the breaker). */
    s_down(self, "a command timed out");
    return 0;
}

static int s_send(lp_redis_t *self, lp_redis_fn *fn, void *arg, int argc, const char **argv,
                  const size_t *lens)
{
    s_cmd_t *c = lp_calloc(1, sizeof *c);
    c->owner = self;
    c->fn = fn;
    c->arg = arg;
    if (redisAsyncCommandArgv(self->ac, s_on_reply, c, argc, argv, lens) != REDIS_OK) {
        free(c);
        return -1;
    }
    c->prev = self->tail;
    if (self->tail)
        self->tail->next = c;
    else
        self->head = c;
    self->tail = c;
    lp_timer_start(self->loop, &c->timer, self->timeout_ms, s_on_timeout, c);
    return 0;
}

static void s_on_connect(const redisAsyncContext *ac, int status)
{
    lp_redis_t *self = ac->ev.data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        self->state = S_DOWN;
        lp_timer_stop(self->loop, &self->connect_timer);
        if (!self->destroying) {
            lp_timer_start(self->loop, &self->retry, self->backoff_ms, s_on_retry, self);
            self->backoff_ms = LP_MIN(self->backoff_ms * 2, LP_REDIS_BACKOFF_MAX_MS);
        }
        return;
    }
    self->state = S_READY;
    bool sent = false;
    if (self->password) {
        const char *argv[3] = {"AUTH", self->user ? self->user : self->password, self->password};
        int argc = self->user ? 3 : 2;
        sent |= s_send(self, NULL, NULL, argc, argv, NULL) == 0;
    }
    if (self->db > 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", self->db);
        const char *argv[2] = {"SELECT", db};
        sent |= s_send(self, NULL, NULL, 2, argv, NULL) == 0;
    }
    /* A connect only proves the kernel answered: up once Redis itself has (a frozen Redis
     * still accepts connections, and must not flap between up and down). */
    const char *ping[1] = {"PING"};
    sent |= s_send(self, NULL, NULL, 1, ping, NULL) == 0;
    if (!sent)
        s_up(self);
}

static void s_on_disconnect(const redisAsyncContext *ac, int status)
{
    LP_UNUSED(status);
    lp_redis_t *self = ac->ev.data;
    if (self->state == S_DOWN)
        return; /* we dropped it ourselves (s_down) */
    bool was_up = self->state == S_UP;
    self->state = S_DOWN;
    if (was_up && self->state_fn && !self->destroying)
        self->state_fn(self->state_arg, false, "connection closed");
    if (!self->destroying && !lp_timer_active(&self->retry)) {
        lp_timer_start(self->loop, &self->retry, self->backoff_ms, s_on_retry, self);
        self->backoff_ms = LP_MIN(self->backoff_ms * 2, LP_REDIS_BACKOFF_MAX_MS);
    }
}

static int s_on_connect_timeout(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    s_down(arg, "connect timed out");
    return 0;
}

static void s_connect(lp_redis_t *self)
{
    redisAsyncContext *ac = redisAsyncConnect(self->host, self->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        lp_timer_start(self->loop, &self->retry, self->backoff_ms, s_on_retry, self);
        self->backoff_ms = LP_MIN(self->backoff_ms * 2, LP_REDIS_BACKOFF_MAX_MS);
        return;
    }
    self->ac = ac;
    self->fd = -1;
    self->events = 0;
    ac->ev.data = self;
    ac->ev.addRead = s_add_read;
    ac->ev.delRead = s_del_read;
    ac->ev.addWrite = s_add_write;
    ac->ev.delWrite = s_del_write;
    ac->ev.cleanup = s_cleanup;
    redisAsyncSetConnectCallback(ac, s_on_connect);
    redisAsyncSetDisconnectCallback(ac, s_on_disconnect);
    self->state = S_CONNECTING;
    s_add_write(self); /* hiredis waits for the connect to complete */
    lp_timer_start(self->loop, &self->connect_timer, LP_MAX(self->timeout_ms, 1000),
                   s_on_connect_timeout, self);
}

/* redis://[user:password@]host[:port][/db], parsed with libcurl's URL API. */
static int s_parse(lp_redis_t *self, const char *url, char *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *pass = NULL, *path = NULL;
    int rc = -1;
    if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        lp_err_set(err, "REDIS_URL is not a URL (redis://host:port)");
        goto done;
    }
    if (strcmp(scheme, "redis") != 0) {
        lp_err_set(err, "REDIS_URL scheme '%s' is not supported (redis://)", scheme);
        goto done;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE);
    curl_url_get(u, CURLUPART_PASSWORD, &pass, CURLU_URLDECODE);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    lp_strlcpy(self->host, host[0] == '[' ? host + 1 : host, sizeof self->host);
    char *bracket = strchr(self->host, ']');
    if (bracket)
        *bracket = '\0';
    long long p = 6379, db = 0;
    if (port && lp_parse_ll(port, 1, 65535, &p) < 0) {
        lp_err_set(err, "REDIS_URL port is not a number");
        goto done;
    }
    if (path && path[0] == '/' && path[1] && lp_parse_ll(path + 1, 0, 1000, &db) < 0) {
        lp_err_set(err, "REDIS_URL path must be a database number (/0)");
        goto done;
    }
    self->port = (int)p;
    self->db = (int)db;
    if (pass && *pass) {
        self->password = lp_strdup(pass);
        if (user && *user && strcmp(user, "default") != 0)
            self->user = lp_strdup(user);
    }
    snprintf(self->where, sizeof self->where, "%s:%d", self->host, self->port);
    rc = 0;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    if (pass) {
        explicit_bzero(pass, strlen(pass));
        curl_free(pass);
    }
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

lp_redis_t *lp_redis_new(lp_loop_t *loop, const char *url, int timeout_ms,
                         lp_redis_state_fn *state_fn, void *state_arg, char *err)
{
    lp_redis_t *self = lp_calloc(1, sizeof *self);
    self->loop = loop;
    self->fd = -1;
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 50;
    self->backoff_ms = LP_REDIS_BACKOFF_MIN_MS;
    self->state_fn = state_fn;
    self->state_arg = state_arg;
    if (s_parse(self, url, err) < 0) {
        lp_redis_destroy(&self);
        return NULL;
    }
    s_connect(self);
    return self;
}

void lp_redis_destroy(lp_redis_t **self_p)
{
    lp_redis_t *self = *self_p;
    if (!self)
        return;
    self->destroying = true;
    lp_timer_stop(self->loop, &self->retry);
    lp_timer_stop(self->loop, &self->connect_timer);
    /* Commands still waiting hear "closing" from us, then nothing more from hiredis. */
    for (s_cmd_t *c = self->head; c; c = c->next) {
        lp_timer_stop(self->loop, &c->timer);
        if (c->fn && !c->done) {
            c->done = true;
            c->fn(c->arg, NULL, "closing");
        }
    }
    self->state = S_DOWN;
    redisAsyncContext *ac = self->ac;
    self->ac = NULL;
    if (ac)
        redisAsyncFree(ac); /* calls s_on_reply for each, which frees them */
    free(self->user);
    lp_free_secret(self->password);
    free(self);
    *self_p = NULL;
}

int lp_redis_command(lp_redis_t *self, lp_redis_fn *fn, void *arg, int argc, const char **argv,
                     const size_t *lens)
{
    if (self->state != S_UP || !self->ac)
        return -1;
    return s_send(self, fn, arg, argc, argv, lens);
}

bool lp_redis_up(const lp_redis_t *self)
{
    return self->state == S_UP;
}

const char *lp_redis_where(const lp_redis_t *self)
{
    return self->where;
}
