/* lp_jscan: read a JSON text in one validating pass without building it (yajl's event
 * parser), reporting every value with its path and its byte span in the text.
 *
 * It serves the answers the proxy relays nearly untouched. An OpenAI-compatible provider's
 * completion or stream chunk is read for a few fields (usage, finish reasons, the id), two
 * spans are changed (`model` restamped, `usage` dropped) and every other byte goes to the
 * client as the provider wrote it; an Anthropic answer or event on the /v1/messages
 * passthrough is read for its type and usage and relayed whole. With jansson the same work was a
 * tree of allocations, a hash per key and a full re-serialisation: about five times the
 * instructions. jansson stays the library for every document the proxy builds or translates.
 *
 * The text must be one value no deeper than LP_JSON_MAX_DEPTH, in valid UTF-8, without
 * unpaired surrogate escapes; a string may hold any other escaped character (\u0000
 * included), and repeated keys are passed to the callback like any other (a caller that
 * cares rejects them). */
#ifndef LP_JSCAN_H
#define LP_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "lp_buf.h"

typedef enum {
    LP_JSCAN_NULL,
    LP_JSCAN_BOOL,
    LP_JSCAN_NUMBER,
    LP_JSCAN_STRING,
    LP_JSCAN_OBJECT, /* a container opens */
    LP_JSCAN_ARRAY,
    LP_JSCAN_CLOSE /* the container opened last closes */
} lp_jscan_kind_t;

/* Levels whose keys are kept for lp_jscan_at; deeper values are still checked. */
#define LP_JSCAN_PATH 8
/* Bytes of a key kept per level; a key this long or longer matches no path but '*'. */
#define LP_JSCAN_KEY 48

typedef struct lp_jscan lp_jscan_t;

/* Called for every value, in text order. text/len: a string's decoded bytes, a number's or
 * a boolean's text as written; NULL for the others. Return false to stop the scan, with the
 * reason given to lp_jscan_stop. */
typedef bool(lp_jscan_fn)(lp_jscan_t *s, lp_jscan_kind_t kind, const char *text, size_t len,
                          void *arg);

/* Scan data[len]. 0 when it is one valid JSON value and fn never stopped it; otherwise -1
 * with the reason in err (LP_ERR_LEN). */
int lp_jscan_run(const char *data, size_t len, lp_jscan_fn *fn, void *arg, char *err);

/* ---- within the callback ---- */

/* Stop the scan: fn returns this (false), and lp_jscan_run fails with the message. */
bool lp_jscan_stop(lp_jscan_t *s, const char *fmt, ...) LP_PRINTF(2, 3);
/* 0 for the top-level value, 1 for its members or elements, and so on. */
int lp_jscan_depth(const lp_jscan_t *s);
/* True when the current value sits at path: keys separated by '.', '*' for any key or
 * array element ("usage.prompt_tokens", "choices.*.delta.content"); "" is the top level. */
bool lp_jscan_at(const lp_jscan_t *s, const char *path);
/* The current value's key, when it is a member of an object within LP_JSCAN_PATH levels
 * (at a container's CLOSE: the container's key); NULL for an array element, the top level
 * or a key of LP_JSCAN_KEY bytes or more. */
const char *lp_jscan_key(const lp_jscan_t *s, size_t *len);
/* True when the current value's key is name (the cheap test for a known depth). */
bool lp_jscan_key_is(const lp_jscan_t *s, const char *name);
/* Offset of the current value's first byte (at CLOSE: of the container's opening bracket). */
size_t lp_jscan_start(const lp_jscan_t *s);
/* Offset just past the current value (a container's end is known only at its CLOSE). */
size_t lp_jscan_end(const lp_jscan_t *s);
/* The span to cut to remove the current object member, its key and one separating comma
 * included, so that the rest stays valid JSON. Only for a member's last event (a scalar or
 * the CLOSE of a container), of an object within LP_JSCAN_PATH levels (lp_jscan_at with a
 * key path says so); anything else is a programmer error (assert). */
void lp_jscan_member_span(const lp_jscan_t *s, size_t *from, size_t *to);

/* A token count from a number's text: an integer, clamped into [0, LP_TOKENS_MAX] as
 * lp_json_tokens does; def when the number is not an integer. */
long long lp_jscan_count(const char *text, size_t len, long long def);
/* An integer from a number's text into *out; false when it is not one or does not fit. */
bool lp_jscan_int(const char *text, size_t len, long long *out);

/* How many JSON blanks (space, tab, CR, LF) p[len] starts with. */
size_t lp_jscan_blanks(const char *p, size_t len);

/* ---- splicing ---- */

/* Replace text[from, to) with with[with_len] (from == to inserts). */
typedef struct {
    size_t from, to;
    const char *with;
    size_t with_len;
} lp_jscan_edit_t;

/* Append text[len] with the edits applied to out. Edits are sorted by from and do not
 * overlap; an insertion at an offset comes before a cut starting there. */
void lp_jscan_splice(lp_buf_t *out, const char *text, size_t len, const lp_jscan_edit_t *edits,
                     size_t n);

#endif
