/*
 * auth.c — the loop-side verifier: a bearer token becomes an identity
 * without the event loop ever waiting on the network. The configured
 * issuer's key set is cached; a token whose key is cached verifies at once,
 * and one that needs keys waits for the single fetch in flight (run by
 * auth_fetch_jwks on libuv's thread pool), after which every waiter is
 * answered together on the loop.
 * Called by the HTTP API and the sync sessions (proto/) for each token.
 * Thread: the event-loop thread only; fetch_work alone runs on a worker.
 *
 * Fetch rate: an unknown kid triggers a fetch at most once per
 * refetch_interval_ms; while no fetch has ever succeeded for the issuer, a
 * failed one is retried after AUTH_RETRY_WITHOUT_KEYS_MS instead, so a server
 * started before its issuer is reachable recovers quickly.
 */
#include "auth/auth.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "auth/token_cache.h"
#include "base/clock.h"
#include "base/invariant.h"
#include "base/jread.h"
#include "base/limits.h"
#include "base/log.h"

#define AUTH_WAITERS_MAX 1024           /* verifications queued behind one fetch */
#define AUTH_RETRY_WITHOUT_KEYS_MS 5000 /* retry pace while no fetch ever succeeded */
#define AUTH_DEFAULT_AUDIENCE "convex"
#define AUTH_EXP_ABS_MAX_S 1e15 /* a real exp beyond this is clamped */

/* A verification waiting for the fetch in flight. */
typedef struct waiter {
    struct waiter *next;
    jwt *token;
    auth_cb cb;
    void *data;
} waiter;

/* One fetch of the issuer's keys; the worker reads issuer and fills the rest. */
typedef struct fetch_job {
    uv_work_t req;
    auth *a;
    char *issuer;  /* a copy: the loop may reconfigure while the worker runs */
    uint64_t gen;  /* a->gen when started; a later value means a new issuer */
    jwk_set *keys; /* the result, NULL on failure */
    int rc;
    err_t err;
} fetch_job;

struct auth {
    uv_loop_t *loop;
    char *issuer;   /* CLERK_ISSUER_URL; NULL when not configured */
    char *audience; /* AUTH_APPLICATION_ID */
    int issuer_url_rc;
    char issuer_url_msg[ERR_MSG_BYTES_MAX]; /* why the issuer URL is refused */
    uint64_t gen;                           /* bumped whenever the issuer changes */

    jwk_set *keys;                       /* the issuer's keys; NULL until a fetch succeeds */
    bool keys_pinned;                    /* set by the test hook: never fetch */
    bool attempted;                      /* a fetch has completed for this issuer */
    uint64_t last_fetch_ms;              /* monotonic, when the last fetch completed */
    char fetch_error[ERR_MSG_BYTES_MAX]; /* why the last fetch failed, "" after success */
    uint64_t refetch_interval_ms;

    fetch_job *job; /* the fetch in flight, at most one */
    waiter *head, **tail;
    int n_waiters;

    int dispatching; /* depth of callback loops in fetch_done */
    bool closing;    /* auth_free was called; released when idle */

    token_cache *verified; /* tokens already verified under this configuration */
};

static void route(auth *a, jwt *t, auth_cb cb, void *data);

/* ---- lifecycle ------------------------------------------------------ */

auth *auth_new(uv_loop_t *loop)
{
    ASSERT(loop);
    auth *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->audience = strdup(AUTH_DEFAULT_AUDIENCE);
    a->verified = token_cache_new();
    if (!a->audience || !a->verified || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(a->audience);
        token_cache_free(a->verified);
        free(a);
        return NULL;
    }
    a->loop = loop;
    a->tail = &a->head;
    a->refetch_interval_ms = LIMIT_JWKS_REFETCH_INTERVAL_MS;
    return a;
}

static void destroy(auth *a)
{
    ASSERT(!a->job && !a->head && a->dispatching == 0);
    jwks_free(a->keys);
    token_cache_free(a->verified);
    free(a->issuer);
    free(a->audience);
    free(a);
    curl_global_cleanup();
}

/* Answers a refusal; the token (if any) is already released. */
static void answer_failure(auth_cb cb, void *data, int rc, jwt_failure f, err_t *e)
{
    cb(data, rc, NULL, 0, f, e);
    err_clear(e);
}

static void answer_unavailable(waiter *w)
{
    err_t e;
    err_init(&e);
    err_set(&e, ERR_UNAVAILABLE, "The server is shutting down; the token was not verified");
    jwt_free(w->token);
    answer_failure(w->cb, w->data, ERR_UNAVAILABLE, JWT_ISSUER_UNREACHABLE, &e);
    free(w);
}

static waiter *take_waiters(auth *a)
{
    waiter *list = a->head;
    a->head = NULL;
    a->tail = &a->head;
    a->n_waiters = 0;
    return list;
}

void auth_free(auth *a)
{
    if (!a) return;
    ASSERT(!a->closing);
    a->closing = true;
    for (waiter *w = take_waiters(a), *next; w; w = next) {
        next = w->next;
        answer_unavailable(w);
    }
    if (a->job) {
        uv_cancel((uv_req_t *)&a->job->req); /* fetch_done releases a */
        return;
    }
    if (a->dispatching == 0) destroy(a);
}

/* ---- configuration -------------------------------------------------- */

static bool same_string(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static void forget_keys(auth *a)
{
    token_cache_clear(a->verified);
    jwks_free(a->keys);
    a->keys = NULL;
    a->keys_pinned = false;
    a->attempted = false;
    a->last_fetch_ms = 0;
    a->fetch_error[0] = '\0';
}

static void set_issuer(auth *a, const char *issuer)
{
    char *copy = issuer ? strdup(issuer) : NULL;
    if (issuer && !copy) log_error("auth: out of memory; the issuer is now unset");
    free(a->issuer);
    a->issuer = copy;
    a->gen++;
    forget_keys(a);
    err_t e;
    err_init(&e);
    a->issuer_url_rc = copy ? auth_check_issuer_url(copy, &e) : 0;
    snprintf(a->issuer_url_msg, sizeof a->issuer_url_msg, "%s", e.msg);
    err_clear(&e);
    if (!copy)
        log_warn("auth: CLERK_ISSUER_URL is not set; every token will be refused");
    else if (a->issuer_url_rc)
        log_warn("auth: %s", a->issuer_url_msg);
    else
        log_info("auth: tokens must be issued by %s", copy);
}

void auth_configure(auth *a, const char *issuer_url, const char *application_id)
{
    ASSERT(a && !a->closing);
    const char *issuer = issuer_url && *issuer_url ? issuer_url : NULL;
    const char *audience =
        application_id && *application_id ? application_id : AUTH_DEFAULT_AUDIENCE;
    if (!same_string(audience, a->audience)) {
        char *copy = strdup(audience);
        if (copy) {
            free(a->audience);
            a->audience = copy;
            token_cache_clear(a->verified);
        }
    }
    if (!same_string(issuer, a->issuer)) set_issuer(a, issuer);
}

void auth_set_keys_for_test(auth *a, jwk_set *keys)
{
    ASSERT(a && keys);
    forget_keys(a);
    a->keys = keys;
    a->keys_pinned = true;
    a->attempted = true;
}

void auth_set_refetch_interval_for_test(auth *a, uint64_t interval_ms)
{
    ASSERT(a);
    a->refetch_interval_ms = interval_ms;
}

/* ---- verification --------------------------------------------------- */

static jwt_policy policy_of(const auth *a)
{
    jwt_policy p = {
        .issuer = a->issuer,
        .audience = a->audience,
        .now_s = (int64_t)(clock_now_ns() / 1000000000u),
        .skew_s = LIMIT_JWT_CLOCK_SKEW_S,
    };
    return p;
}

/* The token's exp in seconds (jwt_verify has checked it is a number). */
static int64_t exp_of(const jwt *t)
{
    double d = 0;
    err_t why;
    err_init(&why);
    jr_number(t->claims, "claims", "exp", 0, -DBL_MAX, DBL_MAX, &d, &why);
    return d > AUTH_EXP_ABS_MAX_S    ? (int64_t)AUTH_EXP_ABS_MAX_S
           : d < -AUTH_EXP_ABS_MAX_S ? (int64_t)-AUTH_EXP_ABS_MAX_S
                                     : (int64_t)d;
}

/* Verifies t with the cached keys and answers; t is released. */
static void verify_now(auth *a, jwt *t, auth_cb cb, void *data)
{
    err_t e;
    err_init(&e);
    jwt_failure f = JWT_OK;
    jwt_policy p = policy_of(a);
    int rc = jwt_verify(t, a->keys, &p, &f, &e);
    json_t *identity = rc == 0 ? jwt_identity(t->claims) : NULL;
    int64_t exp_s = rc == 0 ? exp_of(t) : 0;
    if (identity) token_cache_put(a->verified, t->token_sha256, identity, exp_s);
    jwt_free(t);
    if (rc == 0 && !identity) rc = err_set(&e, ERR_NOMEM, "Out of memory building an identity");
    if (rc != 0) {
        log_debug("auth: token refused (%s): %s", jwt_failure_name(f), e.msg);
        answer_failure(cb, data, rc, f, &e);
        return;
    }
    cb(data, 0, identity, exp_s, JWT_OK, &e);
    err_clear(&e);
}

static void answer_unreachable(auth *a, jwt *t, auth_cb cb, void *data)
{
    err_t e;
    err_init(&e);
    jwt_free(t);
    err_set(&e, ERR_UNAVAILABLE, "The issuer's keys could not be fetched: %s",
            a->fetch_error[0] ? a->fetch_error : "no fetch has completed yet");
    answer_failure(cb, data, ERR_UNAVAILABLE, JWT_ISSUER_UNREACHABLE, &e);
}

/* True when the cached keys can decide t: its kid is there, or it has no kid
 * and exactly one key fits its alg. */
static bool keys_cover(const auth *a, const jwt *t)
{
    if (!a->keys) return false;
    return jwks_find(a->keys, t->kid, t->kid ? NULL : t->alg) != NULL;
}

static bool may_fetch(const auth *a)
{
    if (a->keys_pinned) return false;
    if (!a->attempted) return true;
    uint64_t pause_ms = a->refetch_interval_ms;
    if (!a->keys && pause_ms > AUTH_RETRY_WITHOUT_KEYS_MS) pause_ms = AUTH_RETRY_WITHOUT_KEYS_MS;
    return clock_mono_ms() - a->last_fetch_ms >= pause_ms;
}

static void fetch_work(uv_work_t *req)
{
    fetch_job *job = req->data;
    job->rc = auth_fetch_jwks(job->issuer, &job->keys, &job->err);
}

static void fetch_done(uv_work_t *req, int status);

static int start_fetch(auth *a)
{
    ASSERT(!a->job && a->issuer);
    fetch_job *job = calloc(1, sizeof *job);
    char *issuer = strdup(a->issuer);
    if (!job || !issuer) {
        free(job);
        free(issuer);
        return ERR_NOMEM;
    }
    job->a = a;
    job->issuer = issuer;
    job->gen = a->gen;
    err_init(&job->err);
    job->req.data = job;
    if (uv_queue_work(a->loop, &job->req, fetch_work, fetch_done) != 0) {
        free(job->issuer);
        free(job);
        return ERR_INTERNAL;
    }
    a->job = job;
    return 0;
}

static void enqueue(auth *a, jwt *t, auth_cb cb, void *data)
{
    waiter *w = a->n_waiters < AUTH_WAITERS_MAX ? malloc(sizeof *w) : NULL;
    if (!w) {
        err_t e;
        err_init(&e);
        jwt_free(t);
        err_set(&e, ERR_BUSY, "Too many tokens (%d) are waiting for the issuer's keys",
                AUTH_WAITERS_MAX);
        answer_failure(cb, data, ERR_BUSY, JWT_ISSUER_UNREACHABLE, &e);
        return;
    }
    *w = (waiter){.token = t, .cb = cb, .data = data};
    *a->tail = w;
    a->tail = &w->next;
    a->n_waiters++;
}

/* Decides how t gets its answer: now from the cache, after the fetch in
 * flight, after a new fetch, or now as a refusal. t is consumed. */
static void route(auth *a, jwt *t, auth_cb cb, void *data)
{
    if (keys_cover(a, t)) {
        verify_now(a, t, cb, data);
    } else if (a->job) {
        enqueue(a, t, cb, data);
    } else if (may_fetch(a) && start_fetch(a) == 0) {
        enqueue(a, t, cb, data);
    } else if (a->keys) {
        verify_now(a, t, cb, data); /* refused: unknown kid, within the interval */
    } else {
        answer_unreachable(a, t, cb, data);
    }
}

/* The checks that need no key: issuer configured and allowed, iss, aud. */
static int precheck(auth *a, const jwt *t, jwt_failure *f, err_t *e)
{
    if (a->issuer && a->issuer_url_rc != 0) {
        *f = JWT_NO_ISSUER_CONFIGURED;
        return err_set(e, ERR_AUTH, "%s", a->issuer_url_msg);
    }
    jwt_policy p = policy_of(a);
    int rc = jwt_verify(t, NULL, &p, f, e);
    ASSERT(rc != 0);
    if (*f == JWT_UNKNOWN_KID) {
        err_clear(e);
        *f = JWT_OK;
        return 0;
    }
    return rc;
}

/* precheck, then route; t is consumed. */
static void dispatch(auth *a, jwt *t, auth_cb cb, void *data)
{
    err_t e;
    err_init(&e);
    jwt_failure f = JWT_OK;
    int rc = precheck(a, t, &f, &e);
    if (rc != 0) {
        jwt_free(t);
        log_debug("auth: token refused (%s): %s", jwt_failure_name(f), e.msg);
        answer_failure(cb, data, rc, f, &e);
        return;
    }
    route(a, t, cb, data);
}

void auth_verify(auth *a, const char *token, auth_cb cb, void *data)
{
    ASSERT(a && token && cb && !a->closing);
    err_t e;
    err_init(&e);
    jwt_failure f = JWT_OK;
    if (strnlen(token, LIMIT_JWT_BYTES_MAX + 1) <= LIMIT_JWT_BYTES_MAX) {
        unsigned char key[32];
        token_cache_key(token, key);
        int64_t exp_s;
        json_t *known =
            token_cache_get(a->verified, key, policy_of(a).now_s, LIMIT_JWT_CLOCK_SKEW_S, &exp_s);
        if (known) {
            cb(data, 0, known, exp_s, JWT_OK, &e);
            return;
        }
    }
    jwt *t = NULL;
    int rc = jwt_decode(token, &t, &f, &e);
    if (rc != 0) {
        log_debug("auth: token refused (%s): %s", jwt_failure_name(f), e.msg);
        answer_failure(cb, data, rc, f, &e);
        return;
    }
    dispatch(a, t, cb, data);
}

/* ---- when a fetch lands --------------------------------------------- */

/* Takes the outcome of job into the cache (job is for the current issuer). */
static void apply_fetch(auth *a, fetch_job *job)
{
    a->attempted = true;
    a->last_fetch_ms = clock_mono_ms();
    if (job->rc == 0) {
        token_cache_clear(a->verified); /* a key may have been withdrawn */
        jwks_free(a->keys);
        a->keys = job->keys;
        job->keys = NULL;
        a->fetch_error[0] = '\0';
        log_info("auth: loaded %d signing keys from %s", a->keys->n_keys, a->keys->url);
        return;
    }
    snprintf(a->fetch_error, sizeof a->fetch_error, "%s", job->err.msg);
    log_warn("auth: %s%s", job->err.msg, a->keys ? " (keeping the keys fetched before)" : "");
}

/* Answers one waiter after a fetch made under generation gen: from the new
 * keys when the issuer is still the same, else by starting over. */
static void answer_waiter(auth *a, waiter *w, uint64_t gen)
{
    if (a->closing) {
        answer_unavailable(w);
        return;
    }
    jwt *t = w->token;
    auth_cb cb = w->cb;
    void *data = w->data;
    free(w);
    if (gen != a->gen)
        dispatch(a, t, cb, data); /* the issuer changed meanwhile */
    else if (keys_cover(a, t) || (a->keys && !a->fetch_error[0]))
        verify_now(a, t, cb, data);
    else
        answer_unreachable(a, t, cb, data);
}

static void fetch_done(uv_work_t *req, int status)
{
    fetch_job *job = req->data;
    auth *a = job->a;
    ASSERT(a->job == job);
    a->job = NULL;
    uint64_t gen = job->gen;
    bool fresh = !a->closing && gen == a->gen;
    if (fresh && status == 0) apply_fetch(a, job);
    if (fresh && status != 0) {
        snprintf(a->fetch_error, sizeof a->fetch_error, "the fetch was cancelled");
        a->attempted = true;
        a->last_fetch_ms = clock_mono_ms();
    }
    jwks_free(job->keys);
    err_clear(&job->err);
    free(job->issuer);
    free(job);
    a->dispatching++;
    for (waiter *w = take_waiters(a), *next; w; w = next) {
        next = w->next;
        answer_waiter(a, w, gen);
    }
    a->dispatching--;
    if (a->closing && a->dispatching == 0 && !a->job) destroy(a);
}
