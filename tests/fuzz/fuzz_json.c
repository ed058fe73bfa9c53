/* fuzz_json: lp_json_parse, the depth-limited, duplicate-rejecting parser every client body
 * and provider answer goes through. Checked against plain jansson: the only documents
 * lp_json_parse may refuse that jansson (with duplicate rejection) accepts are those nested
 * deeper than LP_JSON_MAX_DEPTH; accepted values hold no NUL in strings and survive
 * lp_json_dump. The input is also run through lp_json_text and lp_error_body, which must make
 * valid JSON of any bytes. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
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
