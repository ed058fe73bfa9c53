#include "lg_audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_json.h"

static const char s_insert_sql[] =
    "INSERT INTO \"LiteLLM_AuditLog\" (\"id\", \"changed_by\", \"changed_by_api_key\", "
    "\"action\", \"table_name\", \"object_id\", \"before_value\", \"updated_values\") "
    "VALUES (gen_random_uuid()::text, coalesce($1, ''), coalesce($2, ''), $3, $4, $5, "
    "$6::jsonb, $7::jsonb) RETURNING json_build_object('id', \"id\")";

/* Newest first; every filter a parameter, NULL = any. */
static const char s_list_sql[] =
    "WITH f AS (SELECT * FROM \"LiteLLM_AuditLog\" WHERE ($1::text IS NULL OR \"object_id\" = $1) "
    "AND ($2::text IS NULL OR \"action\" = $2) AND ($3::text IS NULL OR \"table_name\" = $3) "
    "AND ($4::text IS NULL OR \"changed_by\" = $4) "
    "AND ($5::date IS NULL OR \"updated_at\" >= $5::date) "
    "AND ($6::date IS NULL OR \"updated_at\" < $6::date + 1)) "
    "SELECT json_build_object('total', (SELECT count(*) FROM f), 'audit_logs', "
    "coalesce((SELECT json_agg(r) FROM (SELECT * FROM f ORDER BY \"updated_at\" DESC, \"id\" "
    "LIMIT $7::int OFFSET $8::int) r), '[]'::json))";

static char *s_json_param(const json_t *v)
{
    return json_is_object(v) || json_is_array(v) ? lp_json_dump(v, NULL) : NULL;
}

int lg_audit_build(const json_t *meta, lg_query_t *q, char *err)
{
    memset(q, 0, sizeof *q);
    const char *kind = lp_json_str(meta, "kind");
    if (kind && strcmp(kind, "audit") == 0) {
        const char *action = lp_json_str(meta, "action");
        const char *table = lp_json_str(meta, "table_name");
        const char *object = lp_json_str(meta, "object_id");
        if (!action || !table || !object)
            return lp_err_set(err, "audit needs action, table_name and object_id");
        lp_buf_puts(&q->sql, s_insert_sql);
        lg_query_param(q, lp_json_str(meta, "changed_by"));
        lg_query_param(q, lp_json_str(meta, "changed_by_api_key"));
        lg_query_param(q, action);
        lg_query_param(q, table);
        lg_query_param(q, object);
        char *before = s_json_param(json_object_get(meta, "before_value"));
        char *after = s_json_param(json_object_get(meta, "updated_values"));
        lg_query_param(q, before);
        lg_query_param(q, after);
        free(before);
        free(after);
        return 0;
    }
    if (kind && strcmp(kind, "audit_list") == 0) {
        lp_buf_puts(&q->sql, s_list_sql);
        static const char *filters[] = {"object_id",  "action",     "table_name",
                                        "changed_by", "start_date", "end_date"};
        for (size_t i = 0; i < LP_ARRAY_LEN(filters); i++)
            lg_query_param(q, lp_json_str(meta, filters[i]));
        char n[24];
        snprintf(n, sizeof n, "%lld", LP_MAX(lp_json_int(meta, "limit", 100), 1));
        lg_query_param(q, n);
        snprintf(n, sizeof n, "%lld", LP_MAX(lp_json_int(meta, "offset", 0), 0));
        lg_query_param(q, n);
        return 0;
    }
    return lp_err_set(err, "unknown query '%.40s'", kind ? kind : "");
}
