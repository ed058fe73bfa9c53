#include "lp_util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void lp_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "assertion failed: %s at %s:%d\n", expr, file, line);
    abort();
}

/* Out of memory cannot be handled meaningfully mid-request; say so and abort. */
LP_NORETURN static void s_oom(size_t size)
{
    char msg[96];
    int n = snprintf(msg, sizeof msg, "out of memory allocating %zu bytes\n", size);
    if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
        abort();
    abort();
}

void *lp_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        s_oom(size);
    return p;
}

void *lp_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        s_oom(n * size);
    return p;
}

void *lp_realloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (!q)
        s_oom(size);
    return q;
}

void lp_free_secret(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

char *lp_strdup(const char *s)
{
    return lp_strndup(s, strlen(s));
}

char *lp_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = lp_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *lp_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    lp_assert(n >= 0);
    char *p = lp_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

size_t lp_strlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);
    if (size > 0) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

int lp_err_set(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, LP_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

bool lp_str_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* strtoll/strtod accept leading blanks and '+': a whole number here starts with a digit or
 * a minus sign. */
static bool s_number_start(const char *s)
{
    return s && (isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '.');
}

int lp_parse_ll(const char *s, long long min, long long max, long long *out)
{
    if (!s_number_start(s))
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int lp_parse_double(const char *s, double *out)
{
    if (!s_number_start(s))
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}
