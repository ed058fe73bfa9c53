#include "lp_time.h"

#include <stdio.h>
#include <time.h>

static int64_t s_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * LP_NS_PER_S + ts.tv_nsec;
}

int64_t lp_mono_ns(void)
{
    return s_clock_ns(CLOCK_MONOTONIC);
}

int64_t lp_mono_ms(void)
{
    return lp_mono_ns() / LP_NS_PER_MS;
}

int64_t lp_wall_ns(void)
{
    return s_clock_ns(CLOCK_REALTIME);
}

void lp_iso8601(int64_t wall_ns, char *buf, size_t size)
{
    /* Stamps come in runs within one second (three per usage record, one per log line):
     * the date and time of the last second are kept, per thread. */
    static _Thread_local time_t last = -1;
    static _Thread_local char head[80]; /* 19 bytes in practice */
    time_t secs = (time_t)(wall_ns / LP_NS_PER_S);
    int ms = (int)((wall_ns % LP_NS_PER_S) / LP_NS_PER_MS);
    if (secs != last) {
        struct tm tm;
        gmtime_r(&secs, &tm);
        snprintf(head, sizeof head, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        last = secs;
    }
    snprintf(buf, size, "%s.%03dZ", head, ms);
}
