/*
 * admin_key.c — the deployment's admin key: generated from OpenSSL's CSPRNG
 * by `dojo dev` (and `dojo serve` when none is given), and compared in
 * constant time by the HTTP and sync layers on every admin request.
 * Thread: any; pure apart from RAND_bytes.
 */
#include "base/invariant.h"
#include "auth/auth.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define ADMIN_KEY_PREFIX "dojo-admin-"
#define ADMIN_KEY_RANDOM_BYTES 32

_Static_assert(sizeof ADMIN_KEY_PREFIX - 1 + 2 * ADMIN_KEY_RANDOM_BYTES < ADMIN_KEY_BYTES_MAX,
               "an admin key and its NUL fit ADMIN_KEY_BYTES_MAX");

int admin_key_generate(char out[ADMIN_KEY_BYTES_MAX])
{
    ASSERT(out);
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[ADMIN_KEY_RANDOM_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1) return ERR_INTERNAL;
    size_t at = sizeof ADMIN_KEY_PREFIX - 1;
    memcpy(out, ADMIN_KEY_PREFIX, at);
    for (size_t i = 0; i < sizeof raw; i++) {
        out[at++] = hex[raw[i] >> 4];
        out[at++] = hex[raw[i] & 0xf];
    }
    out[at] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

/* SHA-256 of the first LIMIT_ADMIN_KEY_BYTES_MAX bytes of s. */
static bool digest_of(const char *s, unsigned char md[EVP_MAX_MD_SIZE])
{
    unsigned int md_len = 0;
    size_t len = strnlen(s, LIMIT_ADMIN_KEY_BYTES_MAX);
    return EVP_Digest(s, len, md, &md_len, EVP_sha256(), NULL) == 1 && md_len == 32;
}

bool admin_key_matches(const char *given, const char *expected)
{
    if (!given || !expected || !*expected) return false; /* no key configured: nothing matches */
    if (strnlen(given, LIMIT_ADMIN_KEY_BYTES_MAX + 1) > LIMIT_ADMIN_KEY_BYTES_MAX) return false;
    unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
    if (!digest_of(given, a) || !digest_of(expected, b)) return false;
    return CRYPTO_memcmp(a, b, 32) == 0;
}
