/*
 * token_cache.h — tokens already verified, so that a client sending the same
 * token with every request pays for its signature check once (an RSA
 * verification is most of the cost of a small query). Entries are keyed by
 * the SHA-256 of the token, hold the identity built from it and its exp, and
 * are served only while the token has not expired (within the clock skew).
 * The cache is emptied whenever the issuer, the audience or the key set
 * changes. Fixed size, direct-mapped: a new token simply replaces whatever
 * shared its slot.
 * Thread: the event-loop thread (owned by struct auth).
 */
#ifndef DOJO_AUTH_TOKEN_CACHE_H
#define DOJO_AUTH_TOKEN_CACHE_H

#include <jansson.h>
#include <stdint.h>

#define TOKEN_CACHE_ENTRIES 4096 /* power of two */

typedef struct token_cache token_cache;

token_cache *token_cache_new(void);
void token_cache_free(token_cache *tc);
/* Drops every entry. */
void token_cache_clear(token_cache *tc);
/* The SHA-256 of a token's text, the cache key (jwt_decode keeps it too). */
void token_cache_key(const char *token, unsigned char key[32]);
/* The identity of a verified token still valid at now_s (a new reference;
 * identities are never modified once built), or NULL. */
json_t *token_cache_get(token_cache *tc, const unsigned char key[32], int64_t now_s, int64_t skew_s,
                        int64_t *exp_s_out);
/* Remembers a token that was just verified (identity: a reference is taken). */
void token_cache_put(token_cache *tc, const unsigned char key[32], json_t *identity, int64_t exp_s);

#endif
