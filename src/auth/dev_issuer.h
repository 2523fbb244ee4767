/*
 * dev_issuer.h — the built-in development issuer of `dojo dev --dev-auth`
 * and `dojo token`: one RS256 signing key kept in a PEM file (created on
 * first use, mode 0600, reused afterwards), its stable key id (the RFC 7638
 * thumbprint of the public key, so the same key always has the same kid),
 * the two documents an OpenID issuer publishes (discovery and JWKS), and the
 * claims of a token shaped like a Clerk "convex" template token.
 *
 * It signs only what a developer asks for on their own machine; `dojo serve`
 * never uses it.
 * Thread: any; the functions are pure over their arguments except the key
 * file functions, which do blocking file I/O (command line only).
 */
#ifndef DOJO_AUTH_DEV_ISSUER_H
#define DOJO_AUTH_DEV_ISSUER_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

#define DEV_ISSUER_KEY_BITS 2048
#define DEV_ISSUER_ALG "RS256"
#define DEV_ISSUER_KID_BYTES 64 /* a SHA-256 thumbprint in base64url is 43 characters */
#define DEV_ISSUER_AUDIENCE "convex"
#define DEV_ISSUER_DISCOVERY_PATH "/.well-known/openid-configuration"
#define DEV_ISSUER_JWKS_PATH "/.well-known/jwks.json"
#define DEV_ISSUER_TTL_S_DEFAULT 3600
#define DEV_ISSUER_TTL_S_MAX 86400
#define DEV_ISSUER_CLAIMS_MAX 32        /* --claim k=v options of one token */
#define DEV_ISSUER_CLAIM_BYTES_MAX 4096 /* one --claim value */

/*
 * Loads the RSA private key at pem_path. When the file does not exist and
 * create is true, generates a new 2048-bit key and writes it there (mode
 * 0600, written to a temporary file and renamed, so a crash never leaves half
 * a key); *created tells which happened. A missing file without create is
 * ERR_NOT_FOUND. A file that is not an RSA key of at least 2048 bits is
 * ERR_INVALID_ARGUMENT naming the file. *key_out is freed with EVP_PKEY_free.
 */
int dev_issuer_key_load(const char *pem_path, bool create, EVP_PKEY **key_out, bool *created,
                        err_t *e);

/* The key id: base64url(SHA-256({"e":…,"kty":"RSA","n":…})), RFC 7638. */
int dev_issuer_kid(EVP_PKEY *key, char kid[DEV_ISSUER_KID_BYTES], err_t *e);

/* {"issuer", "jwks_uri", and the minimal OpenID provider metadata}. issuer
 * has no trailing slash. Returns a new object. */
json_t *dev_issuer_discovery(const char *issuer);

/* {"keys": [the public JWK of key, with kid]}; NULL when key is not RSA. */
json_t *dev_issuer_jwks(EVP_PKEY *key, const char *kid);

/* What a token should say; NULL fields are left out. */
typedef struct dev_token_request {
    const char *issuer;
    const char *sub;
    const char *email; /* also sets email_verified: true */
    const char *name;
    const char *picture;
    int64_t ttl_s;                             /* 1..DEV_ISSUER_TTL_S_MAX */
    const char *claims[DEV_ISSUER_CLAIMS_MAX]; /* "key=value"; value is JSON when it parses
                                                  as JSON, otherwise a string */
    int n_claims;
} dev_token_request;

/*
 * The claims of a token for req at now_s: iss, aud "convex", sub, iat, nbf,
 * exp = now_s + ttl_s, jti (jti_hex, random, from the caller), plus name,
 * email, email_verified, picture and the custom claims. A custom claim may
 * not replace a registered one (iss, aud, sub, iat, nbf, exp, jti): that is
 * ERR_INVALID_ARGUMENT with a message saying which option to use instead.
 * Returns 0 and a new object in *claims_out.
 */
int dev_issuer_claims(const dev_token_request *req, int64_t now_s, const char *jti_hex,
                      json_t **claims_out, err_t *e);

/* Signs claims with key (RS256, header kid). *token_out is malloc'd. */
int dev_issuer_sign(EVP_PKEY *key, const char *kid, const json_t *claims, char **token_out,
                    err_t *e);

#endif
