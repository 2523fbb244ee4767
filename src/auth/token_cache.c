/*
 * token_cache.c — the verified-token cache (see token_cache.h).
 * Thread: the event-loop thread.
 */
#include "auth/token_cache.h"

#include <openssl/sha.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    json_t *identity; /* NULL = empty */
    int64_t exp_s;
} entry;

struct token_cache {
    entry entries[TOKEN_CACHE_ENTRIES];
};

token_cache *token_cache_new(void)
{
    return calloc(1, sizeof(token_cache));
}

void token_cache_clear(token_cache *tc)
{
    for (int i = 0; i < TOKEN_CACHE_ENTRIES; i++) {
        json_decref(tc->entries[i].identity);
        tc->entries[i].identity = NULL;
    }
}

void token_cache_free(token_cache *tc)
{
    if (!tc) return;
    token_cache_clear(tc);
    free(tc);
}

void token_cache_key(const char *token, unsigned char key[32])
{
    SHA256((const unsigned char *)token, strlen(token), key);
}

static entry *slot_of(token_cache *tc, const unsigned char key[32])
{
    uint32_t index;
    memcpy(&index, key, sizeof index);
    return &tc->entries[index & (TOKEN_CACHE_ENTRIES - 1)];
}

json_t *token_cache_get(token_cache *tc, const unsigned char key[32], int64_t now_s, int64_t skew_s,
                        int64_t *exp_s_out)
{
    entry *e = slot_of(tc, key);
    if (!e->identity || memcmp(e->digest, key, SHA256_DIGEST_LENGTH) != 0) return NULL;
    if (now_s > e->exp_s + skew_s) return NULL; /* let a full check say "expired" */
    *exp_s_out = e->exp_s;
    return json_incref(e->identity);
}

void token_cache_put(token_cache *tc, const unsigned char key[32], json_t *identity, int64_t exp_s)
{
    entry *e = slot_of(tc, key);
    json_decref(e->identity);
    memcpy(e->digest, key, SHA256_DIGEST_LENGTH);
    e->identity = json_incref(identity);
    e->exp_s = exp_s;
}
