#include "lp_price.h"

#include <stdlib.h>
#include <string.h>

#include "lp_json.h"
#include "lp_map.h"

struct lp_prices {
    json_t *table;    /* model -> {input_cost_per_token, output_cost_per_token, ...} */
    lp_map_t *warned; /* deployment ids already reported as unpriced */
};

lp_prices_t *lp_prices_load(const char *path, char *err)
{
    lp_prices_t *self = lp_calloc(1, sizeof *self);
    self->warned = lp_map_new();
    json_error_t jerr;
    json_t *t = path && *path ? json_load_file(path, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (path && *path && !json_is_object(t)) {
        lp_err_set(err, "%s: %s", path, t ? "not a JSON object" : jerr.text);
        json_decref(t);
        t = NULL;
    }
    self->table = t ? t : json_object();
    return self;
}

void lp_prices_destroy(lp_prices_t **self_p)
{
    lp_prices_t *self = *self_p;
    if (!self)
        return;
    json_decref(self->table);
    lp_map_destroy(&self->warned);
    free(self);
    *self_p = NULL;
}

size_t lp_prices_size(const lp_prices_t *self)
{
    return json_object_size(self->table);
}

/* The table entry for d: "provider/model", then "model". */
static const json_t *s_entry(const lp_prices_t *self, const lp_deployment_t *d)
{
    char *key = lp_asprintf("%s/%s", d->provider->name, d->provider_model);
    const json_t *e = json_object_get(self->table, key);
    free(key);
    if (!json_is_object(e))
        e = json_object_get(self->table, d->provider_model);
    return json_is_object(e) ? e : NULL;
}

double lp_price_cost(lp_prices_t *self, const lp_deployment_t *d, long long prompt,
                     long long completion, bool *known, bool *first_miss)
{
    double in = d->input_cost_per_token, out = d->output_cost_per_token;
    *first_miss = false;
    if (in < 0 || out < 0) {
        const json_t *e = s_entry(self, d);
        if (in < 0)
            in = lp_json_num(e, "input_cost_per_token", -1);
        if (out < 0)
            out = lp_json_num(e, "output_cost_per_token", -1);
        /* A table price past the config's bound is a mistake: unpriced, as an absent one. */
        if (in > LP_PRICE_MAX)
            in = -1;
        if (out > LP_PRICE_MAX)
            out = -1;
    }
    *known = in >= 0 || out >= 0;
    if (!*known && !lp_map_get(self->warned, d->id, strlen(d->id))) {
        lp_map_put(self->warned, d->id, strlen(d->id), self);
        *first_miss = true;
    }
    return LP_MAX(in, 0) * (double)prompt + LP_MAX(out, 0) * (double)completion;
}
