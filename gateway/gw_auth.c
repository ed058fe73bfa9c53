#include "gw_auth.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "gw_keys.h"
#include "lp_crypto.h"

/* The key the client presented, copied into out; 0 found, 1 absent, -1 malformed. */
static int s_presented_key(gw_req_t *req, char *out, size_t size)
{
    const char *auth = gw_req_header(req, "Authorization");
    const char *key = NULL;
    if (auth) {
        if (strncasecmp(auth, "Bearer ", 7) != 0)
            return -1;
        key = auth + 7;
    } else {
        static const char *alternates[] = {"x-api-key", "x-litellm-api-key", "api-key"};
        for (size_t i = 0; !key && i < LP_ARRAY_LEN(alternates); i++)
            key = gw_req_header(req, alternates[i]);
        if (!key)
            return 1;
    }
    while (*key == ' ')
        key++;
    size_t len = strlen(key);
    while (len > 0 && key[len - 1] == ' ')
        len--;
    if (len == 0)
        return 1;
    if (len >= size)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isgraph((unsigned char)key[i]))
            return -1;
    }
    memcpy(out, key, len);
    out[len] = '\0';
    return 0;
}

gw_auth_t gw_auth_check(gw_req_t *req, bool master_only)
{
    char key[GW_KEY_MAX + 1];
    int rc = s_presented_key(req, key, sizeof key);
    if (rc == 1) {
        gw_req_fail(req, 401, "missing_api_key", NULL,
                    "Authentication Error: no API key passed in. Send 'Authorization: Bearer "
                    "<key>'.");
        return GW_AUTH_REFUSED;
    }
    if (rc < 0) {
        gw_req_fail(req, 401, "invalid_api_key", NULL,
                    "Authentication Error: malformed credentials. Send 'Authorization: Bearer "
                    "<key>'.");
        return GW_AUTH_REFUSED;
    }
    /* One digest per request: the key's hash names it in spend rows and compares, in
     * constant time, against the master key's. */
    char hash[LP_SHA256_HEX_LEN];
    lp_sha256_hex(key, strlen(key), hash);
    explicit_bzero(key, sizeof key);
    bool master = lp_sha256_hex_equal(hash, req->srv->master_hash);
    if (master) {
        memcpy(req->key_hash, req->srv->master_hash, LP_SHA256_HEX_LEN);
        req->is_master = true;
        req->authed = true;
        return GW_AUTH_OK;
    }
    if (master_only) {
        gw_req_fail(req, 403, "admin_only", NULL,
                    "this endpoint needs the master key (virtual keys cannot manage keys)");
        return GW_AUTH_REFUSED;
    }
    if (!req->srv->cfg->database_url) {
        /* Without a database there are no virtual keys: only the master key exists. */
        gw_req_fail(req, 401, "invalid_api_key", NULL, "Authentication Error: invalid API key.");
        return GW_AUTH_REFUSED;
    }
    if (!gw_keys_resolve(req->srv->keys, req, hash))
        return GW_AUTH_PENDING;
    return req->authed ? GW_AUTH_OK : GW_AUTH_REFUSED;
}
