/* lg_summary: the operator's periodic summary, one line per model group every interval:
 * requests, errors, p50/p99 latency, p50 time to first token (streams), tokens in/out and
 * spend, in the same text or JSON form as the per-request lines. */
#ifndef LG_SUMMARY_H
#define LG_SUMMARY_H

#include <jansson.h>
#include <stdbool.h>

#include "lg_line.h"
#include "lp_buf.h"
#include "lp_msg.h"

/* Latency samples kept per group per interval (a uniform reservoir beyond). */
#define LG_SUMMARY_SAMPLES 4096

typedef struct lg_summary lg_summary_t;

lg_summary_t *lg_summary_new(void);
void lg_summary_destroy(lg_summary_t **self_p);
/* Count one usage record. */
void lg_summary_add(lg_summary_t *self, const lp_mview_t *record);
/* Append the lines of the interval that ends now (nothing when there was no traffic) and
 * start a new interval. */
void lg_summary_flush(lg_summary_t *self, double interval_s, lg_format_t format, lp_buf_t *out);

#endif
