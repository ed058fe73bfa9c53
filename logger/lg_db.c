#define LP_LOG_MODULE "lg_db"
#include "lg_db.h"

#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "lg_schema.h"
#include "lg_spool.h"
#include "lp_buf.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_time.h"

/* A record field and the spend-log column it fills. */
typedef struct {
    const char *column;  /* quoted in SQL */
    const char *field;   /* key in the record JSON; NULL = built specially */
    const char *missing; /* the value of a NOT NULL column the record lacks ('' or 0) */
} s_col_t;

static const s_col_t s_cols[] = {
    {"request_id", "request_id", ""},
    {"call_type", "call_type", ""},
    {"api_key", "api_key", ""},
    {"spend", "spend", "0"},
    {"total_tokens", "total_tokens", "0"},
    {"prompt_tokens", "prompt_tokens", "0"},
    {"completion_tokens", "completion_tokens", "0"},
    {"startTime", "startTime", ""},
    {"endTime", "endTime", ""},
    {"request_duration_ms", NULL, NULL},
    {"completionStartTime", "completionStartTime", NULL},
    {"model", "model", ""},
    {"model_id", "model_id", NULL},
    {"model_group", "model_group", NULL},
    {"custom_llm_provider", "custom_llm_provider", NULL},
    {"api_base", "api_base", NULL},
    {"user", "user", NULL},
    {"metadata", NULL, NULL},
    {"cache_hit", NULL, NULL},
    {"cache_key", "cache_key", NULL},
    {"status", "status", NULL},
    {"attempts", "attempts", NULL},
    {"ttft_ms", "ttft_ms", NULL},
    {"error_type", "error_code", NULL},
    {"http_status", "http_status", NULL},
};
#define S_NCOLS (sizeof s_cols / sizeof s_cols[0])

struct lg_row {
    char *v[S_NCOLS]; /* NULL = SQL NULL */
};
typedef lg_row_t s_row_t;

typedef enum {
    S_DOWN,       /* waiting to (re)connect */
    S_CONNECTING, /* PQconnectPoll in progress */
    S_MIGRATING,  /* schema script in flight */
    S_IDLE,       /* connected, nothing in flight */
    S_INSERTING,  /* a batch in flight */
    S_READING,    /* a read query (for a gateway) in flight */
} s_state_t;

typedef struct s_query {
    struct s_query *next;
    char *sql;
    char **params;
    int nparams;
    lg_db_result_fn *fn;
    void *arg;
} s_query_t;

struct lg_db {
    lp_loop_t *loop;
    char *url;
    int64_t flush_ms;
    PGconn *conn;
    int fd; /* socket registered with the loop, -1 if none */
    s_state_t state;
    lg_spool_t *spool; /* the queue: records are read back from it (borrowed) */
    size_t unread;     /* records added to the spool since the last read (a hint) */
    s_row_t **rows;    /* the batch in flight, read from the spool */
    size_t nrows;
    off_t batch_end;                   /* spool offset just past the batch */
    size_t single;                     /* >0: the batch was refused; rows[single-1] goes alone */
    bool query_failed;                 /* an error result arrived for the query in flight */
    s_query_t *queries, *queries_tail; /* read queries waiting; the head is in flight */
    PGresult *result;                  /* the read query's rows */
    char query_error[256];
    int64_t backoff_ms;
    lp_timer_t retry;
    lp_timer_t flush;
    lp_timer_t watchdog; /* a server that stops answering is declared down */
    int64_t busy_since;  /* when the connect or the statement in flight began */
    lg_db_stats_t stats;
};

static void s_kick(lg_db_t *self);

/* ---- rows ---- */

static char *s_field_text(const json_t *v, const char *missing)
{
    if (json_is_string(v))
        return lp_strdup(json_string_value(v));
    if (json_is_integer(v))
        return lp_asprintf("%lld", (long long)json_integer_value(v));
    if (json_is_real(v))
        return lp_asprintf("%.17g", json_real_value(v));
    if (json_is_boolean(v))
        return lp_strdup(json_is_true(v) ? "true" : "false");
    return missing ? lp_strdup(missing) : NULL;
}

static s_row_t *s_row_new(const json_t *rec)
{
    s_row_t *row = lp_calloc(1, sizeof *row);
    for (size_t i = 0; i < S_NCOLS; i++) {
        const s_col_t *c = &s_cols[i];
        if (c->field) {
            row->v[i] = s_field_text(json_object_get(rec, c->field), c->missing);
        } else if (strcmp(c->column, "request_duration_ms") == 0) {
            double ms = lp_json_num(rec, "duration_ms", -1);
            row->v[i] = ms >= 0 ? lp_asprintf("%lld", (long long)llround(ms)) : NULL;
        } else if (strcmp(c->column, "cache_hit") == 0) {
            row->v[i] = lp_strdup(lp_json_bool(rec, "cache_hit", false) ? "True" : "False");
        } else if (strcmp(c->column, "metadata") == 0) {
            json_t *md = json_object();
            json_object_set_new(
                md, "user_api_key",
                json_string(lp_json_str(rec, "api_key") ? lp_json_str(rec, "api_key") : ""));
            static const char *keys[] = {"retries",   "duration_ms", "upstream_ms", "gateway_ms",
                                         "router_ms", "worker_ms",   "client_gone", "worker"};
            for (size_t k = 0; k < LP_ARRAY_LEN(keys); k++) {
                json_t *v = json_object_get(rec, keys[k]);
                if (v)
                    json_object_set(md, keys[k], v);
            }
            row->v[i] = lp_json_dump(md, NULL);
            json_decref(md);
        }
    }
    return row;
}

static void s_row_free(s_row_t *row)
{
    for (size_t i = 0; i < S_NCOLS; i++)
        free(row->v[i]);
    free(row);
}

lg_row_t *lg_row_decode(const char *line, size_t len, char *err)
{
    json_t *rec = lp_json_parse(line, len, err);
    lg_row_t *row = NULL;
    if (json_is_object(rec) && lp_json_str(rec, "request_id"))
        row = s_row_new(rec);
    else if (rec)
        lp_err_set(err, "not a usage record (no request_id)");
    json_decref(rec);
    return row;
}

size_t lg_row_columns(void)
{
    return S_NCOLS;
}

const char *lg_row_value(const lg_row_t *row, size_t col)
{
    return col < S_NCOLS ? row->v[col] : NULL;
}

void lg_row_destroy(lg_row_t **row_p)
{
    if (*row_p)
        s_row_free(*row_p);
    *row_p = NULL;
}

static void s_batch_free(lg_db_t *self)
{
    for (size_t i = 0; i < self->nrows; i++)
        s_row_free(self->rows[i]);
    free(self->rows);
    self->rows = NULL;
    self->nrows = 0;
    self->single = 0;
}

/* ---- read queries ---- */

static void s_query_free(s_query_t *q)
{
    free(q->sql);
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q);
}

/* Finish the head query: its callback gets the rows or the error. */
static void s_query_finish(lg_db_t *self, const char *error)
{
    s_query_t *q = self->queries;
    if (!q)
        return;
    self->queries = q->next;
    if (!self->queries)
        self->queries_tail = NULL;
    q->fn(q->arg, error ? NULL : self->result, error);
    if (self->result) {
        PQclear(self->result);
        self->result = NULL;
    }
    s_query_free(q);
}

/* ---- connection ---- */

static void s_unwatch(lg_db_t *self)
{
    if (self->fd >= 0) {
        lp_loop_remove_fd(self->loop, self->fd);
        self->fd = -1;
    }
}

static int s_on_socket(lp_loop_t *loop, int fd, uint32_t events, void *arg);

/* Watch libpq's socket for the events it needs next (it may change while connecting). */
static void s_watch(lg_db_t *self, uint32_t events)
{
    int fd = PQsocket(self->conn);
    if (fd != self->fd)
        s_unwatch(self);
    if (fd < 0)
        return;
    if (self->fd < 0) {
        if (lp_loop_add_fd(self->loop, fd, events, s_on_socket, self) < 0) {
            log_errno("cannot watch the PostgreSQL socket");
            return;
        }
        self->fd = fd;
    } else if (lp_loop_mod_fd(self->loop, fd, events) < 0) {
        log_errno("cannot change the PostgreSQL socket events");
    }
}

static int s_on_retry(lp_loop_t *loop, lp_timer_t *timer, void *arg);

static void s_drop_connection(lg_db_t *self, const char *why)
{
    if (self->state == S_IDLE || self->state == S_INSERTING || self->state == S_MIGRATING)
        log_warn("PostgreSQL connection lost (%s); %lld spooled byte(s) wait", why,
                 (long long)lg_spool_backlog(self->spool));
    else
        log_warn("cannot connect to PostgreSQL: %s; retrying in %lld ms", why,
                 (long long)self->backoff_ms);
    s_unwatch(self);
    if (self->conn) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
    self->state = S_DOWN;
    /* The batch in flight is read again from the spool once connected; read queries fail. */
    s_batch_free(self);
    while (self->queries)
        s_query_finish(self, "the database connection was lost");
    lg_spool_rewind(self->spool);
    self->unread = LG_DB_BATCH_MAX;
    lp_timer_start(self->loop, &self->retry, self->backoff_ms, s_on_retry, self);
    self->backoff_ms = LP_MIN(self->backoff_ms * 2, LG_DB_BACKOFF_MAX_MS);
}

/* libpq's error text without the trailing newline (it never contains the password). */
static const char *s_pq_error(PGconn *conn, char *buf, size_t size)
{
    lp_strlcpy(buf, conn ? PQerrorMessage(conn) : "out of memory", size);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return buf;
}

static void s_connect(lg_db_t *self)
{
    /* Bounded waits so a frozen server is noticed: connect, statement and TCP timeouts. */
    const char *keys[] = {"dbname",  "application_name", "connect_timeout",
                          "options", "keepalives_idle",  "tcp_user_timeout",
                          NULL};
    const char *vals[] = {self->url, "llm-proxy-logger",
                          "5",       "-c statement_timeout=8000 -c TimeZone=UTC",
                          "10",      "10000",
                          NULL};
    self->conn = PQconnectStartParams(keys, vals, 1);
    char err[256];
    if (!self->conn || PQstatus(self->conn) == CONNECTION_BAD) {
        s_drop_connection(self, s_pq_error(self->conn, err, sizeof err));
        return;
    }
    self->state = S_CONNECTING;
    self->busy_since = lp_mono_ns();
    s_watch(self, EPOLLOUT);
}

static int s_on_retry(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    s_connect(arg);
    return 0;
}

/* After a query was sent: push the bytes out, then wait for the answer. */
static void s_after_send(lg_db_t *self)
{
    self->busy_since = lp_mono_ns();
    int rc = PQflush(self->conn);
    if (rc < 0) {
        char err[256];
        s_drop_connection(self, s_pq_error(self->conn, err, sizeof err));
        return;
    }
    s_watch(self, rc == 1 ? (EPOLLIN | EPOLLOUT) : EPOLLIN);
}

static void s_send_schema(lg_db_t *self)
{
    lp_buf_t sql = {0};
    lp_buf_puts(&sql, "BEGIN;\n"
                      "SET LOCAL statement_timeout = 0;\n" /* LG_DB_MIGRATE_MS bounds it */
                      "SELECT pg_advisory_xact_lock(7412001);\n"
                      "CREATE TABLE IF NOT EXISTS llm_proxy_migrations (\n"
                      "  version INTEGER PRIMARY KEY, name TEXT NOT NULL,\n"
                      "  applied_at TIMESTAMPTZ NOT NULL DEFAULT now());\n");
    for (unsigned i = 0; i < lg_migrations_len; i++) {
        lp_buf_puts(&sql, lg_migrations[i].sql);
        lp_buf_printf(&sql,
                      "\nINSERT INTO llm_proxy_migrations (version, name) VALUES (%d, '%s') "
                      "ON CONFLICT (version) DO NOTHING;\n",
                      lg_migrations[i].version, lg_migrations[i].name);
    }
    lp_buf_puts(&sql, "COMMIT;\n");
    self->query_failed = false;
    if (!PQsendQuery(self->conn, sql.data)) {
        char err[256];
        lp_buf_free(&sql);
        s_drop_connection(self, s_pq_error(self->conn, err, sizeof err));
        return;
    }
    lp_buf_free(&sql);
    self->state = S_MIGRATING;
    s_after_send(self);
}

/* INSERT of rows[first, first+n), idempotent on request_id; the spend of the rows actually
 * inserted is added to their virtual keys in the same statement, so a record delivered twice
 * is neither stored nor billed twice. */
static void s_send_rows(lg_db_t *self, size_t first, size_t n)
{
    lp_buf_t sql = {0};
    lp_buf_puts(&sql, "WITH ins AS (INSERT INTO \"LiteLLM_SpendLogs\" (");
    for (size_t c = 0; c < S_NCOLS; c++)
        lp_buf_printf(&sql, "%s\"%s\"", c ? ", " : "", s_cols[c].column);
    lp_buf_puts(&sql, ") VALUES ");
    const char **params = lp_calloc(n * S_NCOLS, sizeof *params);
    size_t p = 0;
    for (size_t r = 0; r < n; r++) {
        s_row_t *row = self->rows[first + r];
        lp_buf_puts(&sql, r ? ",(" : "(");
        for (size_t c = 0; c < S_NCOLS; c++) {
            lp_buf_printf(&sql, "%s$%zu", c ? "," : "", p + 1);
            params[p++] = row->v[c];
        }
        lp_buf_puts(&sql, ")");
    }
    lp_buf_puts(&sql,
                " ON CONFLICT (\"request_id\") DO NOTHING RETURNING \"api_key\", \"spend\")"
                " UPDATE \"LiteLLM_VerificationToken\" t SET \"spend\" = t.\"spend\" + s.total"
                " FROM (SELECT \"api_key\", sum(\"spend\") AS total FROM ins"
                " GROUP BY \"api_key\") s WHERE t.\"token\" = s.\"api_key\"");
    self->query_failed = false;
    int ok = PQsendQueryParams(self->conn, sql.data, (int)p, NULL, params, NULL, NULL, 0);
    free(params);
    lp_buf_free(&sql);
    if (!ok) {
        char err[256];
        s_drop_connection(self, s_pq_error(self->conn, err, sizeof err));
        return;
    }
    self->state = S_INSERTING;
    self->stats.batches++;
    s_after_send(self);
}

/* Read the next batch from the spool and send it. Lines that are not a record are counted
 * and skipped (a damaged spool must not block the rest). */
static void s_send_batch(lg_db_t *self)
{
    lp_buf_t lines = {0};
    off_t end = 0;
    size_t n = lg_spool_read(self->spool, LG_DB_BATCH_MAX, &lines, &end);
    self->unread = self->unread > n ? self->unread - n : 0;
    self->rows = lp_calloc(n ? n : 1, sizeof *self->rows);
    size_t off = 0, len = 0;
    const char *line;
    while (self->nrows < n && (line = lg_spool_line(&lines, &off, &len)) != NULL) {
        char err[LP_ERR_LEN] = "";
        lg_row_t *row = lg_row_decode(line, len, err);
        if (row) {
            self->rows[self->nrows++] = row;
        } else {
            self->stats.rejected++;
            log_error("spool: skipping a line that is not a usage record: %s", err);
        }
    }
    lp_buf_free(&lines);
    self->batch_end = end;
    if (self->nrows == 0) {
        s_batch_free(self);
        lg_spool_commit(self->spool, end);
        return;
    }
    s_send_rows(self, 0, self->nrows);
}

/* The query in flight has finished (all results read). */
static void s_query_done(lg_db_t *self)
{
    if (self->state == S_READING) {
        self->state = S_IDLE;
        s_query_finish(self, self->query_failed ? self->query_error : NULL);
        s_kick(self);
        return;
    }
    if (self->state == S_MIGRATING) {
        if (self->query_failed) {
            log_error("schema upgrade failed: %s", self->query_error);
            s_drop_connection(self, "schema upgrade failed");
            return;
        }
        log_info("PostgreSQL connected; schema at version %d",
                 lg_migrations_len ? lg_migrations[lg_migrations_len - 1].version : 0);
        self->backoff_ms = LG_DB_BACKOFF_MIN_MS;
        self->state = S_IDLE;
        s_kick(self);
        return;
    }
    self->state = S_IDLE;
    if (self->single == 0) {
        if (!self->query_failed) {
            self->stats.written += self->nrows;
            s_batch_free(self);
            lg_spool_commit(self->spool, self->batch_end);
        } else if (self->nrows > 1) {
            log_warn("batch of %zu rejected (%s); writing rows one by one", self->nrows,
                     self->query_error);
            self->single = 1;
        } else {
            log_error("usage record %s rejected by PostgreSQL, dropped: %s",
                      self->rows[0]->v[0] ? self->rows[0]->v[0] : "?", self->query_error);
            self->stats.rejected++;
            s_batch_free(self);
            lg_spool_commit(self->spool, self->batch_end);
        }
    } else {
        /* One row of a refused batch: written, or dropped with its reason. */
        if (!self->query_failed) {
            self->stats.written++;
        } else {
            s_row_t *row = self->rows[self->single - 1];
            log_error("usage record %s rejected by PostgreSQL, dropped: %s",
                      row->v[0] ? row->v[0] : "?", self->query_error);
            self->stats.rejected++;
        }
        if (++self->single > self->nrows) {
            s_batch_free(self);
            lg_spool_commit(self->spool, self->batch_end);
        }
    }
    s_kick(self);
}

static void s_read_results(lg_db_t *self)
{
    char err[256];
    if (!PQconsumeInput(self->conn)) {
        s_drop_connection(self, s_pq_error(self->conn, err, sizeof err));
        return;
    }
    while (!PQisBusy(self->conn)) {
        PGresult *res = PQgetResult(self->conn);
        if (!res) {
            s_query_done(self);
            return;
        }
        ExecStatusType st = PQresultStatus(res);
        if (self->state == S_READING && st == PGRES_TUPLES_OK && !self->result) {
            self->result = res; /* the rows, for the query's callback */
            continue;
        }
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && !self->query_failed) {
            self->query_failed = true;
            lp_strlcpy(self->query_error, PQresultErrorMessage(res), sizeof self->query_error);
            size_t n = strlen(self->query_error);
            while (n > 0 && self->query_error[n - 1] == '\n')
                self->query_error[--n] = '\0';
        }
        PQclear(res);
    }
    if (PQstatus(self->conn) == CONNECTION_BAD)
        s_drop_connection(self, s_pq_error(self->conn, err, sizeof err));
}

static int s_on_socket(lp_loop_t *loop, int fd, uint32_t events, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(fd);
    lg_db_t *self = arg;
    char err[256];
    if (self->state == S_CONNECTING) {
        switch (PQconnectPoll(self->conn)) {
        case PGRES_POLLING_READING:
            s_watch(self, EPOLLIN);
            break;
        case PGRES_POLLING_WRITING:
            s_watch(self, EPOLLOUT);
            break;
        case PGRES_POLLING_OK:
            if (PQsetnonblocking(self->conn, 1) < 0) {
                s_drop_connection(self, "cannot make the connection non-blocking");
                break;
            }
            s_send_schema(self);
            break;
        default:
            s_drop_connection(self, s_pq_error(self->conn, err, sizeof err));
            break;
        }
        return 0;
    }
    if (!self->conn)
        return 0;
    if (events & EPOLLOUT) {
        int rc = PQflush(self->conn);
        if (rc < 0) {
            s_drop_connection(self, s_pq_error(self->conn, err, sizeof err));
            return 0;
        }
        if (rc == 0)
            s_watch(self, EPOLLIN);
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (self->state == S_IDLE) {
            /* Nothing asked: a notice, or the server closing the connection. */
            if (!PQconsumeInput(self->conn) || PQstatus(self->conn) == CONNECTION_BAD)
                s_drop_connection(self, s_pq_error(self->conn, err, sizeof err));
            return 0;
        }
        s_read_results(self);
    }
    return 0;
}

/* Start the next batch when connected and idle: at once when a full batch waits (or a
 * refused batch is being written row by row), else when the flush timer fires. */
static void s_kick(lg_db_t *self)
{
    if (self->state != S_IDLE)
        return;
    if (self->queries) {
        /* Reads first: a gateway waits for them; spooled records are safe meanwhile. */
        s_query_t *q = self->queries;
        self->query_failed = false;
        if (!PQsendQueryParams(self->conn, q->sql, q->nparams, NULL, (const char *const *)q->params,
                               NULL, NULL, 0)) {
            char err[256];
            s_drop_connection(self, s_pq_error(self->conn, err, sizeof err));
            return;
        }
        self->state = S_READING;
        s_after_send(self);
        return;
    }
    if (self->single) {
        s_send_rows(self, self->single - 1, 1);
        return;
    }
    if (!lg_spool_pending(self->spool))
        return;
    if (self->unread >= LG_DB_BATCH_MAX || !lp_timer_active(&self->flush))
        s_send_batch(self);
}

static int s_on_flush(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    s_kick(arg);
    return 0;
}

/* A frozen server keeps its TCP connection (the kernel answers), so neither the server's
 * statement_timeout nor TCP timeouts fire: our own deadline does. */
static int s_on_watchdog(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    lg_db_t *self = arg;
    bool busy = self->state == S_CONNECTING || self->state == S_MIGRATING ||
                self->state == S_INSERTING || self->state == S_READING;
    /* A migration may build an index on a big table: it gets minutes. */
    int64_t limit = (self->state == S_CONNECTING  ? LG_DB_CONNECT_MS
                     : self->state == S_MIGRATING ? LG_DB_MIGRATE_MS
                                                  : LG_DB_STATEMENT_MS) *
                    LP_NS_PER_MS;
    if (busy && lp_mono_ns() - self->busy_since > limit)
        s_drop_connection(self, self->state == S_CONNECTING
                                    ? "no answer to the connection within its deadline"
                                    : "no answer to a statement within its deadline");
    lp_timer_start(loop, timer, LG_DB_WATCHDOG_MS, s_on_watchdog, self);
    return 0;
}

lg_db_t *lg_db_new(lp_loop_t *loop, const char *url, int64_t flush_ms, lg_spool_t *spool)
{
    lg_db_t *self = lp_calloc(1, sizeof *self);
    self->loop = loop;
    self->url = lp_strdup(url);
    self->flush_ms = flush_ms > 0 ? flush_ms : 1;
    self->fd = -1;
    self->spool = spool;
    self->backoff_ms = LG_DB_BACKOFF_MIN_MS;
    /* Records left from a previous run go first, without waiting for the timer. */
    self->unread = lg_spool_pending(spool) ? LG_DB_BATCH_MAX : 0;
    s_connect(self);
    lp_timer_start(loop, &self->watchdog, LG_DB_WATCHDOG_MS, s_on_watchdog, self);
    return self;
}

void lg_db_destroy(lg_db_t **self_p)
{
    lg_db_t *self = *self_p;
    if (!self)
        return;
    lp_timer_stop(self->loop, &self->retry);
    lp_timer_stop(self->loop, &self->flush);
    lp_timer_stop(self->loop, &self->watchdog);
    s_unwatch(self);
    if (self->conn)
        PQfinish(self->conn);
    s_batch_free(self);
    while (self->queries)
        s_query_finish(self, "the logger is stopping");
    lp_free_secret(self->url);
    free(self);
    *self_p = NULL;
}

void lg_db_added(lg_db_t *self, size_t n)
{
    self->unread += n;
    if (!lp_timer_active(&self->flush))
        lp_timer_start(self->loop, &self->flush, self->flush_ms, s_on_flush, self);
    if (self->unread >= LG_DB_BATCH_MAX)
        s_kick(self);
}

const char *lg_db_state(const lg_db_t *self)
{
    switch (self->state) {
    case S_IDLE:
    case S_INSERTING:
    case S_READING:
        return "connected";
    case S_CONNECTING:
    case S_MIGRATING:
        return "connecting";
    default:
        return "disconnected";
    }
}

size_t lg_db_pending(const lg_db_t *self)
{
    return (size_t)lg_spool_backlog(self->spool);
}

const lg_db_stats_t *lg_db_stats(const lg_db_t *self)
{
    return &self->stats;
}

size_t lg_db_flush_blocking(lg_db_t *self, int64_t timeout_ms)
{
    int64_t deadline = lp_mono_ms() + timeout_ms;
    lp_timer_stop(self->loop, &self->flush);
    while (lg_spool_backlog(self->spool) > 0 && self->conn && lp_mono_ms() < deadline) {
        if (self->state == S_IDLE)
            s_kick(self);
        if (self->state != S_INSERTING && self->state != S_MIGRATING)
            break;
        /* Wait on the socket directly: the loop is being torn down. */
        struct pollfd pfd = {.fd = PQsocket(self->conn), .events = POLLIN | POLLOUT};
        if (pfd.fd < 0 || poll(&pfd, 1, 100) < 0)
            break;
        uint32_t ev = ((pfd.revents & POLLIN) ? EPOLLIN : 0) |
                      ((pfd.revents & POLLOUT) ? EPOLLOUT : 0) |
                      ((pfd.revents & (POLLHUP | POLLERR)) ? EPOLLERR : 0);
        if (ev)
            s_on_socket(self->loop, pfd.fd, ev, self);
    }
    return (size_t)lg_spool_backlog(self->spool);
}

int lg_db_query(lg_db_t *self, const char *sql, const char *const *params, int nparams,
                lg_db_result_fn *fn, void *arg)
{
    if (self->state == S_DOWN || self->state == S_CONNECTING || self->state == S_MIGRATING)
        return -1;
    s_query_t *q = lp_calloc(1, sizeof *q);
    q->sql = lp_strdup(sql);
    q->nparams = nparams;
    q->params = lp_calloc(nparams ? (size_t)nparams : 1, sizeof *q->params);
    for (int i = 0; i < nparams; i++)
        q->params[i] = params[i] ? lp_strdup(params[i]) : NULL;
    q->fn = fn;
    q->arg = arg;
    if (self->queries_tail)
        self->queries_tail->next = q;
    else
        self->queries = q;
    self->queries_tail = q;
    s_kick(self);
    return 0;
}
