/*
 * sync_push.c — what the server sends on a sync session: Transitions (the
 * only way query results reach the client), FatalError, AuthError and the
 * plain message path with its back-pressure bound.
 *
 * A Transition goes out when the session has something to say (a new query
 * set or identity version, a changed or first result, a removed query, or a
 * mutation whose commit the client has not yet seen covered) and every query
 * in its set is fresh, i.e. valid at the subscription manager's processed
 * timestamp P. The Transition then moves the client to P: its startVersion is
 * exactly the previous endVersion, all its results hold at P, and P is at
 * least every timestamp in a MutationResponse already sent — so a resolved
 * mutation is visible in the same client's queries (§2.8). A session that
 * cannot send yet waits on the hub's list and is retried after every commit
 * and whenever one of its queries gets a result.
 * Thread: the event-loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/clock.h"
#include "base/limits.h"
#include "base/log.h"
#include "proto/sync_internal.h"
#include "proto/wire.h"

void session_send(session *s, json_t *msg)
{
    if (s->closed || !s->ws || !msg) {
        json_decref(msg);
        return;
    }
    char *text = json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(msg);
    if (!text) return;
    /* A send can close the socket (a peer that does not read), which ends the
     * session: hold it until this function is done with it. */
    session_ref(s);
    int rc = ws_send_text(s->ws, text, strlen(text));
    free(text);
    if (rc == ERR_LIMIT)
        log_warn("sync: session %s does not read its messages; disconnected", s->session_id);
    s->last_send_ms = clock_mono_ms();
    session_unref(s);
}

void session_fatal(session *s, const char *message)
{
    if (s->closed) return;
    log_info("sync: session %s: fatal error: %s", s->session_id, message);
    session_ref(s);
    session_send(s, json_pack("{s:s, s:s}", "type", "FatalError", "error", message));
    if (s->ws) ws_close(s->ws, 1008, "InvalidMessage");
    session_unref(s);
}

void session_auth_error(session *s, const char *message, uint32_t base_version, bool attempted)
{
    if (s->closed) return;
    session_ref(s);
    session_send(s, json_pack("{s:s, s:s, s:i, s:b}", "type", "AuthError", "error", message,
                              "baseVersion", (int)base_version, "authUpdateAttempted", attempted));
    /* A close frame without a status: the client sees 1005 and reconnects. */
    if (s->ws) ws_close(s->ws, 0, NULL);
    session_unref(s);
}

static bool query_needs_push(const sess_query *sq)
{
    if (!sq->q) return !sq->sent;
    return !sq->sent || sq->q->version != sq->sent_version;
}

/* Whether every query is valid at the processed timestamp, and whether any
 * has something the client has not seen. */
static void query_state(const session *s, bool *all_fresh, bool *pending)
{
    const subs *sm = s->hub->subs;
    *all_fresh = !s->auth_pending;
    *pending = s->n_removed > 0;
    for (int i = 0; i < s->n_queries; i++) {
        const sess_query *sq = &s->queries[i];
        if (sq->q && !sub_query_fresh(sm, sq->q)) *all_fresh = false;
        if (query_needs_push(sq)) *pending = true;
    }
}

static json_t *state_version_json(const state_version *v)
{
    char text[13];
    b64_u64le_encode(v->ts, text);
    return json_pack("{s:i, s:i, s:s}", "querySet", (int)v->query_set, "identity",
                     (int)v->identity, "ts", text);
}

static json_t *journal_value(const sess_query *sq)
{
    return sq->q && sq->q->journal ? json_string(sq->q->journal) : json_null();
}

static json_t *query_modification(const sess_query *sq)
{
    const sub_query *q = sq->q;
    if (q && q->rc == 0)
        return json_pack("{s:s, s:i, s:o, s:O, s:o}", "type", "QueryUpdated", "queryId",
                         (int)sq->id, "value", wire_encode(q->value, WIRE_ENCODED), "logLines",
                         q->log_lines, "journal", journal_value(sq));
    const err_t *e = q ? &q->err : &sq->static_err;
    bool app = err_is_application(e->code);
    json_t *mod = json_pack("{s:s, s:i, s:s, s:o, s:o}", "type", "QueryFailed", "queryId",
                            (int)sq->id, "errorMessage",
                            app ? e->msg : "Your request couldn't be completed. Try again later.",
                            "logLines", q && q->log_lines ? json_incref(q->log_lines) : json_array(),
                            "journal", journal_value(sq));
    if (app && e->data) json_object_set_new(mod, "errorData", wire_encode(e->data, WIRE_ENCODED));
    return mod;
}

static void send_transition(session *s, const state_version *start, const state_version *end)
{
    json_t *mods = json_array();
    for (int i = 0; i < s->n_removed; i++)
        json_array_append_new(mods, json_pack("{s:s, s:i}", "type", "QueryRemoved", "queryId",
                                              (int)s->removed[i]));
    s->n_removed = 0;
    for (int i = 0; i < s->n_queries; i++) {
        sess_query *sq = &s->queries[i];
        if (!query_needs_push(sq)) continue;
        json_array_append_new(mods, query_modification(sq));
        sq->sent = true;
        sq->sent_version = sq->q ? sq->q->version : 0;
    }
    json_t *msg = json_pack("{s:s, s:o, s:o, s:o, s:I}", "type", "Transition", "startVersion",
                            state_version_json(start), "endVersion", state_version_json(end),
                            "modifications", mods, "serverTs", (json_int_t)clock_now_ns());
    if (s->has_skew) json_object_set_new(msg, "clientClockSkew", json_real(s->clock_skew_ms));
    session_send(s, msg);
}

static bool identity_expired(const session *s)
{
    if (!s->identity_exp_s) return false;
    int64_t now_s = (int64_t)(clock_now_ms() / 1000.0);
    return now_s > s->identity_exp_s + LIMIT_JWT_CLOCK_SKEW_S;
}

static void wait_list_add(session *s)
{
    if (s->waiting) return;
    s->waiting = true;
    session_ref(s);
    s->wait_next = s->hub->wait_head;
    s->hub->wait_head = s;
}

void session_flush(session *s)
{
    if (s->closed) return;
    bool all_fresh, pending;
    query_state(s, &all_fresh, &pending);
    sync_versions probe = s->v;
    state_version start, end;
    sync_decision d =
        sync_versions_next(&probe, subs_processed_ts(s->hub->subs), all_fresh, pending, &start, &end);
    if (d == SYNC_WAIT) wait_list_add(s);
    if (d != SYNC_SEND) return;
    if (identity_expired(s)) {
        session_auth_error(s, "The token expired: the client should fetch a fresh token",
                           s->v.identity_received, false);
        return;
    }
    s->v = probe;
    send_transition(s, &start, &end);
}

void hub_flush_waiting(sync_hub *hub)
{
    session *list = hub->wait_head;
    hub->wait_head = NULL;
    while (list) {
        session *s = list;
        list = s->wait_next;
        s->waiting = false;
        s->wait_next = NULL;
        session_flush(s); /* may put it back on the list */
        session_unref(s);
    }
}

void session_on_query_result(void *listener, sub_query *q, bool changed)
{
    (void)q;
    (void)changed;
    session_flush(listener);
}
