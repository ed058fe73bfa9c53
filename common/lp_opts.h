/* lp_opts: command-line options of the daemons. Every option takes a value, may fall back
 * to an environment variable and then to a default, and is listed by --help, so the four
 * daemons document themselves the same way. */
#ifndef LP_OPTS_H
#define LP_OPTS_H

#include <stddef.h>

#include "lp_util.h"

typedef struct {
    const char *name;  /* long option without the dashes */
    const char *env;   /* environment fallback, or NULL */
    const char *def;   /* default, or NULL */
    const char *help;  /* one line for --help */
    const char *value; /* out: the chosen value (borrowed from argv, environ or def) */
} lp_opt_t;

/* Parse argv. Returns 0 when ready, 1 when --help was printed (exit 0), -1 with a message in
 * err on a bad option (exit 2). */
LP_MUSTCHECK int lp_opts_parse(int argc, char **argv, const char *summary, lp_opt_t *opts,
                               size_t nopts, char *err);
/* The value of option name (NULL when unset or unknown). */
const char *lp_opts_get(const lp_opt_t *opts, size_t nopts, const char *name);

#endif
