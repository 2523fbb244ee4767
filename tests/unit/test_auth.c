/*
 * test_auth.c — the loop-side verifier of auth/auth.h with a real libuv loop
 * and a tiny issuer: a thread serving /.well-known/openid-configuration and
 * /jwks.json on 127.0.0.1:<ephemeral>, counting the requests it answers.
 * Also the issuer URL rule and the admin key.
 * Thread: the test's main thread runs the loop; the issuer runs on its own.
 */
#include "support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "auth/auth.h"
#include "base/log.h"

#define ISSUER_POLL_MS 20
#define ISSUER_REQUEST_BYTES_MAX 4096
#define ISSUER_URL_BYTES 64

/* ---- the test issuer -------------------------------------------------- */

typedef struct issuer {
    int fd;
    int port;
    char url[ISSUER_URL_BYTES]; /* "http://127.0.0.1:<port>" */
    pthread_t thread;
    atomic_bool stop;
    atomic_int discovery_requests;
    atomic_int jwks_requests;
    atomic_int discovery_status; /* HTTP status for the discovery document */
    pthread_mutex_t mu;
    char *jwks;           /* the JWKS served, under mu */
    char *claimed_issuer; /* discovery "issuer" when not url, under mu */
} issuer;

static void send_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w <= 0) return;
        buf += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, int status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, strlen(body));
    send_all(fd, head, (size_t)n);
    send_all(fd, body, strlen(body));
}

/* Reads one request head; returns its path in path (or "" on error). */
static void read_path(int fd, char *path, size_t cap)
{
    char req[ISSUER_REQUEST_BYTES_MAX + 1];
    size_t len = 0;
    path[0] = '\0';
    while (len < ISSUER_REQUEST_BYTES_MAX) {
        ssize_t r = read(fd, req + len, ISSUER_REQUEST_BYTES_MAX - len);
        if (r <= 0) return;
        len += (size_t)r;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n")) break;
    }
    char fmt[32];
    snprintf(fmt, sizeof fmt, "GET %%%zus", cap - 1);
    if (sscanf(req, fmt, path) != 1) path[0] = '\0';
}

static void serve_one(issuer *s, int fd)
{
    char path[256];
    read_path(fd, path, sizeof path);
    pthread_mutex_lock(&s->mu);
    if (strcmp(path, "/.well-known/openid-configuration") == 0) {
        atomic_fetch_add(&s->discovery_requests, 1);
        json_t *doc =
            json_pack("{s:s, s:s+}", "issuer", s->claimed_issuer ? s->claimed_issuer : s->url,
                      "jwks_uri", s->url, "/jwks.json");
        char *text = json_dumps(doc, 0);
        respond(fd, atomic_load(&s->discovery_status), text);
        free(text);
        json_decref(doc);
    } else if (strcmp(path, "/jwks.json") == 0) {
        atomic_fetch_add(&s->jwks_requests, 1);
        respond(fd, 200, s->jwks ? s->jwks : "{\"keys\":[]}");
    } else {
        respond(fd, 404, "{}");
    }
    pthread_mutex_unlock(&s->mu);
    close(fd);
}

static void *issuer_main(void *arg)
{
    issuer *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, ISSUER_POLL_MS) <= 0) continue;
        int fd = accept(s->fd, NULL, NULL);
        if (fd >= 0) serve_one(s, fd);
    }
    return NULL;
}

static issuer *issuer_start(void)
{
    issuer *s = calloc(1, sizeof *s);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addr_len = sizeof addr;
    assert_int_equal(bind(s->fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&addr, &addr_len), 0);
    s->port = ntohs(addr.sin_port);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
    atomic_store(&s->discovery_status, 200);
    pthread_mutex_init(&s->mu, NULL);
    assert_int_equal(pthread_create(&s->thread, NULL, issuer_main, s), 0);
    return s;
}

static void issuer_stop(issuer *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->fd);
    pthread_mutex_destroy(&s->mu);
    free(s->jwks);
    free(s->claimed_issuer);
    free(s);
}

static int issuer_fetches(issuer *s)
{
    return atomic_load(&s->jwks_requests);
}

/* ---- keys and tokens --------------------------------------------------- */

typedef struct fixture {
    uv_loop_t loop;
    issuer *iss;
    auth *a;
} fixture;

static EVP_PKEY *key1, *key2; /* generated once in group_setup */

/* Serves the public keys given as (key, kid) pairs; NULL ends the list. */
static void serve_keys(issuer *s, EVP_PKEY *k, const char *kid, EVP_PKEY *k2, const char *kid2)
{
    json_t *list = json_array();
    json_array_append_new(list, jwk_public(k, NULL, kid));
    if (k2) json_array_append_new(list, jwk_public(k2, NULL, kid2));
    json_t *doc = json_pack("{s:o}", "keys", list);
    pthread_mutex_lock(&s->mu);
    free(s->jwks);
    s->jwks = json_dumps(doc, 0);
    pthread_mutex_unlock(&s->mu);
    json_decref(doc);
}

static char *token_for(const char *iss, EVP_PKEY *key, const char *kid, const char *sub)
{
    int64_t now = (int64_t)time(NULL);
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "iss", iss, "aud", "convex", "sub", sub, "iat",
                  (json_int_t)now, "exp", (json_int_t)now + 60, "email", "ada@example.com");
    char *token = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(jwt_sign(key, jwk_alg_for_key(key), kid, claims, &token, &e), 0);
    json_decref(claims);
    return token;
}

/* What a callback received. */
typedef struct answer {
    int calls;
    int rc;
    jwt_failure failure;
    char msg[ERR_MSG_BYTES_MAX];
    json_t *identity;
    int64_t exp_s;
    auth *free_on_answer; /* when set, the callback frees this auth */
} answer;

static void on_answer(void *data, int rc, json_t *identity, int64_t exp_s, jwt_failure failure,
                      const err_t *e)
{
    answer *ans = data;
    ans->calls++;
    ans->rc = rc;
    ans->failure = failure;
    snprintf(ans->msg, sizeof ans->msg, "%s", e ? e->msg : "");
    json_decref(ans->identity);
    ans->identity = identity;
    ans->exp_s = exp_s;
    if (ans->free_on_answer) {
        auth_free(ans->free_on_answer);
        ans->free_on_answer = NULL;
    }
}

static void answer_clear(answer *ans)
{
    json_decref(ans->identity);
    memset(ans, 0, sizeof *ans);
}

/* auth_verify of a token made for fx's issuer; the token is freed. */
static void verify(fixture *fx, char *token, answer *ans)
{
    auth_verify(fx->a, token, on_answer, ans);
    free(token);
}

static void run_loop(fixture *fx)
{
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

static void assert_accepted(const answer *ans, const char *sub)
{
    assert_int_equal(ans->calls, 1);
    if (ans->rc != 0) fail_msg("refused (%s): %s", jwt_failure_name(ans->failure), ans->msg);
    assert_string_equal(json_string_value(json_object_get(ans->identity, "subject")), sub);
    assert_true(ans->exp_s > (int64_t)time(NULL));
}

static void assert_refused(const answer *ans, jwt_failure f, const char *msg_part)
{
    assert_int_equal(ans->calls, 1);
    assert_int_not_equal(ans->rc, 0);
    assert_null(ans->identity);
    assert_string_equal(jwt_failure_name(ans->failure), jwt_failure_name(f));
    if (!strstr(ans->msg, msg_part)) fail_msg("message \"%s\" lacks \"%s\"", ans->msg, msg_part);
}

static int group_setup(void **state)
{
    log_init(LOG_OFF);
    key1 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    key2 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return key1 && key2 ? 0 : -1;
}

static int group_teardown(void **state)
{
    EVP_PKEY_free(key1);
    EVP_PKEY_free(key2);
    return 0;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->iss = issuer_start();
    serve_keys(fx->iss, key1, "k1", NULL, NULL);
    fx->a = auth_new(&fx->loop);
    assert_non_null(fx->a);
    auth_configure(fx->a, fx->iss->url, NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (fx->a) auth_free(fx->a);
    run_loop(fx);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    issuer_stop(fx->iss);
    free(fx);
    return 0;
}

/* ---- fetch and cache --------------------------------------------------- */

static void test_first_verification_fetches_once_and_answers_later(void **state)
{
    fixture *fx = *state;
    answer ans = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "user_1"), &ans);
    assert_int_equal(ans.calls, 0); /* waiting for the fetch */
    run_loop(fx);
    assert_accepted(&ans, "user_1");
    assert_int_equal(atomic_load(&fx->iss->discovery_requests), 1);
    assert_int_equal(issuer_fetches(fx->iss), 1);
    char want[128];
    snprintf(want, sizeof want, "%s|user_1", fx->iss->url);
    assert_string_equal(json_string_value(json_object_get(ans.identity, "tokenIdentifier")), want);
    answer_clear(&ans);
}

static void test_cached_kid_verifies_before_auth_verify_returns(void **state)
{
    fixture *fx = *state;
    answer first = {0}, second = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "user_1"), &first);
    run_loop(fx);
    verify(fx, token_for(fx->iss->url, key1, "k1", "user_2"), &second);
    assert_accepted(&second, "user_2"); /* answered inside auth_verify */
    assert_int_equal(issuer_fetches(fx->iss), 1);
    answer_clear(&first);
    answer_clear(&second);
}

static void test_waiting_verifications_share_one_fetch(void **state)
{
    fixture *fx = *state;
    answer ans[3] = {{0}};
    for (int i = 0; i < 3; i++)
        verify(fx, token_for(fx->iss->url, key1, "k1", "user_1"), &ans[i]);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ans[i].calls, 0);
    run_loop(fx);
    for (int i = 0; i < 3; i++) {
        assert_accepted(&ans[i], "user_1");
        answer_clear(&ans[i]);
    }
    assert_int_equal(issuer_fetches(fx->iss), 1);
}

static void test_unknown_kid_refetches_at_most_once_per_interval(void **state)
{
    fixture *fx = *state;
    auth_set_refetch_interval_for_test(fx->a, 500);
    answer ans = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "user_1"), &ans);
    run_loop(fx);
    answer_clear(&ans);
    /* Within the interval: refused at once, no request. */
    verify(fx, token_for(fx->iss->url, key1, "k9", "user_1"), &ans);
    assert_refused(&ans, JWT_UNKNOWN_KID, "Token key id \"k9\" is not in the issuer's JWKS");
    assert_int_equal(issuer_fetches(fx->iss), 1);
    answer_clear(&ans);
    /* After it: one refetch, however many unknown kids arrive. */
    usleep(550 * 1000);
    answer later[3] = {{0}};
    for (int i = 0; i < 3; i++)
        verify(fx, token_for(fx->iss->url, key1, "k9", "u"), &later[i]);
    run_loop(fx);
    verify(fx, token_for(fx->iss->url, key1, "k8", "u"), &ans);
    for (int i = 0; i < 3; i++) {
        assert_refused(&later[i], JWT_UNKNOWN_KID, "/jwks.json");
        answer_clear(&later[i]);
    }
    assert_refused(&ans, JWT_UNKNOWN_KID, "\"k8\"");
    assert_int_equal(issuer_fetches(fx->iss), 2);
    answer_clear(&ans);
}

static void test_rotated_key_is_found_by_a_refetch(void **state)
{
    fixture *fx = *state;
    auth_set_refetch_interval_for_test(fx->a, 0);
    answer ans = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "user_1"), &ans);
    run_loop(fx);
    answer_clear(&ans);
    serve_keys(fx->iss, key1, "k1", key2, "k2");
    verify(fx, token_for(fx->iss->url, key2, "k2", "user_2"), &ans);
    assert_int_equal(ans.calls, 0);
    run_loop(fx);
    assert_accepted(&ans, "user_2");
    assert_int_equal(issuer_fetches(fx->iss), 2);
    answer_clear(&ans);
}

static void test_default_interval_refuses_unknown_kid_without_refetch(void **state)
{
    fixture *fx = *state;
    answer ans = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "user_1"), &ans);
    run_loop(fx);
    answer_clear(&ans);
    serve_keys(fx->iss, key1, "k1", key2, "k2");
    verify(fx, token_for(fx->iss->url, key2, "k2", "user_2"), &ans);
    assert_refused(&ans, JWT_UNKNOWN_KID, "\"k2\"");
    assert_int_equal(issuer_fetches(fx->iss), 1);
    answer_clear(&ans);
}

/* ---- refusals without a fetch ----------------------------------------- */

static void test_wrong_issuer_is_refused_without_fetching(void **state)
{
    fixture *fx = *state;
    answer ans = {0};
    verify(fx, token_for("https://other.example", key1, "k1", "u"), &ans);
    char want[160];
    snprintf(want, sizeof want,
             "Token issuer is \"https://other.example\" but CLERK_ISSUER_URL is \"%s\"",
             fx->iss->url);
    assert_refused(&ans, JWT_ISSUER, want);
    assert_int_equal(atomic_load(&fx->iss->discovery_requests), 0);
    answer_clear(&ans);
}

static void test_no_issuer_configured_is_refused_at_once(void **state)
{
    fixture *fx = *state;
    auth_configure(fx->a, "", NULL);
    answer ans = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "u"), &ans);
    assert_refused(&ans, JWT_NO_ISSUER_CONFIGURED, "set CLERK_ISSUER_URL");
    answer_clear(&ans);
}

static void test_refused_issuer_url_is_explained(void **state)
{
    fixture *fx = *state;
    auth_configure(fx->a, "http://example.com", NULL);
    answer ans = {0};
    verify(fx, token_for("http://example.com", key1, "k1", "u"), &ans);
    assert_refused(&ans, JWT_NO_ISSUER_CONFIGURED, "not loopback");
    answer_clear(&ans);
}

static void test_malformed_token_is_refused_at_once(void **state)
{
    fixture *fx = *state;
    answer ans = {0};
    auth_verify(fx->a, "not-a-token", on_answer, &ans);
    assert_refused(&ans, JWT_MALFORMED, "Not a JWT");
    answer_clear(&ans);
}

static void test_application_id_sets_the_audience(void **state)
{
    fixture *fx = *state;
    auth_configure(fx->a, fx->iss->url, "web");
    answer ans = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "u"), &ans);
    assert_refused(&ans, JWT_AUDIENCE, "expected \"web\"");
    answer_clear(&ans);
}

static void test_keys_for_test_hook_skips_fetching(void **state)
{
    fixture *fx = *state;
    json_t *doc = json_pack("{s:[o]}", "keys", jwk_public(key2, NULL, "t"));
    char *text = json_dumps(doc, 0);
    json_decref(doc);
    jwk_set *set = NULL;
    assert_int_equal(jwks_parse(text, strlen(text), &set, NULL), 0);
    free(text);
    auth_set_keys_for_test(fx->a, set);
    answer ans = {0};
    verify(fx, token_for(fx->iss->url, key2, "t", "u"), &ans);
    assert_accepted(&ans, "u");
    answer_clear(&ans);
    verify(fx, token_for(fx->iss->url, key2, "zz", "u"), &ans);
    assert_refused(&ans, JWT_UNKNOWN_KID, "\"zz\"");
    assert_int_equal(atomic_load(&fx->iss->discovery_requests), 0);
    answer_clear(&ans);
}

/* ---- fetch failures ---------------------------------------------------- */

static void test_unreachable_issuer_names_url_and_error(void **state)
{
    fixture *fx = *state;
    atomic_store(&fx->iss->discovery_status, 500);
    answer ans = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "u"), &ans);
    run_loop(fx);
    assert_refused(&ans, JWT_ISSUER_UNREACHABLE,
                   "/.well-known/openid-configuration answered "
                   "HTTP 500, expected 200");
    assert_int_equal(ans.rc, ERR_UNAVAILABLE);
    answer_clear(&ans);
    /* Refused again at once, without hammering the issuer. */
    verify(fx, token_for(fx->iss->url, key1, "k1", "u"), &ans);
    assert_refused(&ans, JWT_ISSUER_UNREACHABLE, "HTTP 500");
    assert_int_equal(atomic_load(&fx->iss->discovery_requests), 1);
    answer_clear(&ans);
}

static void test_recovers_once_the_issuer_answers(void **state)
{
    fixture *fx = *state;
    auth_set_refetch_interval_for_test(fx->a, 100);
    atomic_store(&fx->iss->discovery_status, 503);
    answer ans = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "u"), &ans);
    run_loop(fx);
    assert_refused(&ans, JWT_ISSUER_UNREACHABLE, "HTTP 503");
    answer_clear(&ans);
    atomic_store(&fx->iss->discovery_status, 200);
    usleep(150 * 1000);
    verify(fx, token_for(fx->iss->url, key1, "k1", "u"), &ans);
    run_loop(fx);
    assert_accepted(&ans, "u");
    answer_clear(&ans);
}

static void test_connection_refused_is_reported(void **state)
{
    fixture *fx = *state;
    auth_configure(fx->a, "http://127.0.0.1:1", NULL);
    answer ans = {0};
    verify(fx, token_for("http://127.0.0.1:1", key1, "k1", "u"), &ans);
    run_loop(fx);
    assert_refused(&ans, JWT_ISSUER_UNREACHABLE,
                   "Could not fetch http://127.0.0.1:1/.well-known/openid-configuration");
    answer_clear(&ans);
}

static void test_discovery_naming_another_issuer_is_refused(void **state)
{
    fixture *fx = *state;
    pthread_mutex_lock(&fx->iss->mu);
    fx->iss->claimed_issuer = strdup("https://evil.example");
    pthread_mutex_unlock(&fx->iss->mu);
    answer ans = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "u"), &ans);
    run_loop(fx);
    assert_refused(&ans, JWT_ISSUER_UNREACHABLE, "names issuer \"https://evil.example\"");
    assert_int_equal(issuer_fetches(fx->iss), 0);
    answer_clear(&ans);
}

static void test_fetch_jwks_directly(void **state)
{
    fixture *fx = *state;
    jwk_set *set = NULL;
    err_t e;
    err_init(&e);
    char with_slash[ISSUER_URL_BYTES + 1];
    snprintf(with_slash, sizeof with_slash, "%s/", fx->iss->url);
    assert_int_equal(auth_fetch_jwks(with_slash, &set, &e), 0);
    assert_int_equal(set->n_keys, 1);
    assert_string_equal(set->keys[0].kid, "k1");
    assert_non_null(strstr(set->url, "/jwks.json"));
    jwks_free(set);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void test_free_with_a_fetch_in_flight(void **state)
{
    fixture *fx = *state;
    answer ans = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "u"), &ans);
    assert_int_equal(ans.calls, 0);
    auth_free(fx->a);
    fx->a = NULL;
    assert_refused(&ans, JWT_ISSUER_UNREACHABLE, "shutting down");
    assert_int_equal(ans.rc, ERR_UNAVAILABLE);
    run_loop(fx); /* the fetch lands and releases the auth */
    assert_int_equal(ans.calls, 1);
    answer_clear(&ans);
}

static void test_free_from_a_callback(void **state)
{
    fixture *fx = *state;
    answer first = {0}, second = {0};
    first.free_on_answer = fx->a;
    verify(fx, token_for(fx->iss->url, key1, "k1", "u1"), &first);
    verify(fx, token_for(fx->iss->url, key1, "k1", "u2"), &second);
    fx->a = NULL;
    run_loop(fx);
    assert_accepted(&first, "u1");
    assert_refused(&second, JWT_ISSUER_UNREACHABLE, "shutting down");
    answer_clear(&first);
    answer_clear(&second);
}

static void test_issuer_change_during_fetch_starts_over(void **state)
{
    fixture *fx = *state;
    issuer *other = issuer_start();
    serve_keys(other, key2, "k2", NULL, NULL);
    answer old_ans = {0}, new_ans = {0};
    verify(fx, token_for(fx->iss->url, key1, "k1", "u1"), &old_ans);
    auth_configure(fx->a, other->url, NULL);
    verify(fx, token_for(other->url, key2, "k2", "u2"), &new_ans);
    run_loop(fx);
    assert_refused(&old_ans, JWT_ISSUER, "but CLERK_ISSUER_URL is");
    assert_accepted(&new_ans, "u2");
    assert_int_equal(issuer_fetches(other), 1);
    answer_clear(&old_ans);
    answer_clear(&new_ans);
    auth_free(fx->a);
    fx->a = NULL;
    run_loop(fx);
    issuer_stop(other);
}

/* ---- issuer URL rule ---------------------------------------------------- */

static void assert_issuer_url(const char *url, int want_rc, const char *msg_part)
{
    err_t e;
    err_init(&e);
    int rc = auth_check_issuer_url(url, &e);
    if (rc != want_rc) fail_msg("%s: rc %d, expected %d (%s)", url, rc, want_rc, e.msg);
    if (msg_part && !strstr(e.msg, msg_part))
        fail_msg("%s: message \"%s\" lacks \"%s\"", url, e.msg, msg_part);
    err_clear(&e);
}

static void test_issuer_url_rule(void **state)
{
    assert_issuer_url("https://x.clerk.accounts.dev", 0, NULL);
    assert_issuer_url("http://127.0.0.1:1234", 0, NULL);
    assert_issuer_url("http://127.1.2.3/", 0, NULL);
    assert_issuer_url("http://localhost:3000", 0, NULL);
    assert_issuer_url("http://[::1]:8080", 0, NULL);
    assert_issuer_url("http://example.com", ERR_AUTH, "not loopback");
    assert_issuer_url("http://localhost.evil.com", ERR_AUTH, "not loopback");
    assert_issuer_url("http://127.0.0.1@evil.com", ERR_AUTH, "not loopback");
    assert_issuer_url("ftp://x", ERR_AUTH, "must start with https://");
    assert_issuer_url("x.clerk.accounts.dev", ERR_AUTH, "must start with https://");
    assert_issuer_url("", ERR_AUTH, "No issuer configured");
}

/* ---- admin key ---------------------------------------------------------- */

static void test_admin_key_format_and_matching(void **state)
{
    char key[ADMIN_KEY_BYTES_MAX], other[ADMIN_KEY_BYTES_MAX];
    assert_int_equal(admin_key_generate(key), 0);
    assert_int_equal(admin_key_generate(other), 0);
    assert_int_equal(strlen(key), strlen("dojo-admin-") + 64);
    assert_int_equal(strncmp(key, "dojo-admin-", 11), 0);
    assert_int_equal(strspn(key + 11, "0123456789abcdef"), 64);
    assert_string_not_equal(key, other);
    assert_true(admin_key_matches(key, key));
    char copy[ADMIN_KEY_BYTES_MAX];
    memcpy(copy, key, sizeof copy);
    assert_true(admin_key_matches(copy, key));
    assert_false(admin_key_matches(other, key));
    copy[strlen(copy) - 1] ^= 1;
    assert_false(admin_key_matches(copy, key));
    assert_false(admin_key_matches("dojo-admin-", key));
    assert_false(admin_key_matches("", key));
    assert_false(admin_key_matches(NULL, key));
    assert_false(admin_key_matches("", "")); /* no key configured: nothing matches */
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_first_verification_fetches_once_and_answers_later),
        T(test_cached_kid_verifies_before_auth_verify_returns),
        T(test_waiting_verifications_share_one_fetch),
        T(test_unknown_kid_refetches_at_most_once_per_interval),
        T(test_rotated_key_is_found_by_a_refetch),
        T(test_default_interval_refuses_unknown_kid_without_refetch),
        T(test_wrong_issuer_is_refused_without_fetching),
        T(test_no_issuer_configured_is_refused_at_once),
        T(test_refused_issuer_url_is_explained),
        T(test_malformed_token_is_refused_at_once),
        T(test_application_id_sets_the_audience),
        T(test_keys_for_test_hook_skips_fetching),
        T(test_unreachable_issuer_names_url_and_error),
        T(test_recovers_once_the_issuer_answers),
        T(test_connection_refused_is_reported),
        T(test_discovery_naming_another_issuer_is_refused),
        T(test_fetch_jwks_directly),
        T(test_free_with_a_fetch_in_flight),
        T(test_free_from_a_callback),
        T(test_issuer_change_during_fetch_starts_over),
        cmocka_unit_test(test_issuer_url_rule),
        cmocka_unit_test(test_admin_key_format_and_matching),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
