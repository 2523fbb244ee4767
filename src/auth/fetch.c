/*
 * fetch.c — getting an issuer's signing keys over the network: OpenID
 * discovery ("<issuer>/.well-known/openid-configuration"), a check that the
 * document names the configured issuer, then its jwks_uri, parsed by
 * jwks_parse. Also the issuer URL rule (https://, or http:// on loopback).
 * Called by auth.c through uv_queue_work (a libuv worker thread) and by
 * `dojo doctor`; blocking, never on the event loop.
 * Thread: any except the event loop (auth_check_issuer_url: any).
 */
#include "auth/auth.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>

#include "base/invariant.h"
#include "base/jread.h"
#include "base/limits.h"
#include "base/log.h"

#define FETCH_REDIRECTS_MAX 3L
#define FETCH_BODY_START_BYTES 4096
#define URL_HOST_BYTES_MAX 256
#define DISCOVERY_PATH "/.well-known/openid-configuration"

/* ---- the issuer URL rule (api.md §6) -------------------------------- */

typedef enum { URL_OK, URL_BAD_SCHEME, URL_HTTP_NOT_LOOPBACK } url_verdict;

/* Copies the host of an http:// URL (after the scheme) into host; brackets
 * of an IPv6 literal removed. */
static int http_host(const char *rest, char host[URL_HOST_BYTES_MAX])
{
    size_t auth_end = strcspn(rest, "/?#");
    if (memchr(rest, '@', auth_end)) return -1; /* userinfo: refused outright */
    const char *end;
    if (rest[0] == '[') {
        end = memchr(rest, ']', auth_end);
        if (!end) return -1;
        rest++;
    } else {
        end = rest + strcspn(rest, ":/?#");
    }
    size_t n = (size_t)(end - rest);
    if (n == 0 || n >= URL_HOST_BYTES_MAX) return -1;
    memcpy(host, rest, n);
    host[n] = '\0';
    return 0;
}

static bool host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0) return true;
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    struct in6_addr v6;
    return inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

static url_verdict url_rule(const char *url)
{
    if (strncasecmp(url, "https://", 8) == 0) return url[8] ? URL_OK : URL_BAD_SCHEME;
    if (strncasecmp(url, "http://", 7) != 0) return URL_BAD_SCHEME;
    char host[URL_HOST_BYTES_MAX];
    if (http_host(url + 7, host) != 0 || !host_is_loopback(host)) return URL_HTTP_NOT_LOOPBACK;
    return URL_OK;
}

int auth_check_issuer_url(const char *issuer, err_t *e)
{
    if (!issuer || !*issuer)
        return err_set(e, ERR_AUTH,
                       "No issuer configured: set CLERK_ISSUER_URL (dojo env set CLERK_ISSUER_URL "
                       "https://<your-clerk-frontend-api>)");
    switch (url_rule(issuer)) {
    case URL_OK:
        return 0;
    case URL_BAD_SCHEME:
        return err_set(e, ERR_AUTH,
                       "CLERK_ISSUER_URL \"%.200s\" must start with https:// (for example "
                       "https://verb-noun-00.clerk.accounts.dev)",
                       issuer);
    case URL_HTTP_NOT_LOOPBACK:
        return err_set(e, ERR_AUTH,
                       "CLERK_ISSUER_URL \"%.200s\" uses http:// for a host that is not loopback: "
                       "keys fetched over plain http could be forged on the way; use https:// "
                       "(http:// is allowed only for localhost, 127.0.0.0/8 and ::1)",
                       issuer);
    }
    return ERR_INTERNAL;
}

/* ---- HTTP GET with bounds ------------------------------------------- */

typedef struct body {
    char *buf;
    size_t len, cap;
    bool too_big;
} body;

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    body *b = user;
    size_t add = size * n;
    if (add > LIMIT_JWKS_BYTES_MAX - b->len) {
        b->too_big = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : FETCH_BODY_START_BYTES;
        while (cap < b->len + add + 1)
            cap *= 2;
        char *grown = realloc(b->buf, cap);
        if (!grown) return 0;
        b->buf = grown;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, add);
    b->len += add;
    b->buf[b->len] = '\0';
    return add;
}

static void http_configure(CURL *c, const char *url, body *b, char *errbuf)
{
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* we run on a worker thread */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)LIMIT_JWKS_FETCH_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)LIMIT_JWKS_FETCH_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, FETCH_REDIRECTS_MAX);
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)LIMIT_JWKS_BYTES_MAX);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "dojo");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
}

/* GETs url into b (NUL-terminated); refuses anything but HTTP 200 within the
 * time and size bounds. Errors are ERR_UNAVAILABLE naming the URL. */
static int http_get(const char *url, body *b, err_t *e)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *c = curl_easy_init();
    if (!c) return err_set(e, ERR_NOMEM, "Could not start an HTTP request to %s", url);
    http_configure(c, url, b, errbuf);
    CURLcode res = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (b->too_big || res == CURLE_FILESIZE_EXCEEDED)
        return err_set(e, ERR_UNAVAILABLE, "%s answered more than %u bytes (LIMIT_JWKS_BYTES_MAX)",
                       url, LIMIT_JWKS_BYTES_MAX);
    if (res != CURLE_OK)
        return err_set(e, ERR_UNAVAILABLE, "Could not fetch %s: %s", url,
                       errbuf[0] ? errbuf : curl_easy_strerror(res));
    if (status != 200)
        return err_set(e, ERR_UNAVAILABLE, "%s answered HTTP %ld, expected 200", url, status);
    if (!b->buf) return err_set(e, ERR_UNAVAILABLE, "%s answered an empty body", url);
    return 0;
}

/* ---- discovery, then the key set ------------------------------------ */

static bool same_issuer(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 0 && a[la - 1] == '/') la--;
    if (lb > 0 && b[lb - 1] == '/') lb--;
    return la == lb && strncmp(a, b, la) == 0;
}

/* Reads issuer and jwks_uri from a discovery document into jwks_uri. */
static int read_discovery(const char *url, const char *issuer, const body *b, char *jwks_uri,
                          size_t cap, err_t *e)
{
    json_t *doc = json_loadb(b->buf, b->len, 0, NULL);
    const char *said = NULL, *uri = NULL;
    err_t why;
    err_init(&why);
    jr_string(doc, "discovery", "issuer", 0, LIMIT_HTTP_URL_BYTES_MAX, &said, &why);
    jr_string(doc, "discovery", "jwks_uri", 0, LIMIT_HTTP_URL_BYTES_MAX, &uri, &why);
    int rc = 0;
    if (!json_is_object(doc))
        rc = err_set(e, ERR_UNAVAILABLE,
                     "%s is not a JSON object: is CLERK_ISSUER_URL the Clerk "
                     "Frontend API URL?",
                     url);
    else if (!said || !same_issuer(said, issuer))
        rc = err_set(e, ERR_UNAVAILABLE,
                     "The discovery document %s names issuer \"%.200s\" but CLERK_ISSUER_URL is "
                     "\"%.200s\"",
                     url, said ? said : "(none)", issuer);
    else if (!uri || url_rule(uri) != URL_OK || strlen(uri) >= cap)
        rc = err_set(e, ERR_UNAVAILABLE,
                     "The discovery document %s has no usable jwks_uri (an https:// URL, or "
                     "http:// on loopback)",
                     url);
    else
        snprintf(jwks_uri, cap, "%s", uri);
    json_decref(doc);
    return rc;
}

static int fetch_discovery(const char *issuer, char *jwks_uri, size_t cap, err_t *e)
{
    size_t len = strlen(issuer);
    if (len > 0 && issuer[len - 1] == '/') len--;
    char *url = malloc(len + sizeof DISCOVERY_PATH);
    if (!url) return err_set(e, ERR_NOMEM, "Out of memory while fetching the issuer's keys");
    memcpy(url, issuer, len);
    memcpy(url + len, DISCOVERY_PATH, sizeof DISCOVERY_PATH);
    body b = {0};
    int rc = http_get(url, &b, e);
    if (rc == 0) rc = read_discovery(url, issuer, &b, jwks_uri, cap, e);
    free(b.buf);
    free(url);
    return rc;
}

static int fetch_key_set(const char *jwks_uri, jwk_set **out, err_t *e)
{
    body b = {0};
    int rc = http_get(jwks_uri, &b, e);
    if (rc == 0) {
        rc = jwks_parse(b.buf, b.len, out, e);
        if (rc != 0) {
            char why[ERR_MSG_BYTES_MAX];
            snprintf(why, sizeof why, "%s", e ? e->msg : "");
            rc = err_set(e, ERR_UNAVAILABLE, "%s: %s", jwks_uri, why);
        }
    }
    free(b.buf);
    return rc;
}

int auth_fetch_jwks(const char *issuer, jwk_set **out, err_t *e)
{
    ASSERT(out);
    *out = NULL;
    int rc = auth_check_issuer_url(issuer, e);
    if (rc != 0) return rc;
    char jwks_uri[JWKS_URL_BYTES_MAX];
    rc = fetch_discovery(issuer, jwks_uri, sizeof jwks_uri, e);
    if (rc == 0) rc = fetch_key_set(jwks_uri, out, e);
    if (rc != 0) return rc;
    snprintf((*out)->url, sizeof(*out)->url, "%s", jwks_uri);
    log_debug("auth: %d signing keys from %s", (*out)->n_keys, jwks_uri);
    return 0;
}
