/*
 * fuzz_jwks.c — libFuzzer target: documents an issuer serves, as dojo reads
 * them. The first byte picks the reader: a JWKS (jwks_parse, every key type
 * and member) or an OpenID discovery document (auth_discovery_parse). Each
 * input is accepted or refused with a reason; nothing crashes or leaks.
 * Thread: the fuzzer's.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "base/invariant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    err_t e;
    err_init(&e);
    if (data[0] & 1) {
        jwk_set *set = NULL;
        int rc = jwks_parse(text, len, &set, &e);
        ASSERT(rc == 0 ? set != NULL : (set == NULL && e.msg[0]));
        if (set) {
            ASSERT(set->n_keys >= 1);
            jwks_find(set, NULL, "RS256");
            jwks_find(set, set->keys[0].kid, NULL);
        }
        jwks_free(set);
    } else {
        char uri[1024];
        int rc = auth_discovery_parse("https://issuer.example/.well-known/openid-configuration",
                                      "https://issuer.example", text, len, uri, sizeof uri, &e);
        ASSERT(rc == 0 ? strncasecmp(uri, "http", 4) == 0 : e.msg[0] != '\0');
    }
    err_clear(&e);
    return 0;
}
