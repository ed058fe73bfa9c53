/* lp_clientside: the upstream a client may choose for itself. A request body may carry
 * api_base (or base_url) and api_key, as LiteLLM's clients send them; left unchecked that is
 * SSRF and provider-key theft (the proxy would send its own key wherever it is told). So:
 *
 * - Refused (400 parameter_not_allowed) unless the operator allows it, as LiteLLM does:
 *   general_settings.allow_client_side_credentials (proxy-wide), or a deployment's
 *   litellm_params.configurable_clientside_auth_params, a list of "api_base" (base_url is
 *   its synonym), "api_key", or {api_base: <POSIX extended regex>} that the whole URL must
 *   match (LiteLLM's re.match anchors only the start; a pattern written for it with a
 *   trailing $ means the same here, one without it is stricter here).
 * - The base must be an http(s) URL with a host and no user or password in it.
 * - The deployment's own key (and its extra_headers and other parameters) goes only to hosts
 *   the operator named: its api_base, or a base that matched a pattern and has no query,
 *   fragment, '.' or '%' in its path (so the host part of the pattern matched the host).
 *   Any other base needs the client's api_key with it and gets none of the deployment's
 *   parameters. Keys and bases must be visible ASCII (no CR/LF into a header).
 * - A base the client chose is connected to only if its address is not loopback,
 *   unspecified, link-local (cloud metadata), site-local, multicast or reserved, IPv4 inside
 *   IPv6 included, checked on the resolved address at connect time, on a fresh connection
 *   without a proxy (lp_clientside_blocked, used by the worker). Private ranges stay
 *   reachable by design: operators narrow bases with patterns.
 *
 * The gateway checks every deployment of the group before anything is sent; the worker
 * checks again on the deployment it was given. */
#ifndef LP_CLIENTSIDE_H
#define LP_CLIENTSIDE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "lp_cfg.h"

/* What a request asked for, borrowed from its body (NULL = not asked). */
typedef struct {
    const char *base;
    const char *key;
    const char *field; /* the body field that named the base, or the refused field */
    bool named;        /* the base matched an operator's pattern: the deployment's key and
                          parameters may go there */
} lp_clientside_req_t;

/* True when body sets api_base, base_url or api_key. */
bool lp_clientside_asked(const json_t *body);
/* Whether body may choose its upstream on d. 0: it asks nothing; 1: allowed, out filled;
 * -1: refused with the reason in why and the field in out->field. */
int lp_clientside_check(const lp_cfg_t *cfg, const lp_deployment_t *d, const json_t *body,
                        lp_clientside_req_t *out, char *why);
/* A copy of d for one call, with the request's base and key in place of d's. It borrows d's
 * other members, so it must not outlive d's config. */
lp_deployment_t *lp_clientside_deployment(const lp_deployment_t *d, const lp_clientside_req_t *r);
/* Free such a copy (its key zeroed); NULL-safe, nulls the pointer. */
void lp_clientside_deployment_free(lp_deployment_t **d_p);
/* True when a client-chosen base must not be connected to at addr. */
bool lp_clientside_blocked(const struct sockaddr *addr);

/* A base URL as it may be shown to clients and in spend rows: scheme, host, port and path,
 * no credentials, query or fragment; "" when it does not parse. */
char *lp_public_base(const char *base);
/* Set public_base of every deployment of cfg (once per load, by the daemon that shows it:
 * the worker, which links libcurl). */
void lp_public_bases(lp_cfg_t *cfg);

#endif
