#include "rt_select.h"

#include <stdbool.h>
#include <string.h>

double rt_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static bool s_tried(const int *tried, size_t n, int idx)
{
    for (size_t i = 0; i < n; i++) {
        if (tried[i] == idx)
            return true;
    }
    return false;
}

typedef enum { W_WEIGHT, W_RPM, W_TPM, W_UNIFORM } s_basis_t;

static double s_weight(const lp_deployment_t *d, s_basis_t basis)
{
    switch (basis) {
    case W_WEIGHT:
        return d->weight;
    case W_RPM:
        return (double)d->rpm;
    case W_TPM:
        return (double)d->tpm;
    default:
        return 1;
    }
}

int rt_select(const lp_cfg_t *cfg, const char *group, const int *tried, size_t ntried,
              uint64_t *rng)
{
    /* Two passes over the group: the untried deployments, or all of them if none is left. */
    for (int pass = 0; pass < 2; pass++) {
        bool any = false, has[3] = {false, false, false};
        for (size_t i = 0; i < cfg->ndeployments; i++) {
            const lp_deployment_t *d = &cfg->deployments[i];
            if (strcmp(d->model_name, group) != 0 || (pass == 0 && s_tried(tried, ntried, (int)i)))
                continue;
            any = true;
            has[W_WEIGHT] |= d->weight > 0;
            has[W_RPM] |= d->rpm > 0;
            has[W_TPM] |= d->tpm > 0;
        }
        if (!any)
            continue;
        s_basis_t basis = has[W_WEIGHT] ? W_WEIGHT
                          : has[W_RPM]  ? W_RPM
                          : has[W_TPM]  ? W_TPM
                                        : W_UNIFORM;
        double total = 0;
        for (size_t i = 0; i < cfg->ndeployments; i++) {
            const lp_deployment_t *d = &cfg->deployments[i];
            if (strcmp(d->model_name, group) == 0 && !(pass == 0 && s_tried(tried, ntried, (int)i)))
                total += s_weight(d, basis);
        }
        double r = rt_random(rng) * total;
        int last = -1;
        for (size_t i = 0; i < cfg->ndeployments; i++) {
            const lp_deployment_t *d = &cfg->deployments[i];
            if (strcmp(d->model_name, group) != 0 || (pass == 0 && s_tried(tried, ntried, (int)i)))
                continue;
            double w = s_weight(d, basis);
            if (w <= 0)
                continue;
            last = (int)i;
            if (r < w)
                return (int)i;
            r -= w;
        }
        return last; /* rounding at the top end */
    }
    return -1;
}
