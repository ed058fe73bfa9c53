/* lp_log: one line per event on stderr,
 *   2025-01-01T00:00:00.123Z W gateway[42] gw_http: message key=val
 * The level is checked before the arguments are evaluated. Only daemons log; common/ and
 * proto/ return errors instead. Signal handlers never log. */
#ifndef LP_LOG_H
#define LP_LOG_H

#include <stdbool.h>

#include "lp_util.h"

typedef enum { LP_LOG_ERROR = 0, LP_LOG_WARN, LP_LOG_INFO, LP_LOG_DEBUG } lp_log_level_t;

/* Level below which lines are dropped; read by the macros, set by lp_log_init/set_level. */
extern lp_log_level_t lp_log_level;

/* Name the daemon for every line (e.g. "gateway"); level from --log-level/LITELLM_LOG. */
void lp_log_init(const char *daemon, lp_log_level_t level);
/* Parse "error|warn|warning|info|debug" (any case); -1 if unknown. */
LP_MUSTCHECK int lp_log_parse_level(const char *s, lp_log_level_t *out);
/* Change the level at run time. */
void lp_log_set_level(lp_log_level_t level);
/* Write one line; use the macros below instead. req_id may be NULL. */
void lp_log_write(lp_log_level_t level, const char *module, const char *req_id, bool with_errno,
                  const char *fmt, ...) LP_PRINTF(5, 6);

#ifndef LP_LOG_MODULE
#define LP_LOG_MODULE "-"
#endif

#define LP_LOG_AT(lvl, req, errn, ...)                                                             \
    do {                                                                                           \
        if ((lvl) <= lp_log_level)                                                                 \
            lp_log_write((lvl), LP_LOG_MODULE, (req), (errn), __VA_ARGS__);                        \
    } while (0)

#define log_error(...) LP_LOG_AT(LP_LOG_ERROR, NULL, false, __VA_ARGS__)
#define log_warn(...)  LP_LOG_AT(LP_LOG_WARN, NULL, false, __VA_ARGS__)
#define log_info(...)  LP_LOG_AT(LP_LOG_INFO, NULL, false, __VA_ARGS__)
#define log_debug(...) LP_LOG_AT(LP_LOG_DEBUG, NULL, false, __VA_ARGS__)
/* As log_error/log_warn, with ": strerror(errno)" appended. */
#define log_errno(...)      LP_LOG_AT(LP_LOG_ERROR, NULL, true, __VA_ARGS__)
#define log_warn_errno(...) LP_LOG_AT(LP_LOG_WARN, NULL, true, __VA_ARGS__)
/* Request-scoped lines carry "req=<id>" so one request can be followed across daemons. */
#define rlog_error(id, ...) LP_LOG_AT(LP_LOG_ERROR, (id), false, __VA_ARGS__)
#define rlog_warn(id, ...)  LP_LOG_AT(LP_LOG_WARN, (id), false, __VA_ARGS__)
#define rlog_info(id, ...)  LP_LOG_AT(LP_LOG_INFO, (id), false, __VA_ARGS__)
#define rlog_debug(id, ...) LP_LOG_AT(LP_LOG_DEBUG, (id), false, __VA_ARGS__)

/* Log an error and exit(1); for start-up failures only. */
LP_NORETURN void lp_die(const char *fmt, ...) LP_PRINTF(1, 2);

#endif
