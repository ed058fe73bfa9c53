/* lp_util: allocation that aborts on OOM, assertions for programmer errors, and the few
 * string helpers every module needs. No state. */
#ifndef LP_UTIL_H
#define LP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Length of the error buffers that common/ and proto/ fill instead of logging. */
#define LP_ERR_LEN 256

#define LP_MUSTCHECK    __attribute__((warn_unused_result))
#define LP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define LP_NORETURN     __attribute__((noreturn))
#define LP_UNUSED(x)    ((void)(x))
#define LP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LP_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define LP_MAX(a, b)    ((a) > (b) ? (a) : (b))
/* A macro's value as a string literal (LP_STR(10000) is "10000"). */
#define LP_STR_(x) #x
#define LP_STR(x)  LP_STR_(x)

/* Always-on assertion for programmer errors only; never for wire, config or HTTP data. */
#define lp_assert(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            lp_assert_fail(#cond, __FILE__, __LINE__);                                             \
    } while (0)

/* Print the failed assertion and abort. */
LP_NORETURN void lp_assert_fail(const char *expr, const char *file, int line);

/* Allocators: never return NULL; out of memory aborts the process (as zmalloc does). */
void *lp_malloc(size_t size);
void *lp_calloc(size_t n, size_t size);
void *lp_realloc(void *p, size_t size);
char *lp_strdup(const char *s);
char *lp_strndup(const char *s, size_t n);
/* Wipe a secret string (a key, a URL with a password), then free it; NULL-safe. */
void lp_free_secret(char *s);
/* printf into a new string the caller frees. */
char *lp_asprintf(const char *fmt, ...) LP_PRINTF(1, 2);

/* Copy src into dst[size], always NUL-terminated; returns strlen(src) (truncated if >= size). */
size_t lp_strlcpy(char *dst, const char *src, size_t size);
/* snprintf into err[LP_ERR_LEN] when err is not NULL; returns -1 so callers can `return`. */
int lp_err_set(char *err, const char *fmt, ...) LP_PRINTF(2, 3);

/* True when s starts with prefix. */
bool lp_str_prefix(const char *s, const char *prefix);
/* Parse a whole decimal string into a long long in [min,max]; 0 on success, -1 otherwise. */
LP_MUSTCHECK int lp_parse_ll(const char *s, long long min, long long max, long long *out);
/* Parse a whole decimal/float string; 0 on success, -1 otherwise. */
LP_MUSTCHECK int lp_parse_double(const char *s, double *out);

#endif
