/* test_util: lp_buf, lp_map, lp_crypto, lp_util parsing/strings, lp_opts, lp_provider. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lp_buf.h"
#include "lp_crypto.h"
#include "lp_map.h"
#include "lp_opts.h"
#include "lp_provider.h"
#include "lp_time.h"
#include "lp_util.h"

/* ---- lp_buf ---- */

static void test_buf_append_puts(void)
{
    lp_buf_t b = {0};
    CHECK(b.data == NULL && b.len == 0);
    lp_buf_append(&b, "abc", 3);
    CHECK(b.len == 3);
    CHECK_STR(b.data, "abc");
    lp_buf_puts(&b, "def");
    CHECK(b.len == 6);
    CHECK_STR(b.data, "abcdef");
    /* binary bytes, including a NUL, are kept and the buffer stays NUL-terminated */
    lp_buf_append(&b, "x\0y", 3);
    CHECK(b.len == 9);
    CHECK(memcmp(b.data, "abcdefx\0y", 9) == 0);
    CHECK(b.data[9] == '\0');
    /* appending nothing changes nothing */
    lp_buf_append(&b, NULL, 0);
    CHECK(b.len == 9);
    CHECK(b.cap >= b.len + 1);
    lp_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    lp_buf_free(&b); /* twice is fine */
}

static void test_buf_grow_large(void)
{
    lp_buf_t b = {0};
    for (int i = 0; i < 10000; i++)
        lp_buf_append(&b, "0123456789", 10);
    CHECK(b.len == 100000);
    CHECK(b.cap > b.len);
    CHECK(b.data[b.len] == '\0');
    for (size_t i = 0; i < b.len; i += 9973)
        CHECK(b.data[i] == (char)('0' + i % 10));
    lp_buf_free(&b);
}

static void test_buf_printf(void)
{
    lp_buf_t b = {0};
    lp_buf_printf(&b, "%d-%s", 42, "x");
    CHECK_STR(b.data, "42-x");
    CHECK(b.len == 4);
    lp_buf_printf(&b, "%s", "");
    CHECK(b.len == 4);
    /* longer than the first allocation: must grow */
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    lp_buf_printf(&b, "[%s]", big);
    CHECK(b.len == 4 + 1001);
    CHECK(b.data[4] == '[' && b.data[5] == 'z' && b.data[1004] == ']');
    CHECK(b.data[b.len] == '\0');
    CHECK(strlen(b.data) == b.len);
    lp_buf_free(&b);
}

static void test_buf_consume(void)
{
    lp_buf_t b = {0};
    lp_buf_puts(&b, "hello world");
    lp_buf_consume(&b, 0);
    CHECK_STR(b.data, "hello world");
    lp_buf_consume(&b, 6);
    CHECK(b.len == 5);
    CHECK_STR(b.data, "world");
    lp_buf_consume(&b, 5);
    CHECK(b.len == 0);
    CHECK_STR(b.data, "");
    lp_buf_puts(&b, "again");
    CHECK_STR(b.data, "again");
    lp_buf_free(&b);
}

static void test_buf_reset(void)
{
    lp_buf_t b = {0};
    lp_buf_reset(&b); /* on a zeroed buffer */
    CHECK(b.len == 0 && b.data == NULL);
    lp_buf_puts(&b, "something long enough");
    size_t cap = b.cap;
    char *data = b.data;
    lp_buf_reset(&b);
    CHECK(b.len == 0);
    CHECK(b.cap == cap && b.data == data); /* storage kept */
    CHECK_STR(b.data, "");
    lp_buf_puts(&b, "new");
    CHECK_STR(b.data, "new");
    lp_buf_free(&b);
}

static void test_buf_steal(void)
{
    lp_buf_t b = {0};
    lp_buf_puts(&b, "payload");
    size_t len = 0;
    char *p = lp_buf_steal(&b, &len);
    CHECK(p != NULL);
    CHECK(len == 7);
    CHECK_STR(p, "payload");
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    free(p);
    /* the buffer is usable again after a steal */
    lp_buf_puts(&b, "x");
    p = lp_buf_steal(&b, NULL);
    CHECK_STR(p, "x");
    free(p);
}

/* Stealing a buffer that never had data must still give an empty C string (the buffer is
 * documented as always NUL-terminated and the gateway steals empty request bodies). */
static void test_buf_steal_empty(void)
{
    lp_buf_t b = {0};
    size_t len = 99;
    char *p = lp_buf_steal(&b, &len);
    CHECK(p != NULL);
    CHECK(len == 0);
    char first = p[0];
    free(p);
    CHECK(first == '\0');
}

/* ---- lp_map ---- */

static void test_map_basic(void)
{
    lp_map_t *m = lp_map_new();
    int a = 1, b = 2, c = 3;
    CHECK(lp_map_size(m) == 0);
    CHECK(lp_map_get(m, "a", 1) == NULL);
    CHECK(lp_map_put(m, "a", 1, &a) == NULL);
    CHECK(lp_map_put(m, "b", 1, &b) == NULL);
    CHECK(lp_map_size(m) == 2);
    CHECK(lp_map_get(m, "a", 1) == &a);
    CHECK(lp_map_get(m, "b", 1) == &b);
    /* replace returns the old value and keeps the size */
    CHECK(lp_map_put(m, "a", 1, &c) == &a);
    CHECK(lp_map_size(m) == 2);
    CHECK(lp_map_get(m, "a", 1) == &c);
    /* keys are bytes with a length: prefixes and embedded NULs are distinct keys */
    CHECK(lp_map_get(m, "ab", 2) == NULL);
    CHECK(lp_map_put(m, "a\0x", 3, &b) == NULL);
    CHECK(lp_map_get(m, "a\0x", 3) == &b);
    CHECK(lp_map_get(m, "a\0y", 3) == NULL);
    CHECK(lp_map_get(m, "a", 1) == &c);
    /* empty key */
    CHECK(lp_map_put(m, "", 0, &a) == NULL);
    CHECK(lp_map_get(m, "", 0) == &a);
    CHECK(lp_map_size(m) == 4);
    /* remove */
    CHECK(lp_map_remove(m, "a", 1) == &c);
    CHECK(lp_map_get(m, "a", 1) == NULL);
    CHECK(lp_map_remove(m, "a", 1) == NULL);
    CHECK(lp_map_size(m) == 3);
    CHECK(lp_map_get(m, "a\0x", 3) == &b);
    lp_map_destroy(&m);
    CHECK(m == NULL);
    lp_map_destroy(&m);
}

static void test_map_key_copied(void)
{
    lp_map_t *m = lp_map_new();
    char key[8] = "k1";
    int v = 7;
    lp_map_put(m, key, 2, &v);
    key[1] = '2'; /* mutate the caller's key: the map holds its own copy */
    CHECK(lp_map_get(m, "k1", 2) == &v);
    CHECK(lp_map_get(m, "k2", 2) == NULL);
    lp_map_destroy(&m);
}

#define MAP_N 20000

static void test_map_grow(void)
{
    lp_map_t *m = lp_map_new();
    static int vals[MAP_N];
    char key[32];
    for (int i = 0; i < MAP_N; i++) {
        vals[i] = i;
        int n = snprintf(key, sizeof key, "key-%d", i);
        CHECK(lp_map_put(m, key, (size_t)n, &vals[i]) == NULL);
    }
    CHECK(lp_map_size(m) == MAP_N);
    for (int i = 0; i < MAP_N; i++) {
        int n = snprintf(key, sizeof key, "key-%d", i);
        int *p = lp_map_get(m, key, (size_t)n);
        CHECK(p && *p == i);
    }
    /* remove every odd key */
    for (int i = 1; i < MAP_N; i += 2) {
        int n = snprintf(key, sizeof key, "key-%d", i);
        CHECK(lp_map_remove(m, key, (size_t)n) == &vals[i]);
    }
    CHECK(lp_map_size(m) == MAP_N / 2);
    for (int i = 0; i < MAP_N; i++) {
        int n = snprintf(key, sizeof key, "key-%d", i);
        int *p = lp_map_get(m, key, (size_t)n);
        CHECK((i % 2) ? p == NULL : (p && *p == i));
    }
    lp_map_destroy(&m);
}

typedef struct {
    size_t count;
    long sum;
    size_t stop_after;
} each_acc_t;

static bool each_fn(const void *key, size_t len, void *value, void *arg)
{
    each_acc_t *acc = arg;
    (void)key;
    (void)len;
    acc->count++;
    acc->sum += *(int *)value;
    return acc->stop_after == 0 || acc->count < acc->stop_after;
}

static bool s_is_even(void *v, void *arg)
{
    LP_UNUSED(arg);
    return *(int *)v % 2 == 0;
}

static void s_count_free(void *v, void *arg)
{
    LP_UNUSED(v);
    (*(int *)arg)++;
}

static void test_map_values_and_remove_if(void)
{
    lp_map_t *m = lp_map_new();
    static int nums[100];
    for (int i = 0; i < 100; i++) {
        nums[i] = i;
        lp_map_put(m, &i, sizeof i, &nums[i]);
    }
    size_t n = 0;
    void **all = lp_map_values(m, NULL, NULL, &n);
    CHECK(n == 100);
    free(all);
    void **even = lp_map_values(m, s_is_even, NULL, &n);
    CHECK(n == 50);
    for (size_t i = 0; i < n; i++)
        CHECK(*(int *)even[i] % 2 == 0);
    free(even);
    int freed = 0;
    CHECK(lp_map_remove_if(m, s_is_even, &freed, s_count_free) == 50);
    CHECK(freed == 50 && lp_map_size(m) == 50);
    int two = 2, three = 3;
    CHECK(lp_map_get(m, &two, sizeof two) == NULL);
    CHECK(lp_map_get(m, &three, sizeof three) == &nums[3]);
    CHECK(lp_map_remove_if(m, NULL, NULL, NULL) == 50 && lp_map_size(m) == 0);
    free(lp_map_values(m, NULL, NULL, &n));
    CHECK(n == 0);
    lp_map_destroy(&m);
}

static void test_map_each(void)
{
    lp_map_t *m = lp_map_new();
    static int vals[100];
    char key[16];
    long expect = 0;
    for (int i = 0; i < 100; i++) {
        vals[i] = i + 1;
        expect += i + 1;
        int n = snprintf(key, sizeof key, "%d", i);
        lp_map_put(m, key, (size_t)n, &vals[i]);
    }
    each_acc_t acc = {0, 0, 0};
    lp_map_each(m, each_fn, &acc);
    CHECK(acc.count == 100);
    CHECK(acc.sum == expect);
    each_acc_t stop = {0, 0, 5};
    lp_map_each(m, each_fn, &stop);
    CHECK(stop.count == 5);
    lp_map_destroy(&m);
}

/* ---- lp_crypto ---- */

static void test_sha256(void)
{
    char hex[LP_SHA256_HEX_LEN];
    lp_sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    lp_sha256_hex("", 0, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(strlen(hex) == 64);
}

static void test_sha256_hex_equal(void)
{
    char h1[LP_SHA256_HEX_LEN], h2[LP_SHA256_HEX_LEN], h3[LP_SHA256_HEX_LEN];
    lp_sha256_hex("sk-abcdef", 9, h1);
    lp_sha256_hex("sk-abcdef", 9, h2);
    lp_sha256_hex("sk-abcdeg", 9, h3);
    CHECK(lp_sha256_hex_equal(h1, h2));
    CHECK(!lp_sha256_hex_equal(h1, h3));
}

static void test_base64url(void)
{
    char out[96];
    CHECK(lp_base64url("", 0, out, sizeof out) == 0);
    CHECK_STR(out, "");
    CHECK(lp_base64url("f", 1, out, sizeof out) == 2);
    CHECK_STR(out, "Zg");
    CHECK(lp_base64url("fo", 2, out, sizeof out) == 3);
    CHECK_STR(out, "Zm8");
    CHECK(lp_base64url("foo", 3, out, sizeof out) == 4);
    CHECK_STR(out, "Zm9v");
    CHECK(lp_base64url("foobar", 6, out, sizeof out) == 8);
    CHECK_STR(out, "Zm9vYmFy");
    /* standard base64 would be "+/8=": url-safe alphabet, no padding */
    const unsigned char b[] = {0xfb, 0xff};
    CHECK(lp_base64url(b, 2, out, sizeof out) == 3);
    CHECK_STR(out, "-_8");
    unsigned char all[48];
    for (size_t i = 0; i < sizeof all; i++)
        all[i] = (unsigned char)(i * 37 + 250);
    size_t n = lp_base64url(all, sizeof all, out, sizeof out);
    CHECK(n == 64);
    for (size_t i = 0; i < n; i++)
        CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", out[i]));
}

static void test_uuid_format(void)
{
    uint8_t zero[16] = {0};
    char out[LP_UUID_LEN];
    lp_uuid_format(zero, out);
    CHECK_STR(out, "00000000-0000-4000-8000-000000000000");
    uint8_t ones[16];
    memset(ones, 0xff, sizeof ones);
    lp_uuid_format(ones, out);
    CHECK_STR(out, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    for (int k = 0; k < 50; k++) {
        uint8_t r[16];
        CHECK(lp_random_bytes(r, sizeof r) == 0);
        lp_uuid_format(r, out);
        CHECK(strlen(out) == 36);
        CHECK(out[8] == '-' && out[13] == '-' && out[18] == '-' && out[23] == '-');
        CHECK(out[14] == '4');
        CHECK(strchr("89ab", out[19]) != NULL);
    }
}

static void test_random_bytes(void)
{
    uint8_t a[32] = {0}, b[32] = {0};
    CHECK(lp_random_bytes(a, sizeof a) == 0);
    CHECK(lp_random_bytes(b, sizeof b) == 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

/* ---- lp_util ---- */

static void test_parse_ll(void)
{
    long long v = -1;
    CHECK(lp_parse_ll("0", 0, 10, &v) == 0 && v == 0);
    CHECK(lp_parse_ll("10", 0, 10, &v) == 0 && v == 10);
    CHECK(lp_parse_ll("-5", -10, 10, &v) == 0 && v == -5);
    v = 77;
    CHECK(lp_parse_ll("11", 0, 10, &v) < 0);
    CHECK(lp_parse_ll("-1", 0, 10, &v) < 0);
    CHECK(lp_parse_ll("", 0, 10, &v) < 0);
    CHECK(lp_parse_ll(NULL, 0, 10, &v) < 0);
    CHECK(lp_parse_ll("12a", 0, 100, &v) < 0);
    CHECK(lp_parse_ll("1.5", 0, 100, &v) < 0);
    CHECK(lp_parse_ll("abc", 0, 100, &v) < 0);
    CHECK(lp_parse_ll("5 ", 0, 100, &v) < 0);
    CHECK(v == 77); /* failures leave *out alone */
    CHECK(lp_parse_ll("9223372036854775807", 0, INT64_MAX, &v) == 0 && v == INT64_MAX);
    CHECK(lp_parse_ll("9223372036854775808", 0, INT64_MAX, &v) < 0);
    CHECK(lp_parse_ll("-9223372036854775808", INT64_MIN, 0, &v) == 0 && v == INT64_MIN);
    CHECK(lp_parse_ll("-9223372036854775809", INT64_MIN, 0, &v) < 0);
    CHECK(lp_parse_ll("99999999999999999999999", INT64_MIN, INT64_MAX, &v) < 0);
}

static void test_parse_double(void)
{
    double d = -1;
    CHECK(lp_parse_double("1.5", &d) == 0 && d == 1.5);
    CHECK(lp_parse_double("-2", &d) == 0 && d == -2);
    CHECK(lp_parse_double("1e3", &d) == 0 && d == 1000);
    CHECK(lp_parse_double(".25", &d) == 0 && d == 0.25);
    d = 9;
    CHECK(lp_parse_double("", &d) < 0);
    CHECK(lp_parse_double(NULL, &d) < 0);
    CHECK(lp_parse_double("1.5x", &d) < 0);
    CHECK(lp_parse_double("abc", &d) < 0);
    CHECK(lp_parse_double("nan", &d) < 0);
    CHECK(lp_parse_double("inf", &d) < 0);
    CHECK(lp_parse_double("-infinity", &d) < 0);
    CHECK(lp_parse_double("1e999", &d) < 0);
    CHECK(d == 9);
}

static void test_strlcpy(void)
{
    char dst[4];
    CHECK(lp_strlcpy(dst, "hello", sizeof dst) == 5);
    CHECK_STR(dst, "hel");
    CHECK(lp_strlcpy(dst, "hi", sizeof dst) == 2);
    CHECK_STR(dst, "hi");
    CHECK(lp_strlcpy(dst, "abc", sizeof dst) == 3);
    CHECK_STR(dst, "abc");
    CHECK(lp_strlcpy(dst, "", sizeof dst) == 0);
    CHECK_STR(dst, "");
    dst[0] = 'Q';
    CHECK(lp_strlcpy(dst, "xyz", 0) == 3);
    CHECK(dst[0] == 'Q'); /* size 0 writes nothing */
    CHECK(lp_strlcpy(dst, "xyz", 1) == 3);
    CHECK(dst[0] == '\0');
}

static void test_str_helpers(void)
{
    CHECK(lp_str_prefix("openai/gpt", "openai/"));
    CHECK(lp_str_prefix("abc", ""));
    CHECK(!lp_str_prefix("ab", "abc"));
    CHECK(!lp_str_prefix("xabc", "abc"));
    char *s = lp_asprintf("%s=%d", "n", 5);
    CHECK_STR(s, "n=5");
    free(s);
    s = lp_strndup("abcdef", 3);
    CHECK_STR(s, "abc");
    free(s);
    s = lp_strndup("ab", 10);
    CHECK_STR(s, "ab");
    free(s);
    char err[LP_ERR_LEN] = "";
    CHECK(lp_err_set(err, "bad %s", "thing") == -1);
    CHECK_STR(err, "bad thing");
    CHECK(lp_err_set(NULL, "ignored") == -1);
    /* a long message is truncated, not overflowed */
    char longmsg[600];
    memset(longmsg, 'm', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    lp_err_set(err, "%s", longmsg);
    CHECK(strlen(err) == LP_ERR_LEN - 1);
}

/* ---- lp_opts ---- */

static lp_opt_t *make_opts(lp_opt_t *o)
{
    o[0] = (lp_opt_t){"port", "TEST_UTIL_PORT", "4000", "listen port", NULL};
    o[1] = (lp_opt_t){"config", NULL, NULL, "config path", NULL};
    o[2] = (lp_opt_t){"log-level", "TEST_UTIL_LOG", "info", "log level", NULL};
    return o;
}

static void test_opts_values(void)
{
    unsetenv("TEST_UTIL_PORT");
    unsetenv("TEST_UTIL_LOG");
    lp_opt_t o[3];
    char err[LP_ERR_LEN] = "";
    char *argv1[] = {"prog", "--config", "a.yaml", "--port=5000", NULL};
    CHECK(lp_opts_parse(4, argv1, "s", make_opts(o), 3, err) == 0);
    CHECK_STR(lp_opts_get(o, 3, "config"), "a.yaml");
    CHECK_STR(lp_opts_get(o, 3, "port"), "5000");
    CHECK_STR(lp_opts_get(o, 3, "log-level"), "info"); /* default */
    CHECK(lp_opts_get(o, 3, "nope") == NULL);
    /* no args: defaults, and NULL where there is none */
    char *argv2[] = {"prog", NULL};
    CHECK(lp_opts_parse(1, argv2, "s", make_opts(o), 3, err) == 0);
    CHECK_STR(lp_opts_get(o, 3, "port"), "4000");
    CHECK(lp_opts_get(o, 3, "config") == NULL);
    /* --name= gives an empty value */
    char *argv3[] = {"prog", "--config=", NULL};
    CHECK(lp_opts_parse(2, argv3, "s", make_opts(o), 3, err) == 0);
    CHECK_STR(lp_opts_get(o, 3, "config"), "");
    /* value containing '=' */
    char *argv4[] = {"prog", "--config=a=b", NULL};
    CHECK(lp_opts_parse(2, argv4, "s", make_opts(o), 3, err) == 0);
    CHECK_STR(lp_opts_get(o, 3, "config"), "a=b");
}

static void test_opts_env(void)
{
    lp_opt_t o[3];
    char err[LP_ERR_LEN] = "";
    setenv("TEST_UTIL_PORT", "6000", 1);
    setenv("TEST_UTIL_LOG", "", 1); /* empty env does not override the default */
    char *argv1[] = {"prog", NULL};
    CHECK(lp_opts_parse(1, argv1, "s", make_opts(o), 3, err) == 0);
    CHECK_STR(lp_opts_get(o, 3, "port"), "6000");
    CHECK_STR(lp_opts_get(o, 3, "log-level"), "info");
    /* the command line beats the environment */
    char *argv2[] = {"prog", "--port", "7000", NULL};
    CHECK(lp_opts_parse(3, argv2, "s", make_opts(o), 3, err) == 0);
    CHECK_STR(lp_opts_get(o, 3, "port"), "7000");
    unsetenv("TEST_UTIL_PORT");
    unsetenv("TEST_UTIL_LOG");
}

static void test_opts_errors(void)
{
    lp_opt_t o[3];
    char err[LP_ERR_LEN];
    err[0] = '\0';
    char *argv1[] = {"prog", "--bogus", "1", NULL};
    CHECK(lp_opts_parse(3, argv1, "s", make_opts(o), 3, err) == -1);
    CHECK(strstr(err, "--bogus") != NULL);
    err[0] = '\0';
    char *argv2[] = {"prog", "--port", NULL};
    CHECK(lp_opts_parse(2, argv2, "s", make_opts(o), 3, err) == -1);
    CHECK(strstr(err, "port") != NULL);
    err[0] = '\0';
    char *argv3[] = {"prog", "stray", NULL};
    CHECK(lp_opts_parse(2, argv3, "s", make_opts(o), 3, err) == -1);
    CHECK(strstr(err, "stray") != NULL);
    /* a prefix of an option name is not that option */
    err[0] = '\0';
    char *argv4[] = {"prog", "--por=1", NULL};
    CHECK(lp_opts_parse(2, argv4, "s", make_opts(o), 3, err) == -1);
    CHECK(err[0] != '\0');
}

static void test_opts_help(void)
{
    lp_opt_t o[3];
    char err[LP_ERR_LEN] = "";
    char *argv1[] = {"prog", "--port", "1", "--help", NULL};
    char *argv2[] = {"prog", "-h", NULL};
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    CHECK(saved >= 0);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0) {
        close(saved);
        CHECK(devnull >= 0);
    }
    dup2(devnull, STDOUT_FILENO);
    close(devnull);
    int rc1 = lp_opts_parse(4, argv1, "summary", make_opts(o), 3, err);
    int rc2 = lp_opts_parse(2, argv2, "summary", make_opts(o), 3, err);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    CHECK(rc1 == 1);
    CHECK(rc2 == 1);
}

/* ---- lp_provider ---- */

static void test_provider_for_model(void)
{
    const char *rest = NULL;
    const lp_provider_t *p = lp_provider_for_model("openai/gpt-4o", &rest);
    CHECK(p && strcmp(p->name, "openai") == 0);
    CHECK_STR(rest, "gpt-4o");
    p = lp_provider_for_model("groq/llama-3.1-8b-instant", &rest);
    CHECK(p && strcmp(p->name, "groq") == 0 && p->wire == LP_WIRE_OPENAI);
    CHECK_STR(rest, "llama-3.1-8b-instant");
    p = lp_provider_for_model("anthropic/claude-3-5-sonnet", &rest);
    CHECK(p && strcmp(p->name, "anthropic") == 0 && p->wire == LP_WIRE_ANTHROPIC);
    CHECK_STR(rest, "claude-3-5-sonnet");
    p = lp_provider_for_model("gemini/gemini-1.5-flash", &rest);
    CHECK(p && p->wire == LP_WIRE_GEMINI);
    CHECK_STR(rest, "gemini-1.5-flash");
    /* only the first slash separates the prefix */
    p = lp_provider_for_model("openrouter/meta-llama/llama-3", &rest);
    CHECK(p && strcmp(p->name, "openrouter") == 0);
    CHECK_STR(rest, "meta-llama/llama-3");
    /* bare names LiteLLM infers */
    p = lp_provider_for_model("gpt-4o", &rest);
    CHECK(p && strcmp(p->name, "openai") == 0);
    CHECK_STR(rest, "gpt-4o");
    p = lp_provider_for_model("text-embedding-3-small", &rest);
    CHECK(p && strcmp(p->name, "openai") == 0);
    p = lp_provider_for_model("o1-mini", &rest);
    CHECK(p && strcmp(p->name, "openai") == 0);
    p = lp_provider_for_model("claude-3-haiku", &rest);
    CHECK(p && strcmp(p->name, "anthropic") == 0);
    CHECK_STR(rest, "claude-3-haiku");
    /* unknown */
    CHECK(lp_provider_for_model("mystery/model", &rest) == NULL);
    CHECK(lp_provider_for_model("llama3", &rest) == NULL);
    CHECK(lp_provider_for_model("openai/", &rest) == NULL);
    CHECK(lp_provider_for_model("gpt-4o/extra", &rest) == NULL);
    CHECK(lp_provider_for_model("OpenAI/gpt-4o", &rest) == NULL);
    CHECK(lp_provider_for_model("", &rest) == NULL);
    /* by name */
    CHECK(lp_provider_by_name("voyage") && lp_provider_by_name("voyage")->wire == LP_WIRE_VOYAGE);
    CHECK(lp_provider_by_name("huggingface") &&
          lp_provider_by_name("huggingface")->default_base == NULL);
    CHECK(lp_provider_by_name("nope") == NULL);
    CHECK(strstr(lp_provider_names(), "anthropic/") != NULL);
}

static void test_iso8601(void)
{
    char buf[LP_ISO_LEN];
    lp_iso8601(0, buf, sizeof buf);
    CHECK_STR(buf, "1970-01-01T00:00:00.000Z");
    lp_iso8601(1700000000123456789LL, buf, sizeof buf);
    CHECK_STR(buf, "2023-11-14T22:13:20.123Z");
    lp_iso8601(1700000000999000000LL, buf, sizeof buf); /* the same second again */
    CHECK_STR(buf, "2023-11-14T22:13:20.999Z");
    lp_iso8601(1700000001000000000LL, buf, sizeof buf);
    CHECK_STR(buf, "2023-11-14T22:13:21.000Z");
    lp_iso8601(951782400000000000LL, buf, sizeof buf); /* a leap day */
    CHECK_STR(buf, "2000-02-29T00:00:00.000Z");
}

int main(void)
{
    RUN(test_buf_append_puts);
    RUN(test_buf_grow_large);
    RUN(test_buf_printf);
    RUN(test_buf_consume);
    RUN(test_buf_reset);
    RUN(test_buf_steal);
    RUN(test_buf_steal_empty);
    RUN(test_map_basic);
    RUN(test_map_key_copied);
    RUN(test_map_grow);
    RUN(test_map_each);
    RUN(test_map_values_and_remove_if);
    RUN(test_sha256);
    RUN(test_sha256_hex_equal);
    RUN(test_base64url);
    RUN(test_uuid_format);
    RUN(test_random_bytes);
    RUN(test_parse_ll);
    RUN(test_parse_double);
    RUN(test_strlcpy);
    RUN(test_str_helpers);
    RUN(test_opts_values);
    RUN(test_opts_env);
    RUN(test_opts_errors);
    RUN(test_opts_help);
    RUN(test_iso8601);
    RUN(test_provider_for_model);
    return th_report();
}
