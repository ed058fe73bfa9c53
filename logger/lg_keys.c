#include "lg_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp_json.h"

#define S_TABLE "\"LiteLLM_VerificationToken\""

/* The columns a gateway may write (everything else keeps its value or default). */
static const char *s_columns[] = {
    "token",
    "key_name",
    "key_alias",
    "spend",
    "expires",
    "models",
    "aliases",
    "config",
    "user_id",
    "team_id",
    "permissions",
    "max_parallel_requests",
    "metadata",
    "blocked",
    "tpm_limit",
    "rpm_limit",
    "max_budget",
    "budget_duration",
    "budget_reset_at",
    "allowed_cache_controls",
    "model_max_budget",
    "organization_id",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "model_rpm_limit",
    "model_tpm_limit",
};

static bool s_writable(const char *name)
{
    for (size_t i = 0; i < LP_ARRAY_LEN(s_columns); i++) {
        if (strcmp(s_columns[i], name) == 0)
            return true;
    }
    return false;
}

static bool s_hex_token(const char *t)
{
    if (!t || strlen(t) != 64)
        return false;
    for (const char *p = t; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

/* "c1", "c2" ... of the writable columns present in fields; -1 if one is not writable. */
static int s_column_list(const json_t *fields, lp_buf_t *out, const char *prefix, char *err)
{
    const char *key;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)fields, key, v)
    {
        LP_UNUSED(v);
        if (!s_writable(key))
            return lp_err_set(err, "field '%.60s' cannot be set", key);
        lp_buf_printf(out, "%s%s\"%s\"", first ? "" : ", ", prefix, key);
        first = false;
    }
    return first ? lp_err_set(err, "nothing to write") : 0;
}

/* Every change to a key writes its audit row in the same statement. Parameters $n and $m
 * say who made it (a name and the sha256 of the key used, never a key). */
#define S_AUDIT_INSERT                                                                             \
    "INSERT INTO \"LiteLLM_AuditLog\" (\"id\", \"changed_by\", \"changed_by_api_key\", "           \
    "\"table_name\", \"action\", \"object_id\", \"before_value\", \"updated_values\")"
#define S_AUDIT_WHO_AT(n, m)                                                                       \
    "gen_random_uuid()::text, coalesce($" #n ", ''), coalesce($" #m                                \
    ", ''), 'LiteLLM_VerificationToken'"

static void s_who(lg_query_t *q, const json_t *meta)
{
    lg_query_param(q, lp_json_str(meta, "changed_by"));
    lg_query_param(q, lp_json_str(meta, "changed_by_api_key"));
}

static int s_create(const json_t *meta, lg_query_t *q, char *err)
{
    const json_t *fields = json_object_get(meta, "fields");
    if (!json_is_object(fields) || !s_hex_token(lp_json_str(fields, "token")))
        return lp_err_set(err, "key_create needs fields with a sha256 token");
    lp_buf_t cols = {0}, sel = {0};
    if (s_column_list(fields, &cols, "", err) < 0 || s_column_list(fields, &sel, "r.", err) < 0) {
        lp_buf_free(&cols);
        lp_buf_free(&sel);
        return -1;
    }
    lp_buf_printf(&q->sql,
                  "WITH i AS (INSERT INTO " S_TABLE " AS t (%s) SELECT %s FROM "
                  "json_populate_record(NULL::" S_TABLE ", $1::json) r RETURNING t.*), "
                  "a AS (" S_AUDIT_INSERT " SELECT " S_AUDIT_WHO_AT(
                      2, 3) ", 'created', i.\"token\", "
                            "NULL, to_jsonb(i.*) FROM i) "
                            "SELECT coalesce((SELECT row_to_json(i.*) FROM i), 'null'::json)",
                  cols.data, sel.data);
    lp_buf_free(&cols);
    lp_buf_free(&sel);
    char *text = lp_json_dump(fields, NULL);
    lg_query_param(q, text);
    free(text);
    s_who(q, meta);
    return 0;
}

static int s_update(const json_t *meta, lg_query_t *q, char *err)
{
    const char *token = lp_json_str(meta, "token");
    const json_t *fields = json_object_get(meta, "fields");
    if (!s_hex_token(token) || !json_is_object(fields))
        return lp_err_set(err, "key_update needs a sha256 token and fields");
    if (json_object_get(fields, "token"))
        return lp_err_set(err, "the token of a key cannot change");
    lp_buf_t set = {0};
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)fields, key, v)
    {
        LP_UNUSED(v);
        if (!s_writable(key)) {
            lp_buf_free(&set);
            return lp_err_set(err, "field '%.60s' cannot be set", key);
        }
        lp_buf_printf(&set, "%s\"%s\" = r.\"%s\"", set.len ? ", " : "", key, key);
    }
    if (!set.len)
        return lp_err_set(err, "nothing to update");
    /* o is the row before the change (every part of a statement sees the same snapshot). */
    lp_buf_printf(&q->sql,
                  "WITH o AS (SELECT * FROM " S_TABLE " WHERE \"token\" = $1), "
                  "u AS (UPDATE " S_TABLE " AS t SET %s FROM "
                  "json_populate_record(NULL::" S_TABLE ", $2::json) r WHERE t.\"token\" = $1 "
                  "RETURNING t.*), "
                  "a AS (" S_AUDIT_INSERT " SELECT " S_AUDIT_WHO_AT(
                      3, 4) ", coalesce($5, 'updated'), $1, "
                            "(SELECT to_jsonb(o.*) FROM o), $2::jsonb FROM u) "
                            "SELECT coalesce((SELECT row_to_json(u.*) FROM u), 'null'::json)",
                  set.data);
    lp_buf_free(&set);
    lg_query_param(q, token);
    char *text = lp_json_dump(fields, NULL);
    lg_query_param(q, text);
    free(text);
    s_who(q, meta);
    lg_query_param(q, lp_json_str(meta, "action"));
    return 0;
}

static int s_delete(const json_t *meta, lg_query_t *q, char *err)
{
    const json_t *tokens = json_object_get(meta, "tokens");
    size_t i;
    json_t *t;
    if (!json_is_array(tokens) || json_array_size(tokens) == 0)
        return lp_err_set(err, "key_delete needs tokens");
    json_array_foreach(tokens, i, t)
    {
        if (!s_hex_token(json_string_value(t)))
            return lp_err_set(err, "key_delete: tokens must be sha256 hex");
    }
    lp_buf_puts(&q->sql, "WITH d AS (DELETE FROM " S_TABLE " t WHERE t.\"token\" IN "
                         "(SELECT json_array_elements_text($1::json)) RETURNING t.*), "
                         "a AS (" S_AUDIT_INSERT " SELECT " S_AUDIT_WHO_AT(
                             2, 3) ", 'deleted', d.\"token\", "
                                   "to_jsonb(d.*), NULL FROM d) "
                                   "SELECT coalesce(json_agg(d.\"token\"), '[]'::json) FROM d");
    char *text = lp_json_dump(tokens, NULL);
    lg_query_param(q, text);
    free(text);
    s_who(q, meta);
    return 0;
}

static int s_list(const json_t *meta, lg_query_t *q, char *err)
{
    LP_UNUSED(err);
    char limit[24], offset[24];
    snprintf(limit, sizeof limit, "%lld", lp_json_int(meta, "limit", 100));
    snprintf(offset, sizeof offset, "%lld", lp_json_int(meta, "offset", 0));
    lp_buf_puts(&q->sql,
                "SELECT json_build_object('total_count', (SELECT count(*) FROM " S_TABLE
                " c WHERE ($1::text IS NULL OR c.\"user_id\" = $1) AND ($2::text IS NULL OR "
                "c.\"team_id\" = $2)), 'keys', coalesce(json_agg(row_to_json(x.*)), '[]'::json)) "
                "FROM (SELECT \"token\", \"key_name\", \"key_alias\", \"spend\", \"max_budget\", "
                "\"models\", \"expires\", \"blocked\", \"user_id\", \"team_id\", \"rpm_limit\", "
                "\"tpm_limit\", \"created_at\" FROM " S_TABLE " k WHERE ($1::text IS NULL OR "
                "k.\"user_id\" = $1) AND ($2::text IS NULL OR k.\"team_id\" = $2) ORDER BY "
                "\"created_at\" DESC NULLS LAST, \"token\" LIMIT $3::int OFFSET $4::int) x");
    lg_query_param(q, lp_json_str(meta, "user_id"));
    lg_query_param(q, lp_json_str(meta, "team_id"));
    lg_query_param(q, limit);
    lg_query_param(q, offset);
    return 0;
}

int lg_keys_build(const json_t *meta, lg_query_t *q, char *err)
{
    memset(q, 0, sizeof *q);
    const char *kind = lp_json_str(meta, "kind");
    if (!kind)
        return lp_err_set(err, "no kind");
    if (strcmp(kind, "key_get") == 0) {
        const char *token = lp_json_str(meta, "token");
        if (!s_hex_token(token))
            return lp_err_set(err, "key_get needs a sha256 token");
        lp_buf_puts(&q->sql, "SELECT coalesce((SELECT row_to_json(t.*) FROM " S_TABLE
                             " t WHERE t.\"token\" = $1), 'null'::json)");
        lg_query_param(q, token);
        return 0;
    }
    if (strcmp(kind, "key_create") == 0)
        return s_create(meta, q, err);
    if (strcmp(kind, "key_update") == 0)
        return s_update(meta, q, err);
    if (strcmp(kind, "key_delete") == 0)
        return s_delete(meta, q, err);
    if (strcmp(kind, "key_list") == 0)
        return s_list(meta, q, err);
    return lp_err_set(err, "unknown query '%.40s'", kind);
}

const char *lg_keys_reset_sql(void)
{
    return "UPDATE " S_TABLE " SET \"spend\" = 0, \"budget_reset_at\" = now() + (CASE "
           "WHEN \"budget_duration\" ~ '^[0-9]+s$' THEN rtrim(\"budget_duration\", 's') || ' "
           "seconds' "
           "WHEN \"budget_duration\" ~ '^[0-9]+m$' THEN rtrim(\"budget_duration\", 'm') || ' "
           "minutes' "
           "WHEN \"budget_duration\" ~ '^[0-9]+h$' THEN rtrim(\"budget_duration\", 'h') || ' "
           "hours' "
           "WHEN \"budget_duration\" ~ '^[0-9]+d$' THEN rtrim(\"budget_duration\", 'd') || ' days' "
           "WHEN \"budget_duration\" ~ '^[0-9]+mo$' THEN left(\"budget_duration\", -2) || ' "
           "months' "
           "END)::interval WHERE \"budget_reset_at\" IS NOT NULL AND \"budget_reset_at\" <= now() "
           "AND \"budget_duration\" ~ '^[0-9]+(s|m|h|d|mo)$'";
}
