/*
 * auth.h — turning an Authorization header into an identity, on the event
 * loop without ever waiting on the network there: the issuer's discovery
 * document and JWKS are fetched with libcurl on libuv's thread pool, cached,
 * and re-fetched on an unknown kid at most once per
 * LIMIT_JWKS_REFETCH_INTERVAL_MS. Verifications that wait for the same fetch
 * are answered together when it lands. Also the admin key: generated,
 * compared in constant time, never logged.
 *
 * Thread: the event-loop thread for everything taking an auth*; the helpers
 * at the bottom are pure and callable anywhere.
 */
#ifndef DOJO_AUTH_AUTH_H
#define DOJO_AUTH_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "auth/jwt.h"
#include "base/err.h"

typedef struct auth auth;

auth *auth_new(uv_loop_t *loop);
/* Verifications still waiting for a fetch are answered at once with
 * ERR_UNAVAILABLE. Never blocks: with a fetch in flight the memory is released
 * when that fetch lands, so keep running the loop until it has no requests
 * left (the usual libuv shutdown) before closing it. */
void auth_free(auth *a);

/* Sets the issuer (CLERK_ISSUER_URL; NULL or "" = not configured) and the
 * application id (AUTH_APPLICATION_ID; NULL = "convex"). Called at start and
 * whenever the deployment variables change; a changed issuer drops the cache.
 * Validates the URL: https://, or http:// only for a loopback host. */
void auth_configure(auth *a, const char *issuer_url, const char *application_id);

/* The outcome of a verification. identity is a new reference the callback
 * owns (NULL on failure); exp_s is the token's exp. */
typedef void (*auth_cb)(void *data, int rc, json_t *identity, int64_t exp_s, jwt_failure failure,
                        const err_t *e);

/* Verifies a bearer token. cb is called exactly once: before auth_verify
 * returns when the keys are cached (or the token is refused outright), or
 * later from the loop after a fetch. */
void auth_verify(auth *a, const char *token, auth_cb cb, void *data);

/* Test hook: use this key set (owned from now on) for the configured issuer
 * instead of fetching. */
void auth_set_keys_for_test(auth *a, jwk_set *keys);
/* Test hook: the least time between two fetches for an unknown kid
 * (LIMIT_JWKS_REFETCH_INTERVAL_MS unless set). */
void auth_set_refetch_interval_for_test(auth *a, uint64_t interval_ms);

/* Fetches "<issuer>/.well-known/openid-configuration", checks its "issuer",
 * then fetches its jwks_uri and parses it. Blocking (libcurl): call it from a
 * worker thread or a command-line tool only. */
int auth_fetch_jwks(const char *issuer, jwk_set **out, err_t *e);
/* Reads the jwks_uri of an OpenID discovery document (text, len bytes,
 * fetched from url) into jwks_uri (cap bytes): the document must name
 * issuer (a trailing slash aside) and an https:// jwks_uri (http:// on
 * loopback). ERR_UNAVAILABLE with the reason otherwise. */
int auth_discovery_parse(const char *url, const char *issuer, const char *text, size_t len,
                         char *jwks_uri, size_t cap, err_t *e);

/* The issuer URL rule of api.md §6. Returns 0 or ERR_AUTH with a message. */
int auth_check_issuer_url(const char *issuer, err_t *e);

/* Admin keys: "<32 random bytes as hex>" prefixed by "dojo-admin-". */
#define ADMIN_KEY_BYTES_MAX 96
int admin_key_generate(char out[ADMIN_KEY_BYTES_MAX]);
/* Constant-time comparison (compares SHA-256 digests with CRYPTO_memcmp). */
bool admin_key_matches(const char *given, const char *expected);

#endif
