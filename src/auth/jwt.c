/*
 * jwt.c — JSON Web Tokens: splitting and decoding a compact token, checking
 * its claims and its signature against a key set, and signing (for the
 * development issuer and tests). Signatures go through OpenSSL 3's EVP
 * interface only; ES256's raw r||s form is converted to and from DER here.
 * Called by auth.c on the event-loop thread, by `dojo doctor`, and by tests.
 * Thread: any; every function works on its arguments only.
 *
 * Refusal messages quote what the token says (alg, kid, iss, aud) through
 * quote_json so a hostile value cannot forge text; the token itself is never
 * quoted.
 */
#include "auth/jwt.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "base/b64.h"
#include "base/invariant.h"
#include "base/jread.h"
#include "base/limits.h"

#define ES256_COORD_BYTES 32
#define ES256_SIG_BYTES (2 * ES256_COORD_BYTES)
#define JWT_SIG_BYTES_MAX 1024  /* an RSA-8192 signature */
#define QUOTE_BYTES_MAX 128     /* how much of a token's value a message quotes */
#define TIME_TEXT_BYTES 48      /* "2026-11-25T14:00:00Z" or a raw number */
#define CLAIM_TIME_ABS_MAX 1e15 /* seconds; beyond this a time claim is clamped */

const char *jwt_failure_name(jwt_failure f)
{
    switch (f) {
    case JWT_OK:
        return "ok";
    case JWT_MALFORMED:
        return "malformed";
    case JWT_UNSUPPORTED_ALG:
        return "unsupported_alg";
    case JWT_NO_ISSUER_CONFIGURED:
        return "no_issuer_configured";
    case JWT_ISSUER:
        return "issuer";
    case JWT_AUDIENCE:
        return "audience";
    case JWT_UNKNOWN_KID:
        return "unknown_kid";
    case JWT_SIGNATURE:
        return "signature";
    case JWT_EXPIRED:
        return "expired";
    case JWT_NOT_YET_VALID:
        return "not_yet_valid";
    case JWT_ISSUED_IN_FUTURE:
        return "issued_in_future";
    case JWT_NO_SUBJECT:
        return "no_subject";
    case JWT_ISSUER_UNREACHABLE:
        return "issuer_unreachable";
    }
    return "unknown";
}

/* Sets *out = f and e to ERR_AUTH with the formatted message; returns ERR_AUTH. */
__attribute__((format(printf, 4, 5))) static int refuse(jwt_failure *out, jwt_failure f, err_t *e,
                                                        const char *fmt, ...)
{
    *out = f;
    char msg[ERR_MSG_BYTES_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(e, ERR_AUTH, "%s", msg);
}

/* Writes v as ASCII JSON text ("web", ["a","b"]), cut to fit out. */
static const char *quote_json(const json_t *v, char *out, size_t cap)
{
    ASSERT(cap >= 8);
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
    if (!text) {
        snprintf(out, cap, "%s", v ? "(unprintable)" : "(none)");
        return out;
    }
    size_t len = strlen(text);
    if (len < cap)
        memcpy(out, text, len + 1);
    else
        snprintf(out, cap, "%.*s...", (int)(cap - 4), text);
    free(text);
    return out;
}

/* quote_json for a C string (which may be invalid UTF-8 when configured). */
static const char *quote_str(const char *s, char *out, size_t cap)
{
    json_t *v = json_string(s);
    quote_json(v, out, cap);
    json_decref(v);
    return out;
}

static bool alg_supported(const char *alg)
{
    return strcmp(alg, "RS256") == 0 || strcmp(alg, "ES256") == 0 || strcmp(alg, "EdDSA") == 0;
}

static bool is_b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Finds the two dots of a compact JWS; 0 when the token has exactly three
 * segments of base64url characters with non-empty header and payload. */
static int split_segments(const char *token, size_t len, size_t dot[2])
{
    int n_dots = 0;
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (n_dots == 2) return -1;
            dot[n_dots++] = i;
        } else if (!is_b64url_char(token[i])) {
            return -1;
        }
    }
    if (n_dots != 2 || dot[0] == 0 || dot[1] == dot[0] + 1) return -1;
    return 0;
}

/* Decodes a base64url segment into a malloc'd buffer. */
static uint8_t *decode_segment(const char *s, size_t n, size_t *out_len)
{
    uint8_t *buf = malloc((n / 4 + 1) * 3);
    if (!buf) return NULL;
    long len = b64_decode(s, n, buf);
    if (len < 0) {
        free(buf);
        return NULL;
    }
    *out_len = (size_t)len;
    return buf;
}

/* Decodes a base64url segment holding a JSON object; NULL when it does not. */
static json_t *decode_json_segment(const char *s, size_t n)
{
    size_t len = 0;
    uint8_t *bytes = decode_segment(s, n, &len);
    if (!bytes) return NULL;
    json_t *v = json_loadb((const char *)bytes, len, JSON_REJECT_DUPLICATES, NULL);
    free(bytes);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* Reads alg and kid from the header; refuses anything but RS256/ES256/EdDSA. */
static int decode_header_fields(jwt *t, jwt_failure *failure, err_t *e)
{
    char q[QUOTE_BYTES_MAX];
    const char *alg = NULL, *kid = NULL;
    err_t why;
    err_init(&why);
    if (jr_string(t->header, "header", "alg", 0, LIMIT_JWT_BYTES_MAX, &alg, &why))
        return refuse(failure, JWT_UNSUPPORTED_ALG, e,
                      "Token header has no algorithm (alg): use RS256, ES256 or EdDSA");
    if (!alg_supported(alg))
        return refuse(failure, JWT_UNSUPPORTED_ALG, e,
                      "Token algorithm %s is not accepted: use RS256, ES256 or EdDSA",
                      quote_json(jr_field(t->header, "alg"), q, sizeof q));
    t->alg = alg;
    if (jr_string(t->header, "header", "kid", JR_OPTIONAL, LIMIT_JWT_BYTES_MAX, &kid, &why))
        return refuse(failure, JWT_MALFORMED, e, "Token key id (kid) is not a string: %s", why.msg);
    t->kid = kid;
    if (jr_field(t->header, "crit"))
        return refuse(failure, JWT_MALFORMED, e,
                      "Token header lists critical extensions (crit), which dojo does not "
                      "implement");
    return 0;
}

/* Decodes the three segments into t. */
static int decode_parts(const char *token, const size_t dot[2], size_t len, jwt *t,
                        jwt_failure *failure, err_t *e)
{
    t->header = decode_json_segment(token, dot[0]);
    if (!t->header)
        return refuse(failure, JWT_MALFORMED, e,
                      "Not a JWT: the header (first segment) is not base64url-encoded JSON");
    int rc = decode_header_fields(t, failure, e);
    if (rc) return rc;
    t->claims = decode_json_segment(token + dot[0] + 1, dot[1] - dot[0] - 1);
    if (!t->claims)
        return refuse(failure, JWT_MALFORMED, e,
                      "Not a JWT: the payload (second segment) is not base64url-encoded JSON");
    size_t sig_chars = len - dot[1] - 1;
    if (sig_chars == 0) return refuse(failure, JWT_MALFORMED, e, "Token has no signature");
    t->sig = decode_segment(token + dot[1] + 1, sig_chars, &t->sig_len);
    if (!t->sig || t->sig_len == 0 || t->sig_len > JWT_SIG_BYTES_MAX)
        return refuse(failure, JWT_MALFORMED, e,
                      "Not a JWT: the signature (third segment) is not base64url of at most %d "
                      "bytes",
                      JWT_SIG_BYTES_MAX);
    t->signing_input = strndup(token, dot[1]);
    if (!t->signing_input) return err_set(e, ERR_NOMEM, "Out of memory while decoding a token");
    return 0;
}

int jwt_decode(const char *token, jwt **out, jwt_failure *failure, err_t *e)
{
    ASSERT(token && out && failure);
    *out = NULL;
    *failure = JWT_OK;
    size_t len = strnlen(token, LIMIT_JWT_BYTES_MAX + 1);
    if (len > LIMIT_JWT_BYTES_MAX)
        return refuse(failure, JWT_MALFORMED, e,
                      "Not a JWT: longer than %u bytes (LIMIT_JWT_BYTES_MAX)", LIMIT_JWT_BYTES_MAX);
    size_t dot[2];
    if (split_segments(token, len, dot) != 0)
        return refuse(failure, JWT_MALFORMED, e, "Not a JWT: expected three base64url segments");
    jwt *t = calloc(1, sizeof *t);
    if (!t) return err_set(e, ERR_NOMEM, "Out of memory while decoding a token");
    int rc = decode_parts(token, dot, len, t, failure, e);
    if (rc) {
        jwt_free(t);
        return rc;
    }
    SHA256((const unsigned char *)token, len, t->token_sha256);
    *out = t;
    return 0;
}

void jwt_free(jwt *t)
{
    if (!t) return;
    json_decref(t->header);
    json_decref(t->claims);
    free(t->signing_input);
    free(t->sig);
    free(t);
}

/* ---- claim checks ---------------------------------------------------- */

bool jwt_same_url(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 0 && a[la - 1] == '/')
        la--;
    while (lb > 0 && b[lb - 1] == '/')
        lb--;
    return la == lb && strncmp(a, b, la) == 0;
}

static int check_issuer(const jwt *t, const jwt_policy *p, jwt_failure *failure, err_t *e)
{
    if (!p->issuer || !*p->issuer)
        return refuse(failure, JWT_NO_ISSUER_CONFIGURED, e,
                      "No issuer configured: set CLERK_ISSUER_URL (dojo env set CLERK_ISSUER_URL "
                      "https://<your-clerk-frontend-api>)");
    char want[QUOTE_BYTES_MAX], got[QUOTE_BYTES_MAX];
    quote_str(p->issuer, want, sizeof want);
    const char *iss = NULL;
    err_t why;
    err_init(&why);
    if (jr_string(t->claims, "claims", "iss", 0, LIMIT_JWT_BYTES_MAX, &iss, &why))
        return refuse(failure, JWT_ISSUER, e,
                      "Token has no issuer (iss) but CLERK_ISSUER_URL is %s: is it a Clerk token?",
                      want);
    if (strcmp(iss, p->issuer) == 0) return 0;
    bool slash = jwt_same_url(iss, p->issuer);
    return refuse(failure, JWT_ISSUER, e, "Token issuer is %s but CLERK_ISSUER_URL is %s%s",
                  quote_json(jr_field(t->claims, "iss"), got, sizeof got), want,
                  slash ? ": set CLERK_ISSUER_URL to exactly the token's issuer, trailing slash "
                          "included or not"
                        : "");
}

/* aud is a string or an array of strings (RFC 7519 §4.1.3). */
static bool audience_contains(const json_t *aud, const char *want)
{
    const char *one = NULL;
    err_t why;
    err_init(&why);
    if (json_is_string(aud))
        return jr_as_string(aud, "aud", 0, LIMIT_JWT_BYTES_MAX, &one, &why) == 0 &&
               strcmp(one, want) == 0;
    for (size_t i = 0; json_is_array(aud) && i < json_array_size(aud); i++)
        if (jr_as_string(jr_item(aud, i), "aud", 0, LIMIT_JWT_BYTES_MAX, &one, &why) == 0 &&
            strcmp(one, want) == 0)
            return true;
    return false;
}

static int check_audience(const jwt *t, const jwt_policy *p, jwt_failure *failure, err_t *e)
{
    const char *want = p->audience && *p->audience ? p->audience : "convex";
    const json_t *aud = jr_field(t->claims, "aud");
    if (audience_contains(aud, want)) return 0;
    char want_q[QUOTE_BYTES_MAX], got_q[QUOTE_BYTES_MAX], hint[2 * QUOTE_BYTES_MAX];
    quote_str(want, want_q, sizeof want_q);
    if (strcmp(want, "convex") == 0)
        snprintf(hint, sizeof hint, "is the Clerk JWT template named convex?");
    else
        snprintf(hint, sizeof hint,
                 "does the Clerk JWT template set aud to %s "
                 "(AUTH_APPLICATION_ID)?",
                 want_q);
    if (!aud)
        return refuse(failure, JWT_AUDIENCE, e, "Token has no audience (aud), expected %s: %s",
                      want_q, hint);
    return refuse(failure, JWT_AUDIENCE, e, "Token audience is %s, expected %s: %s",
                  quote_json(aud, got_q, sizeof got_q), want_q, hint);
}

static int count_keys_for(const jwk_set *keys, const char *alg)
{
    int n = 0;
    for (int i = 0; i < keys->n_keys; i++)
        n += strcmp(keys->keys[i].alg, alg) == 0;
    return n;
}

/* Picks the key named by the token's kid, or the one key for its alg. */
static int pick_key(const jwt *t, const jwk_set *keys, const jwk_key **out, jwt_failure *failure,
                    err_t *e)
{
    char q[QUOTE_BYTES_MAX];
    if (!keys)
        return refuse(failure, JWT_UNKNOWN_KID, e, "The issuer's keys (JWKS) are not loaded yet");
    if (t->kid) {
        *out = jwks_find(keys, t->kid, NULL);
        if (*out) return 0;
        return refuse(failure, JWT_UNKNOWN_KID, e,
                      "Token key id %s is not in the issuer's JWKS%s%s%s: was it signed by "
                      "another Clerk instance or with a key the issuer no longer publishes?",
                      quote_str(t->kid, q, sizeof q), keys->url[0] ? " (" : "", keys->url,
                      keys->url[0] ? ")" : "");
    }
    *out = jwks_find(keys, NULL, t->alg);
    if (*out) return 0;
    int n = count_keys_for(keys, t->alg);
    if (n == 0)
        return refuse(failure, JWT_UNKNOWN_KID, e,
                      "Token has no key id (kid) and the issuer's JWKS has no %s key", t->alg);
    return refuse(failure, JWT_UNKNOWN_KID, e,
                  "Token has no key id (kid) and the issuer's JWKS has %d %s keys: the token "
                  "must name its key",
                  n, t->alg);
}

/* ---- signatures ------------------------------------------------------ */

static const EVP_MD *digest_for(const char *alg)
{
    return strcmp(alg, "EdDSA") == 0 ? NULL : EVP_sha256();
}

/* ES256 raw r||s (64 bytes) to the DER ECDSA-Sig-Value OpenSSL verifies. */
static int es256_raw_to_der(const unsigned char *raw, unsigned char **der, size_t *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, ES256_COORD_BYTES, NULL);
    BIGNUM *s = BN_bin2bn(raw + ES256_COORD_BYTES, ES256_COORD_BYTES, NULL);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return -1;
    }
    *der = NULL;
    int n = i2d_ECDSA_SIG(sig, der);
    ECDSA_SIG_free(sig);
    if (n <= 0) return -1;
    *der_len = (size_t)n;
    return 0;
}

/* DER ECDSA-Sig-Value to ES256 raw r||s (64 bytes). */
static int es256_der_to_raw(const unsigned char *der, size_t der_len,
                            unsigned char raw[ES256_SIG_BYTES])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (!sig) return -1;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(sig, &r, &s);
    int ok = BN_bn2binpad(r, raw, ES256_COORD_BYTES) == ES256_COORD_BYTES &&
             BN_bn2binpad(s, raw + ES256_COORD_BYTES, ES256_COORD_BYTES) == ES256_COORD_BYTES;
    ECDSA_SIG_free(sig);
    return ok ? 0 : -1;
}

/* Sets PKCS#1 v1.5 padding for RSA (the RS256 scheme); other keys need nothing. */
static bool configure_padding(EVP_PKEY_CTX *pctx, const char *alg)
{
    return strcmp(alg, "RS256") != 0 || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
}

/* True when sig is a valid alg signature of msg under pkey. */
static bool signature_valid(EVP_PKEY *pkey, const char *alg, const char *msg,
                            const unsigned char *sig, size_t sig_len)
{
    unsigned char *der = NULL;
    if (strcmp(alg, "ES256") == 0) {
        if (sig_len != ES256_SIG_BYTES || es256_raw_to_der(sig, &der, &sig_len) != 0) return false;
        sig = der;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, digest_for(alg), NULL, pkey) == 1 &&
              configure_padding(pctx, alg) &&
              EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)msg, strlen(msg)) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ERR_clear_error();
    return ok;
}

static int check_signature(const jwt *t, const jwk_key *k, jwt_failure *failure, err_t *e)
{
    char q[QUOTE_BYTES_MAX];
    char key_name[QUOTE_BYTES_MAX + 16];
    if (k->kid[0])
        snprintf(key_name, sizeof key_name, "key %s", quote_str(k->kid, q, sizeof q));
    else
        snprintf(key_name, sizeof key_name, "%s key", k->alg);
    const char *key_alg = jwk_alg_for_key(k->pkey);
    if (strcmp(k->alg, t->alg) != 0 || !key_alg || strcmp(key_alg, t->alg) != 0)
        return refuse(failure, JWT_SIGNATURE, e,
                      "Token algorithm \"%s\" does not match the issuer's %s, which is for %s",
                      t->alg, key_name, k->alg);
    if (!signature_valid(k->pkey, t->alg, t->signing_input, t->sig, t->sig_len))
        return refuse(failure, JWT_SIGNATURE, e,
                      "Token signature does not verify with the issuer's %s", key_name);
    return 0;
}

/* ---- time claims ----------------------------------------------------- */

/* Reads a NumericDate claim: 1 and *out when present, 0 when absent, -1
 * when it is not a number. Huge values are clamped so sums cannot overflow. */
static int claim_time(const json_t *claims, const char *name, int64_t *out)
{
    double d = NAN;
    err_t why;
    err_init(&why);
    if (jr_number(claims, "claims", name, JR_OPTIONAL, -DBL_MAX, DBL_MAX, &d, &why)) return -1;
    if (isnan(d)) return 0; /* absent */
    if (d > CLAIM_TIME_ABS_MAX) d = CLAIM_TIME_ABS_MAX;
    if (d < -CLAIM_TIME_ABS_MAX) d = -CLAIM_TIME_ABS_MAX;
    *out = (int64_t)floor(d); /* exact: |d| ≤ 1e15 < 2^53 */
    return 1;
}

/* "2026-11-25T14:00:00Z", or the raw number when it is not a plausible date. */
static const char *time_text(int64_t s, char out[TIME_TEXT_BYTES])
{
    time_t tt = (time_t)s;
    struct tm tm;
    if (gmtime_r(&tt, &tm) && tm.tm_year >= -1900 && tm.tm_year <= 9999 - 1900)
        snprintf(out, TIME_TEXT_BYTES, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    else
        snprintf(out, TIME_TEXT_BYTES, "%lld s after 1970", (long long)s);
    return out;
}

static int check_expiry(const jwt *t, const jwt_policy *p, jwt_failure *failure, err_t *e)
{
    char at[TIME_TEXT_BYTES], now[TIME_TEXT_BYTES];
    int64_t exp = 0;
    int r = claim_time(t->claims, "exp", &exp);
    if (r == 0)
        return refuse(failure, JWT_EXPIRED, e,
                      "Token has no expiry (exp): dojo accepts only tokens that expire");
    if (r < 0)
        return refuse(failure, JWT_EXPIRED, e, "Token expiry (exp) is not a number of seconds");
    if (p->now_s > exp + p->skew_s)
        return refuse(failure, JWT_EXPIRED, e,
                      "Token expired at %s (now %s); the client should fetch a fresh token",
                      time_text(exp, at), time_text(p->now_s, now));
    return 0;
}

static int check_not_before(const jwt *t, const jwt_policy *p, jwt_failure *failure, err_t *e)
{
    char at[TIME_TEXT_BYTES], now[TIME_TEXT_BYTES];
    int64_t nbf = 0;
    int r = claim_time(t->claims, "nbf", &nbf);
    if (r < 0)
        return refuse(failure, JWT_NOT_YET_VALID, e,
                      "Token not-before (nbf) is not a number of seconds");
    if (r > 0 && p->now_s + p->skew_s < nbf)
        return refuse(failure, JWT_NOT_YET_VALID, e,
                      "Token is not valid before %s (now %s): is this server's clock behind?",
                      time_text(nbf, at), time_text(p->now_s, now));
    return 0;
}

static int check_issued_at(const jwt *t, const jwt_policy *p, jwt_failure *failure, err_t *e)
{
    char at[TIME_TEXT_BYTES], now[TIME_TEXT_BYTES];
    int64_t iat = 0;
    int r = claim_time(t->claims, "iat", &iat);
    if (r < 0)
        return refuse(failure, JWT_ISSUED_IN_FUTURE, e,
                      "Token issue time (iat) is not a number of seconds");
    if (r > 0 && iat > p->now_s + p->skew_s)
        return refuse(failure, JWT_ISSUED_IN_FUTURE, e,
                      "Token was issued at %s, in the future (now %s): is this server's clock "
                      "behind?",
                      time_text(iat, at), time_text(p->now_s, now));
    return 0;
}

static int check_subject(const jwt *t, jwt_failure *failure, err_t *e)
{
    const char *sub;
    err_t why;
    err_init(&why);
    if (jr_string(t->claims, "claims", "sub", JR_NONEMPTY, LIMIT_JWT_BYTES_MAX, &sub, &why))
        return refuse(failure, JWT_NO_SUBJECT, e, "Token has no subject (sub)");
    return 0;
}

int jwt_verify(const jwt *t, const jwk_set *keys, const jwt_policy *p, jwt_failure *failure,
               err_t *e)
{
    ASSERT(t && t->header && t->claims && t->alg && p && failure);
    ASSERT(p->skew_s >= 0);
    *failure = JWT_OK;
    const jwk_key *k = NULL;
    int rc;
    if ((rc = check_issuer(t, p, failure, e))) return rc;
    if ((rc = check_audience(t, p, failure, e))) return rc;
    if ((rc = pick_key(t, keys, &k, failure, e))) return rc;
    if ((rc = check_signature(t, k, failure, e))) return rc;
    if ((rc = check_expiry(t, p, failure, e))) return rc;
    if ((rc = check_not_before(t, p, failure, e))) return rc;
    if ((rc = check_issued_at(t, p, failure, e))) return rc;
    return check_subject(t, failure, e);
}

/* ---- signing --------------------------------------------------------- */

/* Signs msg; *sig_out is malloc'd, in JWS form (raw r||s for ES256). */
static int sign_bytes(EVP_PKEY *key, const char *alg, const char *msg, unsigned char **sig_out,
                      size_t *sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    size_t len = 0;
    unsigned char *sig = NULL;
    const unsigned char *m = (const unsigned char *)msg;
    bool ok = ctx && EVP_DigestSignInit(ctx, &pctx, digest_for(alg), NULL, key) == 1 &&
              configure_padding(pctx, alg) &&
              EVP_DigestSign(ctx, NULL, &len, m, strlen(msg)) == 1 && (sig = malloc(len)) &&
              EVP_DigestSign(ctx, sig, &len, m, strlen(msg)) == 1;
    EVP_MD_CTX_free(ctx);
    if (ok && strcmp(alg, "ES256") == 0) {
        unsigned char raw[ES256_SIG_BYTES];
        ok = es256_der_to_raw(sig, len, raw) == 0;
        if (ok) memcpy(sig, raw, sizeof raw); /* a DER P-256 signature is longer than 64 */
        len = sizeof raw;
    }
    ERR_clear_error();
    if (!ok) {
        free(sig);
        return -1;
    }
    *sig_out = sig;
    *sig_len = len;
    return 0;
}

/* Appends the base64url of n bytes to buf at *at (buf has room). */
static void append_b64url(char *buf, size_t *at, const void *bytes, size_t n)
{
    *at += b64url_encode(bytes, n, buf + *at);
}

static char *signing_input_of(const char *alg, const char *kid, const json_t *claims)
{
    json_t *header = json_object();
    json_object_set_new(header, "alg", json_string(alg));
    if (kid) json_object_set_new(header, "kid", json_string(kid));
    json_object_set_new(header, "typ", json_string("JWT"));
    char *h = json_dumps(header, JSON_COMPACT);
    char *c = json_dumps(claims, JSON_COMPACT);
    json_decref(header);
    char *input = NULL;
    if (h && c) input = malloc(b64_encoded_size(strlen(h)) + b64_encoded_size(strlen(c)) + 1);
    if (input) {
        size_t at = 0;
        append_b64url(input, &at, h, strlen(h));
        input[at++] = '.';
        append_b64url(input, &at, c, strlen(c));
    }
    free(h);
    free(c);
    return input;
}

int jwt_sign(EVP_PKEY *key, const char *alg, const char *kid, const json_t *claims,
             char **token_out, err_t *e)
{
    ASSERT(key && alg && claims && token_out);
    *token_out = NULL;
    const char *key_alg = jwk_alg_for_key(key);
    if (!alg_supported(alg) || !key_alg || strcmp(key_alg, alg) != 0)
        return err_set(e, ERR_INTERNAL, "Cannot sign a token with alg \"%s\" using a %s key", alg,
                       key_alg ? key_alg : "non-RS256/ES256/EdDSA");
    char *input = signing_input_of(alg, kid, claims);
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    if (!input || sign_bytes(key, alg, input, &sig, &sig_len) != 0) {
        free(input);
        return err_set(e, ERR_INTERNAL, "Could not sign a %s token", alg);
    }
    size_t input_len = strlen(input);
    char *token = malloc(input_len + 1 + b64_encoded_size(sig_len));
    if (token) {
        memcpy(token, input, input_len);
        token[input_len] = '.';
        b64url_encode(sig, sig_len, token + input_len + 1);
    }
    free(input);
    free(sig);
    if (!token) return err_set(e, ERR_NOMEM, "Out of memory while signing a token");
    *token_out = token;
    return 0;
}
