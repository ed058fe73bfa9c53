/* test_json: lp_json parsing limits, helpers and the OpenAI error body. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lp_json.h"

/* Parse a C string; the error text lands in err. */
static json_t *parse(const char *s, char *err)
{
    err[0] = '\0';
    return lp_json_parse(s, strlen(s), err);
}

/* n opening brackets followed by n closing ones (caller frees). */
static char *nested(size_t n, char open, char close)
{
    char *s = malloc(2 * n + 1);
    if (!s)
        return NULL;
    memset(s, open, n);
    memset(s + n, close, n);
    s[2 * n] = '\0';
    return s;
}

static void test_error_body_shape(void)
{
    size_t len = 0;
    char *body = lp_error_body(404, NULL, NULL, NULL, "no such model", &len);
    CHECK(body != NULL);
    CHECK(len == strlen(body));
    json_error_t jerr;
    json_t *v = json_loads(body, 0, &jerr);
    free(body);
    CHECK(v != NULL);
    CHECK(json_object_size(v) == 1);
    json_t *e = json_object_get(v, "error");
    int ok = json_is_object(e) && json_object_size(e) == 4 &&
             strcmp(lp_json_str(e, "message"), "no such model") == 0 &&
             strcmp(lp_json_str(e, "type"), "not_found_error") == 0 &&
             json_is_null(json_object_get(e, "param")) &&
             strcmp(lp_json_str(e, "code"), "404") == 0;
    json_decref(v);
    CHECK(ok);
}

static void test_error_body_explicit(void)
{
    char *body = lp_error_body(401, "custom_type", "invalid_api_key", "authorization",
                               "bad key \"quoted\"", NULL);
    json_t *v = json_loads(body, 0, NULL);
    free(body);
    CHECK(v != NULL);
    json_t *e = json_object_get(v, "error");
    int ok = strcmp(lp_json_str(e, "type"), "custom_type") == 0 &&
             strcmp(lp_json_str(e, "code"), "invalid_api_key") == 0 &&
             strcmp(lp_json_str(e, "param"), "authorization") == 0 &&
             strcmp(lp_json_str(e, "message"), "bad key \"quoted\"") == 0;
    json_decref(v);
    CHECK(ok);
}

static void test_error_body_null_and_bad_utf8(void)
{
    /* a NULL message is an empty one; invalid UTF-8 still gives valid JSON */
    char *body = lp_error_body(500, NULL, NULL, NULL, NULL, NULL);
    json_t *v = json_loads(body, 0, NULL);
    free(body);
    CHECK(v != NULL);
    json_t *e = json_object_get(v, "error");
    int ok = strcmp(lp_json_str(e, "message"), "") == 0 &&
             strcmp(lp_json_str(e, "type"), "api_error") == 0 &&
             strcmp(lp_json_str(e, "code"), "500") == 0;
    json_decref(v);
    CHECK(ok);
    body = lp_error_body(400, NULL, NULL, "p\xfe", "bad \xff byte", NULL);
    v = json_loads(body, 0, NULL);
    free(body);
    CHECK(v != NULL);
    e = json_object_get(v, "error");
    ok = lp_json_str(e, "message") && strncmp(lp_json_str(e, "message"), "bad ", 4) == 0 &&
         lp_json_str(e, "param") != NULL && strcmp(lp_json_str(e, "code"), "400") == 0 &&
         strcmp(lp_json_str(e, "type"), "invalid_request_error") == 0;
    json_decref(v);
    CHECK(ok);
}

static void test_error_type(void)
{
    CHECK_STR(lp_error_type(400), "invalid_request_error");
    CHECK_STR(lp_error_type(401), "authentication_error");
    CHECK_STR(lp_error_type(403), "permission_error");
    CHECK_STR(lp_error_type(404), "not_found_error");
    CHECK_STR(lp_error_type(408), "timeout_error");
    CHECK_STR(lp_error_type(413), "invalid_request_error");
    CHECK_STR(lp_error_type(422), "invalid_request_error");
    CHECK_STR(lp_error_type(429), "rate_limit_error");
    CHECK_STR(lp_error_type(500), "api_error");
    CHECK_STR(lp_error_type(502), "api_error");
    CHECK_STR(lp_error_type(503), "service_unavailable_error");
}

static void test_parse_ok(void)
{
    char err[LP_ERR_LEN];
    json_t *v = parse("{\"a\": [1, 2, {\"b\": null}], \"c\": \"d\"}", err);
    CHECK(v != NULL);
    CHECK(json_array_size(json_object_get(v, "a")) == 3);
    CHECK(strcmp(lp_json_str(v, "c"), "d") == 0);
    json_decref(v);
    /* any value, not only objects */
    v = parse("42", err);
    CHECK(v && json_integer_value(v) == 42);
    json_decref(v);
    v = parse("\"caf\xc3\xa9\"", err);
    CHECK(v && strcmp(json_string_value(v), "caf\xc3\xa9") == 0);
    json_decref(v);
    /* only len bytes are read */
    err[0] = '\0';
    v = lp_json_parse("[1]garbage", 3, err);
    CHECK(v && json_array_size(v) == 1);
    json_decref(v);
}

static void test_parse_duplicate_keys(void)
{
    char err[LP_ERR_LEN];
    json_t *v = parse("{\"a\": 1, \"a\": 2}", err);
    CHECK(v == NULL);
    CHECK(err[0] != '\0');
    v = parse("{\"x\": {\"k\": 1, \"k\": 1}}", err);
    CHECK(v == NULL);
    CHECK(err[0] != '\0');
}

static void test_parse_rejects(void)
{
    char err[LP_ERR_LEN];
    static const char *bad[] = {
        "",
        "   ",
        "{} x",
        "{}{}",
        "[1,]",
        "{\"a\":}",
        "[1",
        "\"\xff\"",
        "\"\xc3\"",
        "\"\xed\xa0\x80\"", /* surrogate encoded in UTF-8 */
        "\"a\\u0000b\"",
        "{'a':1}",
        "nul",
    };
    for (size_t i = 0; i < LP_ARRAY_LEN(bad); i++) {
        json_t *v = parse(bad[i], err);
        if (v)
            json_decref(v);
        CHECK(v == NULL);
        CHECK(err[0] != '\0');
    }
    /* a raw NUL inside a string */
    err[0] = '\0';
    json_t *v = lp_json_parse("\"a\0b\"", 5, err);
    if (v)
        json_decref(v);
    CHECK(v == NULL);
    CHECK(err[0] != '\0');
}

static void test_parse_deep(void)
{
    char err[LP_ERR_LEN];
    /* 100000 unclosed '[' */
    size_t n = 100000;
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    memset(s, '[', n);
    s[n] = '\0';
    err[0] = '\0';
    json_t *v = lp_json_parse(s, n, err);
    free(s);
    CHECK(v == NULL);
    CHECK(strstr(err, "deeper") != NULL);
    /* balanced but too deep, arrays and objects */
    s = nested(n, '[', ']');
    CHECK(s != NULL);
    v = parse(s, err);
    free(s);
    CHECK(v == NULL);
    CHECK(strstr(err, "deeper") != NULL);
    /* {"a":{"a":...}} 1000 deep */
    size_t depth = 1000;
    s = malloc(depth * 5 + depth + 2);
    CHECK(s != NULL);
    size_t o = 0;
    for (size_t i = 0; i < depth; i++) {
        memcpy(s + o, "{\"a\":", 5);
        o += 5;
    }
    s[o++] = '1';
    memset(s + o, '}', depth);
    o += depth;
    s[o] = '\0';
    v = parse(s, err);
    free(s);
    CHECK(v == NULL);
    CHECK(err[0] != '\0');
}

static void test_parse_depth_limit(void)
{
    char err[LP_ERR_LEN];
    char *s = nested(LP_JSON_MAX_DEPTH, '[', ']');
    json_t *v = parse(s, err);
    free(s);
    CHECK(v != NULL);
    /* walk down: exactly LP_JSON_MAX_DEPTH arrays */
    int levels = 0;
    for (json_t *p = v; json_is_array(p); p = json_array_get(p, 0))
        levels++;
    json_decref(v);
    CHECK(levels == LP_JSON_MAX_DEPTH);
    s = nested(LP_JSON_MAX_DEPTH + 1, '[', ']');
    v = parse(s, err);
    free(s);
    CHECK(v == NULL);
    CHECK(err[0] != '\0');
    /* mixed objects and arrays at the limit */
    char buf[LP_JSON_MAX_DEPTH * 8 + 8];
    size_t o = 0;
    for (int i = 0; i < LP_JSON_MAX_DEPTH / 2; i++) {
        memcpy(buf + o, "{\"k\":[", 6);
        o += 6;
    }
    for (int i = 0; i < LP_JSON_MAX_DEPTH / 2; i++) {
        memcpy(buf + o, "]}", 2);
        o += 2;
    }
    buf[o] = '\0';
    v = parse(buf, err);
    CHECK(v != NULL);
    json_decref(v);
    /* sibling containers do not add up */
    char sib[LP_JSON_MAX_DEPTH * 6 + 8];
    o = 0;
    sib[o++] = '[';
    for (int i = 0; i < LP_JSON_MAX_DEPTH * 2; i++) {
        memcpy(sib + o, "[],", 3);
        o += 3;
    }
    sib[o - 1] = ']';
    sib[o] = '\0';
    v = parse(sib, err);
    CHECK(v != NULL);
    CHECK(json_array_size(v) == (size_t)LP_JSON_MAX_DEPTH * 2);
    json_decref(v);
}

static void test_parse_brackets_in_strings(void)
{
    char err[LP_ERR_LEN];
    /* 500 '[' and '{' inside a string: not nesting */
    char s[1100];
    size_t o = 0;
    s[o++] = '[';
    s[o++] = '"';
    for (int i = 0; i < 250; i++) {
        s[o++] = '[';
        s[o++] = '{';
    }
    /* an escaped quote does not end the string */
    s[o++] = '\\';
    s[o++] = '"';
    for (int i = 0; i < 250; i++)
        s[o++] = '[';
    /* an escaped backslash right before the closing quote */
    s[o++] = '\\';
    s[o++] = '\\';
    s[o++] = '"';
    s[o++] = ']';
    s[o] = '\0';
    json_t *v = parse(s, err);
    CHECK(v != NULL);
    const char *str = json_string_value(json_array_get(v, 0));
    int ok = str && strlen(str) == 500 + 1 + 250 + 1 && str[500] == '"' && str[751] == '\\';
    json_decref(v);
    CHECK(ok);
    /* and the depth limit still applies after such a string */
    char *deep = nested(LP_JSON_MAX_DEPTH + 1, '[', ']');
    char *both = malloc(strlen(deep) + 16);
    CHECK(both != NULL);
    memcpy(both, "[\"]]]]\",", 8);
    memcpy(both + 8, deep, strlen(deep));
    both[8 + strlen(deep)] = ']';
    both[9 + strlen(deep)] = '\0';
    free(deep);
    v = parse(both, err);
    free(both);
    CHECK(v == NULL);
}

static void test_json_text(void)
{
    json_t *v = lp_json_text("plain");
    CHECK(v && strcmp(json_string_value(v), "plain") == 0);
    json_decref(v);
    v = lp_json_text("caf\xc3\xa9");
    CHECK(v && strcmp(json_string_value(v), "caf\xc3\xa9") == 0);
    json_decref(v);
    v = lp_json_text("ab\xff\xfe"
                     "cd");
    CHECK(v != NULL);
    const char *s = json_string_value(v);
    int ok = s && strncmp(s, "ab", 2) == 0 && strcmp(s + strlen(s) - 2, "cd") == 0 &&
             strchr(s, '?') != NULL;
    /* the result serialises to valid JSON */
    char *text = lp_json_dump(v, NULL);
    json_decref(v);
    json_t *back = json_loads(text, JSON_DECODE_ANY, NULL);
    free(text);
    ok = ok && back != NULL;
    json_decref(back);
    CHECK(ok);
    v = lp_json_text("");
    CHECK(v && strcmp(json_string_value(v), "") == 0);
    json_decref(v);
}

/* The header promises that only the invalid bytes become '?': valid multi-byte characters
 * next to an invalid byte are kept. */
static void test_json_text_keeps_valid_utf8(void)
{
    json_t *v = lp_json_text("caf\xc3\xa9 \xff");
    CHECK(v != NULL);
    char got[64];
    lp_strlcpy(got, json_string_value(v), sizeof got);
    json_decref(v);
    CHECK_STR(got, "caf\xc3\xa9 ?");
}

/* lp_utf8_valid reads ASCII eight bytes at a time: a bad or multi-byte sequence is found at
 * every offset, before, inside and after such a run, with its offset. */
static void test_utf8_valid_offsets(void)
{
    char buf[40];
    for (size_t at = 0; at + 4 <= sizeof buf; at++) {
        memset(buf, 'a', sizeof buf);
        size_t bad = 999;
        CHECK(lp_utf8_valid(buf, sizeof buf, &bad) && bad == 999);
        memcpy(buf + at, "\xe2\x82\xac", 3); /* U+20AC, valid */
        CHECK(lp_utf8_valid(buf, sizeof buf, &bad));
        buf[at + 2] = 'x'; /* cut short */
        CHECK(!lp_utf8_valid(buf, sizeof buf, &bad) && bad == at);
        memset(buf, 'a', sizeof buf);
        buf[at] = (char)0xc0; /* never valid */
        CHECK(!lp_utf8_valid(buf, sizeof buf, &bad) && bad == at);
        memcpy(buf + at, "\xed\xa0\x80", 3); /* a surrogate */
        CHECK(!lp_utf8_valid(buf, sizeof buf, &bad) && bad == at);
        CHECK(lp_utf8_valid(buf, at, NULL)); /* the part before it */
    }
    CHECK(lp_utf8_valid("", 0, NULL));
}

static void test_helpers(void)
{
    char err[LP_ERR_LEN];
    json_t *o = parse("{\"s\":\"x\",\"b\":true,\"i\":7,\"r\":2.5,\"n\":null}", err);
    CHECK(o != NULL);
    int ok = strcmp(lp_json_str(o, "s"), "x") == 0 && lp_json_str(o, "i") == NULL &&
             lp_json_str(o, "missing") == NULL && lp_json_bool(o, "b", false) == true &&
             lp_json_bool(o, "s", true) == true && lp_json_bool(o, "missing", false) == false &&
             lp_json_int(o, "i", -1) == 7 && lp_json_int(o, "r", -1) == -1 &&
             lp_json_int(o, "missing", 9) == 9 && lp_json_num(o, "r", 0) == 2.5 &&
             lp_json_num(o, "i", 0) == 7.0 && lp_json_num(o, "s", 1.5) == 1.5 &&
             lp_json_num(o, "n", 3.0) == 3.0;
    size_t len = 0;
    char *d = lp_json_dump(o, &len);
    ok = ok && strcmp(d, "{\"s\":\"x\",\"b\":true,\"i\":7,\"r\":2.5,\"n\":null}") == 0 &&
         len == strlen(d);
    free(d);
    json_decref(o);
    CHECK(ok);
    /* helpers on NULL / non-objects return the default */
    CHECK(lp_json_str(NULL, "a") == NULL);
    CHECK(lp_json_int(NULL, "a", 4) == 4);
    json_t *five = json_integer(5);
    d = lp_json_dump(five, NULL);
    json_decref(five);
    CHECK_STR(d, "5");
    free(d);
}

int main(void)
{
    RUN(test_error_body_shape);
    RUN(test_error_body_explicit);
    RUN(test_error_body_null_and_bad_utf8);
    RUN(test_error_type);
    RUN(test_parse_ok);
    RUN(test_parse_duplicate_keys);
    RUN(test_parse_rejects);
    RUN(test_parse_deep);
    RUN(test_parse_depth_limit);
    RUN(test_parse_brackets_in_strings);
    RUN(test_json_text);
    RUN(test_json_text_keeps_valid_utf8);
    RUN(test_utf8_valid_offsets);
    RUN(test_helpers);
    return th_report();
}
