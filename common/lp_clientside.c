#include "lp_clientside.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- requests ---- */

bool lp_clientside_asked(const json_t *body)
{
    return json_object_get(body, "api_base") || json_object_get(body, "base_url") ||
           json_object_get(body, "api_key");
}

/* Does a rule of d allow param (with value, for patterns)? *named says a pattern matched. */
static bool s_allowed(const lp_deployment_t *d, const char *param, const char *value, bool *named)
{
    bool any = false;
    *named = false;
    for (size_t i = 0; i < d->nclientside; i++) {
        const lp_clientside_t *r = &d->clientside[i];
        if (strcmp(r->param, param) != 0)
            continue;
        if (!r->re)
            any = true;
        else if (regexec(r->re, value, 0, NULL, 0) == 0)
            *named = true;
    }
    return any || *named;
}

/* An http(s) URL with a host and no credentials. */
static bool s_url_ok(const char *url, char *why)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
    const char *wrong = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        wrong = "an absolute http or https URL";
    else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)
        wrong = "an http or https URL";
    else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
             curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK)
        wrong = "a URL without a user or password";
    if (wrong)
        snprintf(why, LP_ERR_LEN, "api_base must be %s", wrong);
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(u);
    return !wrong;
}

static int s_refuse(lp_clientside_req_t *out, const char *field, char *why, const char *fmt, ...)
    LP_PRINTF(4, 5);

static int s_refuse(lp_clientside_req_t *out, const char *field, char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, LP_ERR_LEN, fmt, ap);
    va_end(ap);
    out->field = field;
    return -1;
}

int lp_clientside_check(const lp_cfg_t *cfg, const lp_deployment_t *d, const json_t *body,
                        lp_clientside_req_t *out, char *why)
{
    *out = (lp_clientside_req_t){0};
    const json_t *api_base = json_object_get(body, "api_base");
    const json_t *base_url = json_object_get(body, "base_url");
    const json_t *key = json_object_get(body, "api_key");
    if (!api_base && !base_url && !key)
        return 0;
    const char *field = api_base ? "api_base" : "base_url";
    const json_t *base = api_base ? api_base : base_url;
    if (api_base && base_url && !json_equal(api_base, base_url))
        return s_refuse(out, "base_url", why, "api_base and base_url differ: send one");
    if (base && (!json_is_string(base) || !*json_string_value(base)))
        return s_refuse(out, field, why, "%s must be a URL string", field);
    if (key && (!json_is_string(key) || !*json_string_value(key)))
        return s_refuse(out, "api_key", why, "api_key must be a non-empty string");
    const char *how = "an operator allows it with general_settings.allow_client_side_credentials "
                      "or the deployment's litellm_params.configurable_clientside_auth_params";
    bool named = false;
    if (base) {
        out->base = json_string_value(base);
        if (!s_url_ok(out->base, why)) {
            out->field = field;
            return -1;
        }
        if (!s_allowed(d, "api_base", out->base, &named) && !cfg->allow_client_side_credentials)
            return s_refuse(out, field, why, "%s cannot be set by a client of model '%s': %s",
                            field, d->model_name, how);
        if (!named && !key)
            return s_refuse(out, field, why,
                            "%s needs api_key with it: the proxy sends its own key only to "
                            "hosts its config names (a configurable_clientside_auth_params "
                            "pattern can name them)",
                            field);
    } else if (!s_allowed(d, "api_key", "", &named) && !cfg->allow_client_side_credentials) {
        return s_refuse(out, "api_key", why, "api_key cannot be set by a client of model '%s': %s",
                        d->model_name, how);
    }
    out->key = key ? json_string_value(key) : NULL;
    out->field = base ? field : "api_key";
    return 1;
}

lp_deployment_t *lp_clientside_deployment(const lp_deployment_t *d, const lp_clientside_req_t *r)
{
    lp_deployment_t *own = lp_malloc(sizeof *own);
    *own = *d;
    const char *base = r->base ? r->base : d->api_base;
    const char *key = r->key ? r->key : d->api_key;
    own->api_base = base ? lp_strdup(base) : NULL;
    own->api_key = key ? lp_strdup(key) : NULL;
    if (own->api_base) {
        size_t n = strlen(own->api_base);
        while (n > 0 && own->api_base[n - 1] == '/')
            own->api_base[--n] = '\0';
    }
    return own;
}

void lp_clientside_deployment_free(lp_deployment_t **d_p)
{
    lp_deployment_t *d = *d_p;
    if (!d)
        return;
    free(d->api_base);
    if (d->api_key) {
        explicit_bzero(d->api_key, strlen(d->api_key));
        free(d->api_key);
    }
    free(d);
    *d_p = NULL;
}

/* ---- addresses ---- */

static bool s_v4_blocked(uint32_t a) /* host order */
{
    return (a >> 24) == 127 ||    /* loopback */
           (a >> 24) == 0 ||      /* "this network", 0.0.0.0 */
           (a >> 16) == 0xA9FE || /* 169.254/16 link-local: cloud metadata */
           (a >> 28) == 0xE ||    /* 224/4 multicast */
           a == 0xFFFFFFFF ||     /* broadcast */
           a == 0x646464C8;       /* 100.100.100.200: Alibaba Cloud metadata */
}

bool lp_clientside_blocked(const struct sockaddr *addr)
{
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        return s_v4_blocked(ntohl(in->sin_addr.s_addr));
    }
    if (addr->sa_family != AF_INET6)
        return true;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a)) {
        uint32_t v4;
        memcpy(&v4, &a->s6_addr[12], sizeof v4);
        return s_v4_blocked(ntohl(v4));
    }
    static const uint8_t aws_metadata[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0,    0,
                                             0,    0,    0,    0,    0, 0, 0x02, 0x54};
    return IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
           IN6_IS_ADDR_MULTICAST(a) || memcmp(a->s6_addr, aws_metadata, 16) == 0;
}
