/*
 * fuzz_jwt.c — libFuzzer target: arbitrary bytes as a bearer token through
 * jwt_decode and jwt_verify (with an empty key set and a configured issuer):
 * every input is refused with a reason, none crashes or leaks.
 * Thread: the fuzzer's.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *token = malloc(size + 1);
    if (!token) return 0;
    memcpy(token, data, size);
    token[size] = '\0';
    jwt *t = NULL;
    jwt_failure f = JWT_OK;
    err_t e;
    err_init(&e);
    if (jwt_decode(token, &t, &f, &e) == 0) {
        jwt_policy p = {.issuer = "https://issuer.example",
                        .audience = "convex",
                        .now_s = 1800000000,
                        .skew_s = 60};
        err_t v;
        err_init(&v);
        int rc = jwt_verify(t, NULL, &p, &f, &v);
        assert(rc != 0 && f != JWT_OK && v.msg[0]);
        err_clear(&v);
        json_t *identity = jwt_identity(t->claims);
        json_decref(identity);
        jwt_free(t);
    } else {
        assert(f != JWT_OK || e.code != 0);
    }
    err_clear(&e);
    free(token);
    return 0;
}
