/* lg_keys: the virtual-key queries gateways ask the logger for (it alone holds a database
 * connection): read one key, create, update, delete, list, and the periodic budget reset.
 * Every statement is fixed text with parameters; column names come only from a fixed list
 * (LG_KEY_COLUMNS), values only as parameters, so no client string reaches the SQL text. The
 * answers are JSON built by PostgreSQL. */
#ifndef LG_KEYS_H
#define LG_KEYS_H

#include <jansson.h>
#include <stdbool.h>

#include "lp_buf.h"
#include "lp_util.h"

/* A query ready for lg_db_query: SQL text and up to LG_KEYS_MAX_PARAMS parameters. */
#define LG_KEYS_MAX_PARAMS 4

typedef struct {
    lp_buf_t sql;
    char *params[LG_KEYS_MAX_PARAMS]; /* owned; NULL = SQL NULL */
    int nparams;
} lg_keys_query_t;

/* Build the statement for a QUERY whose meta kind starts with "key_" (key_get, key_create,
 * key_update, key_delete, key_list). -1 with a reason in err for a malformed request. */
LP_MUSTCHECK int lg_keys_build(const json_t *meta, lg_keys_query_t *q, char *err);
/* Free what lg_keys_build allocated. */
void lg_keys_query_free(lg_keys_query_t *q);
/* The statement that zeroes the spend of keys whose budget period ended and sets their next
 * reset (budget_duration "30s", "30m", "30h", "30d" or "1mo"). */
const char *lg_keys_reset_sql(void);

#endif
