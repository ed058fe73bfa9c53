/* lp_json: small jansson helpers and the OpenAI error body every daemon answers with,
 *   {"error":{"message":..., "type":..., "param":..., "code":...}}
 * `code` is OpenAI's machine code where one exists (invalid_api_key, model_not_found,
 * context_length_exceeded, ...) and otherwise the HTTP status as a string, as LiteLLM sends. */
#ifndef LP_JSON_H
#define LP_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lp_buf.h"
#include "lp_util.h"

/* Deepest JSON nesting accepted from outside (clients, providers): bounds parser recursion. */
#define LP_JSON_MAX_DEPTH 64

/* String member or NULL when absent or not a string. Borrowed. */
const char *lp_json_str(const json_t *obj, const char *key);
/* Boolean member; def when absent or not a boolean. */
bool lp_json_bool(const json_t *obj, const char *key, bool def);
/* Integer member; def when absent or not an integer. */
long long lp_json_int(const json_t *obj, const char *key, long long def);
/* A token count from a provider: the integer at key within [0, LP_TOKENS_MAX] (a negative or
 * absurd count cannot lower spend or overflow a sum), def when absent or not an integer. */
#define LP_TOKENS_MAX 1000000000000LL
long long lp_json_tokens(const json_t *obj, const char *key, long long def);
/* Number (integer or real) member; def when absent. */
double lp_json_num(const json_t *obj, const char *key, double def);

/* True when p[len] is well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF); otherwise the offset of the first bad byte goes to *bad_at (may be NULL). */
bool lp_utf8_valid(const char *p, size_t len, size_t *bad_at);
/* Make p[len] UTF-8 in place: each byte of a broken sequence becomes '?' (the well-formed
 * ones stay). */
void lp_utf8_scrub(char *p, size_t len);
/* A JSON string for any C string: invalid UTF-8 bytes become '?' instead of failing. */
json_t *lp_json_text(const char *s);
/* Parse bytes that must be one JSON value no deeper than LP_JSON_MAX_DEPTH. Rejects invalid
 * UTF-8, NUL in strings and duplicate object keys. NULL with a reason in err (LP_ERR_LEN). */
json_t *lp_json_parse(const char *data, size_t len, char *err);
/* Compact serialisation into a new string (caller frees); length in *len when not NULL. */
char *lp_json_dump(const json_t *value, size_t *len);
/* The same, appended to out. */
void lp_json_dump_to(lp_buf_t *out, const json_t *value);

/* The error "type" OpenAI uses for an HTTP status. */
const char *lp_error_type(int status);
/* A new error body (caller frees). type NULL = from status; code NULL = status as string;
 * param may be NULL. The message is the caller's text; it must never carry a secret. */
char *lp_error_body(int status, const char *type, const char *code, const char *param,
                    const char *message, size_t *len);
/* Anthropic's error type for an HTTP status (invalid_request_error, authentication_error,
 * rate_limit_error, overloaded_error, api_error, ...). */
const char *lp_anthropic_error_type(int status);
/* Anthropic's error body {"type":"error","error":{"type","message"}} (malloc'd). */
char *lp_anthropic_error_body(int status, const char *message, size_t *len);

#endif
