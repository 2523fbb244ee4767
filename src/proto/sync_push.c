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
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/clock.h"
#include "base/limits.h"
#include "base/invariant.h"
#include "base/log.h"
#include "base/rcbuf.h"
#include "base/sbuf.h"
#include "proto/sync_internal.h"
#include "proto/wire.h"

static void session_send_text(session *s, const char *text, size_t len)
{
    if (s->closed || !s->ws) return;
    /* A send can close the socket (a peer that does not read), which ends the
     * session: hold it until this function is done with it. */
    session_ref(s);
    int rc = ws_send_text(s->ws, text, len);
    if (rc == ERR_LIMIT)
        log_warn("sync: session %s does not read its messages; disconnected", s->session_id);
    s->last_send_ms = clock_mono_ms();
    session_unref(s);
}

void session_send(session *s, json_t *msg)
{
    if (s->closed || !s->ws || !msg) {
        json_decref(msg);
        return;
    }
    char *text = json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(msg);
    if (!text) return;
    session_send_text(s, text, strlen(text));
    free(text);
}

void session_fatal(session *s, const char *fmt, ...)
{
    if (s->closed || s->ending) return;
    s->ending = true;
    char message[ERR_MSG_BYTES_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    log_info("sync: session %s: fatal error: %s", s->session_id, message);
    session_ref(s);
    session_send(s, json_pack("{s:s, s:s}", "type", "FatalError", "error", message));
    if (s->ws) ws_close(s->ws, 1008, "InvalidMessage");
    session_unref(s);
}

void session_auth_error(session *s, const char *message, uint32_t base_version, bool attempted)
{
    if (s->closed || s->ending) return;
    s->ending = true;
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

static void append_version(sbuf *b, const char *name, const state_version *v)
{
    char ts[13];
    b64_u64le_encode(v->ts, ts);
    sbuf_printf(b, "\"%s\":{\"querySet\":%u,\"identity\":%u,\"ts\":\"%s\"}", name, v->query_set,
                v->identity, ts);
}

static void append_json(sbuf *b, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY);
    if (!text) {
        b->failed = true;
        return;
    }
    sbuf_puts(b, text);
    free(text);
}

/* The encoded result of q, serialized once per version and shared by every
 * session that pushes it: a change seen by a thousand sessions is encoded
 * once and held once, not a thousand times, however slowly they read. */
static rcbuf *value_text(sub_query *q)
{
    if (!q->wire_value || q->wire_value_version != q->version) {
        ASSERT(q->value); /* without an encoder the manager keeps the value */
        rcbuf_unref(q->wire_value);
        char *text = wire_dumps(q->value, WIRE_ENCODED);
        q->wire_value = text ? rcbuf_new(text, strlen(text)) : NULL;
        q->wire_value_version = q->version;
        free(text);
    }
    return q->wire_value;
}

/* A Transition under construction: its own text in b, and the shared
 * values it writes between pieces of that text. */
typedef struct transition_parts {
    sbuf b;
    struct {
        size_t at; /* where in b the value goes */
        rcbuf *value;
    } values[LIMIT_WS_SUBSCRIPTIONS_PER_SESSION_MAX + SYNC_REFUSED_ADDS_MAX];
    int n_values;
} transition_parts;

static void append_query(transition_parts *t, const sess_query *sq)
{
    sbuf *b = &t->b;
    sub_query *q = sq->q;
    rcbuf *value = q && q->rc == 0 ? value_text(q) : NULL;
    if (q && q->rc == 0 && !value) {
        b->failed = true;
        return;
    }
    err_t too_big;
    err_init(&too_big);
    if (value && value->len > LIMIT_WS_RESULT_BYTES_MAX) {
        err_app(&too_big, ERR_INVALID_ARGUMENT, NULL,
                "The result of %s is %zu bytes; a subscribed query's result is at most %u MiB "
                "(read fewer documents, or page)",
                q->fn->path, value->len, LIMIT_WS_RESULT_BYTES_MAX / (1024 * 1024));
        value = NULL;
    }
    if (value) {
        sbuf_printf(b, "{\"type\":\"QueryUpdated\",\"queryId\":%u,\"value\":", sq->id);
        ASSERT(t->n_values < (int)(sizeof t->values / sizeof t->values[0]));
        t->values[t->n_values].at = b->len;
        t->values[t->n_values].value = value;
        t->n_values++;
        sbuf_puts(b, ",\"logLines\":");
        append_json(b, q->log_lines);
        sbuf_puts(b, ",\"journal\":");
        json_t *journal = q->journal ? json_string(q->journal) : json_null();
        append_json(b, journal);
        json_decref(journal);
        sbuf_puts(b, "}");
        return;
    }
    const err_t *e = too_big.code ? &too_big : q ? &q->err : &sq->static_err;
    bool app = err_is_application(e->code);
    json_t *mod = json_pack(
        "{s:s, s:i, s:s, s:o, s:o}", "type", "QueryFailed", "queryId", (int)sq->id, "errorMessage",
        app ? e->msg : "Your request couldn't be completed. Try again later.", "logLines",
        q && q->log_lines ? json_incref(q->log_lines) : json_array(), "journal",
        q && q->journal ? json_string(q->journal) : json_null());
    if (app && e->data) json_object_set_new(mod, "errorData", wire_encode(e->data, WIRE_ENCODED));
    append_json(b, mod);
    json_decref(mod);
    err_clear(&too_big);
}

/* Sends the Transition: the session's own text, with the shared values
 * written in place (ws_send_text_parts), so no value is copied per session. */
static void send_parts(session *s, transition_parts *t)
{
    ws_part parts[2 * (sizeof t->values / sizeof t->values[0]) + 1];
    int n = 0;
    size_t from = 0;
    for (int i = 0; i < t->n_values; i++) {
        parts[n++] = (ws_part){.bytes = t->b.data + from, .len = t->values[i].at - from};
        rcbuf *v = t->values[i].value;
        parts[n++] = (ws_part){.bytes = v->bytes, .len = v->len, .shared = v};
        from = t->values[i].at;
    }
    parts[n++] = (ws_part){.bytes = t->b.data + from, .len = t->b.len - from};
    ASSERT(n <= WS_PARTS_MAX);
    if (s->closed || !s->ws) return;
    session_ref(s);
    int rc = ws_send_text_parts(s->ws, parts, n);
    if (rc == ERR_LIMIT)
        log_warn("sync: session %s does not read its messages; disconnected", s->session_id);
    s->last_send_ms = clock_mono_ms();
    session_unref(s);
}

/* Builds the Transition: the query values come from the per-version cache
 * above; the rest is small. */
static void send_transition(session *s, const state_version *start, const state_version *end)
{
    transition_parts *t = malloc(sizeof *t);
    if (!t) {
        log_error("sync: out of memory building a Transition for session %s", s->session_id);
        if (s->ws) ws_close(s->ws, 1011, "InternalServerError");
        return;
    }
    t->n_values = 0;
    sbuf *b = &t->b;
    sbuf_init(b, 512);
    sbuf_puts(b, "{\"type\":\"Transition\",");
    append_version(b, "startVersion", start);
    sbuf_puts(b, ",");
    append_version(b, "endVersion", end);
    sbuf_puts(b, ",\"modifications\":[");
    bool first = true;
    for (int i = 0; i < s->n_removed; i++, first = false)
        sbuf_printf(b, "%s{\"type\":\"QueryRemoved\",\"queryId\":%u}", first ? "" : ",",
                    s->removed[i]);
    s->n_removed = 0;
    for (int i = 0; i < s->n_queries; i++) {
        sess_query *sq = &s->queries[i];
        if (!query_needs_push(sq)) continue;
        if (!first) sbuf_puts(b, ",");
        first = false;
        append_query(t, sq);
        sq->sent = true;
        sq->sent_version = sq->q ? sq->q->version : 0;
    }
    sbuf_printf(b, "],\"serverTs\":%llu", (unsigned long long)clock_now_ns());
    if (s->has_skew) sbuf_printf(b, ",\"clientClockSkew\":%.17g", s->clock_skew_ms);
    sbuf_puts(b, "}");
    if (sbuf_failed(b)) {
        log_error("sync: out of memory building a Transition for session %s", s->session_id);
        if (s->ws) ws_close(s->ws, 1011, "InternalServerError");
    } else {
        send_parts(s, t);
    }
    sbuf_free(b);
    free(t);
}

bool session_identity_expired(const session *s)
{
    if (!s->identity_exp_s) return false;
    int64_t now_s = (int64_t)(clock_now_ms() / 1000.0);
    return now_s > s->identity_exp_s + LIMIT_JWT_CLOCK_SKEW_S;
}

static void wait_list_add(session *s)
{
    if (s->waiting) return;
    sync_hub *hub = s->hub;
    s->waiting = true;
    session_ref(s);
    s->wait_gen = hub->flush_gen;
    s->wait_next = NULL;
    s->wait_prev = hub->wait_tail;
    if (hub->wait_tail)
        hub->wait_tail->wait_next = s;
    else
        hub->wait_head = s;
    hub->wait_tail = s;
}

/* Unlinks s from the list; the caller owns the reference the list held. */
static void wait_list_unlink(session *s)
{
    ASSERT(s->waiting);
    sync_hub *hub = s->hub;
    if (s->wait_prev)
        s->wait_prev->wait_next = s->wait_next;
    else
        hub->wait_head = s->wait_next;
    if (s->wait_next)
        s->wait_next->wait_prev = s->wait_prev;
    else
        hub->wait_tail = s->wait_prev;
    s->wait_prev = s->wait_next = NULL;
    s->waiting = false;
}

void wait_list_remove(session *s)
{
    if (!s->waiting) return;
    wait_list_unlink(s);
    session_unref(s);
}

void session_flush(session *s)
{
    if (s->closed || s->ending) return;
    /* A client that has not read the last push gets nothing new until it
     * has: then one Transition brings it from what it saw to the current
     * results, however many changes it missed (it needs only the latest
     * state of each query). Its socket's drain calls here again. */
    if (s->ws && ws_buffered_bytes(s->ws) > 0) return;
    bool all_fresh, pending;
    query_state(s, &all_fresh, &pending);
    sync_versions probe = s->v;
    state_version start, end;
    sync_decision d = sync_versions_next(&probe, subs_processed_ts(s->hub->subs), all_fresh,
                                         pending, &start, &end);
    if (d == SYNC_WAIT) wait_list_add(s);
    if (d != SYNC_SEND) return;
    if (session_identity_expired(s)) {
        session_auth_error(s, "The token expired: the client should fetch a fresh token",
                           s->v.identity_received, false);
        return;
    }
    s->v = probe;
    send_transition(s, &start, &end);
}

void hub_flush_waiting(sync_hub *hub)
{
    /* Each session leaves the list before it is flushed; one that joins it
     * again goes to the tail with the new generation and waits for the
     * next walk. */
    uint64_t gen = ++hub->flush_gen;
    while (hub->wait_head && hub->wait_head->wait_gen != gen) {
        session *s = hub->wait_head;
        wait_list_unlink(s);
        session_flush(s);
        session_unref(s);
    }
}

void session_on_drain(void *data)
{
    session_flush(data);
}

void session_on_query_result(void *listener, sub_query *q, bool changed)
{
    (void)q;
    (void)changed;
    session_flush(listener);
}
