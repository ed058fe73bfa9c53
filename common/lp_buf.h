/* lp_buf: a growable byte buffer, always NUL-terminated so text can be read in place.
 * Embedded by value in owners (no separate allocation for the header). */
#ifndef LP_BUF_H
#define LP_BUF_H

#include <stddef.h>

#include "lp_util.h"

typedef struct {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
} lp_buf_t;

/* Free the storage and reset to empty; safe on a zeroed buffer. */
void lp_buf_free(lp_buf_t *b);
/* Drop the contents, keep the storage. */
void lp_buf_reset(lp_buf_t *b);
/* Make room for n more bytes. */
void lp_buf_reserve(lp_buf_t *b, size_t n);
/* Append bytes / a C string / formatted text. */
void lp_buf_append(lp_buf_t *b, const void *data, size_t n);
void lp_buf_puts(lp_buf_t *b, const char *s);
void lp_buf_printf(lp_buf_t *b, const char *fmt, ...) LP_PRINTF(2, 3);
/* Remove the first n bytes (n <= len). */
void lp_buf_consume(lp_buf_t *b, size_t n);
/* Hand the storage to the caller (who frees it); the buffer becomes empty. */
char *lp_buf_steal(lp_buf_t *b, size_t *len);

#endif
