/*
 * server.h — the one server struct: everything a running dojo holds (the
 * engine, auth, the HTTP server, metrics, configuration), passed down to
 * every handler. server_start wires the rooms together; server_stop shuts
 * them down in order (stop accepting, finish in-flight requests, drain the
 * engine, close the store).
 * Thread: the event-loop thread (server_start/server_stop run on the main
 * thread, which is the loop's thread).
 */
#ifndef DOJO_PROTO_SERVER_H
#define DOJO_PROTO_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "auth/auth.h"
#include "engine/engine.h"
#include "net/http.h"
#include "proto/metrics.h"

typedef struct server_config {
    const char *db_url;    /* "sqlite:PATH" or "postgres://…" */
    const char *host;      /* default "127.0.0.1" */
    int port;              /* default 3210; 0 = any */
    const char *admin_key; /* NULL: admin functions are refused */
    /* Where clients reach this deployment, for file URLs (api.md §9); NULL:
     * http://HOST:PORT of the listening socket (127.0.0.1 for 0.0.0.0). */
    const char *public_url;
    size_t body_bytes_max; /* 0 = LIMIT_HTTP_BODY_BYTES_MAX */
    int reader_threads;    /* 0 = 2 */
    /* Bytes of results the query cache keeps (engine/subs.h); unset:
     * LIMIT_QUERY_CACHE_BYTES_DEFAULT, 0 when set: no cache. */
    size_t query_cache_bytes;
    bool query_cache_set;
    bool dev_logs; /* one readable line per call (dojo dev) */
    const schema *schema;
    const registry *registry;
    /* Periodic system functions: path and interval. */
    struct {
        const char *path;
        uint64_t interval_ms;
    } periodic[4];
    int n_periodic;
    /* Optional extra route handler (dev auth issuer, dashboard); returns
     * true when it answered the request. */
    bool (*extra_route)(void *data, http_request *req);
    void *extra_route_data;
} server_config;

typedef struct sync_hub sync_hub;
typedef struct storage_http storage_http;

typedef struct server {
    uv_loop_t *loop;
    server_config cfg;
    engine *en;
    auth *auth;
    http_server *http;
    sync_hub *sync;
    storage_http *storage; /* stored files: uploads, downloads, the file store */
    metrics metrics;
    char store_report[512];
    bool stopping;
    int requests_in_flight;
    uv_timer_t trim_timer; /* gives freed heap back (base/memory.h) */
} server;

/* Opens the engine (store) and starts listening. On success the caller runs
 * the loop until server_stop's done callback. */
int server_start(uv_loop_t *loop, const server_config *cfg, server **out, err_t *e);
/* Graceful stop; done(data) runs once everything is closed and freed. */
void server_stop(server *s, void (*done)(void *data), void *data);

/* The HTTP request handler (http_api.c). */
void api_handle_request(void *data, http_request *req);

/* True when given is this deployment's worker key: the deployment variable
 * WORKER_KEY (api.md §10), when set to at least LIMIT_WORKER_KEY_CHARS_MIN
 * characters; compared in constant time. */
bool server_is_worker_key(const server *s, const char *given);

/* The identity text for logs: tokenIdentifier, "admin" or "anonymous". */
const char *server_identity_label(const json_t *identity, bool admin);

#endif
