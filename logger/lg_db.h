/* lg_db: the logger's PostgreSQL writer. Non-blocking libpq on the logger's event loop: it
 * connects (and reconnects with back-off), applies the schema (lg_schema), and writes the
 * usage records waiting in the spool (lg_spool) in batches, each one multi-row INSERT ... ON
 * CONFLICT (request_id) DO NOTHING that also adds the inserted rows' spend to their virtual
 * keys, so a record delivered twice is stored and billed once. A batch goes when it reaches
 * its size or when the flush interval passes, whichever comes first; only its commit lets the
 * spool forget it. A batch PostgreSQL rejects is retried row by row so one bad record cannot
 * block the others (the bad one is logged and counted). Memory holds one batch at most. */
#ifndef LG_DB_H
#define LG_DB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lg_spool.h"
#include "lp_loop.h"
#include "lp_util.h"

/* Records written per INSERT at most (each row is LG_DB_COLUMNS parameters). */
#define LG_DB_BATCH_MAX 500
/* Reconnect back-off bounds. */
#define LG_DB_BACKOFF_MIN_MS 100
#define LG_DB_BACKOFF_MAX_MS 10000
/* Longest wait for a connection to be made, and for a statement's answer, before the
 * connection is dropped and made again (a frozen server); checked every watchdog period. */
#define LG_DB_CONNECT_MS   5000
#define LG_DB_STATEMENT_MS 10000 /* above the server's own statement_timeout (8 s) */
#define LG_DB_MIGRATE_MS   600000
#define LG_DB_WATCHDOG_MS  1000

typedef struct lg_db lg_db_t;

/* A usage record (one spool line, no newline) as the values of its "LiteLLM_SpendLogs"
 * columns, NULL for SQL NULL; NULL with the reason in err when the line is not a record.
 * Any bytes are safe here (the spool may be damaged). */
typedef struct lg_row lg_row_t;
lg_row_t *lg_row_decode(const char *line, size_t len, char *err);
size_t lg_row_columns(void);
const char *lg_row_value(const lg_row_t *row, size_t col);
/* NULL-safe, nulls the pointer. */
void lg_row_destroy(lg_row_t **row_p);
struct pg_result; /* libpq's PGresult */

/* The rows of a read query (borrowed, valid during the call), or NULL with the error. */
typedef void(lg_db_result_fn)(void *arg, const struct pg_result *rows, const char *error);

typedef struct {
    uint64_t written;  /* rows acknowledged by PostgreSQL (inserted or already there) */
    uint64_t rejected; /* rows PostgreSQL (or the spool reader) refused, logged and dropped */
    uint64_t batches;
} lg_db_stats_t;

/* A writer for the database at url (a libpq connection string or URI), reading the spool
 * (borrowed), flushing at least every flush_ms. It starts connecting at once. */
lg_db_t *lg_db_new(lp_loop_t *loop, const char *url, int64_t flush_ms, lg_spool_t *spool);
/* Close the connection and free the queue; NULL-safe, nulls the pointer. */
void lg_db_destroy(lg_db_t **self_p);
/* n more records are durable in the spool: write them soon. */
void lg_db_added(lg_db_t *self, size_t n);
/* "connected", "connecting" or "disconnected", for health output. */
const char *lg_db_state(const lg_db_t *self);
/* Spooled bytes waiting to be written. */
size_t lg_db_pending(const lg_db_t *self);
const lg_db_stats_t *lg_db_stats(const lg_db_t *self);
/* Run a parameterised read query (gateways' /spend/logs) between batches; fn is called once.
 * -1 when the database is not connected (fn is not called). */
LP_MUSTCHECK int lg_db_query(lg_db_t *self, const char *sql, const char *const *params, int nparams,
                             lg_db_result_fn *fn, void *arg);
/* At shutdown: write what is spooled, blocking up to timeout_ms. Returns the spooled bytes
 * left unwritten (they stay in the spool for the next start). */
size_t lg_db_flush_blocking(lg_db_t *self, int64_t timeout_ms);

#endif
