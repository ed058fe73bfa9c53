/* lp_crypto: the hashing, random and comparison primitives the proxy needs, all from
 * OpenSSL's libcrypto (never hand-rolled). */
#ifndef LP_CRYPTO_H
#define LP_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_util.h"

/* 64 hex digits + NUL. */
#define LP_SHA256_HEX_LEN 65
/* Canonical UUID text, 36 chars + NUL. */
#define LP_UUID_LEN 37

/* SHA-256 of data as lowercase hex into out[LP_SHA256_HEX_LEN]. */
void lp_sha256_hex(const void *data, size_t len, char out[LP_SHA256_HEX_LEN]);
/* Fill buf with n bytes from the CSPRNG; -1 if the generator fails. */
LP_MUSTCHECK int lp_random_bytes(void *buf, size_t n);
/* Format 16 bytes as a version-4 UUID string (the bytes are adjusted in place). */
void lp_uuid_format(uint8_t bytes[16], char out[LP_UUID_LEN]);
/* Constant-time equality of two SHA-256 hex digests (a secret's hash against a known one). */
bool lp_sha256_hex_equal(const char a[LP_SHA256_HEX_LEN], const char b[LP_SHA256_HEX_LEN]);
/* URL-safe base64 without padding of n bytes into out (size >= 4*((n+2)/3)+1); returns
 * the length written. */
size_t lp_base64url(const void *data, size_t n, char *out, size_t size);

#endif
