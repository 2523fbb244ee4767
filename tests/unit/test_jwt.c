/*
 * test_jwt.c — the token contract of auth/jwt.h: which tokens are accepted,
 * which are refused and with which failure and message, the identity built
 * from claims, JWKS parsing, and signing.
 * Keys are generated once per run with EVP_PKEY_Q_keygen; tokens are signed
 * with jwt_sign and checked against a JWKS built with jwk_public.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth/jwt.h"
#include "base/b64.h"

#define ISSUER "https://verb-noun-00.clerk.accounts.dev"
#define JWKS_URL ISSUER "/.well-known/jwks.json"
#define NOW_S ((int64_t)1795615200) /* 2026-11-25T14:00:00Z */

/* Keys shared by every test of this file (generated in group_setup). */
typedef struct keys {
    EVP_PKEY *rsa, *ec, *ed;
    jwk_set *set; /* k-rsa, k-ec, k-ed */
} keys;

static keys K;

/* ---- helpers --------------------------------------------------------- */

static json_t *jwks_json(void)
{
    json_t *list = json_array();
    json_array_append_new(list, jwk_public(K.rsa, "RS256", "k-rsa"));
    json_array_append_new(list, jwk_public(K.ec, "ES256", "k-ec"));
    json_array_append_new(list, jwk_public(K.ed, "EdDSA", "k-ed"));
    return json_pack("{s:o}", "keys", list);
}

static jwk_set *parse_json(json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    jwk_set *set = NULL;
    err_t e;
    err_init(&e);
    int rc = jwks_parse(text, strlen(text), &set, &e);
    free(text);
    assert_int_equal(rc, 0);
    err_clear(&e);
    return set;
}

static int group_setup(void **state)
{
    K.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    K.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    K.ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!K.rsa || !K.ec || !K.ed) return -1;
    K.set = parse_json(jwks_json());
    snprintf(K.set->url, sizeof K.set->url, "%s", JWKS_URL);
    return 0;
}

static int group_teardown(void **state)
{
    jwks_free(K.set);
    EVP_PKEY_free(K.rsa);
    EVP_PKEY_free(K.ec);
    EVP_PKEY_free(K.ed);
    return 0;
}

/* A Clerk-like claim set valid at NOW_S. */
static json_t *good_claims(void)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s}", "iss", ISSUER, "aud", "convex",
                     "sub", "user_2abc", "iat", (json_int_t)NOW_S - 5, "nbf",
                     (json_int_t)NOW_S - 10, "exp", (json_int_t)NOW_S + 55, "azp",
                     "http://localhost:5173", "jti", "j1");
}

static char *sign(EVP_PKEY *key, const char *alg, const char *kid, json_t *claims)
{
    char *token = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(jwt_sign(key, alg, kid, claims, &token, &e), 0);
    json_decref(claims);
    return token;
}

static char *sign_rsa(json_t *claims)
{
    return sign(K.rsa, "RS256", "k-rsa", claims);
}

typedef struct outcome {
    int rc;
    jwt_failure failure;
    err_t e;
} outcome;

/* Decodes and verifies token at NOW_S against K.set; frees token. */
static outcome check_with(char *token, const char *issuer, const jwk_set *set)
{
    outcome o = {0};
    err_init(&o.e);
    jwt *t = NULL;
    o.rc = jwt_decode(token, &t, &o.failure, &o.e);
    if (o.rc == 0) {
        jwt_policy p = {issuer, "convex", NOW_S, LIMIT_JWT_CLOCK_SKEW_S};
        o.rc = jwt_verify(t, set, &p, &o.failure, &o.e);
    }
    /* A refusal never quotes the token. */
    if (o.rc != 0 && strlen(token) > 20) assert_null(strstr(o.e.msg, token + strlen(token) - 20));
    jwt_free(t);
    free(token);
    return o;
}

static outcome check(char *token)
{
    return check_with(token, ISSUER, K.set);
}

static void assert_refused(outcome *o, jwt_failure f, const char *msg)
{
    assert_int_equal(o->rc, ERR_AUTH);
    assert_string_equal(jwt_failure_name(o->failure), jwt_failure_name(f));
    if (msg) assert_string_equal(o->e.msg, msg);
    err_clear(&o->e);
}

static void assert_refused_with(outcome *o, jwt_failure f, const char *part)
{
    assert_int_equal(o->rc, ERR_AUTH);
    assert_string_equal(jwt_failure_name(o->failure), jwt_failure_name(f));
    if (!strstr(o->e.msg, part)) fail_msg("message \"%s\" lacks \"%s\"", o->e.msg, part);
    err_clear(&o->e);
}

static void assert_accepted(outcome *o)
{
    if (o->rc != 0) fail_msg("refused (%s): %s", jwt_failure_name(o->failure), o->e.msg);
    assert_int_equal(o->failure, JWT_OK);
    err_clear(&o->e);
}

static char *b64url_of(const void *bytes, size_t n)
{
    char *out = malloc(b64_encoded_size(n));
    b64url_encode(bytes, n, out);
    return out;
}

/* "<b64 header>.<b64 claims>." followed by sig (base64url), all from text. */
static char *assemble(const char *header, const char *claims, const char *sig_b64)
{
    char *h = b64url_of(header, strlen(header));
    char *c = b64url_of(claims, strlen(claims));
    size_t n = strlen(h) + strlen(c) + strlen(sig_b64) + 3;
    char *token = malloc(n);
    snprintf(token, n, "%s.%s.%s", h, c, sig_b64);
    free(h);
    free(c);
    return token;
}

/* ---- accepted -------------------------------------------------------- */

static void test_accepts_rs256(void **state)
{
    outcome o = check(sign_rsa(good_claims()));
    assert_accepted(&o);
}

static void test_accepts_es256(void **state)
{
    outcome o = check(sign(K.ec, "ES256", "k-ec", good_claims()));
    assert_accepted(&o);
}

static void test_accepts_eddsa(void **state)
{
    outcome o = check(sign(K.ed, "EdDSA", "k-ed", good_claims()));
    assert_accepted(&o);
}

static void test_accepts_audience_array_containing_convex(void **state)
{
    json_t *claims = good_claims();
    json_object_set_new(claims, "aud", json_pack("[s,s]", "web", "convex"));
    outcome o = check(sign_rsa(claims));
    assert_accepted(&o);
}

static void test_accepts_exp_30s_past_within_skew(void **state)
{
    json_t *claims = good_claims();
    json_object_set_new(claims, "exp", json_integer(NOW_S - 30));
    outcome o = check(sign_rsa(claims));
    assert_accepted(&o);
}

static void test_accepts_token_without_kid_when_one_key_fits_its_alg(void **state)
{
    outcome o = check(sign(K.ed, "EdDSA", NULL, good_claims()));
    assert_accepted(&o);
}

static void test_es256_signature_is_raw_r_and_s(void **state)
{
    char *token = sign(K.ec, "ES256", "k-ec", good_claims());
    const char *sig = strrchr(token, '.') + 1;
    assert_int_equal(strlen(sig), 86); /* 64 bytes in base64url, unpadded */
    free(token);
}

static void test_signed_header_names_alg_kid_and_typ(void **state)
{
    char *token = sign(K.ec, "ES256", "k-ec", good_claims());
    jwt *t = NULL;
    jwt_failure f;
    err_t e;
    err_init(&e);
    assert_int_equal(jwt_decode(token, &t, &f, &e), 0);
    json_t *want = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "kid", "k-ec", "typ", "JWT");
    assert_true(json_equal(t->header, want));
    json_decref(want);
    jwt_free(t);
    free(token);
}

/* ---- refused: time --------------------------------------------------- */

static void test_refuses_exp_90s_past(void **state)
{
    json_t *claims = good_claims();
    json_object_set_new(claims, "exp", json_integer(NOW_S - 90));
    outcome o = check(sign_rsa(claims));
    assert_refused(&o, JWT_EXPIRED,
                   "Token expired at 2026-11-25T13:58:30Z (now 2026-11-25T14:00:00Z); the client "
                   "should fetch a fresh token");
}

static void test_refuses_missing_exp(void **state)
{
    json_t *claims = good_claims();
    json_object_del(claims, "exp");
    outcome o = check(sign_rsa(claims));
    assert_refused_with(&o, JWT_EXPIRED, "no expiry (exp)");
}

static void test_refuses_nbf_in_future(void **state)
{
    json_t *claims = good_claims();
    json_object_set_new(claims, "nbf", json_integer(NOW_S + 120));
    outcome o = check(sign_rsa(claims));
    assert_refused(&o, JWT_NOT_YET_VALID,
                   "Token is not valid before 2026-11-25T14:02:00Z (now 2026-11-25T14:00:00Z): is "
                   "this server's clock behind?");
}

static void test_accepts_nbf_within_skew(void **state)
{
    json_t *claims = good_claims();
    json_object_set_new(claims, "nbf", json_integer(NOW_S + 30));
    outcome o = check(sign_rsa(claims));
    assert_accepted(&o);
}

static void test_refuses_iat_in_future(void **state)
{
    json_t *claims = good_claims();
    json_object_set_new(claims, "iat", json_integer(NOW_S + 61));
    outcome o = check(sign_rsa(claims));
    assert_refused_with(&o, JWT_ISSUED_IN_FUTURE, "issued at 2026-11-25T14:01:01Z, in the future");
}

/* ---- refused: issuer and audience ------------------------------------ */

static void test_refuses_wrong_audience(void **state)
{
    json_t *claims = good_claims();
    json_object_set_new(claims, "aud", json_string("web"));
    outcome o = check(sign_rsa(claims));
    assert_refused(&o, JWT_AUDIENCE,
                   "Token audience is \"web\", expected \"convex\": is the Clerk JWT template "
                   "named convex?");
}

static void test_refuses_audience_array_without_convex(void **state)
{
    json_t *claims = good_claims();
    json_object_set_new(claims, "aud", json_pack("[s]", "web"));
    outcome o = check(sign_rsa(claims));
    assert_refused(&o, JWT_AUDIENCE,
                   "Token audience is [\"web\"], expected \"convex\": is the Clerk JWT template "
                   "named convex?");
}

static void test_refuses_wrong_issuer(void **state)
{
    json_t *claims = good_claims();
    json_object_set_new(claims, "iss", json_string("https://a.example"));
    outcome o = check_with(sign_rsa(claims), "https://b.example", K.set);
    assert_refused(&o, JWT_ISSUER,
                   "Token issuer is \"https://a.example\" but CLERK_ISSUER_URL is "
                   "\"https://b.example\"");
}

static void test_refuses_issuer_differing_by_trailing_slash_and_says_so(void **state)
{
    outcome o = check_with(sign_rsa(good_claims()), ISSUER "/", K.set);
    assert_refused_with(&o, JWT_ISSUER, "trailing slash");
}

static void test_refuses_when_no_issuer_configured(void **state)
{
    outcome o = check_with(sign_rsa(good_claims()), NULL, K.set);
    assert_refused(&o, JWT_NO_ISSUER_CONFIGURED,
                   "No issuer configured: set CLERK_ISSUER_URL (dojo env set CLERK_ISSUER_URL "
                   "https://<your-clerk-frontend-api>)");
}

/* ---- refused: algorithm, key and signature --------------------------- */

static void test_refuses_alg_none(void **state)
{
    json_t *c = good_claims();
    char *claims = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    char *token = assemble("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, "");
    free(claims);
    outcome o = check(token);
    assert_refused(&o, JWT_UNSUPPORTED_ALG,
                   "Token algorithm \"none\" is not accepted: use RS256, ES256 or EdDSA");
}

/* The classic confusion attack: HS256 keyed with the issuer's RSA public key
 * as published (PEM text), which anyone can compute. */
static char *hs256_token_keyed_with_rsa_pem(char **signing_input_out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, K.rsa), 1);
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    json_t *c = good_claims();
    char *claims = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    char *unsigned_token =
        assemble("{\"alg\":\"HS256\",\"kid\":\"k-rsa\",\"typ\":\"JWT\"}", claims, "");
    free(claims);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    size_t input_len = strlen(unsigned_token) - 1; /* without the final '.' */
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, pem, (size_t)pem_len,
                              (unsigned char *)unsigned_token, input_len, mac, sizeof mac,
                              &mac_len));
    BIO_free(bio);
    char *sig = b64url_of(mac, mac_len);
    char *token = malloc(strlen(unsigned_token) + strlen(sig) + 1);
    sprintf(token, "%s%s", unsigned_token, sig);
    *signing_input_out = strndup(unsigned_token, input_len);
    free(unsigned_token);
    free(sig);
    return token;
}

static void test_refuses_hs256_signed_with_rsa_public_key_pem(void **state)
{
    char *input = NULL;
    outcome o = check(hs256_token_keyed_with_rsa_pem(&input));
    free(input);
    assert_refused(&o, JWT_UNSUPPORTED_ALG,
                   "Token algorithm \"HS256\" is not accepted: use RS256, ES256 or EdDSA");
}

/* Even a decoded token whose alg was forced to HS256 never meets an HMAC
 * check: the alg must be the key's own. */
static void test_verify_refuses_hs256_even_past_decoding(void **state)
{
    char *input = NULL;
    char *hs = hs256_token_keyed_with_rsa_pem(&input);
    char *token = sign_rsa(good_claims());
    jwt *t = NULL;
    jwt_failure f;
    err_t e;
    err_init(&e);
    assert_int_equal(jwt_decode(token, &t, &f, &e), 0);
    t->alg = "HS256";
    free(t->signing_input);
    t->signing_input = input;
    jwt_policy p = {ISSUER, "convex", NOW_S, LIMIT_JWT_CLOCK_SKEW_S};
    assert_int_equal(jwt_verify(t, K.set, &p, &f, &e), ERR_AUTH);
    assert_int_equal(f, JWT_SIGNATURE);
    jwt_free(t);
    free(token);
    free(hs);
    err_clear(&e);
}

static void test_refuses_alg_not_matching_the_key(void **state)
{
    /* Signed with the RSA key but naming the EC key's kid. */
    outcome o = check(sign(K.rsa, "RS256", "k-ec", good_claims()));
    assert_refused(&o, JWT_SIGNATURE,
                   "Token algorithm \"RS256\" does not match the issuer's key \"k-ec\", which is "
                   "for ES256");
}

static void test_refuses_tampered_payload(void **state)
{
    char *token = sign_rsa(good_claims());
    json_t *claims = good_claims();
    json_object_set_new(claims, "sub", json_string("user_admin"));
    char *text = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    char *payload = b64url_of(text, strlen(text));
    free(text);
    const char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
    size_t n = strlen(token) + strlen(payload) + 1;
    char *forged = malloc(n);
    snprintf(forged, n, "%.*s.%s%s", (int)(dot1 - token), token, payload, dot2);
    free(payload);
    free(token);
    outcome o = check(forged);
    assert_refused(&o, JWT_SIGNATURE,
                   "Token signature does not verify with the issuer's key \"k-rsa\"");
}

static void test_refuses_signature_from_another_key(void **state)
{
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    outcome o = check(sign(other, "EdDSA", "k-ed", good_claims()));
    EVP_PKEY_free(other);
    assert_refused(&o, JWT_SIGNATURE,
                   "Token signature does not verify with the issuer's key \"k-ed\"");
}

static void test_refuses_unknown_kid(void **state)
{
    outcome o = check(sign(K.rsa, "RS256", "k9", good_claims()));
    assert_refused_with(&o, JWT_UNKNOWN_KID,
                        "Token key id \"k9\" is not in the issuer's JWKS (" JWKS_URL ")");
}

static void test_refuses_token_without_kid_when_several_keys_fit(void **state)
{
    json_t *doc = json_pack("{s:[o,o]}", "keys", jwk_public(K.rsa, "RS256", "a"),
                            jwk_public(K.rsa, "RS256", "b"));
    jwk_set *two = parse_json(doc);
    outcome o = check_with(sign(K.rsa, "RS256", NULL, good_claims()), ISSUER, two);
    jwks_free(two);
    assert_refused_with(&o, JWT_UNKNOWN_KID, "has 2 RS256 keys");
}

/* ---- refused: subject and shape -------------------------------------- */

static void test_refuses_missing_sub(void **state)
{
    json_t *claims = good_claims();
    json_object_del(claims, "sub");
    outcome o = check(sign_rsa(claims));
    assert_refused(&o, JWT_NO_SUBJECT, "Token has no subject (sub)");
}

static void test_refuses_empty_sub(void **state)
{
    json_t *claims = good_claims();
    json_object_set_new(claims, "sub", json_string(""));
    outcome o = check(sign_rsa(claims));
    assert_refused(&o, JWT_NO_SUBJECT, "Token has no subject (sub)");
}

static void assert_not_a_jwt(const char *text, const char *msg_part)
{
    outcome o = check(strdup(text));
    assert_refused_with(&o, JWT_MALFORMED, msg_part);
}

static void test_refuses_garbage(void **state)
{
    assert_not_a_jwt("hello world", "Not a JWT: expected three base64url segments");
    assert_not_a_jwt("", "Not a JWT: expected three base64url segments");
    assert_not_a_jwt("Bearer abc.def.ghi", "Not a JWT: expected three base64url segments");
}

static void test_refuses_two_segments(void **state)
{
    assert_not_a_jwt("eyJhbGciOiJSUzI1NiJ9.e30", "Not a JWT: expected three base64url segments");
    assert_not_a_jwt("a.b.c.d", "Not a JWT: expected three base64url segments");
}

static void test_refuses_non_json_segments(void **state)
{
    char *token = assemble("not json", "{}", "c2ln");
    outcome o = check(token);
    assert_refused_with(&o, JWT_MALFORMED, "header (first segment)");
    token = assemble("{\"alg\":\"RS256\"}", "[1,2]", "c2ln");
    o = check(token);
    assert_refused_with(&o, JWT_MALFORMED, "payload (second segment)");
    token = assemble("{\"alg\":\"RS256\"}", "{\"sub\":\"a\",\"sub\":\"b\"}", "c2ln");
    o = check(token);
    assert_refused_with(&o, JWT_MALFORMED, "payload (second segment)");
}

static void test_refuses_oversized_token(void **state)
{
    char *token = malloc(LIMIT_JWT_BYTES_MAX + 2);
    memset(token, 'a', LIMIT_JWT_BYTES_MAX + 1);
    token[LIMIT_JWT_BYTES_MAX + 1] = '\0';
    outcome o = check(token);
    assert_refused_with(&o, JWT_MALFORMED, "LIMIT_JWT_BYTES_MAX");
}

static void test_sign_refuses_alg_not_matching_key(void **state)
{
    char *token = NULL;
    err_t e;
    err_init(&e);
    json_t *claims = good_claims();
    assert_int_not_equal(jwt_sign(K.ec, "RS256", "k", claims, &token, &e), 0);
    assert_int_not_equal(jwt_sign(K.rsa, "HS256", "k", claims, &token, &e), 0);
    assert_null(token);
    json_decref(claims);
    err_clear(&e);
}

/* ---- identity -------------------------------------------------------- */

static void test_identity_maps_clerk_claims(void **state)
{
    json_t *claims = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:b, s:I,"
        " s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:s, s:s, s:s, s:[s],"
        " s:s, s:s, s:{s:s}}",
        "iss", ISSUER, "sub", "user_2abc", "aud", "convex", "exp", (json_int_t)NOW_S + 60, "iat",
        (json_int_t)NOW_S, "nbf", (json_int_t)NOW_S, "jti", "j1", "azp", "http://localhost:5173",
        "name", "Ada Lovelace", "given_name", "Ada", "family_name", "Lovelace", "nickname", "ada",
        "email", "ada@example.com", "email_verified", 1, "phone_number", "+441234",
        "phone_number_verified", 0, "updated_at", (json_int_t)1714558830, "picture",
        "https://img/ada.png", "preferred_username", "countess", "profile", "https://p/ada",
        "website", "https://ada.dev", "gender", "female", "birthdate", "1815-12-10", "zoneinfo",
        "Europe/London", "locale", "en-GB", "address", "formatted", "12 St James's Sq", "auth_time",
        "1", "nonce", "n", "acr", "1", "at_hash", "x", "c_hash", "y", "amr", "pwd", "fva", "0",
        "plan", "pro", "org", "slug", "acme");
    json_t *want = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:s,"
        " s:s, s:s, s:s, s:s, s:s, s:{s:s}}",
        "tokenIdentifier", ISSUER "|user_2abc", "issuer", ISSUER, "subject", "user_2abc", "name",
        "Ada Lovelace", "givenName", "Ada", "familyName", "Lovelace", "nickname", "ada", "email",
        "ada@example.com", "emailVerified", 1, "phoneNumber", "+441234", "phoneNumberVerified", 0,
        "updatedAt", "2024-05-01T10:20:30+00:00", "pictureUrl", "https://img/ada.png",
        "preferredUsername", "countess", "profileUrl", "https://p/ada", "websiteUrl",
        "https://ada.dev", "gender", "female", "birthday", "1815-12-10", "timezone",
        "Europe/London", "language", "en-GB", "address", "12 St James's Sq", "plan", "pro", "org",
        "slug", "acme");
    assert_non_null(claims);
    assert_non_null(want);
    json_t *identity = jwt_identity(claims);
    if (!json_equal(identity, want)) {
        char *got = json_dumps(identity, JSON_SORT_KEYS);
        fail_msg("identity %s", got);
    }
    json_decref(identity);
    json_decref(claims);
    json_decref(want);
}

static void test_identity_has_no_key_for_absent_claims(void **state)
{
    json_t *claims = json_pack("{s:s, s:s}", "iss", ISSUER, "sub", "u");
    json_t *identity = jwt_identity(claims);
    json_t *want = json_pack("{s:s, s:s, s:s}", "tokenIdentifier", ISSUER "|u", "issuer", ISSUER,
                             "subject", "u");
    assert_true(json_equal(identity, want));
    json_decref(identity);
    json_decref(claims);
    json_decref(want);
}

static void test_identity_updated_at_is_rfc3339_with_offset(void **state)
{
    json_t *claims =
        json_pack("{s:s, s:s, s:I}", "iss", ISSUER, "sub", "u", "updated_at", (json_int_t)0);
    json_t *identity = jwt_identity(claims);
    assert_string_equal(json_string_value(json_object_get(identity, "updatedAt")),
                        "1970-01-01T00:00:00+00:00");
    assert_null(json_object_get(identity, "updated_at"));
    json_decref(identity);
    json_decref(claims);
}

static void test_identity_custom_claims_cannot_replace_typed_fields(void **state)
{
    json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:s}", "tokenIdentifier", "evil|x", "iss",
                               ISSUER, "subject", "admin", "sub", "u", "givenName", "Mallory");
    json_object_set_new(claims, "given_name", json_string("Ada"));
    json_t *identity = jwt_identity(claims);
    assert_string_equal(json_string_value(json_object_get(identity, "tokenIdentifier")),
                        ISSUER "|u");
    assert_string_equal(json_string_value(json_object_get(identity, "subject")), "u");
    assert_string_equal(json_string_value(json_object_get(identity, "givenName")), "Ada");
    json_decref(identity);
    json_decref(claims);
}

/* ---- JWKS ------------------------------------------------------------ */

static void test_jwks_parse_skips_oct_and_encryption_keys(void **state)
{
    json_t *doc = jwks_json();
    json_t *list = json_object_get(doc, "keys");
    json_array_insert_new(list, 0,
                          json_pack("{s:s, s:s, s:s}", "kty", "oct", "kid", "h", "k", "c2VjcmV0"));
    json_t *enc = jwk_public(K.rsa, "RS256", "enc");
    json_object_set_new(enc, "use", json_string("enc"));
    json_array_append_new(list, enc);
    jwk_set *set = parse_json(doc);
    assert_int_equal(set->n_keys, 3);
    assert_null(jwks_find(set, "h", NULL));
    assert_null(jwks_find(set, "enc", NULL));
    assert_string_equal(jwks_find(set, "k-rsa", NULL)->alg, "RS256");
    assert_string_equal(jwks_find(set, "k-ec", "ES256")->kid, "k-ec");
    assert_string_equal(jwks_find(set, NULL, "EdDSA")->kid, "k-ed");
    assert_null(jwks_find(set, "k-ec", "RS256"));
    jwks_free(set);
}

static void assert_jwks_refused(const char *text, const char *msg_part)
{
    jwk_set *set = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(jwks_parse(text, strlen(text), &set, &e), ERR_AUTH);
    assert_null(set);
    if (!strstr(e.msg, msg_part)) fail_msg("message \"%s\" lacks \"%s\"", e.msg, msg_part);
    err_clear(&e);
}

static void test_jwks_parse_refuses_a_set_with_no_usable_key(void **state)
{
    assert_jwks_refused("{\"keys\":[]}", "holds no key");
    assert_jwks_refused("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",
                        "1 are not signing keys");
    assert_jwks_refused("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}",
                        "1 have an unsupported");
    assert_jwks_refused("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
                        "1 are malformed");
    assert_jwks_refused("[]", "\"keys\" array");
    assert_jwks_refused("not json", "\"keys\" array");
}

static void test_jwks_parse_refuses_point_off_the_curve(void **state)
{
    json_t *jwk = jwk_public(K.ec, "ES256", "bad");
    const char *y = json_string_value(json_object_get(jwk, "y"));
    char *flipped = strdup(y);
    flipped[3] = flipped[3] == 'A' ? 'B' : 'A';
    json_object_set_new(jwk, "y", json_string(flipped));
    free(flipped);
    json_t *doc = json_pack("{s:[o]}", "keys", jwk);
    char *text = json_dumps(doc, 0);
    json_decref(doc);
    assert_jwks_refused(text, "1 are malformed");
    free(text);
}

static void test_jwk_public_shapes(void **state)
{
    json_t *rsa = jwk_public(K.rsa, NULL, "r");
    json_t *ec = jwk_public(K.ec, NULL, NULL);
    json_t *ed = jwk_public(K.ed, "EdDSA", "e");
    assert_string_equal(json_string_value(json_object_get(rsa, "kty")), "RSA");
    assert_string_equal(json_string_value(json_object_get(rsa, "e")), "AQAB");
    assert_string_equal(json_string_value(json_object_get(rsa, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(ec, "crv")), "P-256");
    assert_null(json_object_get(ec, "kid"));
    assert_int_equal(strlen(json_string_value(json_object_get(ec, "x"))), 43);
    assert_string_equal(json_string_value(json_object_get(ed, "kty")), "OKP");
    assert_string_equal(json_string_value(json_object_get(ed, "crv")), "Ed25519");
    assert_string_equal(json_string_value(json_object_get(ed, "use")), "sig");
    assert_null(jwk_public(K.ed, "RS256", "x"));
    json_decref(rsa);
    json_decref(ec);
    json_decref(ed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_rs256),
        cmocka_unit_test(test_accepts_es256),
        cmocka_unit_test(test_accepts_eddsa),
        cmocka_unit_test(test_accepts_audience_array_containing_convex),
        cmocka_unit_test(test_accepts_exp_30s_past_within_skew),
        cmocka_unit_test(test_accepts_token_without_kid_when_one_key_fits_its_alg),
        cmocka_unit_test(test_es256_signature_is_raw_r_and_s),
        cmocka_unit_test(test_signed_header_names_alg_kid_and_typ),
        cmocka_unit_test(test_refuses_exp_90s_past),
        cmocka_unit_test(test_refuses_missing_exp),
        cmocka_unit_test(test_refuses_nbf_in_future),
        cmocka_unit_test(test_accepts_nbf_within_skew),
        cmocka_unit_test(test_refuses_iat_in_future),
        cmocka_unit_test(test_refuses_wrong_audience),
        cmocka_unit_test(test_refuses_audience_array_without_convex),
        cmocka_unit_test(test_refuses_wrong_issuer),
        cmocka_unit_test(test_refuses_issuer_differing_by_trailing_slash_and_says_so),
        cmocka_unit_test(test_refuses_when_no_issuer_configured),
        cmocka_unit_test(test_refuses_alg_none),
        cmocka_unit_test(test_refuses_hs256_signed_with_rsa_public_key_pem),
        cmocka_unit_test(test_verify_refuses_hs256_even_past_decoding),
        cmocka_unit_test(test_refuses_alg_not_matching_the_key),
        cmocka_unit_test(test_refuses_tampered_payload),
        cmocka_unit_test(test_refuses_signature_from_another_key),
        cmocka_unit_test(test_refuses_unknown_kid),
        cmocka_unit_test(test_refuses_token_without_kid_when_several_keys_fit),
        cmocka_unit_test(test_refuses_missing_sub),
        cmocka_unit_test(test_refuses_empty_sub),
        cmocka_unit_test(test_refuses_garbage),
        cmocka_unit_test(test_refuses_two_segments),
        cmocka_unit_test(test_refuses_non_json_segments),
        cmocka_unit_test(test_refuses_oversized_token),
        cmocka_unit_test(test_sign_refuses_alg_not_matching_key),
        cmocka_unit_test(test_identity_maps_clerk_claims),
        cmocka_unit_test(test_identity_has_no_key_for_absent_claims),
        cmocka_unit_test(test_identity_updated_at_is_rfc3339_with_offset),
        cmocka_unit_test(test_identity_custom_claims_cannot_replace_typed_fields),
        cmocka_unit_test(test_jwks_parse_skips_oct_and_encryption_keys),
        cmocka_unit_test(test_jwks_parse_refuses_a_set_with_no_usable_key),
        cmocka_unit_test(test_jwks_parse_refuses_point_off_the_curve),
        cmocka_unit_test(test_jwk_public_shapes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
