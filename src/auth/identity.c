/*
 * identity.c — the identity object functions see (ctx.auth.getUserIdentity()
 * in the original backend) built from a verified token's claims, following
 * convex-protocol.md §6.3: subject/issuer/tokenIdentifier, the OpenID
 * standard claims under their camelCase names, every other claim under its
 * own name, and the registered claims dropped.
 * Called by auth.c on the event-loop thread once a token has verified.
 * Thread: any; pure.
 */
#include "auth/jwt.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/invariant.h"
#include "base/jread.h"
#include "base/limits.h"

#define RFC3339_BYTES 80 /* "2024-05-01T10:20:30+00:00" (26), with room gcc can prove */

/* An OpenID standard claim and the identity field it becomes. */
typedef struct {
    const char *claim;
    const char *field;
} renamed_claim;

static const renamed_claim renamed[] = {
    {"name", "name"},
    {"given_name", "givenName"},
    {"family_name", "familyName"},
    {"nickname", "nickname"},
    {"preferred_username", "preferredUsername"},
    {"profile", "profileUrl"},
    {"picture", "pictureUrl"},
    {"website", "websiteUrl"},
    {"email", "email"},
    {"email_verified", "emailVerified"},
    {"gender", "gender"},
    {"birthdate", "birthday"},
    {"zoneinfo", "timezone"},
    {"locale", "language"},
    {"phone_number", "phoneNumber"},
    {"phone_number_verified", "phoneNumberVerified"},
    {"address", "address"},
    {"updated_at", "updatedAt"},
};

/* Registered and protocol claims that never reach the identity; iss and sub
 * are there as issuer and subject. */
static const char *const dropped[] = {
    "iss",       "sub",   "aud", "exp", "iat",     "nbf",    "jti", "azp",
    "auth_time", "nonce", "acr", "amr", "at_hash", "c_hash", "fva",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool is_dropped(const char *claim)
{
    for (size_t i = 0; i < COUNT(dropped); i++)
        if (strcmp(dropped[i], claim) == 0) return true;
    return false;
}

static const renamed_claim *find_renamed(const char *claim)
{
    for (size_t i = 0; i < COUNT(renamed); i++)
        if (strcmp(renamed[i].claim, claim) == 0) return &renamed[i];
    return NULL;
}

/* updated_at seconds as RFC 3339 with an explicit UTC offset; NULL when the
 * number is not a representable date. */
static json_t *rfc3339_of(const json_t *seconds)
{
    double d = NAN;
    err_t why;
    err_init(&why);
    if (jr_as_number(seconds, "updated_at", 0, -DBL_MAX, DBL_MAX, &d, &why)) return NULL;
    if (!isfinite(d) || fabs(d) > 253402300799.0) return NULL; /* 9999-12-31T23:59:59 */
    time_t t = (time_t)floor(d);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year < -1900) return NULL;
    char text[RFC3339_BYTES];
    snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d+00:00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return json_string(text);
}

/* The identity value of a standard claim; NULL when it contributes nothing. */
static json_t *standard_value(const char *claim, json_t *value)
{
    if (strcmp(claim, "address") == 0) {
        if (json_is_string(value)) return json_incref(value);
        const char *formatted = NULL;
        err_t why;
        err_init(&why);
        if (jr_string(value, "address", "formatted", 0, LIMIT_JWT_BYTES_MAX, &formatted, &why))
            return NULL;
        return json_string(formatted);
    }
    if (strcmp(claim, "updated_at") == 0) {
        if (json_is_number(value)) return rfc3339_of(value);
        return json_is_string(value) ? json_incref(value) : NULL;
    }
    return json_incref(value);
}

/* tokenIdentifier, issuer and subject; set first so no claim can replace them. */
static void add_principal(json_t *identity, const json_t *claims)
{
    const char *iss = NULL, *sub = NULL;
    err_t why;
    err_init(&why);
    jr_string(claims, "claims", "iss", JR_OPTIONAL, LIMIT_JWT_BYTES_MAX, &iss, &why);
    jr_string(claims, "claims", "sub", JR_OPTIONAL, LIMIT_JWT_BYTES_MAX, &sub, &why);
    if (iss && sub)
        json_object_set_new(identity, "tokenIdentifier", json_sprintf("%s|%s", iss, sub));
    if (iss) json_object_set_new(identity, "issuer", json_string(iss));
    if (sub) json_object_set_new(identity, "subject", json_string(sub));
}

json_t *jwt_identity(const json_t *claims)
{
    ASSERT(json_is_object(claims));
    json_t *identity = json_object();
    if (!identity) return NULL;
    add_principal(identity, claims);
    const char *claim;
    json_t *value;
    /* Standard claims first, so a custom claim named like a field never wins. */
    json_object_foreach((json_t *)claims, claim, value)
    {
        const renamed_claim *r = find_renamed(claim);
        json_t *v = r ? standard_value(claim, value) : NULL;
        if (v) json_object_set_new(identity, r->field, v);
    }
    json_object_foreach((json_t *)claims, claim, value)
    {
        if (is_dropped(claim) || find_renamed(claim) || jr_field(identity, claim)) continue;
        json_object_set(identity, claim, value);
    }
    return identity;
}
