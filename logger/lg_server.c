#define LP_LOG_MODULE "lg_server"
#include "lg_server.h"

#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "lg_db.h"
#include "lg_audit.h"
#include "lg_keys.h"
#include "lg_spool.h"
#include "lg_summary.h"
#include "lp_buf.h"
#include "lp_daemon.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_time.h"
#include "lp_loop.h"
#include "lp_msg.h"
#include "lp_zmq.h"

/* Records taken per loop turn. */
#define LG_BATCH 512

/* Acknowledgements wait this long at most, so one ACK covers the records of many turns (a
 * gateway needs them only to let go of its copies)... */
#define LG_ACK_MS 20
/* ...or go at once when this many are waiting. */
#define LG_ACK_MAX 4096

/* The records of one gateway waiting to be acknowledged together. */
typedef struct {
    unsigned char identity[256];
    size_t idlen;
    lp_buf_t ids;  /* 16-byte request ids */
    size_t synced; /* bytes of ids that are durable; the rest are this turn's */
} s_ack_t;

struct lg_server {
    lp_cfg_t *cfg;
    void *zctx;
    void *socket; /* ROUTER, gateways connect */
    lp_loop_t *loop;
    lg_db_t *db;       /* NULL without a database */
    lg_spool_t *spool; /* durable queue in front of the database (NULL without one) */
    s_ack_t *acks;     /* per sender, waiting for ack_timer */
    size_t nacks;
    size_t waiting; /* ids in acks */
    lp_timer_t ack_timer;
    size_t spooled;               /* records added to the spool this turn */
    unsigned long long refused;   /* records not acknowledged because the spool was full */
    unsigned long long malformed; /* RECORD lines that were not usage records */
    lg_summary_t *summary;
    lp_timer_t reset_timer; /* budget resets of virtual keys */
    double summary_s;       /* 0 = no summary lines */
    lp_timer_t summary_timer;
    lg_format_t format;
    bool colour;
    lp_buf_t out; /* lines of this turn, written at once */
    unsigned long long records;
};

static void s_write_out(lg_server_t *self)
{
    size_t off = 0;
    while (off < self->out.len) {
        ssize_t n = write(STDOUT_FILENO, self->out.data + off, self->out.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* stdout gone: the records still reach the database */
        off += (size_t)n;
    }
    lp_buf_reset(&self->out);
}

/* Remember to acknowledge the record `id` to the gateway that sent msg. */
static void s_ack_later(lg_server_t *self, lp_msg_t *msg, const uint8_t *id)
{
    size_t idlen;
    const void *identity = lp_msg_identity(msg, &idlen);
    if (!id || idlen > sizeof self->acks[0].identity)
        return;
    s_ack_t *a = NULL;
    for (size_t i = 0; i < self->nacks && !a; i++) {
        if (self->acks[i].idlen == idlen && memcmp(self->acks[i].identity, identity, idlen) == 0)
            a = &self->acks[i];
    }
    if (!a) {
        self->acks = lp_realloc(self->acks, (self->nacks + 1) * sizeof *self->acks);
        a = &self->acks[self->nacks++];
        memset(a, 0, sizeof *a);
        memcpy(a->identity, identity, idlen);
        a->idlen = idlen;
    }
    lp_buf_append(&a->ids, id, LP_REQ_ID_LEN);
}

/* Send every pending acknowledgement (the records are durable now, or need no durability). */
static void s_send_acks(lg_server_t *self)
{
    for (size_t i = 0; i < self->nacks; i++) {
        s_ack_t *a = &self->acks[i];
        lp_msg_t *m = lp_msg_new(LP_CMD_ACK, NULL);
        lp_msg_set_identity(m, a->identity, a->idlen);
        json_object_set_new(lp_msg_meta_rw(m), "count",
                            json_integer((json_int_t)(a->ids.len / LP_REQ_ID_LEN)));
        size_t len = 0;
        char *ids = lp_buf_steal(&a->ids, &len);
        lp_msg_give_body(m, ids, len);
        if (lp_msg_send(&m, self->socket) < 0)
            lp_msg_destroy(&m); /* the gateway is gone; it resends what it still holds */
    }
    for (size_t i = 0; i < self->nacks; i++)
        lp_buf_free(&self->acks[i].ids);
    self->nacks = 0;
    self->waiting = 0;
    lp_timer_stop(self->loop, &self->ack_timer);
}

static int s_on_ack_timer(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    LP_UNUSED(loop);
    LP_UNUSED(timer);
    s_send_acks(arg);
    return 0;
}

/* End of a turn: its records are durable (ok) or not (their ids are forgotten, the gateways
 * resend them); the acknowledgements go within LG_ACK_MS. */
static void s_turn_acks(lg_server_t *self, bool ok)
{
    self->waiting = 0;
    for (size_t i = 0; i < self->nacks; i++) {
        s_ack_t *a = &self->acks[i];
        if (ok)
            a->synced = a->ids.len;
        else
            a->ids.len = a->synced;
        self->waiting += a->ids.len / LP_REQ_ID_LEN;
    }
    if (self->waiting >= LG_ACK_MAX)
        s_send_acks(self);
    else if (self->waiting && !lp_timer_active(&self->ack_timer))
        lp_timer_start(self->loop, &self->ack_timer, LG_ACK_MS, s_on_ack_timer, self);
}

/* The record as one line of JSON (JSON escapes every newline), for the spool and the JSON
 * form of the operator's line; NULL when neither wants it. Caller frees. */
static char *s_record_json(lg_server_t *self, const lp_mview_t *rec, size_t *len)
{
    *len = 0;
    if (!self->spool && self->format != LG_FORMAT_JSON)
        return NULL;
    json_t *tree = lp_mview_tree(rec);
    char *line = tree ? lp_json_dump(tree, len) : NULL;
    json_decref(tree);
    return line;
}

/* One record of a RECORD: spooled as a line of JSON (or only printed), then acknowledged. */
static void s_on_record(lg_server_t *self, lp_msg_t *msg, const lp_mview_t *rec)
{
    uint8_t id[LP_REQ_ID_LEN];
    const char *rid = lp_mview_str(rec, "request_id");
    if (!rid || lp_req_id_parse(rid, id) < 0) {
        /* Without its id it cannot be acknowledged (a sender resends it: said once per
         * 1000), and resending could not fix it. */
        if (self->malformed++ % 1000 == 0)
            log_warn("dropping a usage record without a request_id (%llu so far)", self->malformed);
        return;
    }
    size_t len = 0;
    char *line = s_record_json(self, rec, &len);
    if (self->spool) {
        if (!line || lg_spool_add(self->spool, line, len) < 0) {
            /* Not printed either: the gateway sends it again, and then it is. */
            if (self->refused++ % 1000 == 0)
                log_error("spool full (%.1f MiB): not acknowledging records until PostgreSQL "
                          "catches up; %llu refused so far",
                          (double)lg_spool_max(self->spool) / (1 << 20), self->refused);
            free(line);
            return;
        }
        self->spooled++;
    }
    self->records++;
    lg_line_format(rec, line, self->format, self->colour, &self->out);
    free(line);
    lg_summary_add(self->summary, rec);
    s_ack_later(self, msg, id); /* spooled, or stdout is the destination */
}

/* A RECORD: usage records, MessagePack maps one after the other (a gateway sends those of a
 * loop turn together). */
static void s_on_records(lg_server_t *self, lp_msg_t *msg)
{
    size_t len = 0, off = 0;
    const char *body = lp_msg_body(msg, &len);
    while (off < len) {
        char err[LP_ERR_LEN];
        lp_mview_t *rec = lp_mview_next(body, len, &off, err);
        if (!rec) {
            /* The rest cannot be found again: its records are resent after 3 s. */
            if (self->malformed++ % 1000 == 0)
                log_warn("dropping a malformed RECORD at byte %zu of %zu (%llu so far): %s", off,
                         len, self->malformed, err);
            return;
        }
        s_on_record(self, msg, rec);
        lp_mview_destroy(&rec);
    }
}

/* ---- reads for gateways (GET /spend/logs) ---- */

/* Where a query's answer goes. */
typedef struct {
    lg_server_t *srv;
    unsigned char identity[256];
    size_t idlen;
    uint8_t id[LP_REQ_ID_LEN];
    char audit[256]; /* the audit line to print when the change succeeds, or "" */
} s_reply_to_t;

/* Admin actions are printed for operators too (who, what, which object; never a secret). */
static void s_audit_note(s_reply_to_t *to, const json_t *meta)
{
    const char *kind = lp_json_str(meta, "kind");
    const char *action = lp_json_str(meta, "action");
    const char *what = NULL, *object = NULL;
    char phrase[64];
    if (!strcmp(kind, "key_create")) {
        what = "key created";
        object = lp_json_str(json_object_get(meta, "fields"), "token");
    } else if (!strcmp(kind, "key_update")) {
        snprintf(phrase, sizeof phrase, "key %.40s", action ? action : "updated");
        what = phrase;
        object = lp_json_str(meta, "token");
    } else if (!strcmp(kind, "key_delete")) {
        what = "key deleted";
        object = json_string_value(json_array_get(json_object_get(meta, "tokens"), 0));
    } else if (!strcmp(kind, "audit")) {
        what = action;
        object = lp_json_str(meta, "object_id");
    }
    if (!what)
        return;
    char stamp[LP_ISO_LEN];
    lp_iso8601(lp_wall_ns(), stamp, sizeof stamp);
    const char *who = lp_json_str(meta, "changed_by");
    snprintf(to->audit, sizeof to->audit, "%s audit %.64s %.64s by %.40s\n", stamp, what,
             object ? object : "-", who ? who : "-");
}

static void s_reply(lg_server_t *self, const unsigned char *identity, size_t idlen, lp_msg_t **m)
{
    lp_msg_set_identity(*m, identity, idlen);
    if (lp_msg_send(m, self->socket) < 0)
        lp_msg_destroy(m);
}

static void s_on_query_result(void *arg, const struct pg_result *rows, const char *error)
{
    s_reply_to_t *to = arg;
    lp_msg_t *m;
    if (!rows) {
        log_warn("query failed: %s", error);
        if (error && strstr(error, "duplicate key"))
            m = lp_msg_error(to->id, 400, "duplicate", "that key already exists");
        else
            m = lp_msg_error(to->id, 503, "database_error", "the database query failed");
    } else {
        m = lp_msg_new(LP_CMD_END, to->id);
        json_object_set_new(lp_msg_meta_rw(m), "status", json_integer(200));
        const char *text = PQntuples(rows) ? PQgetvalue(rows, 0, 0) : "[]";
        lp_msg_set_body(m, text, strlen(text));
        /* A change that found nothing (no such key) answers null or [] and is no action. */
        if (to->audit[0] && strcmp(text, "null") != 0 && strcmp(text, "[]") != 0) {
            lp_buf_puts(&to->srv->out, to->audit);
            s_write_out(to->srv);
        }
    }
    s_reply(to->srv, to->identity, to->idlen, &m);
    free(to);
}

/* The spend-log rows matching the gateway's filters, newest first, as one JSON array built by
 * PostgreSQL. Every filter is a parameter; NULL means "any". */
static const char s_spend_sql[] =
    "SELECT coalesce(json_agg(r), '[]'::json) FROM (SELECT \"request_id\", \"call_type\", "
    "\"api_key\", \"spend\", \"total_tokens\", \"prompt_tokens\", \"completion_tokens\", "
    "\"startTime\", \"endTime\", \"completionStartTime\", \"model\", \"model_id\", "
    "\"model_group\", \"custom_llm_provider\", \"api_base\", \"user\", \"metadata\", "
    "\"cache_hit\", \"cache_key\", \"request_tags\", \"team_id\", \"end_user\", \"status\", "
    "\"attempts\", \"ttft_ms\", \"error_type\", \"http_status\" FROM \"LiteLLM_SpendLogs\" "
    "WHERE ($1::text IS NULL OR \"api_key\" = $1) AND ($2::text IS NULL OR \"request_id\" = $2) "
    "AND ($3::text IS NULL OR \"user\" = $3) "
    "AND ($4::text IS NULL OR \"model_group\" = $4 OR \"model\" = $4) "
    "AND ($5::date IS NULL OR \"startTime\" >= $5::date) "
    "AND ($6::date IS NULL OR \"startTime\" < $6::date + 1) "
    "ORDER BY \"startTime\" DESC LIMIT $7::int) r";

/* Virtual keys and the audit log: the statement comes from lg_keys or lg_audit (fixed text,
 * values as parameters). A change that succeeds also gets an audit line on stdout. */
static void s_on_built_query(lg_server_t *self, lp_msg_t *msg, const void *identity, size_t idlen,
                             const uint8_t *id)
{
    lp_msg_t *err = NULL;
    char why[LP_ERR_LEN];
    lg_query_t q;
    const json_t *meta = lp_msg_meta(msg);
    const char *kind = lp_json_str(meta, "kind");
    bool keys = lp_str_prefix(kind, "key_");
    if (!self->db) {
        err = lp_msg_error(id, 400, "database_not_configured",
                           "virtual keys and the audit log need a database: set DATABASE_URL");
    } else if ((keys ? lg_keys_build(meta, &q, why) : lg_audit_build(meta, &q, why)) < 0) {
        err = lp_msg_error(id, 400, NULL, why);
    } else {
        s_reply_to_t *to = lp_calloc(1, sizeof *to);
        to->srv = self;
        memcpy(to->identity, identity, idlen);
        to->idlen = idlen;
        memcpy(to->id, id, LP_REQ_ID_LEN);
        s_audit_note(to, meta);
        int rc = lg_db_query(self->db, q.sql.data, (const char *const *)q.params, q.nparams,
                             s_on_query_result, to);
        lg_query_free(&q);
        if (rc == 0)
            return;
        free(to);
        err = lp_msg_error(id, 503, "database_unavailable",
                           "the database is not connected; try again shortly");
    }
    s_reply(self, identity, idlen, &err);
}

static void s_on_query(lg_server_t *self, lp_msg_t *msg)
{
    size_t idlen;
    const void *identity = lp_msg_identity(msg, &idlen);
    const uint8_t *id = lp_msg_req_id(msg);
    if (!id || idlen > sizeof((s_reply_to_t *)0)->identity)
        return;
    const char *kind = lp_msg_meta_str(msg, "kind");
    lp_msg_t *err = NULL;
    if (kind && (lp_str_prefix(kind, "key_") || lp_str_prefix(kind, "audit"))) {
        s_on_built_query(self, msg, identity, idlen, id);
        return;
    }
    if (!kind || strcmp(kind, "spend_logs") != 0) {
        err = lp_msg_error(id, 400, NULL, "unknown query");
    } else if (!self->db) {
        err = lp_msg_error(id, 400, "database_not_configured",
                           "no database is configured (DATABASE_URL)");
    }
    if (!err) {
        static const char *keys[] = {"api_key", "request_id", "user",
                                     "model",   "start_date", "end_date"};
        const char *params[7];
        for (size_t i = 0; i < LP_ARRAY_LEN(keys); i++)
            params[i] = lp_msg_meta_str(msg, keys[i]);
        char limit[24];
        snprintf(limit, sizeof limit, "%lld", lp_msg_meta_int(msg, "limit", 100));
        params[6] = limit;
        s_reply_to_t *to = lp_calloc(1, sizeof *to);
        to->srv = self;
        memcpy(to->identity, identity, idlen);
        to->idlen = idlen;
        memcpy(to->id, id, LP_REQ_ID_LEN);
        if (lg_db_query(self->db, s_spend_sql, params, 7, s_on_query_result, to) == 0)
            return;
        free(to);
        err = lp_msg_error(id, 503, "database_unavailable",
                           "the database is not connected; try again shortly");
    }
    s_reply(self, identity, idlen, &err);
}

static void s_on_heartbeat(lg_server_t *self, lp_msg_t *ping)
{
    lp_msg_t *pong = lp_msg_new(LP_CMD_HEARTBEAT, NULL);
    lp_msg_move_identity(pong, ping);
    json_t *meta = lp_msg_meta_rw(pong);
    json_object_set_new(meta, "db",
                        json_string(self->db ? lg_db_state(self->db) : "not configured"));
    json_object_set_new(meta, "pending",
                        json_integer(self->db ? (json_int_t)lg_db_pending(self->db) : 0));
    if (lp_msg_send(&pong, self->socket) < 0)
        lp_msg_destroy(&pong);
}

static int s_on_socket(lp_loop_t *loop, void *socket, void *arg)
{
    LP_UNUSED(loop);
    lg_server_t *self = arg;
    for (int i = 0; i < LG_BATCH; i++) {
        char err[LP_ERR_LEN];
        lp_msg_t *msg = lp_msg_recv(socket, true, err);
        if (!msg) {
            if (!err[0])
                break;
            log_warn("dropping malformed message: %s", err);
            continue;
        }
        switch (lp_msg_cmd(msg)) {
        case LP_CMD_RECORD:
            s_on_records(self, msg);
            break;
        case LP_CMD_HEARTBEAT:
            s_on_heartbeat(self, msg);
            break;
        case LP_CMD_QUERY:
            s_on_query(self, msg);
            break;
        default:
            log_debug("unexpected %s", lp_cmd_name(lp_msg_cmd(msg)));
            break;
        }
        lp_msg_destroy(&msg);
    }
    s_write_out(self);
    if (self->spooled) {
        /* One fdatasync for the whole turn, then the acknowledgements. */
        if (lg_spool_sync(self->spool) < 0) {
            log_errno("spool write failed; %zu record(s) not acknowledged (gateways resend)",
                      self->spooled);
            self->spooled = 0;
            s_turn_acks(self, false);
            return 0;
        }
        lg_db_added(self->db, self->spooled);
        self->spooled = 0;
    }
    s_turn_acks(self, true);
    return 0;
}

static int s_on_signal(lp_loop_t *loop, int signo, void *arg)
{
    LP_UNUSED(arg);
    if (lp_daemon_log_signal(signo))
        return 0;
    if (signo == SIGINT || signo == SIGTERM) {
        log_info("signal %d: stopping", signo);
        lp_loop_stop(loop);
    } else if (signo == SIGHUP) {
        /* The logger uses no model or router setting; its database and batching are read at
         * start. */
        log_info("SIGHUP: nothing to reload in the logger (database settings apply after a "
                 "restart)");
    }
    return 0;
}

static void s_on_reset_done(void *arg, const struct pg_result *rows, const char *error)
{
    LP_UNUSED(arg);
    LP_UNUSED(rows);
    if (error)
        log_warn("budget reset failed: %s", error);
}

/* Keys whose budget_duration ended get their spend reset (LiteLLM runs this every ~10 min;
 * a cheap indexed UPDATE, so every LG_RESET_MS here). */
static int s_on_reset(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    lg_server_t *self = arg;
    if (lg_db_query(self->db, lg_keys_reset_sql(), NULL, 0, s_on_reset_done, self) < 0)
        log_debug("budget reset skipped: database not connected");
    lp_timer_start(loop, timer, LG_RESET_MS, s_on_reset, self);
    return 0;
}

static int s_on_summary(lp_loop_t *loop, lp_timer_t *timer, void *arg)
{
    lg_server_t *self = arg;
    lg_summary_flush(self->summary, self->summary_s, self->format, &self->out);
    s_write_out(self);
    lp_timer_start(loop, timer, (int64_t)(self->summary_s * 1000.0), s_on_summary, self);
    return 0;
}

lg_server_t *lg_server_new(lp_cfg_t **cfg, const char *endpoint, const char *spool, off_t spool_max,
                           lg_format_t format, double summary_s, char *err)
{
    lg_server_t *self = lp_calloc(1, sizeof *self);
    self->cfg = *cfg;
    *cfg = NULL;
    self->format = format;
    self->colour = format == LG_FORMAT_TEXT && isatty(STDOUT_FILENO);
    self->summary = lg_summary_new();
    self->summary_s = summary_s;
    self->zctx = zmq_ctx_new();
    self->loop = lp_loop_new();
    if (!self->zctx || !self->loop) {
        lp_err_set(err, "cannot create the ZeroMQ context or event loop");
        goto fail;
    }
    self->socket = lp_zmq_socket(self->zctx, ZMQ_ROUTER, endpoint, true, false, err);
    if (!self->socket)
        goto fail;
    if (lp_loop_add_socket(self->loop, self->socket, s_on_socket, self) < 0 ||
        lp_loop_handle_signals(self->loop, s_on_signal, self) < 0) {
        lp_err_set(err, "cannot register with the event loop");
        goto fail;
    }
    if (summary_s > 0)
        lp_timer_start(self->loop, &self->summary_timer, (int64_t)(summary_s * 1000.0),
                       s_on_summary, self);
    if (self->cfg->database_url) {
        self->spool = lg_spool_open(spool, spool_max, err);
        if (!self->spool)
            goto fail;
        int64_t flush_ms = (int64_t)(self->cfg->proxy_batch_write_at_s * 1000.0);
        self->db = lg_db_new(self->loop, self->cfg->database_url, flush_ms, self->spool);
        lp_timer_start(self->loop, &self->reset_timer, LG_RESET_MS, s_on_reset, self);
        if (lg_spool_backlog(self->spool) > 0)
            log_info("spool %s holds %lld byte(s) from before: writing them first", spool,
                     (long long)lg_spool_backlog(self->spool));
    }
    return self;
fail:
    lg_server_destroy(&self);
    return NULL;
}

void lg_server_destroy(lg_server_t **self_p)
{
    lg_server_t *self = *self_p;
    if (!self)
        return;
    lg_db_destroy(&self->db);
    lg_spool_destroy(&self->spool);
    if (self->loop) {
        lp_timer_stop(self->loop, &self->summary_timer);
        lp_timer_stop(self->loop, &self->reset_timer);
        lp_timer_stop(self->loop, &self->ack_timer);
    }
    lg_summary_destroy(&self->summary);
    for (size_t i = 0; i < self->nacks; i++)
        lp_buf_free(&self->acks[i].ids);
    free(self->acks);
    lp_zmq_close(&self->socket);
    lp_loop_destroy(&self->loop);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    lp_buf_free(&self->out);
    lp_cfg_destroy(&self->cfg);
    free(self);
    *self_p = NULL;
}

int lg_server_run(lg_server_t *self)
{
    if (self->db)
        log_info("writing usage to PostgreSQL every %.2fs (or %d records)",
                 self->cfg->proxy_batch_write_at_s, LG_DB_BATCH_MAX);
    else
        log_info("no DATABASE_URL: usage records go to stdout only");
    int rc = lp_loop_run(self->loop);
    /* Records already received but not yet delivered to us stay in ZeroMQ; take them. */
    s_on_socket(self->loop, self->socket, self);
    s_send_acks(self);
    if (self->db) {
        size_t left = lg_db_flush_blocking(self->db, LG_STOP_FLUSH_MS);
        const lg_db_stats_t *st = lg_db_stats(self->db);
        log_info("stopped: %llu record(s) received, %llu written, %llu rejected, %llu refused "
                 "(spool full), %zu spooled byte(s) left for the next start",
                 self->records, (unsigned long long)st->written, (unsigned long long)st->rejected,
                 self->refused, left);
    }
    return rc;
}
