/*
 * sha256.c — SHA-256 through OpenSSL's EVP interface (see sha256.h).
 * Thread: any.
 */
#include "base/invariant.h"
#include "base/sha256.h"

#include <assert.h>
#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"

struct sha256_ctx {
    EVP_MD_CTX *md;
};

sha256_ctx *sha256_new(void)
{
    sha256_ctx *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->md = EVP_MD_CTX_new();
    if (!h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->md);
        free(h);
        return NULL;
    }
    return h;
}

void sha256_update(sha256_ctx *h, const void *data, size_t len)
{
    int ok = EVP_DigestUpdate(h->md, data, len);
    ASSERT(ok == 1);
    (void)ok;
}

void sha256_finish(sha256_ctx *h, uint8_t out[SHA256_BYTES])
{
    unsigned int n = 0;
    int ok = EVP_DigestFinal_ex(h->md, out, &n);
    ASSERT(ok == 1 && n == SHA256_BYTES);
    (void)ok;
    sha256_free(h);
}

void sha256_free(sha256_ctx *h)
{
    if (!h) return;
    EVP_MD_CTX_free(h->md);
    free(h);
}

void sha256_bytes(const void *data, size_t len, uint8_t out[SHA256_BYTES])
{
    unsigned int n = 0;
    int ok = EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
    ASSERT(ok == 1 && n == SHA256_BYTES);
    (void)ok;
}

void sha256_to_hex(const uint8_t digest[SHA256_BYTES], char out[SHA256_HEX_BYTES])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_BYTES; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[2 * SHA256_BYTES] = '\0';
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

int sha256_from_hex(const char *hex, uint8_t out[SHA256_BYTES])
{
    if (!hex || strlen(hex) != 2 * SHA256_BYTES) return -1;
    for (int i = 0; i < SHA256_BYTES; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

void sha256_to_b64(const uint8_t digest[SHA256_BYTES], char out[SHA256_B64_BYTES])
{
    b64_encode(digest, SHA256_BYTES, out);
}
