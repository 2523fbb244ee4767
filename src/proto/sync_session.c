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
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/clock.h"
#include "base/jread.h"
#include "base/invariant.h"
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
    ASSERT(s->query_set_bytes >= sq->held_bytes);
    ASSERT(s->hub->query_set_bytes_total >= sq->held_bytes);
    s->query_set_bytes -= sq->held_bytes;
    s->hub->query_set_bytes_total -= sq->held_bytes;
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

/* --- held messages and back-pressure ---------------------------------------------- */

static void paused_list_remove(session *s)
{
    if (!s->reading_paused) return;
    sync_hub *hub = s->hub;
    if (s->paused_prev)
        s->paused_prev->paused_next = s->paused_next;
    else
        hub->paused_head = s->paused_next;
    if (s->paused_next) s->paused_next->paused_prev = s->paused_prev;
    s->paused_prev = s->paused_next = NULL;
    s->reading_paused = false;
}

void session_held_add(session *s, size_t bytes)
{
    sync_hub *hub = s->hub;
    s->held_bytes += bytes;
    hub->held_bytes_total += bytes;
    if (hub->held_bytes_total <= LIMIT_WS_HELD_BYTES_TOTAL_MAX || s->reading_paused || !s->ws)
        return;
    /* Too much waits to run in all: this session, which adds to it, is not
     * read until it drops (its messages wait in the kernel, as for any
     * server that is busy). */
    ws_pause_reading(s->ws, true);
    s->reading_paused = true;
    s->paused_prev = NULL;
    s->paused_next = hub->paused_head;
    if (hub->paused_head) hub->paused_head->paused_prev = s;
    hub->paused_head = s;
}

void session_held_sub(session *s, size_t bytes)
{
    sync_hub *hub = s->hub;
    ASSERT(s->held_bytes >= bytes && hub->held_bytes_total >= bytes);
    s->held_bytes -= bytes;
    hub->held_bytes_total -= bytes;
    if (hub->held_bytes_total > LIMIT_WS_HELD_BYTES_TOTAL_MAX / 2) return;
    while (hub->paused_head) {
        session *p = hub->paused_head;
        paused_list_remove(p);
        if (p->ws) ws_pause_reading(p->ws, false);
    }
}

void session_unref(session *s)
{
    if (--s->refs > 0) return;
    session_drop_queries(s);
    paused_list_remove(s);
    free(s->queries);
    free(s->removed);
    for (int i = 0; i < s->inbox_len; i++) {
        session_held_sub(s, s->inbox[i].wire_bytes);
        json_decref(s->inbox[i].msg);
    }
    free(s->inbox);
    while (s->mut_head) {
        sess_mutation *m = s->mut_head;
        s->mut_head = m->next;
        session_held_sub(s, m->wire_bytes);
        mutation_free(m);
    }
    ASSERT(s->held_bytes == 0 && s->query_set_bytes == 0);
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
    /* Released at once: nothing keeps a closed session (it used to wait on
     * the hub's wait list for the next commit, which may never come). */
    wait_list_remove(s);
    paused_list_remove(s);
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

/* A message the session cannot read ends it with a FatalError that names
 * the field (the protocol's answer to a malformed message; the client
 * reports it rather than retrying the same message). Returns -1. */
static int refuse(session *s, const err_t *e)
{
    session_fatal(s, "InvalidMessage: %s", e->msg);
    return -1;
}

/* The fields of an Add, read and checked before anything is kept. */
typedef struct add_fields {
    int64_t id;
    const char *path, *journal, *component;
    const json_t *args;
} add_fields;

static int read_add(const json_t *mod, const char *where, add_fields *f, err_t *e)
{
    memset(f, 0, sizeof *f);
    if (jr_int(mod, where, "queryId", 0, 0, UINT32_MAX, &f->id, e) ||
        jr_string(mod, where, "udfPath", 0, LIMIT_WS_MESSAGE_BYTES_MAX, &f->path, e) ||
        jr_string(mod, where, "journal", JR_OPTIONAL | JR_NULLABLE, LIMIT_WS_MESSAGE_BYTES_MAX,
                  &f->journal, e) ||
        jr_string(mod, where, "componentPath", JR_OPTIONAL | JR_NULLABLE,
                  LIMIT_WS_MESSAGE_BYTES_MAX, &f->component, e))
        return e->code;
    f->args = jr_field(mod, "args"); /* wire_args checks it: its error is the query's */
    return 0;
}

/* Adds one entry to the query set. An Add the session cannot serve (over a
 * bound, bad arguments, unknown function) is kept as a static failure, so
 * the client hears QueryFailed for it — but only its id is kept, and only
 * SYNC_REFUSED_ADDS_MAX of them past the subscription bound. */
static int add_query(session *s, const json_t *mod, const char *where)
{
    add_fields f;
    err_t e;
    err_init(&e);
    if (read_add(mod, where, &f, &e)) return refuse(s, &e);
    if (s->n_queries >= LIMIT_WS_SUBSCRIPTIONS_PER_SESSION_MAX + SYNC_REFUSED_ADDS_MAX) {
        session_fatal(s, "TooManySubscriptions: a session may subscribe to at most %d queries",
                      LIMIT_WS_SUBSCRIPTIONS_PER_SESSION_MAX);
        return -1;
    }
    uint32_t id = (uint32_t)f.id;
    if (find_query(s, id)) {
        session_fatal(s, "InvalidModification: queryId %u is already in the query set", id);
        return -1;
    }
    if (s->n_queries == s->cap_queries) {
        int cap = s->cap_queries ? s->cap_queries * 2 : 1; /* most sessions hold a few */
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
    size_t path_bytes = strlen(f.path), journal_bytes = f.journal ? strlen(f.journal) : 0;
    sq->path = strdup(path_bytes < LIMIT_FUNCTION_PATH_BYTES_MAX ? f.path : "");
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
    if (f.component && *f.component) {
        err_app(&sq->static_err, ERR_INVALID_ARGUMENT, NULL,
                "Components are not supported (componentPath \"%.200s\")", f.component);
        return 0;
    }
    size_t held =
        path_bytes + journal_bytes + (f.args ? json_dumpb(f.args, NULL, 0, JSON_COMPACT) : 0);
    if (s->query_set_bytes + held > SYNC_QUERY_SET_BYTES_MAX) {
        err_app(&sq->static_err, ERR_INVALID_ARGUMENT, NULL,
                "Too many subscriptions: the arguments of a session's queries may hold at most "
                "%u MiB",
                SYNC_QUERY_SET_BYTES_MAX / (1024 * 1024));
        return 0;
    }
    if (s->hub->query_set_bytes_total + held > SYNC_QUERY_SETS_TOTAL_BYTES_MAX) {
        err_app(&sq->static_err, ERR_INVALID_ARGUMENT, NULL,
                "Too many subscriptions: the arguments of all sessions' queries may hold at most "
                "%u MiB; try again later",
                SYNC_QUERY_SETS_TOTAL_BYTES_MAX / (1024 * 1024));
        return 0;
    }
    sq->args = wire_args(f.args, &e);
    if (!sq->args) {
        err_app(&sq->static_err, ERR_INVALID_ARGUMENT, NULL, "%s", e.msg);
        return 0;
    }
    sq->journal = f.journal ? strdup(f.journal) : NULL;
    sq->held_bytes = held;
    s->query_set_bytes += held;
    s->hub->query_set_bytes_total += held;
    subscribe_entry(s, sq);
    return 0;
}

/* Removes an entry; an id not in the set is ignored (the client only
 * removes what it added, and nothing is owed for an unknown one). */
static int remove_query(session *s, const json_t *mod, const char *where)
{
    int64_t id;
    err_t e;
    err_init(&e);
    if (jr_int(mod, where, "queryId", 0, 0, UINT32_MAX, &id, &e)) return refuse(s, &e);
    sess_query *sq = find_query(s, (uint32_t)id);
    if (!sq) return 0;
    sess_query_clear(s, sq);
    *sq = s->queries[--s->n_queries];
    if (s->n_removed == s->cap_removed) {
        int cap = s->cap_removed ? s->cap_removed * 2 : 8;
        uint32_t *grown = realloc(s->removed, (size_t)cap * sizeof *grown);
        if (!grown) {
            session_fatal(s, "out of memory");
            return -1;
        }
        s->removed = grown;
        s->cap_removed = cap;
    }
    s->removed[s->n_removed++] = (uint32_t)id;
    return 0;
}

static void on_modify_query_set(session *s, const json_t *msg)
{
    static const char where[] = "ModifyQuerySet";
    int64_t base, next;
    const json_t *mods;
    err_t e;
    err_init(&e);
    if (jr_int(msg, where, "baseVersion", 0, 0, UINT32_MAX, &base, &e) ||
        jr_int(msg, where, "newVersion", 0, 0, UINT32_MAX, &next, &e) ||
        jr_array(msg, where, "modifications", 0, SIZE_MAX, &mods, &e)) {
        refuse(s, &e);
        return;
    }
    if (json_array_size(mods) > SYNC_MODIFICATIONS_PER_MESSAGE_MAX) {
        session_fatal(s, "InvalidModification: a ModifyQuerySet carries at most %d modifications",
                      SYNC_MODIFICATIONS_PER_MESSAGE_MAX);
        return;
    }
    if ((uint32_t)base != s->v.qs_received || next <= base) {
        session_fatal(s, "BaseVersionMismatch: the query set's base version does not match");
        return;
    }
    for (size_t i = 0; i < json_array_size(mods); i++) {
        char name[JR_NAME_BYTES_MAX];
        const json_t *mod = jr_item(mods, i);
        const char *type;
        jr_item_name(name, "ModifyQuerySet.modifications", i);
        if (jr_as_object(mod, name, &e) || jr_string(mod, name, "type", 0, 64, &type, &e)) {
            refuse(s, &e);
            return;
        }
        int rc;
        if (strcmp(type, "Add") == 0) {
            rc = add_query(s, mod, name);
        } else if (strcmp(type, "Remove") == 0) {
            rc = remove_query(s, mod, name);
        } else {
            session_fatal(s, "InvalidModification: %s.type must be \"Add\" or \"Remove\"", name);
            return;
        }
        if (rc != 0) return;
    }
    s->v.qs_received = (uint32_t)next;
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
    static const char where[] = "Authenticate";
    int64_t base;
    const char *type, *value = NULL;
    const json_t *acting = NULL;
    err_t e;
    err_init(&e);
    if (jr_int(msg, where, "baseVersion", 0, 0, UINT32_MAX, &base, &e) ||
        jr_string(msg, where, "tokenType", 0, 16, &type, &e) ||
        jr_string(msg, where, "value", JR_OPTIONAL | JR_NULLABLE, LIMIT_JWT_BYTES_MAX, &value,
                  &e) ||
        jr_object(msg, where, "impersonating", JR_OPTIONAL | JR_NULLABLE, &acting, &e)) {
        refuse(s, &e);
        return;
    }
    if ((uint32_t)base != s->v.identity_received) {
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
        set_identity(s, acting ? json_deep_copy(acting) : NULL, true, 0);
        session_flush(s);
    } else if (strcmp(type, "User") == 0 && value) {
        s->auth_pending = true;
        session_ref(s);
        auth_verify(s->hub->srv->auth, value, on_token_verified, s);
    } else {
        session_fatal(s, "InvalidMessage: Authenticate.tokenType must be \"User\" (with a value), "
                         "\"Admin\" or \"None\"");
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
        session_held_sub(s, m->wire_bytes);
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

/* The fields every function call of the session carries (Mutation and
 * Action). */
typedef struct call_fields {
    int64_t request_id;
    const char *path, *component;
    const json_t *args;
} call_fields;

static int read_call(const json_t *msg, const char *where, call_fields *f, err_t *e)
{
    memset(f, 0, sizeof *f);
    if (jr_int(msg, where, "requestId", 0, 0, SYNC_REQUEST_ID_MAX, &f->request_id, e) ||
        jr_string(msg, where, "udfPath", 0, LIMIT_WS_MESSAGE_BYTES_MAX, &f->path, e) ||
        jr_string(msg, where, "componentPath", JR_OPTIONAL | JR_NULLABLE,
                  LIMIT_WS_MESSAGE_BYTES_MAX, &f->component, e))
        return e->code;
    f->args = jr_field(msg, "args"); /* wire_args checks it: its error is the call's */
    return 0;
}

static void on_mutation(session *s, const json_t *msg, size_t wire_bytes)
{
    call_fields f;
    err_t e;
    err_init(&e);
    if (read_call(msg, "Mutation", &f, &e)) {
        refuse(s, &e);
        return;
    }
    sess_mutation *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(f.path))) {
        free(m);
        session_fatal(s, "InternalServerError: out of memory");
        return;
    }
    m->request_id = f.request_id;
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
    session_held_add(s, wire_bytes);
    if (f.component && *f.component) {
        err_app(&m->err, ERR_INVALID_ARGUMENT, NULL,
                "Components are not supported (componentPath \"%.200s\")", f.component);
    } else {
        m->args = wire_args(f.args, &e);
        if (!m->args) err_app(&m->err, ERR_INVALID_ARGUMENT, NULL, "%s", e.msg);
    }
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
    call_fields f;
    err_t e;
    err_init(&e);
    if (read_call(msg, "Action", &f, &e)) {
        refuse(s, &e);
        return;
    }
    char canonical[LIMIT_FUNCTION_PATH_BYTES_MAX];
    lookup_function(s, f.path, FN_ACTION, &e, canonical, sizeof canonical);
    json_t *out = json_pack("{s:s, s:I, s:b, s:s, s:[]}", "type", "ActionResponse", "requestId",
                            (json_int_t)f.request_id, "success", 0, "result",
                            e.code ? e.msg : "Actions are not supported", "logLines");
    if (e.data) json_object_set_new(out, "errorData", wire_encode(e.data, WIRE_ENCODED));
    err_clear(&e);
    session_send(s, out);
}

/* --- connect and dispatch -------------------------------------------------------------- */

static void on_connect(session *s, const json_t *msg)
{
    static const char where[] = "Connect";
    const char *sid, *max_ts = NULL, *close_reason = NULL;
    int64_t connection_count = 0;
    double client_ts = NAN;
    err_t e;
    err_init(&e);
    if (s->connected) {
        session_fatal(s, "InvalidMessage: Connect was already sent on this connection");
        return;
    }
    if (jr_string(msg, where, "sessionId", JR_NONEMPTY, SYNC_SESSION_ID_BYTES_MAX - 1, &sid, &e) ||
        jr_int(msg, where, "connectionCount", JR_OPTIONAL, 0, UINT32_MAX, &connection_count, &e) ||
        jr_string(msg, where, "lastCloseReason", JR_OPTIONAL | JR_NULLABLE,
                  LIMIT_WS_MESSAGE_BYTES_MAX, &close_reason, &e) ||
        jr_string(msg, where, "maxObservedTimestamp", JR_OPTIONAL | JR_NULLABLE, 64, &max_ts, &e) ||
        jr_number(msg, where, "clientTs", JR_OPTIONAL | JR_NULLABLE, -SYNC_CLIENT_TS_MS_MAX,
                  SYNC_CLIENT_TS_MS_MAX, &client_ts, &e)) {
        refuse(s, &e);
        return;
    }
    s->connected = true;
    snprintf(s->session_id, sizeof s->session_id, "%s", sid);
    if (!isnan(client_ts)) {
        s->has_skew = true;
        s->clock_skew_ms = client_ts - clock_now_ms();
    }
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
    const char *type;
    err_t e;
    err_init(&e);
    if (jr_string(msg, "", "type", 0, 64, &type, &e))
        session_fatal(s, "WSMessageInvalidJson: %s", e.msg);
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
        session_fatal(s, "WSMessageInvalidJson: unknown message type \"%.64s\"", type);
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
        session_held_sub(s, bytes);
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
            session_held_add(s, len);
        }
    } else {
        handle(s, msg, len);
        json_decref(msg);
    }
    session_unref(s);
}
