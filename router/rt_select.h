/* rt_select: which deployment of a model group serves the next attempt of a job.
 * simple-shuffle as LiteLLM does it: a random pick weighted by litellm_params.weight when any
 * deployment of the group has one, else by rpm, else by tpm, else uniform. Deployments this
 * job already tried are avoided while others remain. */
#ifndef RT_SELECT_H
#define RT_SELECT_H

#include <stddef.h>
#include <stdint.h>

#include "lp_cfg.h"

/* Index into cfg->deployments, or -1 when the group has no deployment. tried lists indexes
 * already attempted by this job. rng is the caller's PRNG state (never 0). */
int rt_select(const lp_cfg_t *cfg, const char *group, const int *tried, size_t ntried,
              uint64_t *rng);
/* Next value of the xorshift64* generator in *state; uniform in [0, 1). */
double rt_random(uint64_t *state);

#endif
