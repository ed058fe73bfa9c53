/* harness.h: the unit-test harness. Each test is a void function; CHECK stops it at the
 * first failure. Every test prints one line, "PASS <file>:<test>" or
 * "FAIL <file>:<test>: <file>:<line>: <condition>", which tests/run.sh counts; main returns
 * non-zero when any test failed.
 *
 *   static void test_round_trip(void) { CHECK(1 + 1 == 2); }
 *   int main(void) { RUN(test_round_trip); return th_report(); }
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdio.h>
#include <string.h>

static int th_failed_now, th_passed, th_failed;
static char th_reason[512];

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(th_reason, sizeof th_reason, "%s:%d: %s", __FILE__, __LINE__, #cond);         \
            th_failed_now = 1;                                                                     \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* CHECK with the two strings shown on failure. */
#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *th_a = (a), *th_b = (b);                                                       \
        if (!th_a || !th_b || strcmp(th_a, th_b) != 0) {                                           \
            snprintf(th_reason, sizeof th_reason, "%s:%d: '%s' != '%s'", __FILE__, __LINE__,       \
                     th_a ? th_a : "(null)", th_b ? th_b : "(null)");                              \
            th_failed_now = 1;                                                                     \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* CHECK with a reason (a string) shown on failure. */
#define CHECK_WHY(cond, msg)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(th_reason, sizeof th_reason, "%s:%d: %s (%s)", __FILE__, __LINE__, #cond,     \
                     (msg));                                                                       \
            th_failed_now = 1;                                                                     \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        th_failed_now = 0;                                                                         \
        fn();                                                                                      \
        if (th_failed_now) {                                                                       \
            th_failed++;                                                                           \
            printf("FAIL %s:%s: %s\n", __FILE__, #fn, th_reason);                                  \
        } else {                                                                                   \
            th_passed++;                                                                           \
            printf("PASS %s:%s\n", __FILE__, #fn);                                                 \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

static inline int th_report(void)
{
    return th_failed ? 1 : 0;
}

#endif
