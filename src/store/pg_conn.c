/*
 * pg_conn.c — the PostgreSQL engine of the store (store.h, store_impl.h), for
 * `--db postgres://…` and `postgresql://…`, through libpq: errors, URLs as
 * shown in messages, connections and reconnection, the statement cache,
 * opening and closing. The other files of the engine are listed in
 * pg_impl.h.
 *
 * store_open (via store.c) calls store_pg_open on the thread that starts
 * dojo: it connects once, brings the schema in line with the declared one in
 * one transaction (pg_ddl.c), and keeps the URL. Afterwards each thread that
 * talks to the database owns one pg_conn (one libpq connection): the storage
 * thread the writer, each reader thread a reader
 * (default_transaction_read_only). Several `dojo serve` processes may share
 * one database (ARCHITECTURE "Scale-out").
 *
 * This file is also the engine's driver under the store's one statement
 * layer (sql_driver.h): statements are prepared once per connection and
 * cached by their text; parameters and results travel in libpq's binary
 * format (bytes as they are, numbers as 8 big-endian bytes). A connection
 * lost outside a transaction is opened again before its next statement (its
 * cache starts empty); inside one, the transaction fails and the caller
 * rolls back.
 *
 * Thread: a store is immutable after open; a pg_conn belongs to one thread
 * at a time.
 */
#include "store/pg_impl.h"

#include "base/invariant.h"
#include "base/log.h"
#include "store/sql_common.h"
#include "store/sql_docs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PG_CONNECT_TIMEOUT_S "10"
#define PG_LOCK_TIMEOUT_MS 30000     /* a writer waits this long for the write lock */
#define PG_SERVER_VERSION_MIN 110000 /* jsonb::numeric, EXECUTE FUNCTION */
/* Listener connections: probe a silent link after this long, this often, and
 * give up after this many unanswered probes (about 25 s in all). */
#define PG_LISTENER_KEEPALIVE_IDLE_S "10"
#define PG_LISTENER_KEEPALIVE_INTERVAL_S "5"
#define PG_LISTENER_KEEPALIVE_COUNT "3"

/* --- errors ------------------------------------------------------------------------ */

/* Copies a libpq message into out on one line, without its trailing newline. */
void pg_one_line(const char *msg, char *out, size_t out_bytes)
{
    size_t n = 0;
    bool space = false;
    for (const char *p = msg ? msg : ""; *p && n + 1 < out_bytes; p++) {
        bool white = *p == '\n' || *p == '\t' || *p == '\r' || *p == ' ';
        if (white) {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < out_bytes) out[n++] = ' ';
        space = false;
        out[n++] = *p;
    }
    out[n] = '\0';
}

static bool sqlstate_is(const char *state, const char *want)
{
    return state && strcmp(state, want) == 0;
}

/* Maps a failed result (or, when res is NULL, the connection's last error)
 * to the project's codes, naming the operation:
 *   40001 serialization failure, 40P01 deadlock, 55P03 lock timeout → ERR_BUSY
 *   class 23 (unique, check, the append-only guard), 22P05 (a character
 *   jsonb cannot hold, U+0000), 54000 (an index row too large) → ERR_CONSTRAINT
 *   everything else → ERR_STORAGE. */
int pg_error(err_t *e, PGconn *pg, const PGresult *res, const char *what)
{
    char msg[ERR_MSG_BYTES_MAX];
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    pg_one_line(primary ? primary : PQerrorMessage(pg), msg, sizeof msg);
    if (!msg[0]) snprintf(msg, sizeof msg, "%s", res ? "unknown error" : "out of memory");
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (sqlstate_is(state, "40001") || sqlstate_is(state, "40P01") || sqlstate_is(state, "55P03"))
        return err_set(e, ERR_BUSY, "%s: %s", what, msg);
    if ((state && strncmp(state, "23", 2) == 0) || sqlstate_is(state, "22P05") ||
        sqlstate_is(state, "54000"))
        return err_set(e, ERR_CONSTRAINT, "%s: %s", what, msg);
    return err_set(e, ERR_STORAGE, "%s: %s", what, msg);
}

/* Writes url into out with its password (user:PASSWORD@ or ?password=) shown
 * as "***". */
static void redact_url(const char *url, char *out, size_t out_bytes)
{
    sqlbuf b;
    sqlbuf_init(&b, out, out_bytes);
    const char *scheme = strstr(url, "://");
    const char *p = url;
    if (scheme) {
        const char *host = scheme + 3;
        size_t authority = strcspn(host, "/?");
        const char *at = NULL;
        for (const char *q = host; q < host + authority; q++)
            if (*q == '@') at = q;
        const char *colon = at ? memchr(host, ':', (size_t)(at - host)) : NULL;
        if (colon) {
            sqlbuf_add(&b, "%.*s:***", (int)(colon - url), url);
            p = at;
        }
    }
    while (*p) {
        const char *key = strstr(p, "password=");
        bool param = key && key > url && (key[-1] == '?' || key[-1] == '&');
        if (!key) {
            sqlbuf_add(&b, "%s", p);
            break;
        }
        size_t head = (size_t)(key - p) + strlen("password=");
        sqlbuf_add(&b, "%.*s", (int)head, p);
        p += head;
        if (param) {
            sqlbuf_add(&b, "***");
            p += strcspn(p, "&");
        }
    }
    if (b.overflow && out_bytes > 4) snprintf(out + out_bytes - 4, 4, "...");
}

void store_redact_url(const char *url, char *out, size_t out_bytes)
{
    ASSERT(url && out && out_bytes > 0);
    /* Any URL with credentials (user:password@) has its password hidden. */
    if (strstr(url, "://"))
        redact_url(url, out, out_bytes);
    else
        snprintf(out, out_bytes, "%s", url);
}

/* --- connections ------------------------------------------------------------------- */

/* Session settings every connection gets, after each (re)connect. */
static int session_setup(PGconn *pg, bool writer, const char *shown_url, err_t *e)
{
    const char *encoding = PQparameterStatus(pg, "server_encoding");
    if (!encoding || strcmp(encoding, "UTF8") != 0)
        return err_set(e, ERR_STORAGE, "database %s has encoding %s; dojo needs UTF8", shown_url,
                       encoding ? encoding : "(unknown)");
    if (PQserverVersion(pg) < PG_SERVER_VERSION_MIN)
        return err_set(e, ERR_STORAGE, "%s runs PostgreSQL %d; dojo needs 11 or newer", shown_url,
                       PQserverVersion(pg) / 10000);
    /* Every scan reads an index range in the index's order with a LIMIT:
     * a bitmap scan, which loses the order and sorts afterwards, is never
     * the plan dojo wants — the planner may pick one for a range it thinks
     * small. */
    char sql[160];
    snprintf(sql, sizeof sql, "SET lock_timeout = %d; SET enable_bitmapscan = off%s",
             PG_LOCK_TIMEOUT_MS, writer ? "" : "; SET default_transaction_read_only = on");
    PGresult *res = PQexec(pg, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_error(e, pg, res, "set up session");
    PQclear(res);
    return rc;
}

/* Server notices (NOTICE, WARNING) go to the debug log, not to stderr. */
static void pg_notice(void *arg, const char *message)
{
    (void)arg;
    char line[ERR_MSG_BYTES_MAX];
    pg_one_line(message, line, sizeof line);
    log_debug("store: postgres says: %s", line);
}

/* Opens one libpq connection. The URL's own parameters win over the defaults
 * before it; the client encoding is always UTF-8. A listener's connection
 * sits idle for long stretches: it probes the link with TCP keepalives. */
int pg_dial(const pg_store *ps, bool writer, bool listener, PGconn **out, err_t *e)
{
    const char *keys[10], *values[10];
    int n = 0;
    keys[n] = "connect_timeout", values[n++] = PG_CONNECT_TIMEOUT_S;
    char listener_name[32]; /* "dojo-listener-<pid>": which process listens */
    snprintf(listener_name, sizeof listener_name, "dojo-listener-%ld", (long)getpid());
    keys[n] = "application_name", values[n++] = listener ? listener_name : "dojo";
    if (listener) {
        keys[n] = "keepalives_idle", values[n++] = PG_LISTENER_KEEPALIVE_IDLE_S;
        keys[n] = "keepalives_interval", values[n++] = PG_LISTENER_KEEPALIVE_INTERVAL_S;
        keys[n] = "keepalives_count", values[n++] = PG_LISTENER_KEEPALIVE_COUNT;
    }
    keys[n] = "dbname", values[n++] = ps->url;
    keys[n] = "client_encoding", values[n++] = "UTF8";
    keys[n] = values[n] = NULL;
    ASSERT(n < (int)(sizeof keys / sizeof keys[0]));
    PGconn *pg = PQconnectdbParams(keys, values, 1);
    if (!pg) return err_set(e, ERR_NOMEM, "cannot connect to %s: out of memory", ps->shown_url);
    if (PQstatus(pg) != CONNECTION_OK) {
        char msg[ERR_MSG_BYTES_MAX];
        pg_one_line(PQerrorMessage(pg), msg, sizeof msg);
        PQfinish(pg);
        return err_set(e, ERR_STORAGE, "cannot connect to %s: %s", ps->shown_url, msg);
    }
    PQsetNoticeProcessor(pg, pg_notice, NULL);
    int rc = session_setup(pg, writer, ps->shown_url, e);
    if (rc) {
        PQfinish(pg);
        return rc;
    }
    *out = pg;
    return 0;
}

static void cache_clear(pg_conn *c)
{
    for (int i = 0; i < PG_STMT_CACHE_SLOTS; i++) {
        free(c->cache[i].sql);
        c->cache[i] = (pg_stmt){0};
    }
}

/* Before a statement: a connection that was lost outside a transaction is
 * opened again (the server restarted, a proxy dropped it); inside one, the
 * transaction is gone and the caller must roll back. */
static int ensure_connected(pg_conn *c, const char *what, err_t *e)
{
    if (PQstatus(c->pg) == CONNECTION_OK) return 0;
    if (c->in_txn)
        return err_set(e, ERR_STORAGE, "%s: the connection to %s was lost mid-transaction", what,
                       pg_store_of(c)->shown_url);
    PQreset(c->pg);
    cache_clear(c);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        char msg[ERR_MSG_BYTES_MAX];
        pg_one_line(PQerrorMessage(c->pg), msg, sizeof msg);
        return err_set(e, ERR_STORAGE, "%s: cannot connect to %s: %s", what,
                       pg_store_of(c)->shown_url, msg);
    }
    log_info("store: reconnected to %s", pg_store_of(c)->shown_url);
    return session_setup(c->pg, c->writer, pg_store_of(c)->shown_url, e);
}

static int pg_connect(store *st, bool writer, store_conn **out, err_t *e)
{
    pg_store *ps = (pg_store *)st;
    pg_conn *c = calloc(1, sizeof *c);
    if (!c) return err_set(e, ERR_NOMEM, "connect to %s: out of memory", ps->shown_url);
    int rc = pg_dial(ps, writer, false, &c->pg, e);
    if (rc) {
        free(c);
        return rc;
    }
    c->base = (store_conn){.ops = &pg_ops, .st = st};
    c->writer = writer;
    *out = &c->base;
    return 0;
}

static void pg_disconnect(store_conn *sc)
{
    pg_conn *c = pg_conn_of(sc);
    pg_pipeline_discard(c);
    cache_clear(c);
    PQfinish(c->pg); /* an open transaction is rolled back by the server */
    free(c);
}

/* --- statements -------------------------------------------------------------------- */

/* The slot to fill next: an empty one, else the least recently used, whose
 * server-side statement is deallocated (unless the transaction is failed,
 * when PostgreSQL refuses even that: then it lingers until disconnect). */
static pg_stmt *cache_victim(pg_conn *c)
{
    pg_stmt *victim = &c->cache[0];
    for (int i = 0; i < PG_STMT_CACHE_SLOTS; i++) {
        pg_stmt *s = &c->cache[i];
        if (!s->sql) return s;
        if (s->used_at < victim->used_at) victim = s;
    }
    char sql[64];
    snprintf(sql, sizeof sql, "DEALLOCATE %s", victim->name);
    err_t e;
    err_init(&e);
    if (c->in_pipeline)
        (void)pg_pipeline_send_text(c, sql, 0, NULL, "deallocate a statement", false, &e);
    else if (PQtransactionStatus(c->pg) != PQTRANS_INERROR)
        PQclear(PQexec(c->pg, sql));
    free(victim->sql);
    *victim = (pg_stmt){0};
    return victim;
}

void pg_stmt_forget(pg_conn *c, const char *name)
{
    for (int i = 0; i < PG_STMT_CACHE_SLOTS; i++)
        if (c->cache[i].sql && strcmp(c->cache[i].name, name) == 0) {
            free(c->cache[i].sql);
            c->cache[i] = (pg_stmt){0};
        }
}

/* The server-side name of sql, prepared on first use on this connection
 * (with these parameter types, or types the server infers when NULL) — in
 * the pipeline when one is in flight or about to be (then a failed prepare
 * is forgotten when its answer arrives). */
static int stmt_get(pg_conn *c, const char *sql, int n_params, const Oid *types, bool pipelined,
                    const char **name_out, const char *what, err_t *e)
{
    uint64_t h = sql_hash(sql);
    for (int i = 0; i < PG_STMT_CACHE_SLOTS; i++) {
        pg_stmt *s = &c->cache[i];
        if (s->sql && s->hash == h && strcmp(s->sql, sql) == 0) {
            s->used_at = ++c->use_clock;
            *name_out = s->name;
            return 0;
        }
    }
    char *copy = strdup(sql);
    if (!copy) return err_set(e, ERR_NOMEM, "%s: out of memory", what);
    pg_stmt *s = cache_victim(c);
    snprintf(s->name, sizeof s->name, "dojo_%" PRIu64, ++c->stmt_serial);
    int rc;
    if (pipelined) {
        rc = pg_pipeline_send_prepare(c, s->name, sql, n_params, types, what, e);
    } else {
        PGresult *res = PQprepare(c->pg, s->name, sql, n_params, types);
        rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_error(e, c->pg, res, what);
        PQclear(res);
    }
    if (rc) {
        free(copy);
        *s = (pg_stmt){0};
        return rc;
    }
    c->prepares++;
    s->hash = h;
    s->sql = copy;
    s->used_at = ++c->use_clock;
    *name_out = s->name;
    return 0;
}

/* Runs a cached statement with text parameters. *res_out (when asked) gets
 * the result, which the caller PQclears. Every execution is where an
 * injected fault may strike. */
int pg_stmt_run(pg_conn *c, const char *sql, int n_params, const char *const *values,
                const char *what, PGresult **res_out, err_t *e)
{
    if (res_out) *res_out = NULL;
    c->last_failure_deferred = false;
    if (store_fault_due()) return err_set(e, ERR_STORAGE, "%s: injected fault", what);
    int rc = pg_pipeline_sync(c, NULL, e);
    if (rc == 0) rc = ensure_connected(c, what, e);
    const char *name = NULL;
    if (rc == 0) rc = stmt_get(c, sql, n_params, NULL, false, &name, what, e);
    if (rc) return rc;
    PGresult *res = PQexecPrepared(c->pg, name, n_params, values, NULL, NULL, 0);
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        rc = pg_error(e, c->pg, res, what);
        PQclear(res);
        return rc;
    }
    if (res_out)
        *res_out = res;
    else
        PQclear(res);
    return 0;
}

/* Runs parameterless SQL (transaction control, DDL; several statements
 * allowed) through the simple protocol, with fault injection. */
int pg_run_simple(pg_conn *c, const char *sql, const char *what, err_t *e)
{
    c->last_failure_deferred = false;
    if (store_fault_due()) return err_set(e, ERR_STORAGE, "%s: injected fault", what);
    int rc = pg_pipeline_sync(c, NULL, e);
    if (rc == 0) rc = ensure_connected(c, what, e);
    if (rc) return rc;
    PGresult *res = PQexec(c->pg, sql);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_error(e, c->pg, res, what);
    PQclear(res);
    return rc;
}

/* Runs a rollback-like statement: faults are never injected here, since it
 * is how a caller recovers from one. Failures are logged, not returned. */
void pg_run_undo(pg_conn *c, const char *sql)
{
    pg_pipeline_discard(c);
    if (PQstatus(c->pg) != CONNECTION_OK) return; /* the server ended the transaction */
    PGresult *res = PQexec(c->pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        err_t e;
        err_init(&e);
        pg_error(&e, c->pg, res, sql);
        log_error("store: %s", e.msg);
        err_clear(&e);
    }
    PQclear(res);
}

/* --- the driver of the statement layer (sql_driver.h) ------------------------------ */

#define PG_OID_BYTEA 17
#define PG_OID_INT8 20
#define PG_OID_TEXT 25
#define PG_OID_FLOAT8 701

static void drv_param(sqlbuf *b, int n)
{
    sqlbuf_add(b, "$%d", n);
}

static void drv_use_index(sqlbuf *b, const char *index)
{
    (void)b;
    (void)index; /* the planner picks the index of the conditions and order */
}

static void put_be64(uint8_t out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (8 * (7 - i)));
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void pg_params_of(const sql_value *v, int n, pg_params *p)
{
    ASSERT(n <= (int)(sizeof p->values / sizeof p->values[0]));
    for (int i = 0; i < n; i++) {
        p->formats[i] = 1;
        switch (v[i].type) {
        case SQLV_TEXT:
        case SQLV_BLOB:
            ASSERT(v[i].len <= INT32_MAX);
            p->values[i] = v[i].len ? v[i].bytes : "";
            p->lengths[i] = (int)v[i].len;
            p->types[i] = v[i].type == SQLV_TEXT ? PG_OID_TEXT : PG_OID_BYTEA;
            break;
        case SQLV_DOUBLE: {
            uint64_t bits;
            memcpy(&bits, &v[i].d, sizeof bits);
            put_be64(p->numbers[i], bits);
            p->values[i] = (const char *)p->numbers[i];
            p->lengths[i] = 8;
            p->types[i] = PG_OID_FLOAT8;
            break;
        }
        case SQLV_INT64:
            put_be64(p->numbers[i], (uint64_t)v[i].i);
            p->values[i] = (const char *)p->numbers[i];
            p->lengths[i] = 8;
            p->types[i] = PG_OID_INT8;
            break;
        default:
            p->values[i] = NULL;
            p->lengths[i] = 0;
            p->types[i] = PG_OID_TEXT;
        }
    }
}

static int drv_run(store_conn *sc, const sql_stmt *s, sql_result *res, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    if (c->deferred_rc) return pg_pipeline_sync(c, NULL, e); /* it sticks */
    c->last_failure_deferred = false;
    if (store_fault_due()) return err_set(e, ERR_STORAGE, "%s: injected fault", s->what);
    pg_params p;
    pg_params_of(s->params, s->n_params, &p);
    int rc = ensure_connected(c, s->what, e);
    bool defer = !res && (s->flags & SQL_DEFER) && pg_pipeline_wanted(c);
    /* A statement that waits while writes are in flight goes out with them:
     * one round trip for all. */
    bool pipelined = defer || c->in_pipeline;
    const char *name = NULL;
    if (rc == 0) rc = stmt_get(c, s->sql, s->n_params, p.types, pipelined, &name, s->what, e);
    if (rc) return rc;
    PGresult *r = NULL;
    if (pipelined) {
        rc = pg_pipeline_send_prepared(c, name, s->n_params, &p, s->what, s->not_found, !defer, e);
        if (rc || defer) return rc;
        rc = pg_pipeline_sync(c, &r, e);
        if (rc) return rc;
    } else {
        r = PQexecPrepared(c->pg, name, s->n_params, p.values, p.lengths, p.formats,
                           1 /* binary */);
        ExecStatusType status = PQresultStatus(r);
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            rc = pg_error(e, c->pg, r, s->what);
            PQclear(r);
            return rc;
        }
    }
    int64_t changes = strtoll(PQcmdTuples(r), NULL, 10);
    if (s->not_found && changes == 0) {
        PQclear(r);
        return err_set(e, ERR_NOT_FOUND, "%s", s->not_found);
    }
    if (!res) {
        PQclear(r);
        return 0;
    }
    *res = (sql_result){.conn = sc, .impl = r, .row = -1, .changes = changes};
    return 0;
}

/* The statements go out in one pipeline with the writes in flight (and
 * the PREPARE of their text, the first time), then one sync reads it all. */
static int drv_run_many(store_conn *sc, const sql_stmt *s, int n, sql_result *res, err_t *e)
{
    _Static_assert(2 * SQL_RUN_MANY_MAX < PG_PIPELINE_PENDING_MAX, "run_many fits a pipeline");
    ASSERT(n > 0 && n <= SQL_RUN_MANY_MAX);
    pg_conn *c = pg_conn_of(sc);
    if (c->deferred_rc) return pg_pipeline_sync(c, NULL, e); /* it sticks */
    c->last_failure_deferred = false;
    int rc = ensure_connected(c, "read", e);
    /* Room for all of them (each may need its PREPARE), or a full pipeline
     * would be synced halfway and their results lost. */
    if (rc == 0 && c->in_pipeline && c->n_pending + 2 * n > PG_PIPELINE_PENDING_MAX)
        rc = pg_pipeline_sync(c, NULL, e);
    for (int i = 0; i < n && rc == 0; i++) {
        if (store_fault_due()) {
            rc = err_set(e, ERR_STORAGE, "%s: injected fault", s[i].what);
            break;
        }
        pg_params p;
        pg_params_of(s[i].params, s[i].n_params, &p);
        const char *name = NULL;
        rc = stmt_get(c, s[i].sql, s[i].n_params, p.types, true, &name, s[i].what, e);
        if (rc == 0)
            rc = pg_pipeline_send_prepared(c, name, s[i].n_params, &p, s[i].what, NULL, true, e);
    }
    if (rc) return rc; /* what was sent goes with the rollback that follows */
    PGresult *kept[SQL_RUN_MANY_MAX];
    rc = pg_pipeline_sync_all(c, kept, n, e);
    for (int i = 0; i < n; i++) {
        ASSERT(rc != 0 || kept[i]); /* every statement answered, in order */
        res[i] = (sql_result){.conn = sc, .impl = kept[i], .row = -1};
    }
    return rc;
}

static int drv_next(sql_result *res, const char *what, err_t *e)
{
    (void)what;
    (void)e;
    return ++res->row < PQntuples(res->impl) ? 1 : 0;
}

static const uint8_t *drv_col_bytes(sql_result *res, int col, size_t *len)
{
    *len = (size_t)PQgetlength(res->impl, res->row, col);
    return (const uint8_t *)PQgetvalue(res->impl, res->row, col);
}

double pg_binary_double(const PGresult *res, int row, int col)
{
    if (PQgetlength(res, row, col) != 8) return 0;
    uint64_t bits = get_be64((const uint8_t *)PQgetvalue(res, row, col));
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static double drv_col_double(sql_result *res, int col)
{
    return pg_binary_double(res->impl, res->row, col);
}

static int64_t drv_col_int64(sql_result *res, int col)
{
    if (PQgetlength(res->impl, res->row, col) != 8) return 0;
    return (int64_t)get_be64((const uint8_t *)PQgetvalue(res->impl, res->row, col));
}

static void drv_done(sql_result *res)
{
    PQclear(res->impl);
    res->impl = NULL;
}

const sql_driver pg_driver = {
    .engine = "PostgreSQL",
    .param = drv_param,
    .use_index = drv_use_index,
    .bounds_from_first_column = true,
    .cache_reads = true,
    .run = drv_run,
    .run_many = drv_run_many,
    .next = drv_next,
    .col_bytes = drv_col_bytes,
    .col_double = drv_col_double,
    .col_int64 = drv_col_int64,
    .done = drv_done,
};

/* --- opening and closing ------------------------------------------------------------ */

int store_pg_open(const char *url, const schema *s, store **out,
                  char report[STORE_REPORT_BYTES_MAX], err_t *e)
{
    pg_store *ps = calloc(1, sizeof *ps);
    if (!ps) return err_set(e, ERR_NOMEM, "open PostgreSQL: out of memory");
    store_redact_url(url, ps->shown_url, sizeof ps->shown_url);
    ps->url = strdup(url);
    ps->base = (store){.ops = &pg_ops, .sql = &pg_driver, .schema = s};
    char local[STORE_REPORT_BYTES_MAX];
    int rc = ps->url ? pg_prepare_database(ps, s, report ? report : local, e)
                     : err_set(e, ERR_NOMEM, "open %s: out of memory", ps->shown_url);
    if (rc) {
        free(ps->url);
        free(ps);
        return rc;
    }
    *out = &ps->base;
    return 0;
}

static void pg_close(store *st)
{
    ASSERT(st->ops == &pg_ops);
    pg_store *ps = (pg_store *)st;
    free(ps->url);
    free(ps);
}

/* --- test hooks -------------------------------------------------------------------- */

int store_pg_query_text(store_conn *sc, const char *sql, char *out, size_t out_bytes, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    out[0] = '\0';
    PGresult *res = PQexec(c->pg, sql);
    ExecStatusType status = PQresultStatus(res);
    int rc = 0;
    if (status == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0)
        snprintf(out, out_bytes, "%s", PQgetvalue(res, 0, 0));
    else if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
        rc = pg_error(e, c->pg, res, sql);
    PQclear(res);
    return rc;
}

uint64_t store_pg_prepare_count(store_conn *c)
{
    return pg_conn_of(c)->prepares;
}

/* A parameter as a SQL literal, for EXECUTE (…) in a generic plan. */
static char *literal_of(PGconn *pg, const sql_value *v)
{
    char number[48];
    switch (v->type) {
    case SQLV_DOUBLE:
        snprintf(number, sizeof number, "%.17g::float8", v->d);
        return strdup(number);
    case SQLV_INT64:
        snprintf(number, sizeof number, "%lld::int8", (long long)v->i);
        return strdup(number);
    case SQLV_BLOB: {
        char *out = malloc(2 * v->len + 16);
        if (!out) return NULL;
        size_t n = (size_t)sprintf(out, "'\\x");
        for (size_t i = 0; i < v->len; i++)
            n += (size_t)sprintf(out + n, "%02x", ((const uint8_t *)v->bytes)[i]);
        sprintf(out + n, "'::bytea");
        return out;
    }
    default: {
        char *lit = PQescapeLiteral(pg, v->bytes, v->len);
        char *out = lit ? strdup(lit) : NULL;
        PQfreemem(lit);
        return out;
    }
    }
}

/* EXPLAIN of a scan's statement: with its parameters bound (the custom plan
 * an unnamed statement gets), or, when generic, of the statement prepared
 * under a name with plan_cache_mode = force_generic_plan — the plan a cached
 * statement may settle on after a few executions. */
static int explain_scan(pg_conn *c, const sql_scan_stmt *q, bool generic, sqlbuf *out, err_t *e)
{
    size_t bytes = 4 * SQL_TEXT_BYTES_MAX;
    char *sql = malloc(bytes);
    if (!sql) return err_set(e, ERR_NOMEM, "explain scan: out of memory");
    sqlbuf b;
    sqlbuf_init(&b, sql, bytes);
    pg_params p;
    pg_params_of(q->params, q->n_params, &p);
    PGresult *res = NULL;
    int rc = 0;
    if (!generic) {
        sqlbuf_add(&b, "EXPLAIN (COSTS OFF) %s", q->text);
        res = PQexecParams(c->pg, sql, q->n_params, p.types, p.values, p.lengths, p.formats, 0);
    } else {
        PGresult *prep = PQprepare(c->pg, "dojo_explain", q->text, q->n_params, p.types);
        if (PQresultStatus(prep) != PGRES_COMMAND_OK) rc = pg_error(e, c->pg, prep, "explain scan");
        PQclear(prep);
        sqlbuf_add(&b, "EXPLAIN (COSTS OFF) EXECUTE dojo_explain(");
        for (int i = 0; i < q->n_params && rc == 0; i++) {
            char *literal = literal_of(c->pg, &q->params[i]);
            if (!literal) rc = err_set(e, ERR_NOMEM, "explain scan: out of memory");
            sqlbuf_add(&b, "%s%s", i ? ", " : "", literal ? literal : "");
            free(literal);
        }
        sqlbuf_add(&b, ")");
        if (rc == 0) {
            PQclear(PQexec(c->pg, "SET plan_cache_mode = force_generic_plan"));
            res = PQexec(c->pg, sql);
            PQclear(PQexec(c->pg, "RESET plan_cache_mode"));
        }
        PQclear(PQexec(c->pg, "DEALLOCATE dojo_explain"));
    }
    ASSERT(!b.overflow);
    if (rc == 0 && PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_error(e, c->pg, res, "explain scan");
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        sqlbuf_add(out, "%s\n", PQgetvalue(res, i, 0));
    PQclear(res);
    free(sql);
    return rc;
}

int store_pg_scan_plan(store_conn *sc, const store_range *r, bool generic, char *out,
                       size_t out_bytes, err_t *e)
{
    sql_scan_stmt *q = malloc(sizeof *q);
    if (!q) return err_set(e, ERR_NOMEM, "explain scan: out of memory");
    sqlbuf b;
    sqlbuf_init(&b, out, out_bytes);
    int rc = sql_scan_build(&pg_driver, r, false, q, e);
    if (rc == 0) rc = explain_scan(pg_conn_of(sc), q, generic, &b, e);
    sql_scan_free(q);
    free(q);
    return rc;
}

const store_ops pg_ops = {
    .name = "postgres",
    .close = pg_close,
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .savepoint = pg_savepoint,
    .savepoint_release = pg_savepoint_release,
    .savepoint_rollback = pg_savepoint_rollback,
    .truncate_all = pg_truncate_all,
    .notify_commit = pg_notify_commit,
    .defer_writes = pg_defer_writes,
    .deferred_failure = pg_deferred_failure,
    .listener_open = pg_listener_open,
    .listener_fd = pg_listener_fd,
    .listener_drain = pg_listener_drain,
    .listener_meta_get = pg_listener_meta_get,
    .listener_close = pg_listener_close,
};
