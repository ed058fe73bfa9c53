#define LP_LOG_MODULE "gw_keyadm"
#include "gw_keyadm.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_keys.h"
#include "gw_limits.h"
#include "gw_routes.h"
#include "lp_crypto.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_time.h"

/* Longest alias, id or metadata we store (bytes of JSON text for metadata). */
#define GW_FIELD_MAX    1024
#define GW_METADATA_MAX 16384

long long gw_duration_seconds(const char *text)
{
    if (!text || !isdigit((unsigned char)text[0]))
        return -1;
    char *end = NULL;
    long long n = strtoll(text, &end, 10);
    if (n <= 0 || n > 100000)
        return -1;
    static const struct {
        const char *unit;
        long long seconds;
    } units[] = {{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 604800}, {"mo", 2592000}};
    for (size_t i = 0; i < LP_ARRAY_LEN(units); i++) {
        if (strcmp(end, units[i].unit) == 0)
            return n * units[i].seconds;
    }
    return -1;
}

/* ISO-8601 UTC of now + seconds. */
static json_t *s_time_from_now(long long seconds)
{
    char buf[LP_ISO_LEN];
    lp_iso8601(lp_wall_ns() + seconds * LP_NS_PER_S, buf, sizeof buf);
    return json_string(buf);
}

/* The JSON body as an object, or req answered 400. */
static json_t *s_body(gw_req_t *req)
{
    char err[LP_ERR_LEN];
    json_t *body = lp_json_parse(req->body.data ? req->body.data : "", req->body.len, err);
    if (!json_is_object(body)) {
        gw_req_fail(req, 400, "invalid_json", NULL, "the body must be a JSON object%s%s",
                    body ? "" : ": ", body ? "" : err);
        json_decref(body);
        return NULL;
    }
    return body;
}

static bool s_nonneg_int(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* {group: limit} with non-negative whole limits. */
static bool s_limit_map(const json_t *v)
{
    if (!json_is_object(v))
        return false;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        if (!s_nonneg_int(x))
            return false;
    }
    return true;
}

static bool s_string_array(const json_t *v)
{
    if (!json_is_array(v))
        return false;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        if (!json_is_string(x) || json_string_length(x) > GW_FIELD_MAX)
            return false;
    }
    return true;
}

/* Check one field of a generate/update body and copy it into the row fields. 0, or -1 with
 * req answered 400 naming the field. */
static int s_field(gw_req_t *req, const char *key, const json_t *v, json_t *fields, bool update)
{
    bool ok = true;
    const char *why = "has the wrong type";
    /* null clears a limit, an alias or an expiry; other fields cannot be null. */
    static const char *nullable[] = {
        "key_alias",       "user_id",         "team_id",         "organization_id",
        "max_budget",      "rpm_limit",       "tpm_limit",       "max_parallel_requests",
        "model_rpm_limit", "model_tpm_limit", "budget_duration", "duration"};
    for (size_t i = 0; json_is_null(v) && i < LP_ARRAY_LEN(nullable); i++) {
        if (strcmp(key, nullable[i]) != 0)
            continue;
        if (!strcmp(key, "duration")) {
            json_object_set_new(fields, "expires", json_null());
        } else {
            json_object_set_new(fields, key, json_null());
            if (!strcmp(key, "budget_duration"))
                json_object_set_new(fields, "budget_reset_at", json_null());
        }
        return 0;
    }
    if (!strcmp(key, "key_alias") || !strcmp(key, "user_id") || !strcmp(key, "team_id") ||
        !strcmp(key, "organization_id")) {
        ok = json_is_string(v) && json_string_length(v) <= GW_FIELD_MAX;
        why = "must be a string of at most 1024 bytes";
    } else if (!strcmp(key, "models") || !strcmp(key, "allowed_cache_controls")) {
        ok = json_is_null(v) || s_string_array(v);
        why = "must be a list of strings";
        if (ok && json_is_null(v)) {
            json_object_set_new(fields, key, json_array());
            return 0;
        }
    } else if (!strcmp(key, "max_budget") || (update && !strcmp(key, "spend"))) {
        ok = json_is_number(v) && json_number_value(v) >= 0;
        why = "must be a number >= 0";
    } else if (!strcmp(key, "rpm_limit") || !strcmp(key, "tpm_limit") ||
               !strcmp(key, "max_parallel_requests")) {
        ok = s_nonneg_int(v);
        why = "must be a whole number >= 0";
    } else if (!strcmp(key, "model_rpm_limit") || !strcmp(key, "model_tpm_limit")) {
        ok = s_limit_map(v);
        why = "must map model names to whole numbers >= 0";
    } else if (!strcmp(key, "metadata") || !strcmp(key, "aliases") || !strcmp(key, "config") ||
               !strcmp(key, "permissions") || !strcmp(key, "model_max_budget")) {
        char *text = json_is_object(v) ? lp_json_dump(v, NULL) : NULL;
        ok = text && strlen(text) <= GW_METADATA_MAX;
        why = "must be an object (at most 16 KiB)";
        free(text);
    } else if (!strcmp(key, "blocked")) {
        ok = json_is_boolean(v);
        why = "must be true or false";
    } else if (!strcmp(key, "budget_duration")) {
        ok = json_is_string(v) && gw_duration_seconds(json_string_value(v)) > 0;
        why = "must be a duration like 30s, 30m, 30h, 30d or 1mo";
        if (ok)
            json_object_set_new(fields, "budget_reset_at",
                                s_time_from_now(gw_duration_seconds(json_string_value(v))));
    } else if (!strcmp(key, "duration")) {
        ok = json_is_string(v) && gw_duration_seconds(json_string_value(v)) > 0;
        why = "must be a duration like 30s, 30m, 30h, 30d or 1mo";
        if (ok)
            json_object_set_new(fields, "expires",
                                s_time_from_now(gw_duration_seconds(json_string_value(v))));
        return ok ? 0 : (gw_req_fail(req, 400, NULL, key, "%s %s", key, why), -1);
    } else if (!strcmp(key, "key") && !update) {
        return 0; /* the custom key itself: handled by the caller */
    } else {
        gw_req_fail(req, 400, "unknown_field", key, "unknown field '%.60s'", key);
        return -1;
    }
    if (!ok) {
        gw_req_fail(req, 400, NULL, key, "%s %s", key, why);
        return -1;
    }
    json_object_set(fields, key, (json_t *)v);
    return 0;
}

/* Copy every body field (except skip, the key) into fields after checking it. */
static int s_fields(gw_req_t *req, const json_t *body, json_t *fields, bool update)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        if (update && !strcmp(key, "key"))
            continue;
        if (s_field(req, key, v, fields, update) < 0)
            return -1;
    }
    return 0;
}

/* The sha256 of a key given as text ("sk-...") or already as its hash. false + 400 if not
 * one of those. */
static bool s_token_of(gw_req_t *req, const char *given, char token[LP_SHA256_HEX_LEN])
{
    if (!given || !*given) {
        gw_req_fail(req, 400, NULL, "key", "key is required");
        return false;
    }
    size_t n = strlen(given);
    bool hex = n == 64;
    for (size_t i = 0; hex && i < n; i++)
        hex = isxdigit((unsigned char)given[i]) && !isupper((unsigned char)given[i]);
    if (hex) {
        memcpy(token, given, LP_SHA256_HEX_LEN);
        return true;
    }
    if (n > 512) {
        gw_req_fail(req, 400, NULL, "key", "key is too long");
        return false;
    }
    lp_sha256_hex(given, n, token);
    return true;
}

static void s_query(gw_req_t *req, json_t *meta, void (*on_reply)(gw_req_t *, lp_msg_t **))
{
    /* The logger needs only the meta: the body (which may hold a key) stays here. */
    if (req->body.data)
        explicit_bzero(req->body.data, req->body.len);
    lp_buf_free(&req->body);
    if (!req->srv->cfg->database_url) {
        json_decref(meta);
        gw_req_fail(req, 400, "database_not_configured", NULL,
                    "virtual keys need a database: set DATABASE_URL");
        return;
    }
    /* Who acts, for the audit log: a name and the sha256 of the key used, never the key. */
    const char *alias = lp_json_str(req->key, "key_alias");
    json_object_set_new(meta, "changed_by",
                        json_string(req->is_master ? "master_key"
                                    : alias        ? alias
                                                   : "virtual_key"));
    json_object_set_new(meta, "changed_by_api_key", json_string(req->key_hash));
    req->on_reply = on_reply;
    gw_send_job(req, LP_CMD_QUERY, meta, req->srv->logger, GW_QUERY_TIMEOUT_MS);
}

/* The logger's answer: an error becomes the client's error; a row is parsed for shaping. */
static json_t *s_reply_json(gw_req_t *req, lp_msg_t **reply)
{
    if (lp_msg_cmd(*reply) != LP_CMD_END) {
        gw_req_answer_reply(req, reply);
        return NULL;
    }
    size_t len = 0;
    const char *body = lp_msg_body(*reply, &len);
    char err[LP_ERR_LEN];
    json_t *v = lp_json_parse(body, len, err);
    lp_msg_destroy(reply);
    if (!v)
        gw_req_fail(req, 502, NULL, NULL, "the key database answered something unreadable");
    return v;
}

static void s_answer(gw_req_t *req, int status, json_t *value)
{
    size_t len = 0;
    char *text = lp_json_dump(value, &len);
    json_decref(value);
    gw_req_answer(req, status, text, len);
}

/* ---- generate ---- */

static void s_on_generated(gw_req_t *req, lp_msg_t **reply)
{
    json_t *row = s_reply_json(req, reply);
    if (!row)
        return;
    if (!json_is_object(row)) {
        json_decref(row);
        gw_req_fail(req, 502, NULL, NULL, "the key was not stored");
        return;
    }
    /* The plaintext goes out this once; only its hash was stored. */
    json_object_set(row, "key", json_object_get(req->aux, "key"));
    json_object_set(row, "token_id", json_object_get(row, "token"));
    rlog_info(req->idstr, "key %s generated (alias %s)", lp_json_str(row, "key_name"),
              lp_json_str(row, "key_alias") ? lp_json_str(row, "key_alias") : "-");
    s_answer(req, 200, row);
}

void gw_key_generate(gw_req_t *req)
{
    json_t *body = s_body(req);
    if (!body)
        return;
    json_t *fields = json_object();
    if (s_fields(req, body, fields, false) < 0) {
        json_decref(body);
        json_decref(fields);
        return;
    }
    char key[128];
    const char *custom = lp_json_str(body, "key");
    if (json_object_get(body, "key") && !custom) {
        gw_req_fail(req, 400, NULL, "key", "key must be a string");
        goto done;
    }
    if (custom) {
        size_t n = strlen(custom);
        bool printable = n >= GW_KEY_MIN_LEN && n < sizeof key;
        for (size_t i = 0; printable && i < n; i++)
            printable = isgraph((unsigned char)custom[i]);
        if (!printable || strcmp(custom, req->srv->cfg->master_key) == 0) {
            gw_req_fail(req, 400, NULL, "key", "a custom key needs %d to 127 printable characters",
                        GW_KEY_MIN_LEN);
            goto done;
        }
        lp_strlcpy(key, custom, sizeof key);
    } else {
        unsigned char raw[GW_KEY_RANDOM_BYTES];
        char b64[64];
        if (lp_random_bytes(raw, sizeof raw) < 0) {
            gw_req_fail(req, 500, NULL, NULL, "the random source failed; no key was made");
            goto done;
        }
        lp_base64url(raw, sizeof raw, b64, sizeof b64);
        snprintf(key, sizeof key, "sk-%s", b64);
        explicit_bzero(raw, sizeof raw);
    }
    char token[LP_SHA256_HEX_LEN];
    lp_sha256_hex(key, strlen(key), token);
    char name[32];
    snprintf(name, sizeof name, "sk-...%s", key + strlen(key) - 4);
    json_object_set_new(fields, "token", json_string(token));
    json_object_set_new(fields, "key_name", json_string(name));
    json_object_set_new(fields, "spend", json_real(0));
    if (!json_object_get(fields, "models"))
        json_object_set_new(fields, "models", json_array());
    static const char *objects[] = {"metadata", "aliases", "config", "permissions",
                                    "model_max_budget"};
    for (size_t i = 0; i < LP_ARRAY_LEN(objects); i++) {
        if (!json_object_get(fields, objects[i]) ||
            json_is_null(json_object_get(fields, objects[i])))
            json_object_set_new(fields, objects[i], json_object());
    }
    json_object_set_new(fields, "created_at", s_time_from_now(0));
    json_object_set_new(fields, "updated_at", s_time_from_now(0));
    json_object_set_new(fields, "created_by", json_string("master_key"));
    req->aux = json_object();
    json_object_set_new(req->aux, "key", json_string(key));
    explicit_bzero(key, sizeof key);
    json_t *meta = json_object();
    json_object_set_new(meta, "kind", json_string("key_create"));
    json_object_set(meta, "fields", fields);
    s_query(req, meta, s_on_generated);
done:
    json_decref(body);
    json_decref(fields);
}

/* ---- update, block, unblock ---- */

/* The key row of a reply, or NULL with req answered (an error, or 404 for no such key). */
static json_t *s_reply_row(gw_req_t *req, lp_msg_t **reply)
{
    json_t *row = s_reply_json(req, reply);
    if (row && !json_is_object(row)) {
        json_decref(row);
        gw_req_fail(req, 404, "key_not_found", "key", "no such key");
        return NULL;
    }
    return row;
}

static void s_on_updated(gw_req_t *req, lp_msg_t **reply)
{
    json_t *row = s_reply_row(req, reply);
    if (!row)
        return;
    gw_keys_evict(req->srv->keys, lp_json_str(row, "token"));
    if (lp_json_bool(req->aux, "reset_spend", false))
        gw_limits_reset_spend(req->srv->limits, lp_json_str(row, "token"));
    json_object_set(row, "key", json_object_get(req->aux, "key"));
    rlog_info(req->idstr, "key %s updated", lp_json_str(row, "key_name"));
    s_answer(req, 200, row);
}

static void s_update(gw_req_t *req, json_t *body, json_t *fields, const char *action)
{
    char token[LP_SHA256_HEX_LEN];
    if (!s_token_of(req, lp_json_str(body, "key"), token))
        return;
    json_object_set_new(fields, "updated_at", s_time_from_now(0));
    json_object_set_new(fields, "updated_by", json_string("master_key"));
    req->aux = json_object();
    json_object_set(req->aux, "key", json_object_get(body, "key"));
    /* A new spend or budget: the counted spend restarts from the database's. */
    bool reset = json_object_get(fields, "spend") || json_object_get(fields, "max_budget") ||
                 json_object_get(fields, "budget_duration");
    json_object_set_new(req->aux, "reset_spend", json_boolean(reset));
    json_t *meta = json_object();
    json_object_set_new(meta, "kind", json_string("key_update"));
    json_object_set_new(meta, "action", json_string(action));
    json_object_set_new(meta, "token", json_string(token));
    json_object_set(meta, "fields", fields);
    s_query(req, meta, s_on_updated);
}

void gw_key_update(gw_req_t *req)
{
    json_t *body = s_body(req);
    if (!body)
        return;
    json_t *fields = json_object();
    if (s_fields(req, body, fields, true) == 0)
        s_update(req, body, fields, "updated");
    json_decref(body);
    json_decref(fields);
}

static void s_set_blocked(gw_req_t *req, bool blocked)
{
    json_t *body = s_body(req);
    if (!body)
        return;
    json_t *fields = json_object();
    json_object_set_new(fields, "blocked", json_boolean(blocked));
    s_update(req, body, fields, blocked ? "blocked" : "unblocked");
    json_decref(body);
    json_decref(fields);
}

void gw_key_block(gw_req_t *req)
{
    s_set_blocked(req, true);
}

void gw_key_unblock(gw_req_t *req)
{
    s_set_blocked(req, false);
}

/* ---- delete ---- */

static void s_on_deleted(gw_req_t *req, lp_msg_t **reply)
{
    json_t *tokens = s_reply_json(req, reply);
    if (!tokens)
        return;
    /* Name the deleted keys as the caller named them. */
    json_t *deleted = json_array();
    size_t i, j;
    json_t *t, *pair;
    json_array_foreach(tokens, i, t)
    {
        gw_keys_evict(req->srv->keys, json_string_value(t));
        json_array_foreach(req->aux, j, pair)
        {
            if (json_equal(json_array_get(pair, 1), t))
                json_array_append(deleted, json_array_get(pair, 0));
        }
    }
    json_decref(tokens);
    rlog_info(req->idstr, "%zu key(s) deleted", json_array_size(deleted));
    json_t *o = json_object();
    json_object_set_new(o, "deleted_keys", deleted);
    s_answer(req, 200, o);
}

void gw_key_delete(gw_req_t *req)
{
    json_t *body = s_body(req);
    if (!body)
        return;
    json_t *keys = json_object_get(body, "keys");
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "keys") != 0) {
            gw_req_fail(req, 400, "unknown_field", k, "unknown field '%.60s'", k);
            json_decref(body);
            return;
        }
    }
    if (!s_string_array(keys) || json_array_size(keys) == 0 || json_array_size(keys) > 1000) {
        gw_req_fail(req, 400, NULL, "keys", "keys must be a list of 1 to 1000 keys");
        json_decref(body);
        return;
    }
    req->aux = json_array();
    json_t *tokens = json_array();
    size_t i;
    json_array_foreach(keys, i, v)
    {
        char token[LP_SHA256_HEX_LEN];
        if (!s_token_of(req, json_string_value(v), token)) {
            json_decref(tokens);
            json_decref(body);
            return;
        }
        json_t *pair = json_array();
        json_array_append(pair, v);
        json_array_append_new(pair, json_string(token));
        json_array_append_new(req->aux, pair);
        json_array_append_new(tokens, json_string(token));
    }
    json_t *meta = json_object();
    json_object_set_new(meta, "kind", json_string("key_delete"));
    json_object_set_new(meta, "tokens", tokens);
    s_query(req, meta, s_on_deleted);
    json_decref(body);
}

/* ---- info, list ---- */

static void s_on_info(gw_req_t *req, lp_msg_t **reply)
{
    json_t *row = s_reply_row(req, reply);
    if (!row)
        return;
    json_t *o = json_object();
    json_object_set(o, "key", json_object_get(req->aux, "key"));
    json_object_set_new(o, "info", row);
    s_answer(req, 200, o);
}

void gw_key_info(gw_req_t *req)
{
    const char *given = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "key");
    char token[LP_SHA256_HEX_LEN];
    if (!given && !req->is_master) {
        memcpy(token, req->key_hash, LP_SHA256_HEX_LEN); /* a key asking about itself */
    } else if (!s_token_of(req, given, token)) {
        return;
    }
    if (!req->is_master && strcmp(token, req->key_hash) != 0) {
        gw_req_fail(req, 403, "forbidden", "key", "a virtual key may only read its own info");
        return;
    }
    req->aux = json_object();
    json_object_set_new(req->aux, "key", given ? lp_json_text(given) : json_string(token));
    json_t *meta = json_object();
    json_object_set_new(meta, "kind", json_string("key_get"));
    json_object_set_new(meta, "token", json_string(token));
    s_query(req, meta, s_on_info);
}

static void s_on_list(gw_req_t *req, lp_msg_t **reply)
{
    json_t *page = s_reply_json(req, reply);
    if (!page)
        return;
    long long size = lp_json_int(req->aux, "size", 10), at = lp_json_int(req->aux, "page", 1);
    long long total = lp_json_int(page, "total_count", 0);
    json_t *rows = json_object_get(page, "keys");
    json_t *o = json_object();
    if (lp_json_bool(req->aux, "full", false)) {
        json_object_set(o, "keys", rows);
    } else {
        json_t *tokens = json_array();
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r)
        {
            json_array_append(tokens, json_object_get(r, "token"));
        }
        json_object_set_new(o, "keys", tokens);
    }
    json_object_set_new(o, "total_count", json_integer(total));
    json_object_set_new(o, "current_page", json_integer(at));
    json_object_set_new(o, "total_pages", json_integer((total + size - 1) / size));
    json_decref(page);
    s_answer(req, 200, o);
}

void gw_key_list(gw_req_t *req)
{
    long long page = 1, size = 10;
    const char *p = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "page");
    const char *s = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "size");
    if ((p && lp_parse_ll(p, 1, 1000000, &page) < 0) || (s && lp_parse_ll(s, 1, 1000, &size) < 0)) {
        gw_req_fail(req, 400, NULL, NULL, "page must be >= 1 and size from 1 to 1000");
        return;
    }
    const char *full =
        MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "return_full_object");
    req->aux = json_object();
    json_object_set_new(req->aux, "page", json_integer(page));
    json_object_set_new(req->aux, "size", json_integer(size));
    json_object_set_new(req->aux, "full", json_boolean(full && !strcmp(full, "true")));
    json_t *meta = json_object();
    json_object_set_new(meta, "kind", json_string("key_list"));
    json_object_set_new(meta, "limit", json_integer(size));
    json_object_set_new(meta, "offset", json_integer((page - 1) * size));
    static const char *filters[] = {"user_id", "team_id"};
    for (size_t i = 0; i < LP_ARRAY_LEN(filters); i++) {
        const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, filters[i]);
        if (v)
            json_object_set_new(meta, filters[i], lp_json_text(v));
    }
    s_query(req, meta, s_on_list);
}
