#include "lg_query.h"

#include <stdlib.h>

void lg_query_param(lg_query_t *q, const char *value)
{
    lp_assert(q->nparams < LG_QUERY_MAX_PARAMS);
    q->params[q->nparams++] = value ? lp_strdup(value) : NULL;
}

void lg_query_free(lg_query_t *q)
{
    lp_buf_free(&q->sql);
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    q->nparams = 0;
}
