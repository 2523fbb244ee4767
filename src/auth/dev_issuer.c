/*
 * dev_issuer.c — the built-in development issuer (see dev_issuer.h): the
 * RS256 key file, its thumbprint key id, the discovery and JWKS documents,
 * and the claims of a development token.
 * Callers: cli/devauth.c (dojo dev --dev-auth) and cli/token.c (dojo token).
 * Thread: the command line's main thread (key file I/O); the rest is pure.
 */
#include "auth/dev_issuer.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/jwt.h"
#include "base/jread.h"
#include "base/b64.h"

#define TMP_PATH_BYTES_MAX 1024
#define THUMBPRINT_INPUT_BYTES_MAX 2048 /* {"e","kty","n"} of a key up to 8192 bits */
#define CLAIM_KEY_BYTES_MAX 128
#define JWKS_URI_BYTES_MAX 1024

/* ---- the key file ------------------------------------------------------------ */

static int key_check(EVP_PKEY *key, const char *pem_path, err_t *e)
{
    const char *alg = jwk_alg_for_key(key);
    if (!alg || strcmp(alg, DEV_ISSUER_ALG) != 0 || EVP_PKEY_get_bits(key) < DEV_ISSUER_KEY_BITS)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "%s is not an RSA private key of at least %d bits: delete it and run "
                       "`dojo dev --dev-auth` again to make a new one",
                       pem_path, DEV_ISSUER_KEY_BITS);
    return 0;
}

static int key_read(const char *pem_path, EVP_PKEY **key_out, err_t *e)
{
    FILE *f = fopen(pem_path, "rb");
    if (!f) {
        if (errno == ENOENT) return err_set(e, ERR_NOT_FOUND, "%s does not exist", pem_path);
        return err_set(e, ERR_IO, "cannot read %s: %s", pem_path, strerror(errno));
    }
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    ERR_clear_error();
    if (!key)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "%s is not a PEM private key: delete it and run `dojo dev --dev-auth` "
                       "again to make a new one",
                       pem_path);
    int rc = key_check(key, pem_path, e);
    if (rc) {
        EVP_PKEY_free(key);
        return rc;
    }
    chmod(pem_path, 0600); /* a key copied around with looser modes is tightened again */
    *key_out = key;
    return 0;
}

/* Writes key to pem_path through a temporary file and a rename. */
static int key_write(const char *pem_path, EVP_PKEY *key, err_t *e)
{
    char tmp[TMP_PATH_BYTES_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", pem_path) >= (int)sizeof tmp)
        return err_set(e, ERR_INVALID_ARGUMENT, "key path too long: %s", pem_path);
    unlink(tmp); /* left over from an interrupted run */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return err_set(e, ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        return err_set(e, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    }
    bool ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    ERR_clear_error();
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, pem_path) != 0) {
        int saved = errno;
        unlink(tmp);
        return err_set(e, ERR_IO, "cannot write %s: %s", pem_path, strerror(saved));
    }
    return 0;
}

int dev_issuer_key_load(const char *pem_path, bool create, EVP_PKEY **key_out, bool *created,
                        err_t *e)
{
    *key_out = NULL;
    if (created) *created = false;
    int rc = key_read(pem_path, key_out, e);
    if (rc != ERR_NOT_FOUND || !create) return rc;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DEV_ISSUER_KEY_BITS);
    ERR_clear_error();
    if (!key) return err_set(e, ERR_INTERNAL, "OpenSSL could not generate an RSA key");
    rc = key_write(pem_path, key, e);
    if (rc) {
        EVP_PKEY_free(key);
        return rc;
    }
    *key_out = key;
    if (created) *created = true;
    return 0;
}

/* ---- key id and published documents ----------------------------------------------- */

int dev_issuer_kid(EVP_PKEY *key, char kid[DEV_ISSUER_KID_BYTES], err_t *e)
{
    json_t *jwk = jwk_public(key, DEV_ISSUER_ALG, NULL);
    const char *n = NULL, *ex = NULL;
    err_t why;
    err_init(&why);
    jr_string(jwk, "key", "n", 0, THUMBPRINT_INPUT_BYTES_MAX, &n, &why);
    jr_string(jwk, "key", "e", 0, THUMBPRINT_INPUT_BYTES_MAX, &ex, &why);
    char input[THUMBPRINT_INPUT_BYTES_MAX];
    int len = n && ex ? snprintf(input, sizeof input, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}",
                                 ex, n)
                      : -1;
    json_decref(jwk);
    if (len < 0 || len >= (int)sizeof input)
        return err_set(e, ERR_INVALID_ARGUMENT, "the development key is not a usable RSA key");
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)input, (size_t)len, digest);
    static_assert(DEV_ISSUER_KID_BYTES >= 44, "a base64url SHA-256 is 43 characters");
    b64url_encode(digest, sizeof digest, kid);
    return 0;
}

json_t *dev_issuer_discovery(const char *issuer)
{
    char jwks_uri[JWKS_URI_BYTES_MAX];
    snprintf(jwks_uri, sizeof jwks_uri, "%s%s", issuer, DEV_ISSUER_JWKS_PATH);
    return json_pack("{s:s, s:s, s:[s], s:[s], s:[s], s:[s], s:[s,s,s,s,s,s,s,s,s,s,s]}", "issuer",
                     issuer, "jwks_uri", jwks_uri, "response_types_supported", "id_token",
                     "subject_types_supported", "public", "id_token_signing_alg_values_supported",
                     DEV_ISSUER_ALG, "scopes_supported", "openid", "claims_supported", "iss", "aud",
                     "sub", "iat", "nbf", "exp", "jti", "name", "email", "email_verified",
                     "picture");
}

json_t *dev_issuer_jwks(EVP_PKEY *key, const char *kid)
{
    json_t *jwk = jwk_public(key, DEV_ISSUER_ALG, kid);
    return jwk ? json_pack("{s:[o]}", "keys", jwk) : NULL;
}

/* ---- tokens --------------------------------------------------------------------------- */

static bool registered_claim(const char *name)
{
    static const char *const names[] = {"iss", "aud", "sub", "iat", "nbf", "exp", "jti"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0) return true;
    return false;
}

/* "key=value": value as JSON when it parses (numbers, true, {"a":1}), else
 * as the string it is. */
static int add_custom_claim(json_t *claims, const char *spec, err_t *e)
{
    const char *eq = strchr(spec, '=');
    size_t key_len = eq ? (size_t)(eq - spec) : 0;
    if (!eq || key_len == 0 || key_len >= CLAIM_KEY_BYTES_MAX)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "--claim wants NAME=VALUE (e.g. --claim org_role=admin), got \"%.80s\"",
                       spec);
    if (strlen(eq + 1) > DEV_ISSUER_CLAIM_BYTES_MAX)
        return err_set(e, ERR_INVALID_ARGUMENT, "--claim %.*s: the value is over %d bytes",
                       (int)key_len, spec, DEV_ISSUER_CLAIM_BYTES_MAX);
    char key[CLAIM_KEY_BYTES_MAX];
    memcpy(key, spec, key_len);
    key[key_len] = '\0';
    if (registered_claim(key))
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "--claim %s: %s is set by dojo token itself (use --sub, --ttl or --url)",
                       key, key);
    json_t *value = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (!value) value = json_string(eq + 1);
    if (!value) return err_set(e, ERR_INVALID_ARGUMENT, "--claim %s: the value is not UTF-8", key);
    json_object_set_new(claims, key, value);
    return 0;
}

int dev_issuer_claims(const dev_token_request *req, int64_t now_s, const char *jti_hex,
                      json_t **claims_out, err_t *e)
{
    *claims_out = NULL;
    if (!req->issuer || !*req->issuer)
        return err_set(e, ERR_INVALID_ARGUMENT, "no issuer URL for the token");
    if (!req->sub || !*req->sub)
        return err_set(e, ERR_INVALID_ARGUMENT, "--sub must be a non-empty user id, e.g. user_1");
    if (req->ttl_s < 1 || req->ttl_s > DEV_ISSUER_TTL_S_MAX)
        return err_set(e, ERR_INVALID_ARGUMENT, "--ttl must be 1 to %d seconds, got %lld",
                       DEV_ISSUER_TTL_S_MAX, (long long)req->ttl_s);
    if (req->n_claims < 0 || req->n_claims > DEV_ISSUER_CLAIMS_MAX)
        return err_set(e, ERR_INVALID_ARGUMENT, "at most %d --claim options",
                       DEV_ISSUER_CLAIMS_MAX);
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "iss", req->issuer, "aud",
                  DEV_ISSUER_AUDIENCE, "sub", req->sub, "iat", (json_int_t)now_s, "nbf",
                  (json_int_t)now_s, "exp", (json_int_t)(now_s + req->ttl_s), "jti", jti_hex);
    if (!claims) return err_set(e, ERR_INVALID_ARGUMENT, "--sub, --url or the id are not UTF-8");
    bool ok = true;
    if (req->name) ok = json_object_set_new(claims, "name", json_string(req->name)) == 0 && ok;
    if (req->email) {
        ok = json_object_set_new(claims, "email", json_string(req->email)) == 0 && ok;
        ok = json_object_set_new(claims, "email_verified", json_true()) == 0 && ok;
    }
    if (req->picture)
        ok = json_object_set_new(claims, "picture", json_string(req->picture)) == 0 && ok;
    if (!ok) {
        json_decref(claims);
        return err_set(e, ERR_INVALID_ARGUMENT, "--name, --email or --picture is not UTF-8");
    }
    for (int i = 0; i < req->n_claims; i++) {
        int rc = add_custom_claim(claims, req->claims[i], e);
        if (rc) {
            json_decref(claims);
            return rc;
        }
    }
    *claims_out = claims;
    return 0;
}

int dev_issuer_sign(EVP_PKEY *key, const char *kid, const json_t *claims, char **token_out,
                    err_t *e)
{
    return jwt_sign(key, DEV_ISSUER_ALG, kid, claims, token_out, e);
}
