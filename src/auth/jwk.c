/*
 * jwk.c — JSON Web Keys: a JWKS document becomes a set of OpenSSL public
 * keys (RSA from n/e, EC P-256 from x/y, Ed25519 from x, each built with
 * OSSL_PARAM_BLD + EVP_PKEY_fromdata), and a key becomes its public JWK again
 * (for the development issuer and for tests).
 * Called by fetch.c on a libuv worker thread (jwks_parse), by jwt.c and
 * auth.c on the event-loop thread (jwks_find), and by tests.
 * Thread: any; pure functions over their arguments.
 */
#include "auth/jwt.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "base/b64.h"
#include "base/invariant.h"
#include "base/jread.h"
#include "base/log.h"

/* The largest decoded JWK member we read: an RSA modulus of 8192 bits. */
#define JWK_FIELD_BYTES_MAX 1024
/* base64url characters that decode to at most JWK_FIELD_BYTES_MAX bytes. */
/* kty, use, alg, crv: short names ("RSA", "sig", "RS256", "Ed25519"). */
#define JWK_NAME_BYTES_MAX 64
#define JWK_FIELD_CHARS_MAX ((JWK_FIELD_BYTES_MAX + 2) / 3 * 4)
/* The buffer b64_decode needs for JWK_FIELD_CHARS_MAX characters. */
#define JWK_FIELD_BUF_BYTES ((JWK_FIELD_CHARS_MAX / 4 + 1) * 3)
#define JWK_RSA_BITS_MIN 2048
#define JWK_P256_COORD_BYTES 32
#define JWK_ED25519_BYTES 32

/* Why a JWK was not used; counted so an empty set can be explained. */
typedef enum {
    SKIP_NOT_SIGNING, /* "use" other than "sig", or an HMAC ("oct") key */
    SKIP_UNSUPPORTED, /* another kty, curve or alg */
    SKIP_INVALID,     /* the key material is broken or too weak */
    SKIP_KINDS,
} skip_kind;

const char *jwk_alg_for_key(const EVP_PKEY *key)
{
    ASSERT(key);
    if (EVP_PKEY_is_a(key, "RSA")) return "RS256";
    if (EVP_PKEY_is_a(key, "ED25519")) return "EdDSA";
    if (!EVP_PKEY_is_a(key, "EC")) return NULL;
    char group[64];
    size_t group_len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &group_len) != 1)
        return NULL;
    bool p256 = strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
    return p256 ? "ES256" : NULL;
}

/* Decodes the base64url member name of jwk into out (JWK_FIELD_BUF_BYTES
 * bytes). Returns the length, or -1 when it is missing or not base64url. */
static long jwk_bytes(const json_t *jwk, const char *name, uint8_t *out)
{
    const char *text;
    err_t why;
    err_init(&why);
    if (jr_string(jwk, "key", name, JR_NONEMPTY, JWK_FIELD_CHARS_MAX, &text, &why)) return -1;
    return b64_decode(text, strlen(text), out);
}

/* Builds a public key of type from params; NULL when OpenSSL refuses it. */
static EVP_PKEY *key_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_from_jwk(const json_t *jwk)
{
    uint8_t n_bytes[JWK_FIELD_BUF_BYTES], e_bytes[JWK_FIELD_BUF_BYTES];
    long n_len = jwk_bytes(jwk, "n", n_bytes);
    long e_len = jwk_bytes(jwk, "e", e_bytes);
    if (n_len <= 0 || e_len <= 0 || e_len > 8) return NULL;
    BIGNUM *n = BN_bin2bn(n_bytes, (int)n_len, NULL);
    BIGNUM *e = BN_bin2bn(e_bytes, (int)e_len, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    bool usable = n && e && BN_num_bits(n) >= JWK_RSA_BITS_MIN && BN_is_odd(e) && !BN_is_one(e);
    if (usable && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1)
        pkey = key_from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

/* True when OpenSSL agrees the public key is a valid point of its curve. */
static bool public_key_checks(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static EVP_PKEY *p256_from_jwk(const json_t *jwk)
{
    uint8_t x[JWK_FIELD_BUF_BYTES], y[JWK_FIELD_BUF_BYTES];
    if (jwk_bytes(jwk, "x", x) != JWK_P256_COORD_BYTES) return NULL;
    if (jwk_bytes(jwk, "y", y) != JWK_P256_COORD_BYTES) return NULL;
    uint8_t point[1 + 2 * JWK_P256_COORD_BYTES];
    point[0] = 0x04; /* uncompressed: x then y */
    memcpy(point + 1, x, JWK_P256_COORD_BYTES);
    memcpy(point + 1 + JWK_P256_COORD_BYTES, y, JWK_P256_COORD_BYTES);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point) == 1)
        pkey = key_from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (pkey && !public_key_checks(pkey)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    return pkey;
}

static EVP_PKEY *ed25519_from_jwk(const json_t *jwk)
{
    uint8_t x[JWK_FIELD_BUF_BYTES];
    if (jwk_bytes(jwk, "x", x) != JWK_ED25519_BYTES) return NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bld &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, x, JWK_ED25519_BYTES) == 1)
        pkey = key_from_params("ED25519", bld);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* The algorithm a JWK is for, from kty/crv; NULL when dojo cannot use it. */
static const char *jwk_alg_of(const char *kty, const char *crv)
{
    if (!kty) return NULL;
    if (strcmp(kty, "RSA") == 0) return "RS256";
    if (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-256") == 0) return "ES256";
    if (strcmp(kty, "OKP") == 0 && crv && strcmp(crv, "Ed25519") == 0) return "EdDSA";
    return NULL;
}

/* Fills key from one JWK of a set, or says why it was skipped. */
static int jwk_load(const json_t *jwk, jwk_key *key, skip_kind *why)
{
    const char *kty = NULL, *use = NULL, *declared_alg = NULL, *crv = NULL, *kid = NULL;
    err_t e;
    err_init(&e);
    /* A key whose members have the wrong types is malformed; one that is
     * well-formed may still be of a kind dojo does not use. */
    *why = SKIP_INVALID;
    if (jr_as_object(jwk, "key", &e) ||
        jr_string(jwk, "key", "kty", JR_OPTIONAL, JWK_NAME_BYTES_MAX, &kty, &e) ||
        jr_string(jwk, "key", "use", JR_OPTIONAL, JWK_NAME_BYTES_MAX, &use, &e) ||
        jr_string(jwk, "key", "alg", JR_OPTIONAL, JWK_NAME_BYTES_MAX, &declared_alg, &e) ||
        jr_string(jwk, "key", "crv", JR_OPTIONAL, JWK_NAME_BYTES_MAX, &crv, &e) ||
        jr_string(jwk, "key", "kid", JR_OPTIONAL, sizeof key->kid - 1, &kid, &e))
        return -1;
    *why = SKIP_NOT_SIGNING;
    if ((kty && strcmp(kty, "oct") == 0) || (use && strcmp(use, "sig"))) return -1;
    *why = SKIP_UNSUPPORTED;
    const char *alg = jwk_alg_of(kty, crv);
    if (!alg || (declared_alg && strcmp(declared_alg, alg) != 0)) return -1;
    *why = SKIP_INVALID;
    EVP_PKEY *pkey = strcmp(alg, "RS256") == 0   ? rsa_from_jwk(jwk)
                     : strcmp(alg, "ES256") == 0 ? p256_from_jwk(jwk)
                                                 : ed25519_from_jwk(jwk);
    ERR_clear_error();
    if (!pkey) return -1;
    snprintf(key->kid, sizeof key->kid, "%s", kid ? kid : "");
    snprintf(key->alg, sizeof key->alg, "%s", alg);
    key->pkey = pkey;
    return 0;
}

static int jwks_empty_error(err_t *e, size_t n_seen, const int skipped[SKIP_KINDS])
{
    return err_set(e, ERR_AUTH,
                   "The JWKS holds no key dojo can verify with (RS256, ES256 on P-256, or EdDSA "
                   "on Ed25519): of %zu keys, %d are not signing keys (HMAC \"oct\" or "
                   "\"use\" other than \"sig\"), %d have an unsupported type, curve or alg, "
                   "%d are malformed or RSA under %d bits",
                   n_seen, skipped[SKIP_NOT_SIGNING], skipped[SKIP_UNSUPPORTED],
                   skipped[SKIP_INVALID], JWK_RSA_BITS_MIN);
}

static int jwks_fill(const json_t *keys, jwk_set *set, err_t *e)
{
    int skipped[SKIP_KINDS] = {0};
    for (size_t i = 0; i < json_array_size(keys); i++) {
        const json_t *jwk = jr_item(keys, i);
        if (set->n_keys == LIMIT_JWKS_KEYS_MAX) {
            log_warn("auth: the JWKS has more than %d keys (LIMIT_JWKS_KEYS_MAX); using the first "
                     "%d",
                     LIMIT_JWKS_KEYS_MAX, LIMIT_JWKS_KEYS_MAX);
            break;
        }
        skip_kind why;
        if (jwk_load(jwk, &set->keys[set->n_keys], &why) == 0)
            set->n_keys++;
        else
            skipped[why]++;
    }
    if (set->n_keys == 0) return jwks_empty_error(e, json_array_size(keys), skipped);
    return 0;
}

int jwks_parse(const char *json, size_t len, jwk_set **out, err_t *e)
{
    ASSERT(json && out);
    *out = NULL;
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, 0, &jerr);
    const json_t *keys = NULL;
    err_t why;
    err_init(&why);
    if (!doc || jr_array(doc, "JWKS", "keys", 0, SIZE_MAX, &keys, &why)) {
        json_decref(doc);
        return err_set(e, ERR_AUTH, "The JWKS is not a JSON object with a \"keys\" array: %s",
                       doc ? why.msg : jerr.text);
    }
    jwk_set *set = calloc(1, sizeof *set);
    if (!set) {
        json_decref(doc);
        return err_set(e, ERR_NOMEM, "Out of memory while reading the JWKS");
    }
    int rc = jwks_fill(keys, set, e);
    json_decref(doc);
    if (rc != 0) {
        jwks_free(set);
        return rc;
    }
    *out = set;
    return 0;
}

void jwks_free(jwk_set *set)
{
    if (!set) return;
    ASSERT(set->n_keys >= 0 && set->n_keys <= LIMIT_JWKS_KEYS_MAX);
    for (int i = 0; i < set->n_keys; i++)
        EVP_PKEY_free(set->keys[i].pkey);
    free(set);
}

const jwk_key *jwks_find(const jwk_set *set, const char *kid, const char *alg)
{
    if (!set) return NULL;
    const jwk_key *found = NULL;
    int n_found = 0;
    for (int i = 0; i < set->n_keys; i++) {
        const jwk_key *k = &set->keys[i];
        if (alg && strcmp(k->alg, alg) != 0) continue;
        if (kid && strcmp(k->kid, kid) == 0) return k;
        if (!kid) {
            found = k;
            n_found++;
        }
    }
    return n_found == 1 ? found : NULL;
}

/* Sets name to the base64url text of bytes; false when out of memory. */
static bool set_b64url(json_t *obj, const char *name, const uint8_t *bytes, size_t n)
{
    char *text = malloc(b64_encoded_size(n));
    if (!text) return false;
    b64url_encode(bytes, n, text);
    int rc = json_object_set_new(obj, name, json_string(text));
    free(text);
    return rc == 0;
}

/* Sets name to the big-endian bytes of a BIGNUM parameter of key, padded to
 * pad_bytes when not 0. */
static bool set_bn_param(json_t *obj, const char *name, const EVP_PKEY *key, const char *param,
                         int pad_bytes)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(key, param, &bn) != 1) return false;
    uint8_t bytes[JWK_FIELD_BYTES_MAX];
    int n = pad_bytes ? pad_bytes : BN_num_bytes(bn);
    bool ok = n > 0 && n <= (int)sizeof bytes && BN_bn2binpad(bn, bytes, n) == n &&
              set_b64url(obj, name, bytes, (size_t)n);
    BN_free(bn);
    return ok;
}

static bool jwk_fill_public(json_t *jwk, const EVP_PKEY *key, const char *alg)
{
    if (strcmp(alg, "RS256") == 0)
        return json_object_set_new(jwk, "kty", json_string("RSA")) == 0 &&
               set_bn_param(jwk, "n", key, OSSL_PKEY_PARAM_RSA_N, 0) &&
               set_bn_param(jwk, "e", key, OSSL_PKEY_PARAM_RSA_E, 0);
    if (strcmp(alg, "ES256") == 0)
        return json_object_set_new(jwk, "kty", json_string("EC")) == 0 &&
               json_object_set_new(jwk, "crv", json_string("P-256")) == 0 &&
               set_bn_param(jwk, "x", key, OSSL_PKEY_PARAM_EC_PUB_X, JWK_P256_COORD_BYTES) &&
               set_bn_param(jwk, "y", key, OSSL_PKEY_PARAM_EC_PUB_Y, JWK_P256_COORD_BYTES);
    uint8_t x[JWK_ED25519_BYTES];
    size_t x_len = sizeof x;
    return json_object_set_new(jwk, "kty", json_string("OKP")) == 0 &&
           json_object_set_new(jwk, "crv", json_string("Ed25519")) == 0 &&
           EVP_PKEY_get_raw_public_key(key, x, &x_len) == 1 && x_len == sizeof x &&
           set_b64url(jwk, "x", x, x_len);
}

json_t *jwk_public(EVP_PKEY *key, const char *alg, const char *kid)
{
    ASSERT(key);
    const char *key_alg = jwk_alg_for_key(key);
    if (!key_alg || (alg && strcmp(alg, key_alg) != 0)) return NULL;
    json_t *jwk = json_object();
    bool ok = jwk && jwk_fill_public(jwk, key, key_alg) &&
              (!kid || json_object_set_new(jwk, "kid", json_string(kid)) == 0) &&
              json_object_set_new(jwk, "alg", json_string(key_alg)) == 0 &&
              json_object_set_new(jwk, "use", json_string("sig")) == 0;
    ERR_clear_error();
    if (!ok) {
        json_decref(jwk);
        return NULL;
    }
    return jwk;
}
