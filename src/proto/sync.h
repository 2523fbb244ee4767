/*
 * sync.h — the WebSocket sync protocol (convex-protocol.md §2–§3): sessions,
 * query sets, identity versions, transitions, mutations over the socket with
 * exactly-once replies, and reactive re-execution of subscribed queries.
 * Thread: the event-loop thread.
 */
#ifndef DOJO_PROTO_SYNC_H
#define DOJO_PROTO_SYNC_H

#include "net/http.h"

struct server;
typedef struct sync_hub sync_hub;

sync_hub *sync_hub_new(struct server *srv);
/* Closes every session (close frame 1001); done(data) is called once every
 * socket is closed. The hub itself stays (it still hears commits while the
 * engine drains) until sync_hub_free, after engine_close. */
void sync_hub_close(sync_hub *hub, void (*done)(void *data), void *data);
void sync_hub_free(sync_hub *hub);

/* Handles GET /api/<version>/sync: answers 101 and takes the connection over,
 * or answers 400 when the request is not a valid WebSocket upgrade, or 503
 * when LIMIT_WS_SESSIONS_MAX sessions are open. */
void sync_handle_upgrade(sync_hub *hub, http_request *req);

int sync_session_count(const sync_hub *hub);
struct metrics_gauges;
/* Adds the hub's gauges: subscriptions, and the bytes of what sessions hold
 * (messages waiting, query sets, unread pushes, the history of commits). */
void sync_hub_gauges(const sync_hub *hub, struct metrics_gauges *g);
/* The subscription manager (its history of recent commits answers
 * /api/query_at_ts). */
struct subs *sync_hub_subs(const sync_hub *hub);

#endif
