#include "lp_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *lp_json_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

bool lp_json_bool(const json_t *obj, const char *key, bool def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

long long lp_json_int(const json_t *obj, const char *key, long long def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

long long lp_json_tokens(const json_t *obj, const char *key, long long def)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return def;
    json_int_t n = json_integer_value(v);
    return n < 0 ? 0 : n > LP_TOKENS_MAX ? LP_TOKENS_MAX : (long long)n;
}

double lp_json_num(const json_t *obj, const char *key, double def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

/* Length of the valid UTF-8 sequence at p (no overlongs, surrogates or > U+10FFFF), or 0. */
static size_t s_utf8_seq(const char *p, size_t left)
{
    const unsigned char *u = (const unsigned char *)p;
    unsigned c = u[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    unsigned cp = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (u[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

bool lp_utf8_valid(const char *p, size_t len, size_t *bad_at)
{
    for (size_t i = 0; i < len;) {
        uint64_t word;
        if (len - i >= sizeof word) { /* ASCII eight bytes at a time */
            memcpy(&word, p + i, sizeof word);
            if (!(word & 0x8080808080808080u)) {
                i += sizeof word;
                continue;
            }
        }
        if ((unsigned char)p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = s_utf8_seq(p + i, len - i);
        if (n == 0) {
            if (bad_at)
                *bad_at = i;
            return false;
        }
        i += n;
    }
    return true;
}

void lp_utf8_scrub(char *p, size_t len)
{
    for (size_t bad = 0, at = 0; !lp_utf8_valid(p + at, len - at, &bad); at += bad + 1)
        p[at + bad] = '?';
}

json_t *lp_json_text(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    char *copy = lp_strdup(s);
    lp_utf8_scrub(copy, strlen(copy));
    v = json_string(copy);
    free(copy);
    return v;
}

/* jansson recurses per nesting level; scan brackets first so hostile input cannot run the
 * parser deep. Strings are skipped with their escapes. */
static bool s_depth_ok(const char *p, size_t len)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '{' || c == '[') {
            if (++depth > LP_JSON_MAX_DEPTH)
                return false;
        } else if (c == '}' || c == ']')
            depth--;
    }
    return true;
}

json_t *lp_json_parse(const char *data, size_t len, char *err)
{
    if (!s_depth_ok(data, len)) {
        lp_err_set(err, "JSON nested deeper than %d levels", LP_JSON_MAX_DEPTH);
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!v) {
        lp_err_set(err, "%s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    return v;
}

static int s_dump_to_buf(const char *text, size_t size, void *buf)
{
    lp_buf_append(buf, text, size);
    return 0;
}

void lp_json_dump_to(lp_buf_t *out, const json_t *value)
{
    /* Straight into the buffer: json_dumps would build a copy and then duplicate it. */
    int rc = json_dump_callback(value, s_dump_to_buf, out, JSON_COMPACT | JSON_ENCODE_ANY);
    lp_assert(rc == 0);
}

char *lp_json_dump(const json_t *value, size_t *len)
{
    lp_buf_t b = {0};
    lp_json_dump_to(&b, value);
    return lp_buf_steal(&b, len);
}

const char *lp_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 408:
        return "timeout_error";
    case 429:
        return "rate_limit_error";
    default:
        break;
    }
    if (status >= 400 && status < 500)
        return "invalid_request_error";
    if (status == 503)
        return "service_unavailable_error";
    return "api_error";
}

const char *lp_anthropic_error_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
    }
}

char *lp_anthropic_error_body(int status, const char *message, size_t *len)
{
    json_t *err = json_object();
    json_object_set_new(err, "type", json_string(lp_anthropic_error_type(status)));
    json_object_set_new(err, "message", lp_json_text(message ? message : ""));
    json_t *body = json_object();
    json_object_set_new(body, "type", json_string("error"));
    json_object_set_new(body, "error", err);
    char *s = lp_json_dump(body, len);
    json_decref(body);
    return s;
}

char *lp_error_body(int status, const char *type, const char *code, const char *param,
                    const char *message, size_t *len)
{
    char status_text[16];
    snprintf(status_text, sizeof status_text, "%d", status);
    json_t *err = json_object();
    json_object_set_new(err, "message", lp_json_text(message ? message : ""));
    json_object_set_new(err, "type", json_string(type ? type : lp_error_type(status)));
    json_object_set_new(err, "param", param ? lp_json_text(param) : json_null());
    json_object_set_new(err, "code", json_string(code ? code : status_text));
    json_t *body = json_object();
    json_object_set_new(body, "error", err);
    char *s = lp_json_dump(body, len);
    json_decref(body);
    return s;
}
