#include "lp_buf.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lp_buf_free(lp_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void lp_buf_reset(lp_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void lp_buf_reserve(lp_buf_t *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    bool fresh = b->data == NULL;
    b->data = lp_realloc(b->data, cap);
    b->cap = cap;
    if (fresh)
        b->data[0] = '\0';
}

void lp_buf_append(lp_buf_t *b, const void *data, size_t n)
{
    lp_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void lp_buf_puts(lp_buf_t *b, const char *s)
{
    lp_buf_append(b, s, strlen(s));
}

void lp_buf_printf(lp_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    lp_assert(n >= 0);
    lp_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void lp_buf_consume(lp_buf_t *b, size_t n)
{
    lp_assert(n <= b->len);
    if (n == 0)
        return;
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *lp_buf_steal(lp_buf_t *b, size_t *len)
{
    if (!b->data)
        lp_buf_reserve(b, 0);
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
