#include "lp_crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

void lp_sha256_hex(const void *data, size_t len, char out[LP_SHA256_HEX_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    lp_assert(ok == 1 && mdlen == 32);
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

int lp_random_bytes(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

void lp_uuid_format(uint8_t b[16], char out[LP_UUID_LEN])
{
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, LP_UUID_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

bool lp_sha256_hex_equal(const char a[LP_SHA256_HEX_LEN], const char b[LP_SHA256_HEX_LEN])
{
    return CRYPTO_memcmp(a, b, LP_SHA256_HEX_LEN - 1) == 0;
}

size_t lp_base64url(const void *data, size_t n, char *out, size_t size)
{
    size_t need = 4 * ((n + 2) / 3) + 1;
    lp_assert(size >= need);
    int len = EVP_EncodeBlock((unsigned char *)out, data, (int)n);
    lp_assert(len >= 0);
    size_t m = (size_t)len;
    for (size_t i = 0; i < m; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    while (m > 0 && out[m - 1] == '=')
        m--;
    out[m] = '\0';
    return m;
}
