/*
 * pg_notify.c — commit notifications on the PostgreSQL engine
 * (store_notify_commit, store_listener_*; ARCHITECTURE "Scale-out").
 *
 * A writer sends `SELECT pg_notify(channel, payload)` inside its write
 * transaction; PostgreSQL delivers it only if the transaction commits, after
 * it commits, and in commit order (its notification queue is filled in
 * commit order, and writers here commit one at a time under the write lock
 * anyway). A write transaction that sent none (an import, any tool writing
 * outside the engine) sends an empty payload at commit (pg_txn.c), so that
 * no committed write goes unannounced. A listener is a connection of its own
 * that ran `LISTEN channel` and is then only read from (PQconsumeInput,
 * PQnotifies), with TCP keepalives so that a silently dead link is noticed;
 * pg_stat_activity shows it as "dojo-listener-<pid>". Notifications go to
 * every listener of the database, whatever its schema, so the channel names
 * the deployment: "dojo_commits_<16 hex digits of FNV-1a of
 * current_schema()>", the schema the tables live in.
 *
 * Callers: the storage thread notifies on the writer (store.c through
 * pg_ops); the engine's commit listener (engine/remote.c) opens a listener on
 * libuv's thread pool and drains it on the event loop; store_open names the
 * channel (pg_ddl.c).
 * Thread: a pg_listener belongs to one thread at a time.
 */
#include "base/invariant.h"
#include "store/pg_impl.h"

#include "store/sql_common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_CHANNEL_PREFIX "dojo_commits_"

/* The channel of this deployment: its schema's name, hashed so that any
 * schema name gives a short identifier. */
int pg_name_channel(PGconn *pg, pg_store *ps, err_t *e)
{
    PGresult *res =
        PQexecParams(pg, "SELECT coalesce(current_schema(), '')", 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = pg_error(e, pg, res, "read the schema");
        PQclear(res);
        return rc;
    }
    const char *schema_name = PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "";
    snprintf(ps->channel, sizeof ps->channel, PG_CHANNEL_PREFIX "%016" PRIx64,
             sql_hash(schema_name));
    PQclear(res);
    return 0;
}

/* A write transaction that commits without a notification of its own (an
 * import, a tool writing outside the engine) still tells the listeners that
 * something changed: an empty payload. Not a cached statement and never an
 * injected fault, so that it is invisible to callers that never notify. */
int pg_notify_unknown_commit(pg_conn *c, err_t *e)
{
    const char *values[] = {pg_store_of(c)->channel};
    PGresult *res = PQexecParams(c->pg, "SELECT pg_notify($1, '')", 1, NULL, values, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : pg_error(e, c->pg, res, "commit");
    PQclear(res);
    return rc;
}

typedef struct pg_listener {
    store_listener base;
    PGconn *pg;
} pg_listener;

static pg_listener *listener_of(const store_listener *l)
{
    ASSERT(l && l->ops == &pg_ops);
    return (pg_listener *)l;
}

int pg_notify_commit(store_conn *sc, const char *payload, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    ASSERT(c->writer && c->in_txn && "a commit notification outside a write transaction");
    ASSERT(c->savepoint_depth == 0 && "a savepoint rollback would drop the notification");
    const char *values[] = {pg_store_of(c)->channel, payload};
    int rc = pg_stmt_run(c, "SELECT pg_notify($1, $2)", 2, values, "send the commit notification",
                         NULL, e);
    if (rc == 0) c->notified = true;
    return rc;
}

int pg_listener_open(store *st, store_listener **out, err_t *e)
{
    pg_store *ps = (pg_store *)st;
    pg_listener *l = calloc(1, sizeof *l);
    if (!l) return err_set(e, ERR_NOMEM, "listen to %s: out of memory", ps->shown_url);
    int rc = pg_dial(ps, false, true, &l->pg, e);
    if (rc) {
        free(l);
        return rc;
    }
    char sql[PG_IDENT_BYTES_MAX + 16];
    snprintf(sql, sizeof sql, "LISTEN \"%s\"", ps->channel);
    PGresult *res = PQexec(l->pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) rc = pg_error(e, l->pg, res, "listen for commits");
    PQclear(res);
    if (rc) {
        PQfinish(l->pg);
        free(l);
        return rc;
    }
    l->base = (store_listener){.ops = &pg_ops, .st = st};
    *out = &l->base;
    return 0;
}

int pg_listener_fd(const store_listener *sl)
{
    return PQsocket(listener_of(sl)->pg);
}

int pg_listener_drain(store_listener *sl, void (*cb)(void *data, const char *payload), void *data,
                      err_t *e)
{
    pg_listener *l = listener_of(sl);
    const char *channel = ((const pg_store *)sl->st)->channel;
    bool read_ok = PQconsumeInput(l->pg) == 1;
    PGnotify *n;
    while ((n = PQnotifies(l->pg))) {
        if (strcmp(n->relname, channel) == 0) cb(data, n->extra);
        PQfreemem(n);
    }
    if (read_ok && PQstatus(l->pg) == CONNECTION_OK) return 0;
    char msg[ERR_MSG_BYTES_MAX];
    pg_one_line(PQerrorMessage(l->pg), msg, sizeof msg);
    return err_set(e, ERR_STORAGE, "commit notifications from %s: %s",
                   ((const pg_store *)sl->st)->shown_url, msg[0] ? msg : "connection lost");
}

int pg_listener_meta_get(store_listener *sl, const char *key, char **value_out, err_t *e)
{
    pg_listener *l = listener_of(sl);
    const char *values[] = {key};
    PGresult *res = PQexecParams(l->pg, "SELECT value FROM _dojo_meta WHERE key = $1", 1, NULL,
                                 values, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pg_error(e, l->pg, res, "read metadata");
    } else if (PQntuples(res) > 0) {
        *value_out = strdup(PQgetvalue(res, 0, 0));
        if (!*value_out) rc = err_set(e, ERR_NOMEM, "read metadata: out of memory");
    }
    PQclear(res);
    return rc;
}

void pg_listener_close(store_listener *sl)
{
    pg_listener *l = listener_of(sl);
    PQfinish(l->pg);
    free(l);
}
