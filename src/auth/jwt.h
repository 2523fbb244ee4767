/*
 * jwt.h — JSON Web Tokens: decoding, signature and claim checks, and signing
 * (for the built-in development issuer and for tests). Signatures use
 * OpenSSL 3's EVP interface: RS256, ES256 and EdDSA (Ed25519). `none` and the
 * HMAC algorithms are refused whatever the key set holds.
 * Thread: any; pure functions over their arguments.
 */
#ifndef DOJO_AUTH_JWT_H
#define DOJO_AUTH_JWT_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/limits.h"

/* Why a token was refused; doctor names the check from it. */
typedef enum {
    JWT_OK = 0,
    JWT_MALFORMED,            /* not three base64url segments of JSON objects */
    JWT_UNSUPPORTED_ALG,      /* none, HS*, or anything but RS256/ES256/EdDSA */
    JWT_NO_ISSUER_CONFIGURED, /* CLERK_ISSUER_URL not set */
    JWT_ISSUER,               /* iss differs from the configured issuer */
    JWT_AUDIENCE,             /* aud does not contain the application id */
    JWT_UNKNOWN_KID,          /* no key in the issuer's JWKS with this kid */
    JWT_SIGNATURE,            /* the signature does not verify */
    JWT_EXPIRED,              /* exp in the past (beyond the skew) or missing */
    JWT_NOT_YET_VALID,        /* nbf in the future (beyond the skew) */
    JWT_ISSUED_IN_FUTURE,     /* iat in the future (beyond the skew) */
    JWT_NO_SUBJECT,           /* sub missing or not a non-empty string */
    JWT_ISSUER_UNREACHABLE,   /* discovery or JWKS fetch failed */
} jwt_failure;

const char *jwt_failure_name(jwt_failure f); /* "expired", "audience", … */

typedef struct jwk_key {
    char kid[128]; /* "" when the JWK has none */
    char alg[16];  /* the algorithm this key is for: "RS256", "ES256", "EdDSA" */
    EVP_PKEY *pkey;
} jwk_key;

#define JWKS_URL_BYTES_MAX 512

typedef struct jwk_set {
    jwk_key keys[LIMIT_JWKS_KEYS_MAX];
    int n_keys;
    char url[JWKS_URL_BYTES_MAX]; /* where the set came from (jwks_uri), "" when unknown;
                                     refusal messages name it */
} jwk_set;

/* Parses a JWKS document ({"keys": [...]}). Keys of unusable types (HMAC
 * "oct", other curves, "use":"enc") are skipped; an empty result is an error.
 * *out is freed with jwks_free. */
int jwks_parse(const char *json, size_t len, jwk_set **out, err_t *e);
void jwks_free(jwk_set *set);
/* With a kid: the key with that kid (and that alg, unless alg is NULL).
 * Without (kid NULL): the one key usable for alg, NULL when none or several. */
const jwk_key *jwks_find(const jwk_set *set, const char *kid, const char *alg);
/* The JWS algorithm a key can sign for: "RS256" (RSA), "ES256" (EC P-256),
 * "EdDSA" (Ed25519), NULL for any other key. */
const char *jwk_alg_for_key(const EVP_PKEY *key);

/* A decoded, unverified token. */
typedef struct jwt {
    json_t *header;
    json_t *claims;
    char *signing_input; /* "<b64 header>.<b64 payload>" */
    unsigned char *sig;
    size_t sig_len;
    const char *alg;                /* borrowed from header */
    const char *kid;                /* borrowed from header, NULL when absent */
    unsigned char token_sha256[32]; /* of the whole token text (the verified-token cache key) */
} jwt;

/* Splits and decodes. On failure: ERR_AUTH, *failure = JWT_MALFORMED or
 * JWT_UNSUPPORTED_ALG, and a message saying what is wrong. */
int jwt_decode(const char *token, jwt **out, jwt_failure *failure, err_t *e);
void jwt_free(jwt *t);

typedef struct jwt_policy {
    const char *issuer;   /* required iss, exactly; NULL = none configured */
    const char *audience; /* required member of aud, e.g. "convex" */
    int64_t now_s;        /* seconds since the epoch */
    int skew_s;           /* LIMIT_JWT_CLOCK_SKEW_S */
} jwt_policy;

/* Checks claims (iss, aud, exp, nbf, iat, sub) and the signature with a key
 * of keys. The order of checks: issuer configured, iss, aud, key (kid), alg vs
 * key, signature, exp, nbf, iat, sub. On failure: ERR_AUTH, *failure set, and
 * a message that says which check failed and what to fix, e.g.
 *   Token audience is ["web"], expected "convex": is the Clerk JWT template named convex?
 * keys may be NULL: the checks before the key run, and a token that passes
 * them is refused with JWT_UNKNOWN_KID (auth.c uses this before fetching).
 */
int jwt_verify(const jwt *t, const jwk_set *keys, const jwt_policy *p, jwt_failure *failure,
               err_t *e);

/* True when two URLs are equal once trailing slashes are ignored
 * ("https://a.example/" and "https://a.example"). */
bool jwt_same_url(const char *a, const char *b);

/* The identity object of api.md §2 / convex-protocol.md §6.3 built from
 * verified claims: tokenIdentifier = iss + "|" + sub, the standard claims
 * renamed, every other claim kept under its own name; aud, exp, iat, nbf,
 * jti, azp, auth_time, nonce, acr, amr, at_hash, c_hash, fva dropped.
 * Returns a new object. */
json_t *jwt_identity(const json_t *claims);

/* Signs claims with key (alg "RS256", "ES256" or "EdDSA"). *token_out is
 * malloc'd. */
int jwt_sign(EVP_PKEY *key, const char *alg, const char *kid, const json_t *claims,
             char **token_out, err_t *e);

/* The public JWK of key: {"kty", "kid", "alg", "use":"sig", …}. */
json_t *jwk_public(EVP_PKEY *key, const char *alg, const char *kid);

#endif
