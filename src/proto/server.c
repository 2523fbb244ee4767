/*
 * server.c — wiring the rooms into one running server (see server.h): the
 * engine and its store, auth configured from the deployment variables (and
 * re-configured when a commit changes them), the periodic system functions,
 * the HTTP listener and the sync hub; and the orderly stop.
 * Thread: the event-loop thread.
 */
#include "proto/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/limits.h"
#include "base/log.h"
#include "base/memory.h"
#include "engine/system_tables.h"
#include "proto/storage_http.h"
#include "proto/sync.h"

#define SERVER_TRIM_INTERVAL_MS 1000

static void configure_auth(server *s)
{
    const char *issuer = engine_env(s->en, "CLERK_ISSUER_URL");
    const char *app_id = engine_env(s->en, "AUTH_APPLICATION_ID");
    auth_configure(s->auth, issuer, app_id);
}

static void on_commit(void *data, uint64_t ts, const write_set *writes)
{
    server *s = data;
    (void)ts;
    if (write_set_touches_table(writes, SYSTEM_TABLE_ENV)) configure_auth(s);
}

/* File URLs start with the configured public URL, else with the address
 * this server listens on (a wildcard address is not one a client can use:
 * loopback stands in, and the log says to configure it). */
static void set_public_url(server *s)
{
    if (s->cfg.public_url && *s->cfg.public_url) {
        engine_set_public_url(s->en, s->cfg.public_url);
        return;
    }
    const char *host = s->cfg.host ? s->cfg.host : "127.0.0.1";
    bool wildcard = strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
    if (wildcard) {
        host = "127.0.0.1";
        log_warn("file URLs start with http://127.0.0.1:%d: set --public-url (or "
                 "DOJO_PUBLIC_URL) to the URL clients reach this server at",
                 http_server_port(s->http));
    }
    char url[ENGINE_PUBLIC_URL_BYTES_MAX];
    bool v6 = strchr(host, ':') != NULL;
    snprintf(url, sizeof url, "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "",
             http_server_port(s->http));
    engine_set_public_url(s->en, url);
}

/* Freed heap goes back to the system once a second (base/memory.h). */
static void on_trim_timer(uv_timer_t *t)
{
    (void)t;
    memory_trim_idle();
}

int server_start(uv_loop_t *loop, const server_config *cfg, server **out, err_t *e)
{
    server *s = calloc(1, sizeof *s);
    if (!s) return err_set(e, ERR_NOMEM, "out of memory");
    s->loop = loop;
    s->cfg = *cfg;
    metrics_init(&s->metrics);
    engine_config ec = {.loop = loop,
                        .db_url = cfg->db_url,
                        .schema = cfg->schema,
                        .registry = cfg->registry,
                        .reader_threads = cfg->reader_threads};
    int rc = engine_open(&ec, &s->en, s->store_report, e);
    if (rc) {
        free(s);
        return rc;
    }
    rc = storage_http_open(s, &s->storage, e);
    if (rc) {
        engine_close(s->en);
        storage_http_free(s->storage);
        free(s);
        return rc;
    }
    s->auth = auth_new(loop);
    configure_auth(s);
    engine_on_commit(s->en, on_commit, s);
    for (int i = 0; i < cfg->n_periodic; i++)
        engine_every(s->en, cfg->periodic[i].path, cfg->periodic[i].interval_ms);
    s->sync = sync_hub_new(s);
    http_server_config hc = {.host = cfg->host ? cfg->host : "127.0.0.1",
                             .port = cfg->port,
                             .body_bytes_max = cfg->body_bytes_max,
                             .stream_route = storage_http_streams};
    rc = http_server_start(loop, &hc, api_handle_request, s, &s->http, e);
    if (rc) {
        sync_hub_close(s->sync, NULL, NULL);
        storage_http_close(s->storage);
        engine_close(s->en);
        storage_http_free(s->storage);
        sync_hub_free(s->sync);
        auth_free(s->auth);
        free(s);
        return rc;
    }
    set_public_url(s);
    uv_timer_init(loop, &s->trim_timer);
    uv_timer_start(&s->trim_timer, on_trim_timer, SERVER_TRIM_INTERVAL_MS, SERVER_TRIM_INTERVAL_MS);
    *out = s;
    return 0;
}

bool server_is_worker_key(const server *s, const char *given)
{
    const char *key = engine_env(s->en, "WORKER_KEY");
    if (!key || strlen(key) < LIMIT_WORKER_KEY_CHARS_MIN) return false;
    return admin_key_matches(given, key);
}

typedef struct stop_state {
    server *s;
    void (*done)(void *data);
    void *data;
} stop_state;

static void on_sync_closed(void *data)
{
    stop_state *st = data;
    server *s = st->s;
    storage_http_close(s->storage); /* before the store it reads closes */
    engine_close(s->en);
    storage_http_free(s->storage);
    sync_hub_free(s->sync);
    auth_free(s->auth);
    void (*done)(void *) = st->done;
    void *done_data = st->data;
    free(st);
    free(s);
    log_info("stopped");
    if (done) done(done_data);
}

static void on_http_closed(void *data)
{
    stop_state *st = data;
    uv_close((uv_handle_t *)&st->s->trim_timer, NULL);
    sync_hub_close(st->s->sync, on_sync_closed, st);
}

void server_stop(server *s, void (*done)(void *data), void *data)
{
    if (s->stopping) return;
    s->stopping = true;
    log_info("stopping: finishing in-flight requests");
    stop_state *st = malloc(sizeof *st);
    st->s = s;
    st->done = done;
    st->data = data;
    http_server_shutdown(s->http, on_http_closed, st);
}
