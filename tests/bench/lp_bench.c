/*
 * lp_bench.c - the HTTP/1.1 load generator of `make bench` (driven by tests/bench/bench.py).
 *
 * One thread, non-blocking sockets and epoll; every connection is keep-alive and sends the same
 * prebuilt POST again as soon as the previous answer is complete, so concurrency is exactly the
 * number of connections. It measures what wrk cannot: for server-sent events the time to the
 * first "data:" line (TTFT) and the number of "data:" lines per answer, and it can hold many
 * streams open at once while someone else looks at the servers' memory.
 *
 * Usage: lp_bench --port N [--host 127.0.0.1] [--path /v1/chat/completions] (--body JSON |
 *                 --body-file FILE) [--header "Name: value"]... [-c CONNS] (-d SECONDS | -n REQS)
 *                 [--count-header NAME] [--hold [--ramp MS]]
 *   -c N          connections, each with one request in flight (default 1)
 *   -d S          send new requests for S seconds (fractions allowed), then finish those in flight
 *   -n N          send N requests in all, then stop
 *   --count-header NAME   count the answers that carry this header (e.g. x-litellm-cache-key)
 *   --hold        every connection sends one request and keeps reading; once each answer has
 *                 shown its first "data:" line (or failed) a line {"held":N,...} is printed and
 *                 flushed, then the streams stay open until SIGTERM/SIGINT or -d runs out.
 *   --ramp MS     with --hold: open the connections MS milliseconds apart (fractions allowed),
 *                 as streams that start over time rather than all in one burst
 *
 * Prints one JSON object on stdout at the end: requests (2xx answers), errors (other statuses and
 * broken connections), rps, latency and TTFT percentiles in microseconds (nearest rank over the
 * 2xx answers), data events in all and per answer (min/max), and header_hits. Exit status 0 when
 * at least one answer was good, 1 otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define LB_MAX_CONNS      100000 /* more than any run needs; bounds the calloc */
#define LB_HDR_MAX        16384  /* response head bytes kept until the blank line */
#define LB_READ_MAX       65536  /* one read() at most; answers are parsed as they arrive */
#define LB_MAX_EVENTS     256    /* epoll_wait batch */
#define LB_TICK_MS        10     /* epoll timeout, so deadlines and signals are seen promptly */
#define LB_GRACE_S        10.0   /* after the deadline, how long answers in flight may take */
#define LB_CONNECT_ERRORS 200    /* consecutive failed connects before giving up */
#define LB_HOLD_WAIT_S    30.0   /* --hold: how long to wait for every first event */

/* Where one connection is in its request/answer cycle. */
typedef enum { LB_CONNECTING, LB_SENDING, LB_HEAD, LB_BODY } lb_state_t;

/* How the body of the current answer ends. */
typedef enum { LB_BODY_LENGTH, LB_BODY_CHUNKED, LB_BODY_UNTIL_CLOSE } lb_framing_t;

/* Chunked transfer decoding states. */
typedef enum {
    LB_CH_SIZE,
    LB_CH_EXT,
    LB_CH_SIZE_LF,
    LB_CH_DATA,
    LB_CH_DATA_CR,
    LB_CH_DATA_LF,
    LB_CH_TRAILER
} lb_chunk_t;

typedef struct {
    int fd;
    bool in_use;
    bool want_out; /* EPOLLOUT registered */
    bool close_after;
    lb_state_t state;
    size_t sent;
    char head[LB_HDR_MAX];
    size_t head_len;
    int status;
    bool header_hit;
    lb_framing_t framing;
    uint64_t remain; /* LENGTH: body bytes left; CHUNKED: bytes left in this chunk */
    lb_chunk_t chunk;
    uint64_t chunk_size;
    size_t trailer_len;
    size_t sse_col;  /* column in the current body line */
    int sse_match;   /* bytes of "data:" matched at the start of the line; 6 once counted */
    uint64_t t0;     /* request start, ns */
    uint64_t tfirst; /* first data: line, ns (0 = none yet) */
    uint64_t events; /* data: lines in this answer */
} lb_conn_t;

typedef struct {
    uint64_t *v;
    size_t n, cap;
} lb_samples_t;

typedef struct {
    /* options */
    const char *host;
    int port;
    const char *path;
    char *body;
    size_t body_len;
    char **headers;
    size_t n_headers;
    int conns;
    double duration_s;
    long long total;
    const char *count_header;
    bool hold;
    double ramp_ms;
    /* run state */
    char *req;
    size_t req_len;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int ep;
    lb_conn_t *c;
    long long issued;
    long long in_flight;
    int connect_errors;
    uint64_t t_start, t_deadline, t_last;
    /* results */
    long long ok, errors, header_hits, connects;
    uint64_t events, ev_min, ev_max;
    lb_samples_t lat, ttft;
    int held_printed;
} lb_bench_t;

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static uint64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *s_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "lp_bench: out of memory\n");
        exit(2);
    }
    return q;
}

static void s_samples_add(lb_samples_t *s, uint64_t v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = s_xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = v;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in microseconds of sorted samples; -1 when there are none. */
static double s_percentile_us(const lb_samples_t *s, double p)
{
    if (s->n == 0)
        return -1;
    size_t rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return (double)s->v[rank - 1] / 1000.0;
}

static double s_mean_us(const lb_samples_t *s)
{
    if (s->n == 0)
        return -1;
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += (double)s->v[i];
    return sum / (double)s->n / 1000.0;
}

static char *s_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = s_xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void s_usage(void)
{
    fprintf(stderr, "usage: lp_bench --port N [--host H] [--path P] (--body JSON | --body-file F) "
                    "[--header 'N: v']... [-c CONNS] (-d SECONDS | -n REQS) "
                    "[--count-header NAME] [--hold [--ramp MS]]\n");
}

/* Parses argv into self; returns 0, or -1 after printing why. */
static int s_parse_args(lb_bench_t *self, int argc, char **argv)
{
    self->host = "127.0.0.1";
    self->path = "/v1/chat/completions";
    self->conns = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        char *end = NULL;
        if (strcmp(a, "--hold") == 0) {
            self->hold = true;
            takes = false;
        } else if (!v) {
            fprintf(stderr, "lp_bench: %s needs a value\n", a);
            return -1;
        } else if (strcmp(a, "--host") == 0) {
            self->host = v;
        } else if (strcmp(a, "--port") == 0) {
            self->port = (int)strtol(v, &end, 10);
        } else if (strcmp(a, "--path") == 0) {
            self->path = v;
        } else if (strcmp(a, "--body") == 0) {
            self->body_len = strlen(v);
            self->body = s_xrealloc(NULL, self->body_len + 1);
            memcpy(self->body, v, self->body_len + 1);
        } else if (strcmp(a, "--body-file") == 0) {
            self->body = s_read_file(v, &self->body_len);
            if (!self->body) {
                fprintf(stderr, "lp_bench: cannot read %s: %s\n", v, strerror(errno));
                return -1;
            }
        } else if (strcmp(a, "--header") == 0) {
            self->headers = s_xrealloc(self->headers, (self->n_headers + 1) * sizeof(char *));
            self->headers[self->n_headers++] = (char *)v;
        } else if (strcmp(a, "-c") == 0) {
            self->conns = (int)strtol(v, &end, 10);
        } else if (strcmp(a, "-d") == 0) {
            self->duration_s = strtod(v, &end);
        } else if (strcmp(a, "-n") == 0) {
            self->total = strtoll(v, &end, 10);
        } else if (strcmp(a, "--count-header") == 0) {
            self->count_header = v;
        } else if (strcmp(a, "--ramp") == 0) {
            self->ramp_ms = strtod(v, &end);
        } else {
            fprintf(stderr, "lp_bench: unknown option %s\n", a);
            return -1;
        }
        if (end && *end) {
            fprintf(stderr, "lp_bench: bad number for %s: %s\n", a, v);
            return -1;
        }
        if (takes)
            i++;
    }
    if (self->port <= 0 || self->port > 65535 || !self->body || self->conns < 1 ||
        self->conns > LB_MAX_CONNS || (self->duration_s <= 0 && self->total <= 0 && !self->hold) ||
        self->ramp_ms < 0 || (self->ramp_ms > 0 && !self->hold)) {
        s_usage();
        return -1;
    }
    if (self->hold)
        self->total = self->conns;
    return 0;
}

/* Builds the one request every connection sends; returns 0 or -1. */
static int s_build_request(lb_bench_t *self)
{
    size_t cap = 512 + strlen(self->path) + strlen(self->host) + self->body_len;
    for (size_t i = 0; i < self->n_headers; i++)
        cap += strlen(self->headers[i]) + 2;
    self->req = s_xrealloc(NULL, cap);
    int n = snprintf(self->req, cap,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n",
                     self->path, self->host, self->port, self->body_len);
    if (n < 0)
        return -1;
    size_t len = (size_t)n;
    for (size_t i = 0; i < self->n_headers; i++) {
        size_t h = strlen(self->headers[i]);
        memcpy(self->req + len, self->headers[i], h);
        memcpy(self->req + len + h, "\r\n", 2);
        len += h + 2;
    }
    memcpy(self->req + len, "\r\n", 2);
    len += 2;
    memcpy(self->req + len, self->body, self->body_len);
    self->req_len = len + self->body_len;
    return 0;
}

static int s_resolve(lb_bench_t *self)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", self->port);
    int rc = getaddrinfo(self->host, port, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "lp_bench: cannot resolve %s: %s\n", self->host, gai_strerror(rc));
        return -1;
    }
    memcpy(&self->addr, res->ai_addr, res->ai_addrlen);
    self->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void s_watch(lb_bench_t *self, lb_conn_t *c, bool out, int op)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u),
                             .data.u32 = (uint32_t)(c - self->c)};
    c->want_out = out;
    if (epoll_ctl(self->ep, op, c->fd, &ev) < 0) {
        fprintf(stderr, "lp_bench: epoll_ctl: %s\n", strerror(errno));
        exit(2);
    }
}

static bool s_may_issue(const lb_bench_t *self, uint64_t now)
{
    if (s_stop)
        return false;
    if (self->total > 0 && self->issued >= self->total)
        return false;
    if (self->duration_s > 0 && !self->hold && now >= self->t_deadline)
        return false;
    return true;
}

/* Resets the per-answer parser and writes the request (the rest waits for EPOLLOUT). */
static void s_send_request(lb_bench_t *self, lb_conn_t *c)
{
    c->state = LB_SENDING;
    c->sent = 0;
    c->head_len = 0;
    c->status = 0;
    c->header_hit = false;
    c->events = 0;
    c->tfirst = 0;
    c->sse_col = 0;
    c->sse_match = 0;
    c->t0 = s_now_ns();
    self->issued++;
    self->in_flight++;
    ssize_t n = send(c->fd, self->req, self->req_len, MSG_NOSIGNAL);
    if (n > 0)
        c->sent = (size_t)n;
    if (c->sent == self->req_len) {
        c->state = LB_HEAD;
        if (c->want_out)
            s_watch(self, c, false, EPOLL_CTL_MOD);
    } else if (!c->want_out) {
        s_watch(self, c, true, EPOLL_CTL_MOD);
    }
}

/* Opens connection slot i and starts a non-blocking connect; 0 or -1. */
static int s_connect(lb_bench_t *self, lb_conn_t *c)
{
    int fd = socket(self->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "lp_bench: socket: %s\n", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&self->addr, self->addr_len) < 0 && errno != EINPROGRESS) {
        fprintf(stderr, "lp_bench: connect: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->in_use = true;
    c->close_after = false;
    c->state = LB_CONNECTING;
    self->connects++;
    s_watch(self, c, true, EPOLL_CTL_ADD);
    return 0;
}

static void s_close(lb_bench_t *self, lb_conn_t *c)
{
    if (!c->in_use)
        return;
    epoll_ctl(self->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->in_use = false;
}

/* The answer on c is complete (or broke, when ok is false): record it, then go on or close. */
static void s_finish(lb_bench_t *self, lb_conn_t *c, bool ok)
{
    uint64_t now = s_now_ns();
    self->in_flight--;
    self->t_last = now;
    if (ok && c->status >= 200 && c->status < 300) {
        self->ok++;
        s_samples_add(&self->lat, now - c->t0);
        if (c->tfirst)
            s_samples_add(&self->ttft, c->tfirst - c->t0);
        self->events += c->events;
        if (self->ok == 1 || c->events < self->ev_min)
            self->ev_min = c->events;
        if (c->events > self->ev_max)
            self->ev_max = c->events;
        if (c->header_hit)
            self->header_hits++;
        self->connect_errors = 0;
    } else {
        self->errors++;
        if (self->errors <= 5)
            fprintf(stderr, "lp_bench: answer failed (status %d, %s)\n", c->status,
                    ok ? "complete" : "connection broke");
    }
    bool again = s_may_issue(self, now);
    if (ok && !c->close_after && again) {
        s_send_request(self, c);
        return;
    }
    s_close(self, c);
    if (again && s_connect(self, c) < 0)
        self->connect_errors = LB_CONNECT_ERRORS;
}

/* Counts "data:" at line starts; notes the time of the first. */
static void s_sse_scan(lb_conn_t *c, const char *p, size_t n)
{
    static const char tag[] = "data:";
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '\n') {
            c->sse_col = 0;
            c->sse_match = 0;
            continue;
        }
        if (c->sse_match < 5 && c->sse_col == (size_t)c->sse_match && ch == tag[c->sse_match]) {
            if (++c->sse_match == 5) {
                c->events++;
                if (!c->tfirst)
                    c->tfirst = s_now_ns();
                c->sse_match = 6;
            }
        }
        c->sse_col++;
    }
}

/* Feeds body bytes (after any transfer decoding); only SSE lines matter here. */
static void s_body(lb_conn_t *c, const char *p, size_t n)
{
    s_sse_scan(c, p, n);
}

/* Decodes chunked bytes; returns 1 when the answer ended, 0 for more, -1 on a framing error. */
static int s_chunked(lb_conn_t *c, const char *p, size_t n, size_t *used)
{
    size_t i = 0;
    while (i < n) {
        char ch = p[i];
        switch (c->chunk) {
        case LB_CH_SIZE: {
            int v = -1;
            if (ch >= '0' && ch <= '9')
                v = ch - '0';
            else if (ch >= 'a' && ch <= 'f')
                v = ch - 'a' + 10;
            else if (ch >= 'A' && ch <= 'F')
                v = ch - 'A' + 10;
            i++;
            if (v >= 0) {
                if (c->chunk_size > (1ull << 40))
                    return -1;
                c->chunk_size = c->chunk_size * 16 + (uint64_t)v;
            } else if (ch == '\r') {
                c->chunk = LB_CH_SIZE_LF;
            } else if (ch == '\n') {
                goto size_done;
            } else {
                c->chunk = LB_CH_EXT;
            }
            break;
        }
        case LB_CH_EXT:
            i++;
            if (ch == '\r')
                c->chunk = LB_CH_SIZE_LF;
            else if (ch == '\n')
                goto size_done;
            break;
        case LB_CH_SIZE_LF:
            i++;
            if (ch != '\n')
                return -1;
        size_done:
            if (c->chunk_size == 0) {
                c->chunk = LB_CH_TRAILER;
                c->trailer_len = 0;
            } else {
                c->chunk = LB_CH_DATA;
                c->remain = c->chunk_size;
            }
            break;
        case LB_CH_DATA: {
            size_t take = n - i;
            if (take > c->remain)
                take = (size_t)c->remain;
            s_body(c, p + i, take);
            i += take;
            c->remain -= take;
            if (c->remain == 0)
                c->chunk = LB_CH_DATA_CR;
            break;
        }
        case LB_CH_DATA_CR:
            i++;
            if (ch == '\r') {
                c->chunk = LB_CH_DATA_LF;
            } else if (ch == '\n') {
                c->chunk = LB_CH_SIZE;
                c->chunk_size = 0;
            } else {
                return -1;
            }
            break;
        case LB_CH_DATA_LF:
            i++;
            if (ch != '\n')
                return -1;
            c->chunk = LB_CH_SIZE;
            c->chunk_size = 0;
            break;
        case LB_CH_TRAILER:
            i++;
            if (ch == '\n') {
                if (c->trailer_len == 0) {
                    *used = i;
                    return 1;
                }
                c->trailer_len = 0;
            } else if (ch != '\r') {
                c->trailer_len++;
            }
            break;
        }
    }
    *used = i;
    return 0;
}

/* A header line "name: value" of the head; is it `name`? */
static bool s_header_is(const char *line, size_t len, const char *name, const char **value,
                        size_t *vlen)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return false;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    *value = v;
    *vlen = (size_t)(end - v);
    return true;
}

/* Parses the complete head in c->head; 0, or -1 when it is not an HTTP/1.x answer. */
static int s_parse_head(lb_bench_t *self, lb_conn_t *c)
{
    const char *p = c->head;
    const char *end = c->head + c->head_len;
    if (c->head_len < 12 || strncmp(p, "HTTP/1.", 7) != 0)
        return -1;
    c->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    c->framing = LB_BODY_UNTIL_CLOSE;
    c->close_after = p[7] == '0';
    c->remain = 0;
    const char *line = memchr(p, '\n', (size_t)(end - p));
    while (line && ++line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        const char *v;
        size_t vlen;
        if (s_header_is(line, len, "content-length", &v, &vlen)) {
            c->framing = LB_BODY_LENGTH;
            c->remain = strtoull(v, NULL, 10);
        } else if (s_header_is(line, len, "transfer-encoding", &v, &vlen)) {
            if (vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0) {
                c->framing = LB_BODY_CHUNKED;
                c->chunk = LB_CH_SIZE;
                c->chunk_size = 0;
            }
        } else if (s_header_is(line, len, "connection", &v, &vlen)) {
            if (vlen == 5 && strncasecmp(v, "close", 5) == 0)
                c->close_after = true;
        } else if (self->count_header && s_header_is(line, len, self->count_header, &v, &vlen)) {
            c->header_hit = true;
        }
        line = nl;
    }
    if (c->status == 204 || c->status == 304 || (c->status >= 100 && c->status < 200)) {
        c->framing = LB_BODY_LENGTH;
        c->remain = 0;
    }
    return 0;
}

/* Handles bytes read on c; returns 1 when the answer is complete, 0 for more, -1 on error. */
static int s_on_bytes(lb_bench_t *self, lb_conn_t *c, const char *p, size_t n)
{
    if (c->state == LB_HEAD) {
        size_t room = LB_HDR_MAX - c->head_len;
        size_t take = n < room ? n : room;
        memcpy(c->head + c->head_len, p, take);
        size_t old = c->head_len;
        c->head_len += take;
        /* Look for the blank line, starting a little before the new bytes. */
        size_t from = old > 3 ? old - 3 : 0;
        const char *h = NULL;
        for (size_t i = from; i + 3 < c->head_len; i++) {
            if (c->head[i] == '\r' && c->head[i + 1] == '\n' && c->head[i + 2] == '\r' &&
                c->head[i + 3] == '\n') {
                h = c->head + i + 4;
                break;
            }
        }
        if (!h)
            return c->head_len == LB_HDR_MAX ? -1 : 0;
        size_t head_end = (size_t)(h - c->head);
        c->head_len = head_end;
        if (s_parse_head(self, c) < 0)
            return -1;
        c->state = LB_BODY;
        size_t consumed = head_end - old; /* bytes of p that belonged to the head */
        p += consumed;
        n -= consumed;
        if (c->framing == LB_BODY_LENGTH && c->remain == 0)
            return n == 0 ? 1 : -1;
    }
    if (c->framing == LB_BODY_LENGTH) {
        if (n > c->remain)
            return -1; /* pipelining is never used: extra bytes are a framing error */
        s_body(c, p, n);
        c->remain -= n;
        return c->remain == 0;
    }
    if (c->framing == LB_BODY_CHUNKED) {
        size_t used = 0;
        int rc = s_chunked(c, p, n, &used);
        if (rc == 1 && used != n)
            return -1;
        return rc;
    }
    s_body(c, p, n);
    return 0;
}

static void s_on_event(lb_bench_t *self, lb_conn_t *c, uint32_t events, char *buf)
{
    if (c->state == LB_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            if (++self->connect_errors <= 3)
                fprintf(stderr, "lp_bench: connect: %s\n", strerror(err));
            s_close(self, c);
            if (self->connect_errors < LB_CONNECT_ERRORS && s_connect(self, c) < 0)
                self->connect_errors = LB_CONNECT_ERRORS;
            return;
        }
        if (!s_may_issue(self, s_now_ns())) {
            s_close(self, c);
            return;
        }
        s_send_request(self, c);
        return;
    }
    if (c->state == LB_SENDING && (events & EPOLLOUT)) {
        ssize_t n = send(c->fd, self->req + c->sent, self->req_len - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            s_finish(self, c, false);
            return;
        }
        if (n > 0)
            c->sent += (size_t)n;
        if (c->sent == self->req_len) {
            c->state = LB_HEAD;
            s_watch(self, c, false, EPOLL_CTL_MOD);
        }
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    ssize_t n = read(c->fd, buf, LB_READ_MAX);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* Closed: an until-close body ends here; anything else broke. */
        bool done = n == 0 && c->state == LB_BODY && c->framing == LB_BODY_UNTIL_CLOSE;
        c->close_after = true;
        s_finish(self, c, done);
        return;
    }
    if (c->state != LB_HEAD && c->state != LB_BODY) {
        s_finish(self, c, false); /* bytes before the request was out */
        return;
    }
    int rc = s_on_bytes(self, c, buf, (size_t)n);
    if (rc != 0) {
        if (rc < 0)
            c->close_after = true;
        s_finish(self, c, rc > 0);
    }
}

/* --hold: every slot has its first event, or has failed. */
static bool s_all_settled(lb_bench_t *self, long long *settled)
{
    long long n = 0;
    for (int i = 0; i < self->conns; i++) {
        lb_conn_t *c = &self->c[i];
        if (!c->in_use || c->tfirst)
            n++;
    }
    *settled = n;
    return n == self->conns;
}

static long long s_streams_open(lb_bench_t *self)
{
    long long n = 0;
    for (int i = 0; i < self->conns; i++)
        n += self->c[i].in_use && self->c[i].tfirst;
    return n;
}

/* The event loop: until everything asked for is done, stopped, or hopeless. */
static void s_run(lb_bench_t *self)
{
    char *buf = s_xrealloc(NULL, LB_READ_MAX);
    struct epoll_event evs[LB_MAX_EVENTS];
    self->t_start = s_now_ns();
    self->t_last = self->t_start;
    self->t_deadline = self->t_start + (uint64_t)(self->duration_s * 1e9);
    int start = self->conns;
    if (self->total > 0 && self->total < start)
        start = (int)self->total;
    uint64_t ramp_ns = (uint64_t)(self->ramp_ms * 1e6);
    int opened = 0; /* connections opened so far */
    uint64_t hold_until =
        self->t_start + ramp_ns * (uint64_t)start + (uint64_t)(LB_HOLD_WAIT_S * 1e9);
    for (;;) {
        /* The connections due: all of them at once, or one per ramp_ns with --ramp. */
        uint64_t due = s_now_ns();
        while (opened < start && due >= self->t_start + ramp_ns * (uint64_t)opened) {
            if (s_connect(self, &self->c[opened]) < 0) {
                start = opened;
                break;
            }
            opened++;
        }
        int n = epoll_wait(self->ep, evs, LB_MAX_EVENTS, opened < start ? 1 : LB_TICK_MS);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "lp_bench: epoll_wait: %s\n", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            lb_conn_t *c = &self->c[evs[i].data.u32];
            if (c->in_use)
                s_on_event(self, c, evs[i].events, buf);
        }
        uint64_t now = s_now_ns();
        if (self->connect_errors >= LB_CONNECT_ERRORS) {
            fprintf(stderr, "lp_bench: giving up after %d failed connects\n", self->connect_errors);
            break;
        }
        if (self->hold) {
            long long settled = 0;
            bool all = s_all_settled(self, &settled) && opened >= start;
            if (!self->held_printed && (all || now > hold_until)) {
                printf("{\"held\":%lld,\"settled\":%lld,\"asked\":%d,\"errors\":%lld}\n",
                       s_streams_open(self), settled, self->conns, self->errors);
                fflush(stdout);
                self->held_printed = 1;
            }
            if (s_stop || (self->duration_s > 0 && now >= self->t_deadline))
                break;
            if (self->in_flight == 0 && self->held_printed)
                break;
            continue;
        }
        if (s_stop && self->in_flight == 0)
            break;
        if (!s_may_issue(self, now) && self->in_flight == 0)
            break;
        if (self->duration_s > 0 && now > self->t_deadline + (uint64_t)(LB_GRACE_S * 1e9)) {
            fprintf(stderr, "lp_bench: %lld answers still open after the grace period\n",
                    self->in_flight);
            break;
        }
    }
    for (int i = 0; i < self->conns; i++)
        s_close(self, &self->c[i]);
    free(buf);
}

static void s_report(lb_bench_t *self)
{
    qsort(self->lat.v, self->lat.n, sizeof(uint64_t), s_cmp_u64);
    qsort(self->ttft.v, self->ttft.n, sizeof(uint64_t), s_cmp_u64);
    double elapsed = (double)(self->t_last - self->t_start) / 1e9;
    if (elapsed <= 0)
        elapsed = 1e-9;
    printf("{\"requests\":%lld,\"errors\":%lld,\"connects\":%lld,\"elapsed_s\":%.6f,"
           "\"rps\":%.1f,\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_mean_us\":%.1f,"
           "\"lat_max_us\":%.1f,\"ttft_n\":%zu,\"ttft_p50_us\":%.1f,\"ttft_p99_us\":%.1f,"
           "\"events\":%llu,\"events_per_s\":%.1f,\"events_min\":%llu,\"events_max\":%llu,"
           "\"header_hits\":%lld}\n",
           self->ok, self->errors, self->connects, elapsed, (double)self->ok / elapsed,
           s_percentile_us(&self->lat, 50), s_percentile_us(&self->lat, 99), s_mean_us(&self->lat),
           s_percentile_us(&self->lat, 100), self->ttft.n, s_percentile_us(&self->ttft, 50),
           s_percentile_us(&self->ttft, 99), (unsigned long long)self->events,
           (double)self->events / elapsed, (unsigned long long)self->ev_min,
           (unsigned long long)self->ev_max, self->header_hits);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    lb_bench_t self;
    memset(&self, 0, sizeof self);
    if (s_parse_args(&self, argc, argv) < 0)
        return 2;
    if (s_build_request(&self) < 0 || s_resolve(&self) < 0)
        return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    self.ep = epoll_create1(EPOLL_CLOEXEC);
    if (self.ep < 0) {
        fprintf(stderr, "lp_bench: epoll_create1: %s\n", strerror(errno));
        return 2;
    }
    self.c = calloc((size_t)self.conns, sizeof(lb_conn_t));
    if (!self.c) {
        fprintf(stderr, "lp_bench: out of memory\n");
        return 2;
    }
    for (int i = 0; i < self.conns; i++)
        self.c[i].fd = -1;
    s_run(&self);
    s_report(&self);
    int ok = self.ok > 0 || (self.hold && self.held_printed);
    close(self.ep);
    free(self.c);
    free(self.lat.v);
    free(self.ttft.v);
    free(self.req);
    free(self.body);
    free(self.headers);
    return ok ? 0 : 1;
}
