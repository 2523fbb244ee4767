/*
 * sync_session.c — one client connection of the sync protocol: its messages
 * (convex-protocol.md §2.3) in arrival order. Connect records the session id
 * and clock skew; ModifyQuerySet adds and removes subscriptions;
 * Authenticate verifies a token (possibly waiting for a JWKS fetch, during
 * which later messages wait in the inbox so their order is kept) and moves
 * every subscription to the new identity; Mutation queues a call that runs
 * after the session's previous mutation, with (sessionId, requestId) for
 * exactly-once; Action is answered (dojo registers no actions); Event is
 * ignored. A malformed message ends the session with FatalError.
 * Thread: the event-loop thread only.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/clock.h"
#include "base/limits.h"
#include "base/log.h"
#include "proto/sync_internal.h"
#include "proto/wire.h"

#define INTERNAL_ERROR_MESSAGE "Your request couldn't be completed. Try again later."

void session_ref(session *s)
{
    s->refs++;
}

static void sess_query_clear(session *s, sess_query *sq)
{
    if (sq->q && s->hub->subs) subs_unsubscribe(s->hub->subs, sq->q, s);
    sq->q = NULL;
    assert(s->query_set_bytes >= sq->held_bytes);
    s->query_set_bytes -= sq->held_bytes;
    sq->held_bytes = 0;
    err_clear(&sq->static_err);
    free(sq->path);
    json_decref(sq->args);
    free(sq->journal);
    sq->path = NULL;
    sq->args = NULL;
    sq->journal = NULL;
}

void session_drop_queries(session *s)
{
    for (int i = 0; i < s->n_queries; i++)
        sess_query_clear(s, &s->queries[i]);
    s->n_queries = 0;
}

static void mutation_free(sess_mutation *m)
{
    free(m->path);
    json_decref(m->args);
    json_decref(m->identity);
    err_clear(&m->err);
    free(m);
}

void session_unref(session *s)
{
    if (--s->refs > 0) return;
    session_drop_queries(s);
    free(s->queries);
    free(s->removed);
    for (int i = 0; i < s->inbox_len; i++)
        json_decref(s->inbox[i].msg);
    free(s->inbox);
    while (s->mut_head) {
        sess_mutation *m = s->mut_head;
        s->mut_head = m->next;
        mutation_free(m);
    }
    json_decref(s->identity);
    free(s);
}

void session_on_close(void *data, int code)
{
    session *s = data;
    (void)code;
    s->closed = true;
    s->ws = NULL;
    session_drop_queries(s);
    /* Take it off the wait list lazily: hub_flush_waiting skips closed ones. */
    sync_hub_session_gone(s->hub, s);
    session_unref(s);
}

/* --- queries -------------------------------------------------------------------- */

static sess_query *find_query(session *s, uint32_t id)
{
    for (int i = 0; i < s->n_queries; i++)
        if (s->queries[i].id == id) return &s->queries[i];
    return NULL;
}

static const fn_def *lookup_function(session *s, const char *path, fn_kind kind, err_t *e,
                                     char *canonical, size_t canonical_bytes)
{
    if (registry_canonical_path(path, canonical, canonical_bytes, e) != 0) {
        err_app(e, ERR_INVALID_ARGUMENT, NULL, "%s", e->msg);
        return NULL;
    }
    const fn_def *fn = registry_find(s->hub->srv->cfg.registry, canonical);
    if (!fn || (fn->visibility == FN_SYSTEM && !s->admin && !s->worker)) {
        err_app(e, ERR_INVALID_ARGUMENT, NULL, "Could not find public function for '%s'.",
                canonical);
        return NULL;
    }
    if (fn->kind != kind) {
        static const char *const titles[] = {"Query", "Mutation", "Action"};
        err_app(e, ERR_INVALID_ARGUMENT, NULL,
                "Trying to execute %s as %s, but it is defined as %s.", canonical, titles[kind],
                titles[fn->kind]);
        return NULL;
    }
    return fn;
}

/* (Re)subscribes one entry under the session's current identity. */
static void subscribe_entry(session *s, sess_query *sq)
{
    if (!sq->args) return; /* a static failure stays one */
    char canonical[LIMIT_FUNCTION_PATH_BYTES_MAX];
    err_clear(&sq->static_err);
    const fn_def *fn =
        lookup_function(s, sq->path, FN_QUERY, &sq->static_err, canonical, sizeof canonical);
    sub_query *old = sq->q;
    sq->q = NULL;
    /* A page keeps the end its instance pinned (its first run may have set
     * it since the Add): under a new identity it must not shrink back and
     * leave a gap before the next page (protocol §5.3). */
    const char *journal = old && old->journal ? old->journal : sq->journal;
    if (fn) {
        sq->q = s->worker ? subs_subscribe_worker(s->hub->subs, fn, sq->args, journal,
                                                  session_on_query_result, s)
                          : subs_subscribe(s->hub->subs, fn, sq->args, s->identity, s->admin,
                                           journal, session_on_query_result, s);
        if (!sq->q) err_set(&sq->static_err, ERR_NOMEM, "out of memory subscribing");
    }
    if (old) subs_unsubscribe(s->hub->subs, old, s);
    if (sq->q != old || !old) {
        /* A different instance: its result must reach the client. The same
         * instance (a refreshed token with the same identity) has nothing new. */
        sq->sent_version = 0;
        sq->sent = false;
    }
}

/* Adds one entry to the query set. An Add the session cannot serve (over a
 * bound, bad arguments, unknown function) is kept as a static failure, so
 * the client hears QueryFailed for it — but only its id is kept, and only
 * SYNC_REFUSED_ADDS_MAX of them past the subscription bound. */
static int add_query(session *s, const json_t *mod)
{
    json_t *jid = json_object_get(mod, "queryId");
    const char *path = json_string_value(json_object_get(mod, "udfPath"));
    if (!json_is_integer(jid) || !path) {
        session_fatal(s, "InvalidModification: Add needs queryId and udfPath");
        return -1;
    }
    if (s->n_queries >= LIMIT_WS_SUBSCRIPTIONS_PER_SESSION_MAX + SYNC_REFUSED_ADDS_MAX) {
        session_fatal(s, "TooManySubscriptions: a session may subscribe to at most %d queries",
                      LIMIT_WS_SUBSCRIPTIONS_PER_SESSION_MAX);
        return -1;
    }
    uint32_t id = (uint32_t)json_integer_value(jid);
    if (find_query(s, id)) {
        session_fatal(s, "InvalidModification: queryId is already in the query set");
        return -1;
    }
    const json_t *component = json_object_get(mod, "componentPath");
    if (s->n_queries == s->cap_queries) {
        int cap = s->cap_queries ? s->cap_queries * 2 : 8;
        sess_query *grown = realloc(s->queries, (size_t)cap * sizeof *grown);
        if (!grown) {
            session_fatal(s, "out of memory");
            return -1;
        }
        s->queries = grown;
        s->cap_queries = cap;
    }
    sess_query *sq = &s->queries[s->n_queries++];
    memset(sq, 0, sizeof *sq);
    sq->id = id;
    err_init(&sq->static_err);
    const char *journal = json_string_value(json_object_get(mod, "journal"));
    size_t path_bytes = strlen(path), journal_bytes = journal ? strlen(journal) : 0;
    sq->path = strdup(path_bytes < LIMIT_FUNCTION_PATH_BYTES_MAX ? path : "");
    if (!sq->path) {
        session_fatal(s, "out of memory");
        return -1;
    }
    if (s->n_queries > LIMIT_WS_SUBSCRIPTIONS_PER_SESSION_MAX) {
        err_app(&sq->static_err, ERR_INVALID_ARGUMENT, NULL,
                "Too many subscriptions: a session may subscribe to at most %d queries",
                LIMIT_WS_SUBSCRIPTIONS_PER_SESSION_MAX);
        return 0;
    }
    if (path_bytes >= LIMIT_FUNCTION_PATH_BYTES_MAX) {
        err_app(&sq->static_err, ERR_INVALID_ARGUMENT, NULL,
                "Invalid argument `udfPath`: a function path has at most %d bytes",
                LIMIT_FUNCTION_PATH_BYTES_MAX - 1);
        return 0;
    }
    if (journal_bytes > SYNC_JOURNAL_BYTES_MAX) {
        err_app(&sq->static_err, ERR_INVALID_ARGUMENT, NULL,
                "InvalidCursor: a journal has at most %d bytes; start again from the first page",
                SYNC_JOURNAL_BYTES_MAX);
        return 0;
    }
    if (component && !json_is_null(component) && strcmp(json_string_value(component), "") != 0) {
        err_app(&sq->static_err, ERR_INVALID_ARGUMENT, NULL,
                "Components are not supported (componentPath \"%s\")",
                json_string_value(component) ? json_string_value(component) : "?");
        return 0;
    }
    const json_t *args = json_object_get(mod, "args");
    size_t held = path_bytes + journal_bytes + (args ? json_dumpb(args, NULL, 0, JSON_COMPACT) : 0);
    if (s->query_set_bytes + held > SYNC_QUERY_SET_BYTES_MAX) {
        err_app(&sq->static_err, ERR_INVALID_ARGUMENT, NULL,
                "Too many subscriptions: the arguments of a session's queries may hold at most "
                "%u MiB",
                SYNC_QUERY_SET_BYTES_MAX / (1024 * 1024));
        return 0;
    }
    err_t e;
    err_init(&e);
    sq->args = wire_args(args, &e);
    if (!sq->args) {
        err_app(&sq->static_err, ERR_INVALID_ARGUMENT, NULL, "%s", e.msg);
        return 0;
    }
    sq->journal = journal ? strdup(journal) : NULL;
    sq->held_bytes = held;
    s->query_set_bytes += held;
    subscribe_entry(s, sq);
    return 0;
}

/* Removes an entry; an id not in the set is ignored (the client only
 * removes what it added, and nothing is owed for an unknown one). */
static void remove_query(session *s, uint32_t id)
{
    sess_query *sq = find_query(s, id);
    if (!sq) return;
    sess_query_clear(s, sq);
    *sq = s->queries[--s->n_queries];
    if (s->n_removed == s->cap_removed) {
        int cap = s->cap_removed ? s->cap_removed * 2 : 8;
        uint32_t *grown = realloc(s->removed, (size_t)cap * sizeof *grown);
        if (!grown) return;
        s->removed = grown;
        s->cap_removed = cap;
    }
    s->removed[s->n_removed++] = id;
}

static void on_modify_query_set(session *s, const json_t *msg)
{
    json_t *base = json_object_get(msg, "baseVersion"), *next = json_object_get(msg, "newVersion");
    const json_t *mods = json_object_get(msg, "modifications");
    if (!json_is_integer(base) || !json_is_integer(next) || !json_is_array(mods)) {
        session_fatal(s, "InvalidModification: ModifyQuerySet needs baseVersion, newVersion "
                         "and modifications");
        return;
    }
    if ((uint32_t)json_integer_value(base) != s->v.qs_received ||
        json_integer_value(next) <= json_integer_value(base)) {
        session_fatal(s, "BaseVersionMismatch: the query set's base version does not match");
        return;
    }
    if (json_array_size(mods) > SYNC_MODIFICATIONS_PER_MESSAGE_MAX) {
        session_fatal(s, "InvalidModification: a ModifyQuerySet carries at most %d modifications",
                      SYNC_MODIFICATIONS_PER_MESSAGE_MAX);
        return;
    }
    size_t i;
    const json_t *mod;
    json_array_foreach(mods, i, mod)
    {
        const char *type = json_string_value(json_object_get(mod, "type"));
        if (type && strcmp(type, "Add") == 0) {
            if (add_query(s, mod) != 0) return;
        } else if (type && strcmp(type, "Remove") == 0) {
            remove_query(s, (uint32_t)json_integer_value(json_object_get(mod, "queryId")));
        } else {
            session_fatal(s, "InvalidModification: unknown modification type");
            return;
        }
    }
    s->v.qs_received = (uint32_t)json_integer_value(next);
    session_flush(s);
}

/* --- identity ----------------------------------------------------------------------- */

static void set_identity_as(session *s, json_t *identity, bool admin, bool worker, int64_t exp_s)
{
    json_decref(s->identity);
    s->identity = identity;
    s->admin = admin;
    s->worker = worker;
    s->identity_exp_s = exp_s;
    s->v.identity_received++;
    for (int i = 0; i < s->n_queries; i++)
        subscribe_entry(s, &s->queries[i]);
}

static void set_identity(session *s, json_t *identity, bool admin, int64_t exp_s)
{
    set_identity_as(s, identity, admin, false, exp_s);
}

static void process_inbox(session *s);

static void on_token_verified(void *data, int rc, json_t *identity, int64_t exp_s,
                              jwt_failure failure, const err_t *e)
{
    session *s = data;
    (void)failure;
    s->auth_pending = false;
    if (s->closed) {
        json_decref(identity);
        session_unref(s);
        return;
    }
    if (rc) {
        log_info("sync: session %s: token refused: %s", s->session_id, e->msg);
        session_auth_error(s, e->msg, s->v.identity_received, true);
    } else {
        set_identity(s, identity, false, exp_s);
        session_flush(s);
        process_inbox(s);
    }
    session_unref(s);
}

static void on_authenticate(session *s, const json_t *msg)
{
    json_t *base = json_object_get(msg, "baseVersion");
    const char *type = json_string_value(json_object_get(msg, "tokenType"));
    const char *value = json_string_value(json_object_get(msg, "value"));
    if (!json_is_integer(base) || !type) {
        session_fatal(s, "InvalidMessage: Authenticate needs baseVersion and tokenType");
        return;
    }
    if ((uint32_t)json_integer_value(base) != s->v.identity_received) {
        session_fatal(s, "IdentityVersionMismatch: the identity's base version does not match");
        return;
    }
    if (strcmp(type, "None") == 0) {
        set_identity(s, NULL, false, 0);
        session_flush(s);
    } else if (strcmp(type, "Admin") == 0 && value && server_is_worker_key(s->hub->srv, value)) {
        set_identity_as(s, NULL, false, true, 0); /* the worker key (api.md §10) */
        session_flush(s);
    } else if (strcmp(type, "Admin") == 0) {
        const char *key = s->hub->srv->cfg.admin_key;
        if (!value || !key || !admin_key_matches(value, key)) {
            session_auth_error(s, "The admin key is not valid for this deployment",
                               s->v.identity_received, true);
            return;
        }
        json_t *acting = json_object_get(msg, "impersonating");
        set_identity(s, json_is_object(acting) ? json_deep_copy(acting) : NULL, true, 0);
        session_flush(s);
    } else if (strcmp(type, "User") == 0 && value) {
        s->auth_pending = true;
        session_ref(s);
        auth_verify(s->hub->srv->auth, value, on_token_verified, s);
    } else {
        session_fatal(s, "InvalidMessage: tokenType must be User, Admin or None");
    }
}

/* --- mutations ----------------------------------------------------------------------- */

static void dispatch_mutation(session *s);

static void respond_mutation_error(session *s, int64_t request_id, const err_t *e,
                                   const json_t *log_lines)
{
    bool app = err_is_application(e->code);
    json_t *lines = log_lines ? json_incref((json_t *)log_lines) : json_array();
    json_t *msg = json_pack("{s:s, s:I, s:b, s:s, s:n, s:o}", "type", "MutationResponse",
                            "requestId", (json_int_t)request_id, "success", 0, "result",
                            app ? e->msg : INTERNAL_ERROR_MESSAGE, "ts", "logLines", lines);
    if (app && e->data) json_object_set_new(msg, "errorData", wire_encode(e->data, WIRE_ENCODED));
    if (!app)
        log_error("sync: mutation %lld of session %s failed: %s", (long long)request_id,
                  s->session_id, e->msg);
    session_send(s, msg);
}

static void on_mutation_done(call *c)
{
    session *s = c->data;
    s->mut_in_flight = false;
    metrics_record_call(&s->hub->srv->metrics, c->fn->path, c->rc);
    if (!s->closed) {
        log_info("mutation %s by %s (ws): %s in %.2f ms%s", c->fn->path,
                 server_identity_label(c->identity, c->admin), c->rc ? err_name(c->rc) : "ok",
                 (double)(c->finished_us - c->submitted_us) / 1000.0,
                 c->replayed ? " (replayed)" : "");
        if (c->rc) {
            respond_mutation_error(s, c->request_id, &c->err, c->log_lines);
        } else {
            char ts[13];
            b64_u64le_encode(c->ts, ts);
            session_send(s, json_pack("{s:s, s:I, s:b, s:o, s:s, s:O}", "type", "MutationResponse",
                                      "requestId", (json_int_t)c->request_id, "success", 1,
                                      "result", wire_encode(c->result, WIRE_ENCODED), "ts", ts,
                                      "logLines", c->log_lines));
            if (c->ts > s->v.need_ts) s->v.need_ts = c->ts;
            s->v.owe_transition = true;
            session_flush(s);
        }
        dispatch_mutation(s);
    }
    call_free(c);
    session_unref(s);
}

static void dispatch_mutation(session *s)
{
    while (!s->mut_in_flight && s->mut_head && !s->closed && !s->ending) {
        if (!s->admin && s->identity && session_identity_expired(s)) {
            /* Never run a function under an expired token. */
            session_auth_error(s, "The token expired: the client should fetch a fresh token",
                               s->v.identity_received, false);
            return;
        }
        sess_mutation *m = s->mut_head;
        s->mut_head = m->next;
        if (!s->mut_head) s->mut_tail = NULL;
        s->mut_len--;
        assert(s->held_bytes >= m->wire_bytes);
        s->held_bytes -= m->wire_bytes;
        char canonical[LIMIT_FUNCTION_PATH_BYTES_MAX];
        const fn_def *fn = NULL;
        if (m->args)
            fn = lookup_function(s, m->path, FN_MUTATION, &m->err, canonical, sizeof canonical);
        if (!fn) {
            respond_mutation_error(s, m->request_id, &m->err, NULL);
            mutation_free(m);
            continue;
        }
        call *c = call_new();
        c->fn = fn;
        c->args = m->args;
        c->identity = m->identity;
        c->admin = m->admin;
        c->worker = m->worker;
        m->args = m->identity = NULL;
        c->session_id = strdup(s->session_id);
        c->request_id = m->request_id;
        c->done = on_mutation_done;
        c->data = s;
        mutation_free(m);
        if (engine_submit(s->hub->srv->en, c) != 0) {
            respond_mutation_error(s, c->request_id, &c->err, NULL);
            call_free(c);
            continue;
        }
        s->mut_in_flight = true;
        session_ref(s);
    }
}

static void on_mutation(session *s, const json_t *msg, size_t wire_bytes)
{
    json_t *rid = json_object_get(msg, "requestId");
    const char *path = json_string_value(json_object_get(msg, "udfPath"));
    if (!json_is_integer(rid) || !path) {
        session_fatal(s, "InvalidMessage: Mutation needs requestId and udfPath");
        return;
    }
    sess_mutation *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        session_fatal(s, "InternalServerError: out of memory");
        return;
    }
    m->request_id = json_integer_value(rid);
    err_init(&m->err);
    if (s->mut_len >= LIMIT_WS_PENDING_MUTATIONS_PER_SESSION_MAX) {
        err_app(&m->err, ERR_INVALID_ARGUMENT, NULL,
                "TooManyConcurrentMutations: at most %d mutations may wait per session",
                LIMIT_WS_PENDING_MUTATIONS_PER_SESSION_MAX);
    } else if (s->mut_in_flight && s->held_bytes + wire_bytes > LIMIT_WS_SESSION_HELD_BYTES_MAX) {
        err_app(&m->err, ERR_INVALID_ARGUMENT, NULL,
                "TooManyConcurrentMutations: the mutations waiting on a session may hold at "
                "most %u MiB",
                LIMIT_WS_SESSION_HELD_BYTES_MAX / (1024 * 1024));
    }
    if (m->err.code) {
        respond_mutation_error(s, m->request_id, &m->err, NULL);
        mutation_free(m);
        return;
    }
    m->wire_bytes = wire_bytes;
    s->held_bytes += wire_bytes;
    err_t e;
    err_init(&e);
    m->args = wire_args(json_object_get(msg, "args"), &e);
    if (!m->args) err_app(&m->err, ERR_INVALID_ARGUMENT, NULL, "%s", e.msg);
    m->identity = s->identity ? json_incref(s->identity) : NULL;
    m->admin = s->admin;
    m->worker = s->worker;
    if (s->mut_tail)
        s->mut_tail->next = m;
    else
        s->mut_head = m;
    s->mut_tail = m;
    s->mut_len++;
    dispatch_mutation(s);
}

static void on_action(session *s, const json_t *msg)
{
    json_t *rid = json_object_get(msg, "requestId");
    const char *path = json_string_value(json_object_get(msg, "udfPath"));
    err_t e;
    err_init(&e);
    char canonical[LIMIT_FUNCTION_PATH_BYTES_MAX];
    lookup_function(s, path ? path : "", FN_ACTION, &e, canonical, sizeof canonical);
    json_t *out = json_pack("{s:s, s:O, s:b, s:s, s:[]}", "type", "ActionResponse", "requestId",
                            rid ? rid : json_null(), "success", 0, "result",
                            e.code ? e.msg : "Actions are not supported", "logLines");
    if (e.data) json_object_set_new(out, "errorData", wire_encode(e.data, WIRE_ENCODED));
    err_clear(&e);
    session_send(s, out);
}

/* --- connect and dispatch -------------------------------------------------------------- */

static void on_connect(session *s, const json_t *msg)
{
    const char *sid = json_string_value(json_object_get(msg, "sessionId"));
    if (s->connected) {
        session_fatal(s, "InvalidMessage: Connect was already sent on this connection");
        return;
    }
    if (!sid || !*sid || strlen(sid) >= sizeof s->session_id ||
        strlen(sid) != json_string_length(json_object_get(msg, "sessionId"))) {
        session_fatal(s, "InvalidMessage: Connect needs a sessionId");
        return;
    }
    s->connected = true;
    snprintf(s->session_id, sizeof s->session_id, "%s", sid);
    json_t *client_ts = json_object_get(msg, "clientTs");
    if (json_is_number(client_ts)) {
        s->has_skew = true;
        s->clock_skew_ms = json_number_value(client_ts) - clock_now_ms();
    }
    const char *max_ts = json_string_value(json_object_get(msg, "maxObservedTimestamp"));
    uint64_t seen;
    if (!max_ts || b64_u64le_decode(max_ts, &seen) != 0 || seen <= subs_processed_ts(s->hub->subs))
        return;
    if (seen > clock_now_ns() + LIMIT_WS_OBSERVED_TS_AHEAD_NS) {
        log_warn("sync: session %s claims to have seen timestamp %" PRIu64
                 ", more than an hour ahead of this clock: ignored",
                 s->session_id, seen);
        return;
    }
    engine_bump_ts(s->hub->srv->en, seen);
}

static void handle(session *s, json_t *msg, size_t wire_bytes)
{
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!type)
        session_fatal(s, "WSMessageInvalidJson: a message needs a type");
    else if (!s->connected && strcmp(type, "Connect") != 0)
        session_fatal(s, "InvalidMessage: the first message must be Connect");
    else if (strcmp(type, "Connect") == 0)
        on_connect(s, msg);
    else if (strcmp(type, "ModifyQuerySet") == 0)
        on_modify_query_set(s, msg);
    else if (strcmp(type, "Authenticate") == 0)
        on_authenticate(s, msg);
    else if (strcmp(type, "Mutation") == 0)
        on_mutation(s, msg, wire_bytes);
    else if (strcmp(type, "Action") == 0)
        on_action(s, msg);
    else if (strcmp(type, "Event") == 0)
        return;
    else
        session_fatal(s, "WSMessageInvalidJson: unknown message type");
}

/* Handles the messages that waited behind an Authenticate, in order, until
 * another Authenticate must wait in turn. Not re-entrant: a token found in
 * the cache is answered synchronously, from inside handle(), and that
 * answer calls here again — the outer loop then simply goes on. Each
 * message leaves the inbox before it is handled. */
static void process_inbox(session *s)
{
    if (s->draining) return;
    s->draining = true;
    while (s->inbox_len > 0 && !s->auth_pending && !s->closed && !s->ending) {
        json_t *msg = s->inbox[0].msg;
        size_t bytes = s->inbox[0].wire_bytes;
        s->inbox_len--;
        memmove(s->inbox, s->inbox + 1, (size_t)s->inbox_len * sizeof *s->inbox);
        assert(s->held_bytes >= bytes);
        s->held_bytes -= bytes;
        handle(s, msg, bytes);
        json_decref(msg);
    }
    s->draining = false;
}

void session_on_message(void *data, const char *text, size_t len)
{
    session *s = data;
    if (s->closed || s->ending) return;
    /* NUL inside a string parses: in arguments wire_decode refuses it as
     * that call's error — never as a fatal one, which the client would
     * answer by reconnecting and sending the same message again. */
    json_t *msg = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(msg)) {
        json_decref(msg);
        session_fatal(s, "WSMessageInvalidJson: a message must be a JSON object");
        return;
    }
    session_ref(s); /* handling may close the socket, which ends the session */
    if (s->auth_pending || s->inbox_len > 0) {
        if (s->inbox_len >= SYNC_INBOX_MAX) {
            json_decref(msg);
            session_fatal(s,
                          "TooManyMessages: at most %d messages may wait while a token is verified",
                          SYNC_INBOX_MAX);
        } else if (s->held_bytes + len > LIMIT_WS_SESSION_HELD_BYTES_MAX) {
            json_decref(msg);
            session_fatal(s,
                          "TooManyMessages: the messages waiting while a token is verified may "
                          "hold at most %u MiB",
                          LIMIT_WS_SESSION_HELD_BYTES_MAX / (1024 * 1024));
        } else if (!s->inbox && !(s->inbox = malloc(SYNC_INBOX_MAX * sizeof *s->inbox))) {
            json_decref(msg);
            session_fatal(s, "InternalServerError: out of memory");
        } else {
            s->inbox[s->inbox_len++] = (struct inbox_entry){msg, len};
            s->held_bytes += len;
        }
    } else {
        handle(s, msg, len);
        json_decref(msg);
    }
    session_unref(s);
}
