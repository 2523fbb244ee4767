/*
 * sha256.h — SHA-256 over a stream of bytes (OpenSSL's EVP), and its two
 * spellings: lowercase hex (what `_storage.sha256` holds, and the ETag) and
 * standard base64 (the `Digest: sha-256=` header). Used by uploads (the hash
 * computed as the bytes go by), the file stores, verify and the upload
 * tokens.
 * Thread: any; a sha256_ctx belongs to one thread at a time.
 */
#ifndef DOJO_BASE_SHA256_H
#define DOJO_BASE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32
#define SHA256_HEX_BYTES (2 * SHA256_BYTES + 1) /* with the NUL */
#define SHA256_B64_BYTES 45                     /* 44 characters and the NUL */

typedef struct sha256_ctx sha256_ctx;

/* NULL when out of memory. */
sha256_ctx *sha256_new(void);
void sha256_update(sha256_ctx *h, const void *data, size_t len);
/* Writes the digest and frees h. */
void sha256_finish(sha256_ctx *h, uint8_t out[SHA256_BYTES]);
void sha256_free(sha256_ctx *h); /* without finishing (an abandoned upload) */

/* One shot. */
void sha256_bytes(const void *data, size_t len, uint8_t out[SHA256_BYTES]);

void sha256_to_hex(const uint8_t digest[SHA256_BYTES], char out[SHA256_HEX_BYTES]);
/* 0, or -1 when hex is not 64 hex digits. */
int sha256_from_hex(const char *hex, uint8_t out[SHA256_BYTES]);
void sha256_to_b64(const uint8_t digest[SHA256_BYTES], char out[SHA256_B64_BYTES]);

#endif
