/*
 * worker.h — PRIVATE to the `dojo worker` command (api.md §10), shared by
 * its three files:
 *   worker.c       the command: options, claiming runs as the queue fills,
 *                  heartbeats, completing or failing each run, the drain on
 *                  SIGTERM, one log line per run
 *   worker_sync.c  a client of the sync protocol (convex-protocol.md §2)
 *                  over a WebSocket: libcurl opens the connection (TCP, or
 *                  TLS for https://) and wslay speaks WebSocket on it; one
 *                  subscription (runs:queue) and mutations, resent with their
 *                  request ids after a reconnect so that each runs once
 *   worker_exec.c  one run's command: /bin/sh -c CMD in its own process
 *                  group and temporary directory, its input on stdin, the
 *                  tail of its stdout and stderr, the timeout, and the upload
 *                  of its output file (libcurl, on the thread pool)
 * Thread: the worker's one event loop (libuv), on the main thread; uploads
 * and the WebSocket's connect on the thread pool.
 */
#ifndef DOJO_CLI_WORKER_H
#define DOJO_CLI_WORKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/err.h"
#include "base/limits.h"

/* --- the sync client (worker_sync.c) --------------------------------------------------- */

typedef struct wsync wsync;

/* Called with the newest value of the subscribed query (a new reference to
 * the decoded value, borrowed for the call), or with err set when it failed. */
typedef void (*wsync_query_cb)(void *data, const json_t *value, const char *err);
/* A mutation's outcome: value on success, else err (its message) and
 * code (the error data's code, or NULL for a server error). */
typedef void (*wsync_mutation_cb)(void *data, const json_t *value, const char *err,
                                  const char *code);
/* The server refused the key (or the connection for good): message says why. */
typedef void (*wsync_fatal_cb)(void *data, const char *message);

typedef struct wsync_config {
    uv_loop_t *loop;
    const char *url; /* http(s)://host:port of the deployment */
    const char *key; /* worker key or admin key: Authenticate tokenType Admin */
    const char *query_path;
    wsync_query_cb on_query;
    wsync_fatal_cb on_fatal;
    void *data;
} wsync_config;

int wsync_start(const wsync_config *cfg, wsync **out, err_t *e);
/* Runs path with args (a reference is stolen) once, however often the
 * connection is lost meanwhile; cb is called exactly once (also when the
 * client stops: err "Worker stopped before the server answered"). */
void wsync_mutation(wsync *w, const char *path, json_t *args, wsync_mutation_cb cb, void *data);
/* Mutations sent and not answered yet. */
int wsync_pending(const wsync *w);
/* Closes the connection; pending mutations are answered with an error;
 * done(data) once every handle is closed. */
void wsync_stop(wsync *w, void (*done)(void *data), void *data);
/* After done. */
void wsync_free(wsync *w);

/* --- one run's command (worker_exec.c) --------------------------------------------------- */

typedef struct wexec wexec;

typedef enum {
    WEXEC_FILE,   /* exit 0 and a file at $DOJO_OUTPUT: uploaded, storage_id set */
    WEXEC_URL,    /* exit 0 and an https:// URL as the last line of stdout */
    WEXEC_FAILED, /* error says why (and the last line of stderr) */
} wexec_outcome;

typedef struct wexec_result {
    wexec_outcome outcome;
    char storage_id[64];
    char url[LIMIT_WORKER_STDOUT_BYTES_MAX];
    char error[2 * LIMIT_WORKER_STDERR_LINE_BYTES_MAX];
} wexec_result;

typedef void (*wexec_done_cb)(void *data, const wexec_result *r);

typedef struct wexec_config {
    uv_loop_t *loop;
    const char *command;    /* run with /bin/sh -c */
    const json_t *run;      /* the claimed run document */
    uint64_t timeout_ms;    /* then the process group is killed */
    const char *upload_url; /* <deployment>/api/storage/upload */
    const char *key;        /* Authorization: Convex <key> for the upload */
    wexec_done_cb done;
    void *data;
} wexec_config;

/* Starts the command; done is called once, with the outcome (also when it
 * could not start). */
int wexec_start(const wexec_config *cfg, wexec **out, err_t *e);
/* Kills the command's process group now (SIGKILL): done follows with
 * `reason` as the error. */
void wexec_kill(wexec *x, const char *reason);
/* The content type of a file from its first bytes (api.md §10). */
const char *wexec_sniff_type(const unsigned char *head, size_t n);

#endif
