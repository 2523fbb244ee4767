/*
 * storage_http.h — the HTTP routes of stored files (api.md §9):
 *   POST /api/storage/upload[?token=…]  the bytes of one file, streamed to the
 *                                       file store (store/files.h); 200
 *                                       {"storageId"} once durable and recorded
 *   GET|HEAD /api/storage/<storageId>   the bytes, with Content-Type,
 *                                       Content-Length, ETag, Digest,
 *                                       Cache-Control and single Range requests
 * An upload is authorized by the one-time token of files:generateUploadUrl
 * (its file then belongs to the token's owner), or by `Authorization: Convex
 * <worker key or admin key>`. Its body is never held whole: the HTTP server
 * hands it over in pieces (http_stream_start), and at most
 * LIMIT_FILE_UPLOAD_BUFFER_BYTES of it wait in memory while the file store
 * writes the previous piece on the thread pool, with the socket's reading
 * paused meanwhile. A download of the directory store goes from the file to
 * the socket with sendfile(2); one of the PostgreSQL store is read a row at a
 * time.
 *
 * It also owns the server's file store: opened (and swept of orphans) at
 * start, and told of every deleted `_storage` document so that bytes no
 * document names are removed.
 * Thread: the event-loop thread; the file store's work runs on the thread pool.
 */
#ifndef DOJO_PROTO_STORAGE_HTTP_H
#define DOJO_PROTO_STORAGE_HTTP_H

#include <stdbool.h>

#include "net/http.h"

struct server;
typedef struct storage_http storage_http;

/* Opens the file store of the server's database and removes its orphans
 * (blocking: at start, before the server listens). */
int storage_http_open(struct server *s, storage_http **out, err_t *e);
/* Once the HTTP server is closed: waits for the uploads, downloads and file
 * store work still in flight (running the loop; the engine must still be
 * open), then closes the file store. */
void storage_http_close(storage_http *sh);
/* After the engine is closed (no commit can reach it any more). */
void storage_http_free(storage_http *sh);

/* The HTTP server's stream_route: uploads take their body in pieces. */
bool storage_http_streams(void *server, const http_request *req);
/* Answers the request when its path is /api/storage/…; false otherwise. */
bool storage_http_handle(struct server *s, http_request *req);

#endif
