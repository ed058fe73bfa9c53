/* test_jscan: the event scan (paths, kinds, decoded strings, byte spans), what it rejects,
 * member cuts that leave valid JSON, and splicing. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lp_jscan.h"
#include "lp_json.h"

/* What one scan saw: the events at a path of interest, and the spans of one member. */
typedef struct {
    const char *path;    /* report values at this path */
    char seen[256];      /* "KIND:text|" for each value at path */
    const char *cut;     /* a top-level member to cut */
    size_t from, to;     /* its member span */
    size_t vfrom, vto;   /* its value's span */
    const char *stop_at; /* stop the scan at this path */
    int deep;            /* the span of the container closing at this depth */
    size_t deep_from, deep_to;
} s_probe_t;

static const char *s_kind(lp_jscan_kind_t k)
{
    static const char *names[] = {"null", "bool", "number", "string", "object", "array", "close"};
    return names[k];
}

static bool s_probe(lp_jscan_t *s, lp_jscan_kind_t kind, const char *text, size_t len, void *arg)
{
    s_probe_t *p = arg;
    if (p->stop_at && lp_jscan_at(s, p->stop_at))
        return lp_jscan_stop(s, "stopped at %s", p->stop_at);
    if (p->deep && kind == LP_JSCAN_CLOSE && lp_jscan_depth(s) == p->deep) {
        p->deep_from = lp_jscan_start(s);
        p->deep_to = lp_jscan_end(s);
    }
    if (p->path && lp_jscan_at(s, p->path)) {
        size_t at = strlen(p->seen);
        snprintf(p->seen + at, sizeof p->seen - at, "%s:%.*s|", s_kind(kind), (int)len,
                 text ? text : "");
    }
    if (p->cut && lp_jscan_depth(s) == 1 && lp_jscan_at(s, p->cut) && kind != LP_JSCAN_OBJECT &&
        kind != LP_JSCAN_ARRAY) {
        lp_jscan_member_span(s, &p->from, &p->to);
        p->vfrom = lp_jscan_start(s);
        p->vto = lp_jscan_end(s);
    }
    return true;
}

static int scan(const char *text, s_probe_t *p, char *err)
{
    err[0] = '\0';
    return lp_jscan_run(text, strlen(text), s_probe, p, err);
}

/* text with its member p->cut removed (caller frees). */
static char *cut(const char *text, const s_probe_t *p)
{
    lp_buf_t out = {0};
    lp_jscan_edit_t e = {p->from, p->to, NULL, 0};
    lp_jscan_splice(&out, text, strlen(text), &e, 1);
    return lp_buf_steal(&out, NULL);
}

/* True when a and b are the same JSON value. */
static bool same_json(const char *a, const char *b)
{
    json_t *x = json_loads(a, 0, NULL), *y = json_loads(b, 0, NULL);
    bool eq = x && y && json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return eq;
}

static void test_paths_and_decoded_values(void)
{
    const char *text = "{\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"h\\u00e9\\n\"}},"
                       "{\"delta\":{\"content\":null}}],\"usage\":{\"prompt_tokens\":3}}";
    char err[LP_ERR_LEN];
    s_probe_t p = {.path = "choices.*.delta.content"};
    CHECK(scan(text, &p, err) == 0);
    CHECK_STR(p.seen, "string:h\xc3\xa9\n|null:|");
    s_probe_t q = {.path = "usage.prompt_tokens"};
    CHECK(scan(text, &q, err) == 0);
    CHECK_STR(q.seen, "number:3|");
    s_probe_t r = {.path = "choices.*"};
    CHECK(scan(text, &r, err) == 0);
    CHECK_STR(r.seen, "object:|close:|object:|close:|");
    s_probe_t top = {.path = ""};
    CHECK(scan(text, &top, err) == 0);
    CHECK_STR(top.seen, "object:|close:|");
    /* A path names keys only: an array element is never a key, a prefix never matches. */
    s_probe_t none = {.path = "choices.0.delta"};
    CHECK(scan(text, &none, err) == 0);
    CHECK_STR(none.seen, "");
    s_probe_t part = {.path = "usage.prompt"};
    CHECK(scan(text, &part, err) == 0);
    CHECK_STR(part.seen, "");
    s_probe_t empty = {.path = ""}; /* "" is the top level, never an empty key */
    CHECK(scan("{\"\":1}", &empty, err) == 0);
    CHECK_STR(empty.seen, "object:|close:|");
}

static void test_numbers_and_booleans_as_written(void)
{
    char err[LP_ERR_LEN];
    s_probe_t p = {.path = "*"};
    CHECK(scan("{\"a\":-1.5e3,\"b\":true,\"c\":false,\"d\":99999999999999999999999}", &p, err) ==
          0);
    CHECK_STR(p.seen, "number:-1.5e3|bool:true|bool:false|number:99999999999999999999999|");
}

static void test_long_keys_match_only_a_wildcard(void)
{
    char key[LP_JSCAN_KEY + 8];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    char text[256];
    snprintf(text, sizeof text, "{\"%s\":1}", key);
    char err[LP_ERR_LEN];
    s_probe_t p = {.path = key};
    CHECK(scan(text, &p, err) == 0);
    CHECK_STR(p.seen, "");
    s_probe_t q = {.path = "*"};
    CHECK(scan(text, &q, err) == 0);
    CHECK_STR(q.seen, "number:1|");
}

static void test_value_spans(void)
{
    const char *text =
        "{ \"id\" : \"a\\\"b\" ,\n \"model\" :\t\"gpt-4o\", \"x\": {\"y\": [1, 2]} }";
    char err[LP_ERR_LEN];
    s_probe_t p = {.cut = "model"};
    CHECK(scan(text, &p, err) == 0);
    CHECK(p.vto - p.vfrom == strlen("\"gpt-4o\""));
    CHECK(memcmp(text + p.vfrom, "\"gpt-4o\"", p.vto - p.vfrom) == 0);
    s_probe_t q = {.cut = "x"};
    CHECK(scan(text, &q, err) == 0);
    CHECK(memcmp(text + q.vfrom, "{\"y\": [1, 2]}", q.vto - q.vfrom) == 0);
    CHECK(q.vto - q.vfrom == strlen("{\"y\": [1, 2]}"));
    s_probe_t r = {.cut = "id"};
    CHECK(scan(text, &r, err) == 0);
    CHECK(memcmp(text + r.vfrom, "\"a\\\"b\"", r.vto - r.vfrom) == 0);
}

/* Cutting a member leaves valid JSON whichever place it holds. */
static void test_member_cuts_stay_valid(void)
{
    static const struct {
        const char *text, *member, *want;
    } cases[] = {
        {"{\"usage\":null,\"a\":1,\"b\":2}", "usage", "{\"a\":1,\"b\":2}"},
        {"{\"a\":1,\"usage\":null,\"b\":2}", "usage", "{\"a\":1,\"b\":2}"},
        {"{\"a\":1,\"b\":2,\"usage\":{\"p\":[1,{}]}}", "usage", "{\"a\":1,\"b\":2}"},
        {"{\"usage\":[1,2]}", "usage", "{}"},
        {"{ \"usage\" : null ,\n \"a\" : 1 }", "usage", "{\"a\":1}"},
        {"{ \"a\" : 1 ,\n \"usage\" : { } }", "usage", "{\"a\":1}"},
    };
    char err[LP_ERR_LEN];
    for (size_t i = 0; i < LP_ARRAY_LEN(cases); i++) {
        s_probe_t p = {.cut = cases[i].member};
        CHECK(scan(cases[i].text, &p, err) == 0);
        char *out = cut(cases[i].text, &p);
        CHECK_WHY(same_json(out, cases[i].want), out);
        free(out);
    }
}

static void test_rejects_what_is_not_json(void)
{
    static const char *bad[] = {
        "",
        "{\"a\":1",
        "{\"a\":1,}",
        "{\"a\":1} x",
        "{\"a\":1}{}",
        "{\"a\":1} \"x",
        "\"s\"\"}]]",
        "1 2",
        "{\"a\":\f1}",
        "{\"a\"\v:1}",
        "{\"a\":\"\\ud83d\"}",
        "{\"a\":\"\\ude00\"}",
        "{\"a\":\"\\ud83dx\"}",
        "{\"a\":\"\\ud83d\\u0041\"}",
        "{\"\\udbff\":1}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\xc0\xaf\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":\"\xe2\x82\"}",
        "{\"a\":\"tab\there\"}",
        "{'a':1}",
        "{\"a\":01}",
        "{\"a\":NaN}",
        "[1,2,]",
        "/* c */ {}",
    };
    char err[LP_ERR_LEN];
    for (size_t i = 0; i < LP_ARRAY_LEN(bad); i++) {
        s_probe_t p = {0};
        CHECK_WHY(scan(bad[i], &p, err) == -1, bad[i]);
        CHECK_WHY(err[0] != '\0', bad[i]);
    }
    s_probe_t p = {0};
    CHECK(lp_jscan_run(NULL, 0, s_probe, &p, err) == -1);
}

static void test_top_level_scalars(void)
{
    char err[LP_ERR_LEN];
    static const char *good[] = {"12", " 12 \n", "-0.5e1", "\"s\"", "true", "null"};
    for (size_t i = 0; i < LP_ARRAY_LEN(good); i++) {
        s_probe_t p = {.path = ""};
        CHECK_WHY(scan(good[i], &p, err) == 0, good[i]);
        CHECK_WHY(strchr(p.seen, '|') != NULL, good[i]);
    }
}

static void test_escapes_that_stay(void)
{
    char err[LP_ERR_LEN];
    static const char *good[] = {"{\"a\":\"\\ud83d\\ude00\"}", "{\"a\":\"\\\\ud83d\"}",
                                 "{\"a\":\"\\u0000\\n\\\"\"}", "[\"\\uDBFF\\uDFFF\"]"};
    for (size_t i = 0; i < LP_ARRAY_LEN(good); i++) {
        s_probe_t p = {0};
        CHECK_WHY(scan(good[i], &p, err) == 0, err);
    }
}

static void test_error_offsets(void)
{
    char err[LP_ERR_LEN];
    s_probe_t p = {0};
    CHECK(scan("[1", &p, err) == -1);
    CHECK_WHY(strstr(err, "at byte 2") != NULL, err);
    CHECK(scan("{\"a\":1}tru", &p, err) == -1);
    CHECK_WHY(strstr(err, "at byte 10") != NULL, err);
    CHECK(scan("{\"a\":\"\xff\"}", &p, err) == -1);
    CHECK_WHY(strstr(err, "invalid UTF-8 at byte 6") != NULL, err);
}

/* A container's span is known at its CLOSE at any depth, past the levels whose keys are kept. */
static void test_deep_container_spans(void)
{
    char text[] = "[[[[[[[[[[[[7]]]]]]]]]]]]"; /* 12 deep */
    char err[LP_ERR_LEN];
    s_probe_t p = {.deep = 11};
    CHECK(scan(text, &p, err) == 0);
    CHECK(p.deep_from == 11 && p.deep_to == 14);
}

static void test_depth_limit(void)
{
    char text[2 * (LP_JSON_MAX_DEPTH + 1) + 1];
    char err[LP_ERR_LEN];
    for (int n = LP_JSON_MAX_DEPTH; n <= LP_JSON_MAX_DEPTH + 1; n++) {
        memset(text, '[', (size_t)n);
        memset(text + n, ']', (size_t)n);
        text[2 * n] = '\0';
        s_probe_t p = {0};
        int rc = scan(text, &p, err);
        if (n == LP_JSON_MAX_DEPTH)
            CHECK_WHY(rc == 0, err);
        else
            CHECK(rc == -1 && strstr(err, "nested deeper than"));
    }
}

static void test_callback_stops_with_its_reason(void)
{
    char err[LP_ERR_LEN];
    s_probe_t p = {.stop_at = "b"};
    CHECK(scan("{\"a\":1,\"b\":2,\"c\":3}", &p, err) == -1);
    CHECK_STR(err, "stopped at b");
}

static void test_counts(void)
{
    CHECK(lp_jscan_count("12", 2, -1) == 12);
    CHECK(lp_jscan_count("0", 1, -1) == 0);
    CHECK(lp_jscan_count("-3", 2, -1) == 0);
    CHECK(lp_jscan_count("1.5", 3, -1) == -1);
    CHECK(lp_jscan_count("1e3", 3, -1) == -1);
    CHECK(lp_jscan_count("99999999999999999999999", 23, -1) == LP_TOKENS_MAX);
    CHECK(lp_jscan_count(NULL, 0, 7) == 7);
    long long v = 0;
    CHECK(lp_jscan_int("1700000000123", 13, &v) && v == 1700000000123LL);
    CHECK(lp_jscan_int("-5", 2, &v) && v == -5);
    CHECK(!lp_jscan_int("1.0", 3, &v) && !lp_jscan_int("99999999999999999999", 20, &v));
}

static void test_splice_insert_and_cut(void)
{
    const char *text = "{\"a\":1,\"model\":\"x\"}";
    lp_jscan_edit_t e[] = {{1, 1, "\"first\":0,", 10}, {15, 18, "\"y\"", 3}};
    lp_buf_t out = {0};
    lp_jscan_splice(&out, text, strlen(text), e, 2);
    CHECK_STR(out.data, "{\"first\":0,\"a\":1,\"model\":\"y\"}");
    lp_buf_free(&out);
    lp_jscan_splice(&out, text, strlen(text), NULL, 0);
    CHECK_STR(out.data, text);
    lp_buf_free(&out);
}

int main(void)
{
    RUN(test_paths_and_decoded_values);
    RUN(test_numbers_and_booleans_as_written);
    RUN(test_long_keys_match_only_a_wildcard);
    RUN(test_value_spans);
    RUN(test_member_cuts_stay_valid);
    RUN(test_rejects_what_is_not_json);
    RUN(test_top_level_scalars);
    RUN(test_escapes_that_stay);
    RUN(test_error_offsets);
    RUN(test_deep_container_spans);
    RUN(test_depth_limit);
    RUN(test_callback_stops_with_its_reason);
    RUN(test_counts);
    RUN(test_splice_insert_and_cut);
    return th_report();
}
