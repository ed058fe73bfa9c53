/* fuzz_json: lp_json_parse, the depth-limited, duplicate-rejecting parser every client body
 * goes through, and lp_jscan, the scan provider answers relayed as written go through. Checked
 * against plain jansson: the only documents lp_json_parse may refuse that jansson (with duplicate
 * rejection) accepts are those nested deeper than LP_JSON_MAX_DEPTH; accepted values hold no NUL in
 * strings and survive lp_json_dump. The input is also run through lp_json_text and lp_error_body,
 * which must make valid JSON of any bytes. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lp_jscan.h"
#include "lp_json.h"

/* Container nesting as lp_json counts it: a scalar is 0, [] is 1. */
static int s_depth(const json_t *v)
{
    int deepest = 0;
    if (json_is_object(v)) {
        const char *key;
        json_t *item;
        json_object_foreach((json_t *)v, key, item)
        {
            int d = s_depth(item);
            deepest = d > deepest ? d : deepest;
        }
        return deepest + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            int d = s_depth(item);
            deepest = d > deepest ? d : deepest;
        }
        return deepest + 1;
    }
    return 0;
}

/* No string value holds a NUL (lp_json_parse promises to refuse them). */
static void s_no_nul(const json_t *v)
{
    if (json_is_string(v)) {
        FZ_CHECK(strlen(json_string_value(v)) == json_string_length(v), "NUL inside a string");
    } else if (json_is_object(v)) {
        const char *key;
        json_t *item;
        json_object_foreach((json_t *)v, key, item) s_no_nul(item);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) s_no_nul(item);
    }
}

/* The scan's view of a text: its top-level members, and the span of one of them. */
typedef struct {
    size_t size; /* of the text */
    size_t members, pick;
    size_t from, to;
    bool object, picked;
} s_scan_t;

static bool s_scan(lp_jscan_t *s, lp_jscan_kind_t kind, const char *text, size_t len, void *arg)
{
    (void)text;
    (void)len;
    s_scan_t *c = arg;
    if (lp_jscan_depth(s) == 0 && kind == LP_JSCAN_OBJECT)
        c->object = true;
    if (lp_jscan_depth(s) != 1 || !c->object)
        return true;
    if (kind != LP_JSCAN_CLOSE)
        c->members++;
    if (c->members - 1 == c->pick && kind != LP_JSCAN_OBJECT && kind != LP_JSCAN_ARRAY) {
        size_t start = lp_jscan_start(s), end = lp_jscan_end(s);
        FZ_CHECK(start < end && end <= c->size, "value span [%zu, %zu) outside the text", start,
                 end);
        lp_jscan_member_span(s, &c->from, &c->to);
        FZ_CHECK(c->from < start && c->to >= end, "member span does not hold its value");
        c->picked = true;
    }
    return true;
}

/* lp_jscan against jansson taking what the scan relays (repeated keys, NUL escapes): the
 * same texts are JSON, except what the scan passes on as written and jansson cannot hold
 * (numbers out of range, a NUL escape in a key) and bytes after a NUL, which jansson
 * ignores. Cutting a member of an object leaves valid JSON without it. */
static void s_check_scan(const char *text, size_t size, const json_t *strict)
{
    json_error_t jerr;
    json_t *lax = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    char err[LP_ERR_LEN] = "";
    s_scan_t c = {.size = size, .pick = size % 7};
    int rc = lp_jscan_run(text, size, s_scan, &c, err);
    /* jansson also stops at a NUL byte as if the text ended there. */
    if (lax && s_depth(lax) <= LP_JSON_MAX_DEPTH && !memchr(text, '\0', size))
        FZ_CHECK(rc == 0, "lp_jscan refused what jansson reads: %s", err);
    if (rc == 0)
        FZ_CHECK(lax || strstr(jerr.text, "too big") || strstr(jerr.text, "overflow") ||
                     strstr(jerr.text, "NUL byte in object key"),
                 "lp_jscan accepted what jansson refuses: %s", jerr.text);
    else
        FZ_CHECK(err[0] != '\0', "lp_jscan refused without a reason");
    if (rc == 0 && c.picked) {
        lp_buf_t cut = {0};
        lp_jscan_edit_t e = {c.from, c.to, NULL, 0};
        lp_jscan_splice(&cut, text, size, &e, 1);
        s_scan_t again = {.size = cut.len, .pick = SIZE_MAX};
        FZ_CHECK(lp_jscan_run(cut.data, cut.len, s_scan, &again, err) == 0 && again.object &&
                     again.members == c.members - 1,
                 "cutting member %zu left invalid JSON (%s): %.*s", c.pick, err,
                 (int)LP_MIN(cut.len, 200), cut.data);
        /* Without repeated keys, the rest is unchanged. */
        json_t *rest = strict ? json_loadb(cut.data, cut.len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
        if (strict && json_is_object(strict)) {
            FZ_CHECK(json_object_size(rest) + 1 == json_object_size(strict),
                     "the cut removed more than one member");
            const char *key;
            json_t *value;
            json_object_foreach(rest, key, value)
            {
                FZ_CHECK(json_equal(value, json_object_get(strict, key)), "the cut changed %s",
                         key);
            }
        }
        json_decref(rest);
        lp_buf_free(&cut);
    }
    json_decref(lax);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char err[LP_ERR_LEN] = "";
    json_t *v = lp_json_parse(text, size, err);
    json_error_t jerr;
    json_t *plain = json_loadb(text, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (v) {
        FZ_CHECK(plain != NULL, "lp_json_parse accepted what jansson refuses: %s", jerr.text);
        FZ_CHECK(s_depth(v) <= LP_JSON_MAX_DEPTH, "accepted a value %d deep", s_depth(v));
        s_no_nul(v);
        size_t len = 0;
        char *out = lp_json_dump(v, &len);
        json_t *back = lp_json_parse(out, len, err);
        FZ_CHECK(back && json_equal(back, v), "dump does not parse back: %s", err);
        json_decref(back);
        free(out);
        json_decref(v);
    } else {
        FZ_CHECK(err[0] != '\0', "refused without a reason");
        FZ_CHECK(!plain || s_depth(plain) > LP_JSON_MAX_DEPTH, "refused a valid value %d deep: %s",
                 plain ? s_depth(plain) : -1, err);
    }
    s_check_scan(text, size, plain && s_depth(plain) <= LP_JSON_MAX_DEPTH ? plain : NULL);
    json_decref(plain);

    /* Any C string becomes a JSON string of the same length (bad UTF-8 bytes become '?'),
     * and an error body built from it is valid JSON. */
    char *s = malloc(size + 1);
    FZ_CHECK(s != NULL, "out of memory");
    memcpy(s, data, size);
    s[size] = '\0';
    json_t *t = lp_json_text(s);
    FZ_CHECK(t && json_string_length(t) == strlen(s), "lp_json_text changed the length");
    json_decref(t);
    size_t blen = 0;
    char *body = lp_error_body(400, NULL, NULL, s, s, &blen);
    json_t *b = lp_json_parse(body, blen, err);
    FZ_CHECK(json_is_object(b), "lp_error_body made invalid JSON: %s", err);
    json_decref(b);
    free(body);
    free(s);
    return 0;
}
