/* wk_price: what a call costs. Prices come from the deployment (input_cost_per_token /
 * output_cost_per_token in litellm_params or model_info), else from the price table
 * (configs/model_prices.json, LiteLLM's model_prices_and_context_window.json format, looked
 * up as "provider/model" then "model"). A deployment with neither costs zero and is named in
 * one warning. */
#ifndef WK_PRICE_H
#define WK_PRICE_H

#include <jansson.h>
#include <stdbool.h>

#include "lp_cfg.h"

typedef struct wk_prices wk_prices_t;

/* Load the table at path; an unreadable or invalid file is reported in err and gives an empty
 * table (the proxy still runs; costs are then zero unless deployments set them). */
wk_prices_t *wk_prices_load(const char *path, char *err);
/* Free; NULL-safe, nulls the pointer. */
void wk_prices_destroy(wk_prices_t **self_p);
/* Cost in USD of prompt/completion tokens on deployment d. *known is false when no price was
 * found (the first time for each deployment, the caller warns). */
double wk_price_cost(wk_prices_t *self, const lp_deployment_t *d, long long prompt,
                     long long completion, bool *known, bool *first_miss);
/* Models in the table. */
size_t wk_prices_size(const wk_prices_t *self);

#endif
