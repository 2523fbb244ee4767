/*
 * doctor.c — `dojo doctor [--token JWT] [--url URL] [--admin-key KEY]`: walks
 * the troubleshooting list of the README one check at a time and prints one
 * line per check, ✓ or ✗, and for each ✗ the fix:
 *   server      GET /health answers "ok"
 *   issuer      CLERK_ISSUER_URL is set — asked of the server (the stored
 *               value through _system:envGet with the admin key; else the
 *               server's effective value, read from how it refuses a probe
 *               token), else this shell's environment; the line says which
 *   issuer URL  the https:// (or loopback http://) rule
 *   discovery   <issuer>/.well-known/openid-configuration answers and names
 *               the same issuer
 *   JWKS        its jwks_uri has usable signing keys (counted)
 *   token       with --token: decoded and verified against those keys with
 *               the server's policy, naming the one check that fails
 *   server      with --token: the server itself accepts it
 * Exit status 0 only when every check passes. Works against `dojo dev
 * --dev-auth` too (its issuer is the server itself).
 * Thread: the main thread.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <stdarg.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "base/b64.h"
#include "base/jread.h"
#include "base/limits.h"
#include "cli/cli.h"

#define DOCTOR_HTTP_TIMEOUT_MS 10000
#define DOCTOR_VALUE_BYTES_MAX 512
#define DOCTOR_TEXT_BYTES_MAX 1024
#define DOCTOR_RESPONSE_BYTES_MAX (64u * 1024)
#define DOCTOR_PROBE_ISSUER "https://dojo-doctor-probe.invalid"
#define DOCTOR_PROBE_MARK "CLERK_ISSUER_URL is \""
#define DOCTOR_PROBE_CLAIMS_BYTES_MAX 256

typedef struct doctor {
    cli_target target;
    bool server_up;
    int failures;
    char issuer[DOCTOR_VALUE_BYTES_MAX]; /* "" when none was found */
    char audience[DOCTOR_VALUE_BYTES_MAX];
    jwk_set *keys; /* NULL until the JWKS check passes */
} doctor;

/* ---- printing ------------------------------------------------------------------------ */

static void pass(const char *check, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pass(const char *check, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  \u2713 %-11s ", check);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void fail(doctor *d, const char *check, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(doctor *d, const char *check, const char *fix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  \u2717 %-11s ", check);
    vprintf(fmt, ap);
    printf("\n                fix: %s\n", fix);
    va_end(ap);
    d->failures++;
}

static void skip(const char *check, const char *why)
{
    printf("  - %-11s skipped: %s\n", check, why);
}

/* ---- HTTP ----------------------------------------------------------------------------- */

typedef struct response {
    char *data;
    size_t len;
} response;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    response *r = userdata;
    size_t n = size * nmemb;
    if (r->len + n > DOCTOR_RESPONSE_BYTES_MAX) return 0;
    char *grown = realloc(r->data, r->len + n + 1);
    if (!grown) return 0;
    memcpy(grown + r->len, ptr, n);
    r->data = grown;
    r->len += n;
    r->data[r->len] = '\0';
    return n;
}

/* POSTs a function call to the server with a bearer token; *status_out and
 * the body parsed as JSON (NULL when it is not). -1 when unreachable. */
static int post_with_token(const doctor *d, const char *token, long *status_out, json_t **body_out)
{
    *body_out = NULL;
    CURL *curl = curl_easy_init();
    if (!curl) return -1;
    char url[sizeof d->target.url + 32];
    snprintf(url, sizeof url, "%s/api/query", d->target.url);
    size_t header_bytes = strlen(token) + 32;
    char *auth_header = malloc(header_bytes);
    if (!auth_header) {
        curl_easy_cleanup(curl);
        return -1;
    }
    snprintf(auth_header, header_bytes, "Authorization: Bearer %s", token);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, auth_header);
    response r = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS,
                     "{\"path\":\"users:me\",\"args\":{},\"format\":\"json\"}");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)DOCTOR_HTTP_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status_out);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    free(auth_header);
    if (cc == CURLE_OK && r.data) *body_out = json_loadb(r.data, r.len, 0, NULL);
    free(r.data);
    return cc == CURLE_OK ? 0 : -1;
}

/* GETs url and parses it as a JSON object; a message in why otherwise. */
static json_t *get_json(const char *url, long *status_out, char *why, size_t why_bytes)
{
    err_t e;
    err_init(&e);
    char *body = NULL;
    *status_out = 0;
    if (cli_http_get(url, DOCTOR_HTTP_TIMEOUT_MS, status_out, &body, &e) != 0) {
        snprintf(why, why_bytes, "%s", e.msg);
        err_clear(&e);
        return NULL;
    }
    json_t *doc = *status_out == 200 ? json_loads(body, 0, NULL) : NULL;
    if (*status_out != 200)
        snprintf(why, why_bytes, "%s answered HTTP %ld", url, *status_out);
    else if (!json_is_object(doc))
        snprintf(why, why_bytes, "%s did not answer a JSON object", url);
    free(body);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* ---- the checks ----------------------------------------------------------------------------- */

static void check_server(doctor *d)
{
    char url[sizeof d->target.url + 16], why[DOCTOR_TEXT_BYTES_MAX] = "";
    snprintf(url, sizeof url, "%s/health", d->target.url);
    long status = 0;
    json_t *health = get_json(url, &status, why, sizeof why);
    if (jr_string_is(health, "status", "ok")) {
        d->server_up = true;
        pass("server", "%s is healthy (store %s)", d->target.url,
             jr_string_or(health, "store", "unknown"));
    } else if (status == 503) {
        fail(d, "server",
             "the server runs but its database does not answer: see the server's log, check "
             "the disk and the --db path",
             "%s answers, but /health says the store is not answering", d->target.url);
    } else {
        fail(d, "server",
             "start it with `dojo dev` (or `dojo serve`), or point at it with --url / DOJO_URL",
             "%s", why);
    }
    json_decref(health);
}

/* The stored value of a deployment variable, through the admin key: 1 when
 * stored, 0 when not, -1 when the server could not be asked (why says why). */
static int stored_variable(doctor *d, const char *name, char *out, size_t out_bytes, char *why,
                           size_t why_bytes)
{
    if (!d->server_up || !d->target.admin_key[0]) {
        snprintf(why, why_bytes, "%s", d->server_up ? "no admin key" : "server not reachable");
        return -1;
    }
    err_t e;
    err_init(&e);
    json_t *args = json_pack("{s:s}", "name", name);
    json_t *result = NULL;
    int rc = cli_call(&d->target, "_system:envGet", args, &result, &e);
    json_decref(args);
    if (rc) {
        snprintf(why, why_bytes, "the server refused _system:envGet: %s", e.msg);
        err_clear(&e);
        return -1;
    }
    const char *value = jr_string_or(result, "value", NULL);
    if (value) snprintf(out, out_bytes, "%s", value);
    json_decref(result);
    return value ? 1 : 0;
}

/* A token the server refuses at its very first check (its iss cannot be the
 * configured issuer), so that the refusal names the server's effective
 * CLERK_ISSUER_URL — process environment and --dev-auth included. */
static char *probe_token(void)
{
    char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"dojo-doctor-probe\"}";
    char claims[DOCTOR_PROBE_CLAIMS_BYTES_MAX];
    long long now = (long long)time(NULL);
    snprintf(claims, sizeof claims,
             "{\"iss\":\"" DOCTOR_PROBE_ISSUER "\",\"aud\":\"convex\",\"sub\":\"dojo-doctor\","
             "\"iat\":%lld,\"exp\":%lld}",
             now, now + 60);
    char *token = malloc(b64_encoded_size(sizeof header) + b64_encoded_size(sizeof claims) + 8);
    if (!token) return NULL;
    size_t at = b64url_encode((const uint8_t *)header, strlen(header), token);
    token[at++] = '.';
    at += b64url_encode((const uint8_t *)claims, strlen(claims), token + at);
    snprintf(token + at, 8, ".AAAA");
    return token;
}

/* 1: the server has an issuer (in out); 0: it says none is configured (or
 * its value breaks the URL rule; detail says so); -1: it did not tell. */
static int server_issuer(const doctor *d, char *out, size_t out_bytes, char *detail,
                         size_t detail_bytes)
{
    char *token = probe_token();
    long status = 0;
    json_t *body = NULL;
    int rc = token ? post_with_token(d, token, &status, &body) : -1;
    free(token);
    const char *code = jr_string_or(body, "code", NULL);
    const char *msg = jr_string_or(body, "message", NULL);
    int found = -1;
    if (rc == 0 && status == 401 && code && msg && strcmp(code, "NoAuthProvider") == 0) {
        snprintf(detail, detail_bytes, "%s", msg);
        found = 0;
    } else if (rc == 0 && status == 401 && msg && strstr(msg, DOCTOR_PROBE_MARK)) {
        /* …but CLERK_ISSUER_URL is "<value as a JSON string>" */
        const char *start = strstr(msg, DOCTOR_PROBE_MARK) + strlen(DOCTOR_PROBE_MARK) - 1;
        const char *end = start + 1;
        while (*end && *end != '"')
            end += end[0] == '\\' && end[1] ? 2 : 1;
        json_t *value =
            *end ? json_loadb(start, (size_t)(end - start + 1), JSON_DECODE_ANY, NULL) : NULL;
        const char *issuer = NULL;
        err_t why;
        err_init(&why);
        if (jr_as_string(value, "issuer", 0, out_bytes - 1, &issuer, &why) == 0) {
            snprintf(out, out_bytes, "%s", issuer);
            found = 1;
        }
        json_decref(value);
    }
    json_decref(body);
    return found;
}

static void check_issuer_set(doctor *d)
{
    static const char *const fix =
        "dojo env set CLERK_ISSUER_URL https://<your-clerk-frontend-api> (Clerk dashboard → "
        "API keys → Frontend API URL), or start `dojo dev --dev-auth` to sign in without Clerk";
    char why[DOCTOR_TEXT_BYTES_MAX] = "", detail[DOCTOR_TEXT_BYTES_MAX] = "";
    int stored =
        stored_variable(d, "CLERK_ISSUER_URL", d->issuer, sizeof d->issuer, why, sizeof why);
    if (stored < 0 && d->server_up && d->target.admin_key[0])
        printf("  note        %s: stored deployment variables are not read\n", why);
    if (stored == 1) {
        pass("issuer",
             "CLERK_ISSUER_URL is %s (stored in the deployment, asked with the admin "
             "key)",
             d->issuer);
        return;
    }
    int effective =
        d->server_up ? server_issuer(d, d->issuer, sizeof d->issuer, detail, sizeof detail) : -1;
    if (effective == 1) {
        bool dev = jwt_same_url(d->issuer, d->target.url);
        pass("issuer", "CLERK_ISSUER_URL is %s (%s)", d->issuer,
             dev ? "the built-in issuer of `dojo dev --dev-auth`"
                 : "the server's process environment; not stored in the deployment");
        return;
    }
    if (effective == 0) {
        d->issuer[0] = '\0';
        if (strstr(detail, "No issuer configured"))
            fail(d, "issuer", fix,
                 "CLERK_ISSUER_URL is not set on the server: it refuses every "
                 "token");
        else
            fail(d, "issuer", fix, "the server's CLERK_ISSUER_URL is unusable: %s", detail);
        return;
    }
    const char *shell = getenv("CLERK_ISSUER_URL");
    if (shell && *shell) {
        snprintf(d->issuer, sizeof d->issuer, "%s", shell);
        pass("issuer",
             "CLERK_ISSUER_URL is %s (this shell's environment: the server could not "
             "be asked — %s)",
             d->issuer, why);
        return;
    }
    d->issuer[0] = '\0';
    if (stored == 0)
        fail(d, "issuer", fix,
             "CLERK_ISSUER_URL is not set (not stored in the deployment, not in "
             "this shell)");
    else
        fail(d, "issuer", fix,
             "CLERK_ISSUER_URL is unknown: the server could not be asked (%s) "
             "and this shell does not set it",
             why);
}

static void check_issuer_rule(doctor *d)
{
    if (!d->issuer[0]) {
        skip("issuer URL", "no CLERK_ISSUER_URL");
        return;
    }
    err_t e;
    err_init(&e);
    if (auth_check_issuer_url(d->issuer, &e) == 0) {
        pass("issuer URL", "%s is https:// or a loopback http:// URL", d->issuer);
        return;
    }
    fail(d, "issuer URL",
         "use the https:// Frontend API URL from the Clerk dashboard (http:// only for "
         "localhost, 127.0.0.0/8 and ::1)",
         "%s", e.msg);
    d->issuer[0] = '\0'; /* the server refuses every token: nothing more to fetch */
    err_clear(&e);
}

/* Discovery, then the key set its jwks_uri names. */
static void check_discovery_and_keys(doctor *d)
{
    if (!d->issuer[0]) {
        skip("discovery", "no usable CLERK_ISSUER_URL");
        skip("JWKS", "no usable CLERK_ISSUER_URL");
        return;
    }
    char url[DOCTOR_VALUE_BYTES_MAX + 64], why[DOCTOR_TEXT_BYTES_MAX] = "";
    snprintf(url, sizeof url, "%.*s/.well-known/openid-configuration",
             (int)(strlen(d->issuer) - (d->issuer[strlen(d->issuer) - 1] == '/')), d->issuer);
    long status = 0;
    json_t *doc = get_json(url, &status, why, sizeof why);
    const char *said = jr_string_or(doc, "issuer", NULL);
    const char *jwks_uri = jr_string_or(doc, "jwks_uri", NULL);
    char jwks_url[DOCTOR_VALUE_BYTES_MAX] = "";
    if (!doc) {
        fail(d, "discovery",
             "CLERK_ISSUER_URL must be the Clerk Frontend API URL (e.g. "
             "https://verb-noun-00.clerk.accounts.dev), reachable from the server",
             "%s", why);
    } else if (!said || !jwt_same_url(said, d->issuer)) {
        fail(d, "discovery",
             "set CLERK_ISSUER_URL to exactly the issuer the discovery "
             "document names",
             "%s names issuer \"%s\", not %s", url, said ? said : "(none)", d->issuer);
    } else if (!jwks_uri) {
        fail(d, "discovery", "is CLERK_ISSUER_URL an OpenID issuer (the Clerk Frontend API URL)?",
             "%s has no jwks_uri", url);
    } else {
        snprintf(jwks_url, sizeof jwks_url, "%s", jwks_uri);
        pass("discovery", "%s answers; its issuer matches", url);
    }
    json_decref(doc);
    if (!jwks_url[0]) {
        skip("JWKS", "no discovery document");
        return;
    }
    err_t e;
    err_init(&e);
    char *body = NULL;
    int rc = cli_http_get(jwks_url, DOCTOR_HTTP_TIMEOUT_MS, &status, &body, &e);
    if (rc != 0 || status != 200) {
        if (rc == 0)
            snprintf(why, sizeof why, "%s answered HTTP %ld", jwks_url, status);
        else
            snprintf(why, sizeof why, "%s", e.msg);
        fail(d, "JWKS",
             "the issuer must publish its keys at its jwks_uri; check the URL and the network "
             "between the server and the issuer",
             "%s", why);
        err_clear(&e);
        free(body);
        return;
    }
    json_t *raw = json_loads(body, 0, NULL);
    size_t published = json_array_size(jr_field(raw, "keys"));
    json_decref(raw);
    if (jwks_parse(body, strlen(body), &d->keys, &e) != 0) {
        fail(d, "JWKS", "the issuer must publish RS256, ES256 or EdDSA signing keys (Clerk does)",
             "%s has no usable keys: %s", jwks_url, e.msg);
        err_clear(&e);
    } else {
        snprintf(d->keys->url, sizeof d->keys->url, "%s", jwks_url);
        pass("JWKS", "%d usable signing key%s of %zu published at %s", d->keys->n_keys,
             d->keys->n_keys == 1 ? "" : "s", published, jwks_url);
    }
    free(body);
}

static void audience_policy(doctor *d)
{
    char why[DOCTOR_TEXT_BYTES_MAX];
    if (stored_variable(d, "AUTH_APPLICATION_ID", d->audience, sizeof d->audience, why,
                        sizeof why) == 1)
        return;
    const char *env = getenv("AUTH_APPLICATION_ID");
    snprintf(d->audience, sizeof d->audience, "%s", env && *env ? env : "convex");
}

/* The check a failure names, as a person reads it. */
static const char *check_name(jwt_failure f)
{
    switch (f) {
    case JWT_UNKNOWN_KID:
        return "unknown key id (kid)";
    case JWT_UNSUPPORTED_ALG:
        return "algorithm";
    case JWT_NOT_YET_VALID:
        return "not-before (nbf)";
    case JWT_ISSUED_IN_FUTURE:
        return "issued-at (iat)";
    case JWT_NO_SUBJECT:
        return "subject (sub)";
    case JWT_NO_ISSUER_CONFIGURED:
        return "issuer configured";
    default:
        return jwt_failure_name(f);
    }
}

/* The fix for a failed token check. */
static void token_fix(const doctor *d, jwt_failure f, const jwt *t, char *out, size_t n)
{
    const char *iss = t ? jr_string_or(t->claims, "iss", NULL) : NULL;
    switch (f) {
    case JWT_EXPIRED:
        snprintf(out, n,
                 "fetch a fresh token (Clerk's live about a minute and the client "
                 "refreshes them; `dojo token` makes a new one) and check this machine's "
                 "clock");
        break;
    case JWT_NOT_YET_VALID:
    case JWT_ISSUED_IN_FUTURE:
        snprintf(out, n,
                 "this machine's clock is behind the issuer's: sync it (e.g. "
                 "timedatectl set-ntp true)");
        break;
    case JWT_AUDIENCE:
        if (strcmp(d->audience, "convex") == 0)
            snprintf(out, n,
                     "the Clerk JWT template must be named \"convex\" (its name is the "
                     "token's aud): getToken({ template: \"convex\" })");
        else
            snprintf(out, n,
                     "the token's aud must contain \"%s\" (AUTH_APPLICATION_ID): name "
                     "the Clerk JWT template so, or change AUTH_APPLICATION_ID",
                     d->audience);
        break;
    case JWT_ISSUER:
    case JWT_NO_ISSUER_CONFIGURED:
        if (iss)
            snprintf(out, n,
                     "CLERK_ISSUER_URL must be %s, the token's issuer: dojo env set "
                     "CLERK_ISSUER_URL %s (or the app signs in with another Clerk "
                     "instance than this deployment expects)",
                     iss, iss);
        else
            snprintf(out, n,
                     "use a token of the Clerk JWT template named \"convex\": it carries "
                     "iss");
        break;
    case JWT_UNKNOWN_KID:
        snprintf(out, n,
                 "the token was signed by another Clerk instance (development vs "
                 "production?) or the issuer's keys rotated: sign in again, and check "
                 "that CLERK_ISSUER_URL names the instance the app uses");
        break;
    case JWT_SIGNATURE:
        snprintf(out, n,
                 "the token was altered or signed by a different key under the same key "
                 "id: use the token exactly as the client got it, freshly fetched");
        break;
    case JWT_UNSUPPORTED_ALG:
        snprintf(out, n,
                 "dojo accepts RS256, ES256 and EdDSA (Clerk signs RS256); HMAC and "
                 "`none` are refused: use the Clerk JWT template named \"convex\"");
        break;
    case JWT_NO_SUBJECT:
        snprintf(out, n,
                 "the token must name the user (sub): use the Clerk JWT template named "
                 "\"convex\"");
        break;
    default:
        snprintf(out, n,
                 "pass the token exactly as the client gets it: getToken({ template: "
                 "\"convex\" }) in the web app, or `dojo token --sub user_1` with "
                 "--dev-auth");
        break;
    }
}

static void check_token(doctor *d, const char *token)
{
    err_t e;
    err_init(&e);
    jwt_failure f = JWT_OK;
    jwt *t = NULL;
    char fix[DOCTOR_TEXT_BYTES_MAX];
    if (jwt_decode(token, &t, &f, &e) != 0) {
        token_fix(d, f, NULL, fix, sizeof fix);
        fail(d, "token", fix, "%s check fails: %s", check_name(f), e.msg);
        err_clear(&e);
        return;
    }
    audience_policy(d);
    jwt_policy p = {.issuer = d->issuer[0] ? d->issuer : NULL,
                    .audience = d->audience,
                    .now_s = (int64_t)time(NULL),
                    .skew_s = LIMIT_JWT_CLOCK_SKEW_S};
    if (jwt_verify(t, d->keys, &p, &f, &e) == 0) {
        double exp = 0;
        err_t why;
        err_init(&why);
        jr_number(t->claims, "claims", "exp", 0, -DBL_MAX, DBL_MAX, &exp, &why);
        pass("token", "verifies: sub %s, issuer %s, audience %s, expires in %lld s",
             jr_string_or(t->claims, "sub", "?"), d->issuer, d->audience,
             (long long)(exp - (double)p.now_s));
    } else if (f == JWT_UNKNOWN_KID && !d->keys) {
        fail(d, "token", "fix the checks above first",
             "its issuer and audience are right, but its signature cannot be checked without "
             "the issuer's keys");
    } else {
        token_fix(d, f, t, fix, sizeof fix);
        fail(d, "token", fix, "%s check fails: %s", check_name(f), e.msg);
    }
    err_clear(&e);
    jwt_free(t);
}

/* The server's own verdict on the token. */
static void check_server_accepts(doctor *d, const char *token, bool token_failed)
{
    if (!d->server_up) {
        skip("accepted", "the server is not reachable");
        return;
    }
    long status = 0;
    json_t *body = NULL;
    if (post_with_token(d, token, &status, &body) != 0) {
        fail(d, "accepted", "start the server, or point at it with --url / DOJO_URL",
             "the server did not answer");
    } else if (status == 200) {
        pass("accepted", "the server accepts the token (users:me answered)");
    } else {
        const char *msg = jr_string_or(body, "message", NULL);
        fail(d, "accepted",
             token_failed ? "see the token check above"
                          : "the server has its own CLERK_ISSUER_URL and AUTH_APPLICATION_ID: "
                            "compare them with the lines above (`dojo env list`)",
             "the server refuses the token (HTTP %ld): %s", status, msg ? msg : "no reason given");
    }
    json_decref(body);
}

static void doctor_usage(FILE *out)
{
    fprintf(out,
            "Usage: dojo doctor [--token JWT] [--url URL] [--admin-key KEY]\n\n"
            "Walks the troubleshooting list and prints one line per check, with the fix for\n"
            "each one that fails:\n"
            "  server      the server answers GET /health\n"
            "  issuer      CLERK_ISSUER_URL is set (asked of the server: stored with\n"
            "              `dojo env set`, or its process environment; else this shell's)\n"
            "  issuer URL  https://, or http:// only on loopback\n"
            "  discovery   <issuer>/.well-known/openid-configuration answers, same issuer\n"
            "  JWKS        the issuer publishes usable signing keys\n"
            "  token       (--token) which check the token fails: expired, audience (the\n"
            "              Clerk JWT template must be named \"convex\"), issuer, unknown key\n"
            "              id, signature, algorithm\n"
            "  accepted    (--token) the server itself accepts the token\n\n"
            "Exit status 0 only when every check passes. The server is --url, $DOJO_URL or\n"
            "http://127.0.0.1:3210; the admin key --admin-key, $DOJO_ADMIN_KEY or\n"
            "./.dojo/admin_key (optional: without it the stored variables are not read).\n"
            "In the web app, a token for --token is `await getToken({ template: \"convex\" })`.\n");
}

int cmd_doctor(int argc, char **argv)
{
    static const struct option opts[] = {
        {"token", required_argument, NULL, 't'},
        {"url", required_argument, NULL, 'u'},
        {"admin-key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *key = NULL, *token = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            token = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'h':
            doctor_usage(stdout);
            return 0;
        default:
            doctor_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        cli_error("doctor", "unexpected argument \"%s\" (a token goes after --token)",
                  argv[optind]);
        return 2;
    }
    if (token) {
        while (*token == ' ')
            token++;
        if (strncasecmp(token, "Bearer ", 7) == 0) token += 7;
        if (strlen(token) > LIMIT_JWT_BYTES_MAX) {
            cli_error("doctor", "the token is over %u bytes: is it a JWT?", LIMIT_JWT_BYTES_MAX);
            return 2;
        }
    }
    doctor d = {0};
    err_t e;
    err_init(&e);
    cli_target_resolve(&d.target, url, key, false, &e);
    printf("dojo doctor — %s\n", d.target.url);
    check_server(&d);
    check_issuer_set(&d);
    check_issuer_rule(&d);
    check_discovery_and_keys(&d);
    if (token) {
        int before = d.failures;
        check_token(&d, token);
        check_server_accepts(&d, token, d.failures > before);
    }
    jwks_free(d.keys);
    if (d.failures == 0)
        printf("All checks passed%s.\n", token ? "" : " (add --token JWT to check a token too)");
    else
        printf("%d check%s failed.\n", d.failures, d.failures == 1 ? "" : "s");
    return d.failures == 0 ? 0 : 1;
}
