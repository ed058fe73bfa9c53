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

/* The whole of value matches re (POSIX leftmost-longest: a match from 0 to the end exists
 * exactly when the leftmost-longest one spans it), however the pattern is written. */
static bool s_full_match(const regex_t *re, const char *value)
{
    regmatch_t m;
    return regexec(re, value, 1, &m, 0) == 0 && m.rm_so == 0 && (size_t)m.rm_eo == strlen(value);
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
        else if (s_full_match(r->re, value))
            *named = true;
    }
    return any || *named;
}

/* Visible ASCII only: no space, control byte (a CR/LF would end a header) or DEL. */
static bool s_visible(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* An http(s) URL with a host and no credentials. *plain: also no query, fragment, '.' or
 * '%' in its path, so what a pattern matched as the host cannot have come from elsewhere
 * ("https://x.evil.test/api.example.com/v1" against "https://.*api\.example\.com/v1"). */
static bool s_url_ok(const char *url, bool *plain, char *why)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL, *path = NULL;
    char *query = NULL, *fragment = NULL;
    const char *wrong = NULL;
    if (!s_visible(url) || strchr(url, '\\'))
        wrong = "a URL of visible ASCII characters without backslashes";
    else if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
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
    *plain = !wrong && curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK &&
             curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) != CURLUE_OK &&
             curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && !strpbrk(path, ".%");
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_free(path);
    curl_free(query);
    curl_free(fragment);
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
    if (key &&
        (!json_is_string(key) || !*json_string_value(key) || !s_visible(json_string_value(key))))
        return s_refuse(out, "api_key", why,
                        "api_key must be a non-empty string of visible ASCII characters");
    const char *how = "an operator allows it with general_settings.allow_client_side_credentials "
                      "or the deployment's litellm_params.configurable_clientside_auth_params";
    bool named = false, plain = false;
    if (base) {
        out->base = json_string_value(base);
        if (!s_url_ok(out->base, &plain, why)) {
            out->field = field;
            return -1;
        }
        if (!s_allowed(d, "api_base", out->base, &named) && !cfg->allow_client_side_credentials)
            return s_refuse(out, field, why, "%s cannot be set by a client of model '%s': %s",
                            field, d->model_name, how);
        out->named = named = named && plain;
        if (!named && !key)
            return s_refuse(out, field, why,
                            "%s needs api_key with it: the proxy sends its own key only to "
                            "hosts its config names (a configurable_clientside_auth_params "
                            "pattern can name them, for a URL without query, fragment, '.' or "
                            "'%%' in its path)",
                            field);
    } else if (!s_allowed(d, "api_key", "", &named) && !cfg->allow_client_side_credentials) {
        return s_refuse(out, "api_key", why, "api_key cannot be set by a client of model '%s': %s",
                        d->model_name, how);
    }
    out->key = key ? json_string_value(key) : NULL;
    out->field = base ? field : "api_key";
    return 1;
}

char *lp_public_base(const char *base)
{
    CURLU *u = base ? curl_url() : NULL;
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    char *out = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        curl_url_get(u, CURLUPART_PATH, &path, 0);
        out = lp_asprintf("%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "",
                          path && strcmp(path, "/") != 0 ? path : "");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return out ? out : lp_strdup("");
}

void lp_public_bases(lp_cfg_t *cfg)
{
    for (size_t i = 0; i < cfg->ndeployments; i++) {
        lp_deployment_t *d = &cfg->deployments[i];
        free(d->public_base);
        d->public_base = lp_public_base(d->api_base);
    }
}

lp_deployment_t *lp_clientside_deployment(const lp_deployment_t *d, const lp_clientside_req_t *r)
{
    lp_deployment_t *own = lp_malloc(sizeof *own);
    *own = *d;
    const char *base = r->base ? r->base : d->api_base;
    const char *key = r->key ? r->key : d->api_key;
    own->api_base = base ? lp_strdup(base) : NULL;
    own->api_key = key ? lp_strdup(key) : NULL;
    /* A host no operator named gets none of the deployment's extras either (extra_headers,
     * organization and other passthrough parameters may hold secrets). */
    own->params = r->base && !r->named ? json_object() : json_incref(d->params);
    if (own->api_base) {
        size_t n = strlen(own->api_base);
        while (n > 0 && own->api_base[n - 1] == '/')
            own->api_base[--n] = '\0';
    }
    own->public_base = own->api_base ? lp_public_base(own->api_base) : NULL;
    return own;
}

void lp_clientside_deployment_free(lp_deployment_t **d_p)
{
    lp_deployment_t *d = *d_p;
    if (!d)
        return;
    free(d->api_base);
    free(d->public_base);
    lp_free_secret(d->api_key);
    json_decref(d->params);
    free(d);
    *d_p = NULL;
}

/* ---- addresses ---- */

static bool s_v4_blocked(uint32_t a) /* host order */
{
    return (a >> 24) == 127 ||    /* loopback */
           (a >> 24) == 0 ||      /* "this network", 0.0.0.0 */
           (a >> 16) == 0xA9FE || /* 169.254/16 link-local: cloud metadata */
           (a >> 28) >= 0xE ||    /* 224/4 multicast, 240/4 reserved, broadcast */
           a == 0x646464C8;       /* 100.100.100.200: Alibaba Cloud metadata */
}

static uint32_t s_v4_at(const struct in6_addr *a, size_t off)
{
    uint32_t v;
    memcpy(&v, &a->s6_addr[off], sizeof v);
    return ntohl(v);
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
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b}; /* 64:ff9b::/96 */
    /* IPv4 carried in IPv6: mapped, compatible, NAT64 (last 32 bits), 6to4 (bits 16-47). */
    if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a) || !memcmp(a->s6_addr, nat64, 12))
        return s_v4_blocked(s_v4_at(a, 12));
    if (a->s6_addr[0] == 0x20 && a->s6_addr[1] == 0x02)
        return s_v4_blocked(s_v4_at(a, 2));
    static const uint8_t aws_metadata[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0,    0,
                                             0,    0,    0,    0,    0, 0, 0x02, 0x54};
    return IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
           IN6_IS_ADDR_SITELOCAL(a) || IN6_IS_ADDR_MULTICAST(a) ||
           memcmp(a->s6_addr, aws_metadata, 16) == 0;
}
