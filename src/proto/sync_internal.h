/*
 * sync_internal.h — the state of the sync protocol shared by its files:
 * sync.c (the hub: upgrade, sessions list, heartbeat tick, shutdown),
 * sync_session.c (client messages: Connect, ModifyQuerySet, Authenticate,
 * Mutation, Action, Event) and sync_push.c (Transitions and responses).
 * Thread: the event-loop thread only.
 */
#ifndef DOJO_PROTO_SYNC_INTERNAL_H
#define DOJO_PROTO_SYNC_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/limits.h"
#include "engine/subs.h"
#include "net/ws.h"
#include "proto/server.h"
#include "proto/sync.h"
#include "proto/sync_version.h"

#define SYNC_TICK_MS 1000 /* pings, silent clients, subscription retries */
#define SYNC_WS_PING_AFTER_SILENCE_MS 30000
#define SYNC_WS_PING_INTERVAL_MS 5000
#define SYNC_SESSION_ID_BYTES_MAX 128
#define SYNC_INBOX_MAX 4096 /* messages waiting behind an Authenticate */
/* Adds refused for the subscription bound are kept (to answer QueryFailed)
 * up to this many more entries; past them the session ends. */
#define SYNC_REFUSED_ADDS_MAX 64
/* Arguments, paths and journals a session's query set may hold, and all
 * sessions' query sets together. */
#define SYNC_QUERY_SET_BYTES_MAX (16u * 1024 * 1024)
#define SYNC_QUERY_SETS_TOTAL_BYTES_MAX (64u * 1024 * 1024)
#define SYNC_JOURNAL_BYTES_MAX 4096 /* a pinned page end: an encoded cursor */
/* A request id is a JavaScript counter: exact up to 2^53. */
#define SYNC_REQUEST_ID_MAX 9007199254740992ll
/* clientTs is a JavaScript Date in ms: at most 8.64e15 either side of 1970. */
#define SYNC_CLIENT_TS_MS_MAX 8.64e15
/* Removes and Adds of one ModifyQuerySet: a whole query set twice over. */
#define SYNC_MODIFICATIONS_PER_MESSAGE_MAX                                                         \
    (2 * (LIMIT_WS_SUBSCRIPTIONS_PER_SESSION_MAX + SYNC_REFUSED_ADDS_MAX))

/* One entry of a session's query set. */
typedef struct sess_query {
    uint32_t id;
    sub_query *q;     /* NULL when the query could not be subscribed */
    err_t static_err; /* why, when q is NULL */
    char *path;
    json_t *args;          /* decoded argument object */
    char *journal;         /* from Add.journal */
    size_t held_bytes;     /* args, path and journal, counted in query_set_bytes */
    bool sent;             /* a result was pushed at least once */
    uint64_t sent_version; /* q->version last pushed */
} sess_query;

/* A mutation waiting to run on this session (they run one at a time). */
typedef struct sess_mutation {
    int64_t request_id;
    char *path;
    json_t *args;      /* decoded, or NULL when decoding failed (err says why) */
    size_t wire_bytes; /* the Mutation message's size, counted in held_bytes */
    err_t err;
    json_t *identity;
    bool admin;
    bool worker;
    struct sess_mutation *next;
} sess_mutation;

typedef struct session {
    sync_hub *hub;
    ws_conn *ws;
    struct session *prev, *next; /* hub's list of open sessions */
    int refs;                    /* the socket + each callback in flight */
    bool closed;
    bool ending;    /* FatalError or AuthError sent: nothing more runs or is sent */
    bool connected; /* Connect received: the session id is known */

    char session_id[SYNC_SESSION_ID_BYTES_MAX];
    bool has_skew;
    double clock_skew_ms;

    /* What the client has sent, the last endVersion sent, the ts that
     * answered mutations need covered. */
    sync_versions v;

    json_t *identity; /* NULL = anonymous */
    bool admin;
    bool worker; /* authenticated with the worker key (api.md §10) */
    int64_t identity_exp_s;

    sess_query *queries;
    int n_queries, cap_queries;
    size_t query_set_bytes; /* ≤ SYNC_QUERY_SET_BYTES_MAX */
    uint32_t *removed;      /* QueryRemoved still to send */
    int n_removed, cap_removed;

    struct inbox_entry {
        json_t *msg;
        size_t wire_bytes;
    } * inbox; /* messages waiting while an Authenticate is verified */
    int inbox_len;
    size_t held_bytes;   /* inbox and queued mutations, ≤ LIMIT_WS_SESSION_HELD_BYTES_MAX */
    bool draining;       /* process_inbox is running (it is not re-entrant) */
    bool reading_paused; /* on the hub's paused list: its socket is not read */
    struct session *paused_prev, *paused_next;
    bool auth_pending;

    sess_mutation *mut_head, *mut_tail;
    int mut_len;
    bool mut_in_flight;

    uint64_t last_send_ms;
    uint64_t last_ws_ping_ms; /* a silent client is pinged every SYNC_WS_PING_INTERVAL_MS */
    bool waiting;             /* on the hub's list of sessions to flush (which holds a reference) */
    struct session *wait_prev, *wait_next;
    uint64_t wait_gen; /* the hub's flush_gen when it joined the list */
} session;

struct sync_hub {
    server *srv;
    subs *subs;
    session *sessions;
    int n_sessions;
    session *wait_head, *wait_tail; /* sessions to flush after the next commit, oldest first */
    uint64_t flush_gen;             /* one more at every walk of that list */
    /* What all sessions hold, against the process bounds: the messages
     * waiting to run (LIMIT_WS_HELD_BYTES_TOTAL_MAX; above it a session that
     * adds more is not read until the total drops) and the query sets
     * (SYNC_QUERY_SETS_TOTAL_BYTES_MAX). */
    size_t held_bytes_total, query_set_bytes_total;
    session *paused_head; /* sessions not read because of held_bytes_total */
    uv_timer_t tick;
    bool closing;
    void (*done)(void *data);
    void *done_data;
};

/* sync.c: a session's socket closed; takes it off the list. */
void sync_hub_session_gone(sync_hub *hub, session *s);

/* sync_session.c */
void session_on_message(void *data, const char *text, size_t len);
void session_on_close(void *data, int code);
/* The socket wrote everything: send what was held back. */
void session_on_drain(void *data);
void session_ref(session *s);
void session_unref(session *s);
/* Drops every subscription (the socket is gone or the server stops). */
void session_drop_queries(session *s);
/* Messages held by a session (waiting behind an Authenticate, or queued
 * mutations), counted for the session and for the hub. */
void session_held_add(session *s, size_t bytes);
void session_held_sub(session *s, size_t bytes);

/* sync_push.c */
/* Sends a message object (reference stolen); closes the session on overflow. */
void session_send(session *s, json_t *msg);
/* Sends a Transition when there is something to say and every query is fresh;
 * otherwise puts the session on the hub's wait list. */
void session_flush(session *s);
void session_fatal(session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether the session's token has expired (beyond the clock skew). */
bool session_identity_expired(const session *s);
void session_auth_error(session *s, const char *message, uint32_t base_version, bool attempted);
/* The hub's list of sessions waiting to flush, retried after every commit. */
void hub_flush_waiting(sync_hub *hub);
/* Takes s off that list (a closed session is released at once). */
void wait_list_remove(session *s);
/* sub_result_cb for every subscription of a session. */
void session_on_query_result(void *listener, sub_query *q, bool changed);

#endif
