/*
 * dashboard.h — the /dashboard routes (api.md §8): the page's static files,
 * compiled into the binary from web/dashboard/ by the build (the generated
 * dashboard_assets.c, see cmake/embed_files.cmake), and the two data
 * endpoints the page needs besides the function API:
 *   GET /dashboard/api/functions  every public and internal function, with
 *                                 its kind, doc and a description of its
 *                                 argument validator as JSON
 *   GET /dashboard/api/logs?after=N  the server's recent log lines after
 *                                 sequence number N: {lines: [{seq, text}], next}
 * The static files need no key (they hold no data); the data endpoints need
 * `Authorization: Convex <admin key>` and answer 401 {code: "BadAdminKey"}
 * without it. Tables, browsing, deployment variables and credits go through
 * POST /api/function like any admin call (app/dashboard.c, app/env.c).
 * Thread: the event-loop thread.
 */
#ifndef DOJO_PROTO_DASHBOARD_H
#define DOJO_PROTO_DASHBOARD_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/server.h"

/* One embedded file: its name under web/dashboard/ and its bytes (a NUL
 * follows them, not counted in len). */
typedef struct dashboard_asset {
    const char *name;
    const unsigned char *data;
    size_t len;
} dashboard_asset;

/* Defined by the generated dashboard_assets.c. */
extern const dashboard_asset dashboard_assets[];
extern const int dashboard_assets_count;

/* True for the paths dashboard_handle answers: /dashboard and below. */
bool dashboard_owns_path(const char *path);

/* Answers one request for a path dashboard_owns_path accepted, at once
 * (http_respond is called before it returns). */
void dashboard_handle(server *s, http_request *req);

#endif
