/* lp_price: what a call costs. Prices come from the deployment (input_cost_per_token /
 * output_cost_per_token in litellm_params or model_info), else from the price table
 * (configs/model_prices.json, LiteLLM's model_prices_and_context_window.json format, looked
 * up as "provider/model" then "model"). A deployment with neither costs zero and is named in
 * one warning. */
#ifndef LP_PRICE_H
#define LP_PRICE_H

#include <jansson.h>
#include <stdbool.h>

#include "lp_cfg.h"

/* Where the daemons look for the table unless told (--prices, LP_MODEL_PRICES). */
#define LP_DEFAULT_PRICES "configs/model_prices.json"

typedef struct lp_prices lp_prices_t;

/* Load the table at path; an unreadable or invalid file is reported in err and gives an empty
 * table (the proxy still runs; costs are then zero unless deployments set them). */
lp_prices_t *lp_prices_load(const char *path, char *err);
/* Free; NULL-safe, nulls the pointer. */
void lp_prices_destroy(lp_prices_t **self_p);
/* Cost in USD of prompt/completion tokens on deployment d. *known is false when no price was
 * found (the first time for each deployment, the caller warns). */
double lp_price_cost(lp_prices_t *self, const lp_deployment_t *d, long long prompt,
                     long long completion, bool *known, bool *first_miss);
/* Models in the table. */
size_t lp_prices_size(const lp_prices_t *self);

#endif
