/* lg_server: the logger daemon. A ROUTER socket takes usage RECORDs from gateways, prints
 * one line per record on stdout for operators and, when a database is configured, appends
 * them to the spool (lg_spool) and syncs it before acknowledging them (ACK), so a record a
 * gateway let go of is on disk; the writer (lg_db) moves them to PostgreSQL. Without a
 * database, records are acknowledged once printed. It answers gateways' heartbeats with the
 * database state, which /health/readiness reports. */
#ifndef LG_SERVER_H
#define LG_SERVER_H

#include "lg_line.h"
#include "lp_cfg.h"
#include "lp_util.h"

/* How often keys whose budget period ended get their spend reset. */
#define LG_RESET_MS 10000
/* Longest a stopping logger spends writing what is still queued. */
#define LG_STOP_FLUSH_MS 5000

typedef struct lg_server lg_server_t;

/* A logger bound to endpoint, spooling to the file `spool` (spool_max bytes at most) when a
 * database is configured, printing summary lines every summary_s seconds (0: never); takes
 * the config (database_url, proxy_batch_write_at). */
lg_server_t *lg_server_new(lp_cfg_t **cfg, const char *endpoint, const char *spool, off_t spool_max,
                           lg_format_t format, double summary_s, char *err);
/* Free; NULL-safe, nulls the pointer. */
void lg_server_destroy(lg_server_t **self_p);
/* Run until SIGINT/SIGTERM, then flush; 0 on a clean stop. */
int lg_server_run(lg_server_t *self);

#endif
