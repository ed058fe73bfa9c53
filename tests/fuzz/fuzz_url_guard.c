/* fuzz_url_guard: lp_clientside_check, the guard on a client's api_base (Z-7), against
 * libcurl's own URL parser. The input is the api_base of a request to two deployments:
 *
 * - "pinned" allows only bases matching https://[a-z]+\.example\.com/v1 and sends them its
 *   own key: whatever the guard accepts there, curl must read as https, a host under
 *   .example.com, no user or password, the default port and the path /v1;
 * - "any" allows any base with the client's key: whatever the guard accepts must be http or
 *   https with a host and no user or password.
 *
 * The input's first byte also picks an address for lp_clientside_blocked: loopback,
 * link-local and unspecified addresses, in either family and v4-mapped, must be blocked. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "lp_clientside.h"

static lp_cfg_t *s_cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_setup();
    char err[LP_ERR_LEN];
    s_cfg = lp_cfg_load_string("model_list:\n"
                               "  - model_name: pinned\n"
                               "    litellm_params:\n"
                               "      model: openai/x\n"
                               "      api_key: sk-fuzz-server-key\n"
                               "      configurable_clientside_auth_params:\n"
                               "        - api_base: 'https://[a-z]+\\.example\\.com/v1'\n"
                               "  - model_name: any\n"
                               "    litellm_params:\n"
                               "      model: openai/x\n"
                               "      api_key: sk-fuzz-server-key\n"
                               "      configurable_clientside_auth_params: [api_base]\n",
                               "fuzz_url_guard", err);
    FZ_CHECK(s_cfg != NULL, "fuzz config: %s", err);
    return 0;
}

static char *s_part(CURLU *u, CURLUPart part)
{
    char *v = NULL;
    return curl_url_get(u, part, &v, 0) == CURLUE_OK ? v : NULL;
}

/* What curl makes of an accepted base. */
static void s_check_accepted(const char *base, bool pinned)
{
    CURLU *u = curl_url();
    FZ_CHECK(u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK,
             "accepted base curl cannot parse: %s", base);
    char *scheme = s_part(u, CURLUPART_SCHEME), *host = s_part(u, CURLUPART_HOST);
    char *user = s_part(u, CURLUPART_USER), *password = s_part(u, CURLUPART_PASSWORD);
    char *port = s_part(u, CURLUPART_PORT), *path = s_part(u, CURLUPART_PATH);
    FZ_CHECK(scheme && host && *host, "accepted base without scheme or host: %s", base);
    FZ_CHECK(!user && !password, "accepted base with credentials: %s", base);
    if (pinned) {
        size_t n = strlen(host), tail = strlen(".example.com");
        FZ_CHECK(!strcasecmp(scheme, "https"), "pinned base not https: %s", base);
        FZ_CHECK(n > tail && !strcmp(host + n - tail, ".example.com") &&
                     strspn(host, "abcdefghijklmnopqrstuvwxyz") == n - tail,
                 "pinned base reaches host '%s': %s", host, base);
        FZ_CHECK(!port, "pinned base with a port: %s", base);
        FZ_CHECK(path && !strcmp(path, "/v1"), "pinned base with path '%s': %s", path, base);
    } else {
        FZ_CHECK(!strcasecmp(scheme, "http") || !strcasecmp(scheme, "https"),
                 "accepted base with scheme %s: %s", scheme, base);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
}

static bool s_internal4(uint32_t a) /* host order */
{
    return (a >> 24) == 127 || (a >> 24) == 0 || (a >> 16) == 0xA9FE;
}

static void s_check_address(const uint8_t *data, size_t size)
{
    if (size < 17)
        return;
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    memcpy(&a4.sin_addr, data + 1, 4);
    uint32_t v4 = ntohl(a4.sin_addr.s_addr);
    FZ_CHECK(!s_internal4(v4) || lp_clientside_blocked((struct sockaddr *)&a4),
             "IPv4 %08x not blocked", v4);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    memcpy(&a6.sin6_addr, data + 1, 16);
    const struct in6_addr *in6 = &a6.sin6_addr;
    uint32_t mapped;
    memcpy(&mapped, &in6->s6_addr[12], 4);
    bool internal = IN6_IS_ADDR_LOOPBACK(in6) || IN6_IS_ADDR_UNSPECIFIED(in6) ||
                    IN6_IS_ADDR_LINKLOCAL(in6) ||
                    (IN6_IS_ADDR_V4MAPPED(in6) && s_internal4(ntohl(mapped)));
    FZ_CHECK(!internal || lp_clientside_blocked((struct sockaddr *)&a6),
             "an internal IPv6 address is not blocked");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_check_address(data, size);
    json_t *base = json_stringn((const char *)data, size);
    if (!base)
        return 0; /* not UTF-8: the gateway's parser never gives such a string */
    for (size_t i = 0; i < s_cfg->ndeployments; i++) {
        const lp_deployment_t *d = &s_cfg->deployments[i];
        bool pinned = !strcmp(d->model_name, "pinned");
        json_t *body = json_object();
        json_object_set(body, "api_base", base);
        if (!pinned)
            json_object_set_new(body, "api_key", json_string("sk-fuzz-client-key"));
        lp_clientside_req_t out;
        char why[LP_ERR_LEN];
        int rc = lp_clientside_check(s_cfg, d, body, &out, why);
        if (rc > 0) {
            FZ_CHECK(!pinned || out.named, "the server's key to a base no pattern named");
            s_check_accepted(out.base, pinned);
        } else
            FZ_CHECK(rc < 0 && *why && out.field, "a refusal without a reason");
        json_decref(body);
    }
    json_decref(base);
    return 0;
}
