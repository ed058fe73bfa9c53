/* lg_keys: the virtual-key queries gateways ask the logger for (it alone holds a database
 * connection): read one key, create, update, delete, list, and the periodic budget reset.
 * Every statement is fixed text with parameters (lg_query); column names come only from a
 * fixed list, values only as parameters. Every change writes its LiteLLM_AuditLog row in the
 * same statement. The answers are JSON built by PostgreSQL. */
#ifndef LG_KEYS_H
#define LG_KEYS_H

#include <jansson.h>
#include <stdbool.h>

#include "lg_query.h"

/* Build the statement for a QUERY whose meta kind starts with "key_" (key_get, key_create,
 * key_update, key_delete, key_list). -1 with a reason in err for a malformed request. */
LP_MUSTCHECK int lg_keys_build(const json_t *meta, lg_query_t *q, char *err);
/* The statement that zeroes the spend of keys whose budget period ended and sets their next
 * reset (budget_duration "30s", "30m", "30h", "30d" or "1mo"). */
const char *lg_keys_reset_sql(void);

#endif
