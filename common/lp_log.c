#include "lp_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include "lp_time.h"

lp_log_level_t lp_log_level = LP_LOG_INFO;

/* Daemon name and pid for the line prefix: written once at start-up, then read-only. */
static char s_daemon[32] = "llm-proxy";
static int s_pid;

void lp_log_init(const char *daemon, lp_log_level_t level)
{
    lp_strlcpy(s_daemon, daemon, sizeof s_daemon);
    s_pid = (int)getpid();
    lp_log_level = level;
}

int lp_log_parse_level(const char *s, lp_log_level_t *out)
{
    static const struct {
        const char *name;
        lp_log_level_t level;
    } names[] = {{"error", LP_LOG_ERROR}, {"warn", LP_LOG_WARN},   {"warning", LP_LOG_WARN},
                 {"info", LP_LOG_INFO},   {"debug", LP_LOG_DEBUG}, {"critical", LP_LOG_ERROR}};
    for (size_t i = 0; s && i < LP_ARRAY_LEN(names); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

void lp_log_set_level(lp_log_level_t level)
{
    lp_log_level = level;
}

void lp_log_write(lp_log_level_t level, const char *module, const char *req_id, bool with_errno,
                  const char *fmt, ...)
{
    int saved = errno;
    static const char letters[] = "EWID";
    char stamp[LP_ISO_LEN];
    char line[2048];
    lp_iso8601(lp_wall_ns(), stamp, sizeof stamp);
    int n = snprintf(line, sizeof line, "%s %c %s[%d] %s: ", stamp, letters[level], s_daemon,
                     s_pid ? s_pid : (int)getpid(), module);
    if (req_id && n >= 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, "req=%s ", req_id);
    if (n >= 0 && (size_t)n < sizeof line) {
        va_list ap;
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
    }
    if (with_errno && n >= 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, ": %s", strerror(saved));
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    /* Control characters from outside data never reach the operator's terminal raw. */
    for (int i = 0; i < n; i++) {
        if ((unsigned char)line[i] < 0x20)
            line[i] = '?';
    }
    line[n++] = '\n';
    /* One write per line keeps lines whole when several daemons share a terminal. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
    errno = saved;
}

void lp_die(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lp_log_write(LP_LOG_ERROR, "main", NULL, false, "%s", msg);
    exit(1);
}
