/* lg_query: a statement for lg_db_query as the logger's query builders make it for the
 * gateways' reads and writes (lg_keys, lg_audit): fixed SQL text, values only as parameters,
 * so no client string ever reaches the SQL text. */
#ifndef LG_QUERY_H
#define LG_QUERY_H

#include "lp_buf.h"
#include "lp_util.h"

/* Parameters one statement takes at most. */
#define LG_QUERY_MAX_PARAMS 8

typedef struct {
    lp_buf_t sql;
    char *params[LG_QUERY_MAX_PARAMS]; /* owned; NULL = SQL NULL */
    int nparams;
} lg_query_t;

/* Append a parameter (copied; NULL = SQL NULL). */
void lg_query_param(lg_query_t *q, const char *value);
/* Free what the builder allocated (the struct itself is the caller's). */
void lg_query_free(lg_query_t *q);

#endif
