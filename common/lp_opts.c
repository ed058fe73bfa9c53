#include "lp_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_usage(const char *prog, const char *summary, const lp_opt_t *opts, size_t n)
{
    printf("usage: %s [options]\n%s\n\noptions:\n", prog, summary);
    for (size_t i = 0; i < n; i++) {
        printf("  --%-20s %s", opts[i].name, opts[i].help);
        if (opts[i].env)
            printf(" [env %s]", opts[i].env);
        if (opts[i].def)
            printf(" (default %s)", opts[i].def);
        printf("\n");
    }
    printf("  --%-20s %s\n", "help", "show this help");
}

static lp_opt_t *s_find(lp_opt_t *opts, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    }
    return NULL;
}

int lp_opts_parse(int argc, char **argv, const char *summary, lp_opt_t *opts, size_t nopts,
                  char *err)
{
    for (size_t i = 0; i < nopts; i++) {
        const char *env = opts[i].env ? getenv(opts[i].env) : NULL;
        opts[i].value = env && *env ? env : opts[i].def;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            s_usage(argv[0], summary, opts, nopts);
            return 1;
        }
        if (!lp_str_prefix(arg, "--"))
            return lp_err_set(err, "unexpected argument '%.60s' (see --help)", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        lp_opt_t *o = s_find(opts, nopts, name, len);
        if (!o)
            return lp_err_set(err, "unknown option '%.60s' (see --help)", arg);
        if (eq) {
            o->value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return lp_err_set(err, "option --%s needs a value", o->name);
            o->value = argv[++i];
        }
    }
    return 0;
}

const char *lp_opts_get(const lp_opt_t *opts, size_t nopts, const char *name)
{
    for (size_t i = 0; i < nopts; i++) {
        if (strcmp(opts[i].name, name) == 0)
            return opts[i].value;
    }
    return NULL;
}
