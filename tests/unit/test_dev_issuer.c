/*
 * test_dev_issuer.c — the built-in development issuer of auth/dev_issuer.h:
 * the key file is made once with mode 0600 and reused (same key id), a file
 * that is not a usable key is refused, the key id is the RFC 7638
 * thumbprint, the published documents are what an OpenID client reads, and
 * the tokens carry the claims `dojo token` promises and verify with the
 * published key under dojo's own policy.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/dev_issuer.h"
#include "auth/jwt.h"
#include "base/limits.h"

#define ISSUER "http://127.0.0.1:3210"
#define NOW_S ((int64_t)1795615200) /* 2026-11-25T14:00:00Z */

static char *dir;
static char key_path[600];
static EVP_PKEY *key; /* made once in group_setup */
static char kid[DEV_ISSUER_KID_BYTES];

static int group_setup(void **state)
{
    (void)state;
    dir = test_mkdtemp();
    snprintf(key_path, sizeof key_path, "%s/dev_auth_key.pem", dir);
    err_t e;
    err_init(&e);
    bool created = false;
    if (dev_issuer_key_load(key_path, true, &key, &created, &e) != 0 || !created) return -1;
    return dev_issuer_kid(key, kid, &e);
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(key);
    test_rmtree(dir);
    free(dir);
    return 0;
}

static void test_key_file_is_created_owner_only(void **state)
{
    (void)state;
    struct stat st;
    assert_int_equal(stat(key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(EVP_PKEY_get_bits(key), DEV_ISSUER_KEY_BITS);
}

static void test_key_file_is_reused_with_the_same_kid(void **state)
{
    (void)state;
    EVP_PKEY *again = NULL;
    bool created = true;
    err_t e;
    err_init(&e);
    assert_int_equal(dev_issuer_key_load(key_path, true, &again, &created, &e), 0);
    assert_false(created);
    char kid2[DEV_ISSUER_KID_BYTES];
    assert_int_equal(dev_issuer_kid(again, kid2, &e), 0);
    assert_string_equal(kid, kid2);
    EVP_PKEY_free(again);
}

static void test_missing_key_without_create_is_not_found(void **state)
{
    (void)state;
    char path[700];
    snprintf(path, sizeof path, "%s/absent.pem", dir);
    EVP_PKEY *k = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(dev_issuer_key_load(path, false, &k, NULL, &e), ERR_NOT_FOUND);
    assert_null(k);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0); /* nothing was created */
}

static void test_a_file_that_is_not_a_key_is_refused(void **state)
{
    (void)state;
    char path[700];
    snprintf(path, sizeof path, "%s/garbage.pem", dir);
    FILE *f = fopen(path, "w");
    fputs("not a key\n", f);
    fclose(f);
    EVP_PKEY *k = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(dev_issuer_key_load(path, true, &k, NULL, &e), ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.msg, "delete it"));
    assert_null(k);
}

static void test_kid_is_the_rfc7638_thumbprint(void **state)
{
    (void)state;
    /* RFC 7638 §3.1: this key's thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs. */
    const char *jwks =
        "{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"x\",\"n\":\""
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
        "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGj"
        "QR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-b"
        "FTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        "\"}]}";
    jwk_set *set = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(jwks_parse(jwks, strlen(jwks), &set, &e), 0);
    char thumb[DEV_ISSUER_KID_BYTES];
    assert_int_equal(dev_issuer_kid(set->keys[0].pkey, thumb, &e), 0);
    assert_string_equal(thumb, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    jwks_free(set);
}

static void test_discovery_names_the_issuer_and_its_jwks(void **state)
{
    (void)state;
    json_t *doc = dev_issuer_discovery(ISSUER);
    assert_string_equal(json_string_value(json_object_get(doc, "issuer")), ISSUER);
    assert_string_equal(json_string_value(json_object_get(doc, "jwks_uri")),
                        ISSUER "/.well-known/jwks.json");
    json_t *algs = json_object_get(doc, "id_token_signing_alg_values_supported");
    assert_string_equal(json_string_value(json_array_get(algs, 0)), "RS256");
    assert_true(json_is_array(json_object_get(doc, "claims_supported")));
    json_decref(doc);
}

static void test_jwks_publishes_the_public_key_under_its_kid(void **state)
{
    (void)state;
    json_t *doc = dev_issuer_jwks(key, kid);
    json_t *jwk = json_array_get(json_object_get(doc, "keys"), 0);
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")), kid);
    assert_string_equal(json_string_value(json_object_get(jwk, "alg")), "RS256");
    assert_null(json_object_get(jwk, "d")); /* never the private part */
    char *text = json_dumps(doc, JSON_COMPACT);
    jwk_set *set = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(jwks_parse(text, strlen(text), &set, &e), 0);
    assert_non_null(jwks_find(set, kid, "RS256"));
    jwks_free(set);
    free(text);
    json_decref(doc);
}

static void test_claims_carry_what_dojo_token_promises(void **state)
{
    (void)state;
    dev_token_request req = {.issuer = ISSUER,
                             .sub = "user_1",
                             .email = "a@b.co",
                             .name = "Ada Lovelace",
                             .picture = "https://example.com/a.png",
                             .ttl_s = 600,
                             .claims = {"org_role=admin", "plan={\"seats\":3}", "beta=true"},
                             .n_claims = 3};
    json_t *c = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(dev_issuer_claims(&req, NOW_S, "0123456789abcdef0123", &c, &e), 0);
    assert_string_equal(json_string_value(json_object_get(c, "iss")), ISSUER);
    assert_string_equal(json_string_value(json_object_get(c, "aud")), "convex");
    assert_string_equal(json_string_value(json_object_get(c, "sub")), "user_1");
    assert_int_equal(json_integer_value(json_object_get(c, "iat")), NOW_S);
    assert_int_equal(json_integer_value(json_object_get(c, "nbf")), NOW_S);
    assert_int_equal(json_integer_value(json_object_get(c, "exp")), NOW_S + 600);
    assert_string_equal(json_string_value(json_object_get(c, "jti")), "0123456789abcdef0123");
    assert_string_equal(json_string_value(json_object_get(c, "email")), "a@b.co");
    assert_true(json_is_true(json_object_get(c, "email_verified")));
    assert_string_equal(json_string_value(json_object_get(c, "name")), "Ada Lovelace");
    assert_string_equal(json_string_value(json_object_get(c, "picture")),
                        "https://example.com/a.png");
    assert_string_equal(json_string_value(json_object_get(c, "org_role")), "admin");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(c, "plan"), "seats")), 3);
    assert_true(json_is_true(json_object_get(c, "beta")));
    json_decref(c);
}

static void test_claims_without_email_have_no_email_verified(void **state)
{
    (void)state;
    dev_token_request req = {.issuer = ISSUER, .sub = "user_2", .ttl_s = 60};
    json_t *c = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(dev_issuer_claims(&req, NOW_S, "00", &c, &e), 0);
    assert_null(json_object_get(c, "email"));
    assert_null(json_object_get(c, "email_verified"));
    assert_null(json_object_get(c, "name"));
    json_decref(c);
}

static void assert_claims_refused(const dev_token_request *req, const char *needle)
{
    json_t *c = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(dev_issuer_claims(req, NOW_S, "00", &c, &e), ERR_INVALID_ARGUMENT);
    assert_null(c);
    if (!strstr(e.msg, needle)) fail_msg("message \"%s\" does not contain \"%s\"", e.msg, needle);
}

static void test_ttl_outside_one_second_to_a_day_is_refused(void **state)
{
    (void)state;
    dev_token_request req = {.issuer = ISSUER, .sub = "u", .ttl_s = 0};
    assert_claims_refused(&req, "--ttl");
    req.ttl_s = DEV_ISSUER_TTL_S_MAX + 1;
    assert_claims_refused(&req, "--ttl");
}

static void test_custom_claim_cannot_replace_a_registered_one(void **state)
{
    (void)state;
    dev_token_request req = {
        .issuer = ISSUER, .sub = "u", .ttl_s = 60, .claims = {"exp=99999999999"}, .n_claims = 1};
    assert_claims_refused(&req, "--ttl");
    req.claims[0] = "aud=web";
    assert_claims_refused(&req, "aud");
    req.claims[0] = "no-equals-sign";
    assert_claims_refused(&req, "NAME=VALUE");
}

static void test_empty_sub_is_refused(void **state)
{
    (void)state;
    dev_token_request req = {.issuer = ISSUER, .sub = "", .ttl_s = 60};
    assert_claims_refused(&req, "--sub");
}

static void test_signed_token_verifies_with_the_published_key(void **state)
{
    (void)state;
    dev_token_request req = {.issuer = ISSUER, .sub = "user_1", .email = "a@b.co", .ttl_s = 3600};
    json_t *claims = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(dev_issuer_claims(&req, NOW_S, "abcd", &claims, &e), 0);
    char *token = NULL;
    assert_int_equal(dev_issuer_sign(key, kid, claims, &token, &e), 0);
    json_t *doc = dev_issuer_jwks(key, kid);
    char *text = json_dumps(doc, JSON_COMPACT);
    jwk_set *set = NULL;
    assert_int_equal(jwks_parse(text, strlen(text), &set, &e), 0);
    jwt *t = NULL;
    jwt_failure f;
    assert_int_equal(jwt_decode(token, &t, &f, &e), 0);
    assert_string_equal(t->kid, kid);
    jwt_policy p = {.issuer = ISSUER,
                    .audience = "convex",
                    .now_s = NOW_S + 10,
                    .skew_s = LIMIT_JWT_CLOCK_SKEW_S};
    assert_int_equal(jwt_verify(t, set, &p, &f, &e), 0);
    p.now_s = NOW_S + 3600 + LIMIT_JWT_CLOCK_SKEW_S + 1;
    assert_int_equal(jwt_verify(t, set, &p, &f, &e), ERR_AUTH);
    assert_int_equal(f, JWT_EXPIRED);
    jwt_free(t);
    jwks_free(set);
    free(text);
    json_decref(doc);
    free(token);
    json_decref(claims);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_file_is_created_owner_only),
        cmocka_unit_test(test_key_file_is_reused_with_the_same_kid),
        cmocka_unit_test(test_missing_key_without_create_is_not_found),
        cmocka_unit_test(test_a_file_that_is_not_a_key_is_refused),
        cmocka_unit_test(test_kid_is_the_rfc7638_thumbprint),
        cmocka_unit_test(test_discovery_names_the_issuer_and_its_jwks),
        cmocka_unit_test(test_jwks_publishes_the_public_key_under_its_kid),
        cmocka_unit_test(test_claims_carry_what_dojo_token_promises),
        cmocka_unit_test(test_claims_without_email_have_no_email_verified),
        cmocka_unit_test(test_ttl_outside_one_second_to_a_day_is_refused),
        cmocka_unit_test(test_custom_claim_cannot_replace_a_registered_one),
        cmocka_unit_test(test_empty_sub_is_refused),
        cmocka_unit_test(test_signed_token_verifies_with_the_published_key),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
