/* lp_time: the one place where clocks are read and time units converted. Monotonic time
 * drives timers and latencies; wall time only stamps records and log lines. */
#ifndef LP_TIME_H
#define LP_TIME_H

#include <stddef.h>
#include <stdint.h>

#define LP_NS_PER_US 1000LL
#define LP_NS_PER_MS 1000000LL
#define LP_NS_PER_S  1000000000LL
/* Length of an ISO-8601 UTC stamp with milliseconds, "2025-01-01T00:00:00.123Z" + NUL. */
#define LP_ISO_LEN 32

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
int64_t lp_mono_ns(void);
/* Monotonic clock in milliseconds. */
int64_t lp_mono_ms(void);
/* Wall clock in nanoseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t lp_wall_ns(void);
/* Format wall-clock nanoseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf[LP_ISO_LEN]. */
void lp_iso8601(int64_t wall_ns, char *buf, size_t size);

#endif
