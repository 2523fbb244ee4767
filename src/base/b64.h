/*
 * b64.h — base64 in its two spellings: standard with '=' padding (Convex wire
 * values and timestamps) and URL-safe without padding (JWT segments).
 * Thread: any; pure functions.
 */
#ifndef DOJO_BASE_B64_H
#define DOJO_BASE_B64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode n bytes, including the terminating NUL. */
size_t b64_encoded_size(size_t n);
/* Writes a NUL-terminated string to out (b64_encoded_size(n) bytes); returns its length. */
size_t b64_encode(const uint8_t *in, size_t n, char *out);
size_t b64url_encode(const uint8_t *in, size_t n, char *out);

/* Decodes either alphabet, padding optional. out must hold (len/4+1)*3 bytes.
 * Returns the decoded length, or -1 for a character outside both alphabets or
 * a malformed tail. */
long b64_decode(const char *in, size_t len, uint8_t *out);

/* A u64 as the Convex wire writes timestamps: standard base64 of the 8 bytes
 * little-endian ("AAAAAAAAAAA=" for 0). out holds 13 bytes. */
void b64_u64le_encode(uint64_t v, char out[13]);
/* Returns 0 and sets *v, or -1 when s is not exactly 8 bytes of base64. */
int b64_u64le_decode(const char *s, uint64_t *v);

#endif
