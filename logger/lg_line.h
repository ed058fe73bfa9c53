/* lg_line: the operator's view, one line per request on stdout, readable and greppable
 *   2025-01-01T00:00:00.123Z 200 gpt-4o -> openai/gpt-4o-mini 412.3ms in=12 out=34
 *     $0.00012 key=1a2b3c4d try=1 req=<uuid>
 * (on one line), coloured by status when stdout is a terminal; or the record itself as one
 * JSON object per line for log shippers. */
#ifndef LG_LINE_H
#define LG_LINE_H

#include <stdbool.h>

#include "lp_buf.h"
#include "lp_msg.h"

typedef enum { LG_FORMAT_TEXT, LG_FORMAT_JSON } lg_format_t;

/* Append the line for record to out (with the newline). colour: ANSI colours by status.
 * In the JSON form the line is json, the record as JSON text (without its newline). */
void lg_line_format(const lp_mview_t *record, const char *json, lg_format_t format, bool colour,
                    lp_buf_t *out);

#endif
