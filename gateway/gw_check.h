/* gw_check: the request body of a model call, checked before anything is sent anywhere.
 * Each call type's required fields must be there; every field the proxy knows must have its
 * type and range (OpenAI's and Anthropic's: max_tokens >= 1, n 1..128, temperature 0..2,
 * top_p 0..1, penalties -2..2, stop a string or up to 4 strings, tools a list of objects
 * ...), null counting as absent; fields that would steer the proxy elsewhere are refused,
 * never silently dropped: custom_host and extra_headers always, api_base, base_url and
 * api_key unless the config allows them on every deployment of the group (lp_clientside).
 * Unknown fields pass through for the provider to judge, as LiteLLM does. A refusal is a
 * 400 naming the field (param). */
#ifndef GW_CHECK_H
#define GW_CHECK_H

#include <jansson.h>
#include <stdbool.h>

#include "gw_req.h"

/* true when body may go on; else req is answered 400. */
bool gw_check_body(gw_req_t *req, const json_t *body);

#endif
