/*
 * sqlite.c — the SQLite engine of the store (store.h, store_impl.h):
 * connections, transactions and the statement cache; opening and closing.
 * The other files of the engine are listed in sqlite_impl.h.
 *
 * store_open (via store.c) calls store_sqlite_open on the thread that starts
 * dojo: it puts the file in WAL mode and brings its schema in line with the
 * declared one, in one transaction (sqlite_ddl.c). Afterwards each thread
 * that talks to the database owns one sqlite_conn: the storage thread the
 * writer, each reader thread a reader (PRAGMA query_only). Connections are
 * opened with SQLITE_OPEN_NOMUTEX: one thread at a time, never shared
 * concurrently. The writer hands WAL checkpoints to a thread of their own
 * (sqlite_checkpoint.h).
 *
 * This file is also the engine's driver under the store's one statement
 * layer (sql_driver.h): parameters bound natively, rows read natively. Every
 * statement a connection runs more than once is prepared once into its cache
 * (SQLITE_STMT_CACHE_SLOTS, least recently used evicted), and every
 * execution is where an injected fault (store_inject_fault_after) strikes,
 * except the rollbacks that recover from one.
 *
 * Thread: a store is immutable after open; a sqlite_conn belongs to one
 * thread at a time.
 */
#include "store/sqlite_impl.h"

#include "base/invariant.h"
#include "base/log.h"
#include "store/ddl_common.h"
#include "store/sql_common.h"
#include "store/sql_docs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUSY_TIMEOUT_MS 5000
#define SAVEPOINT_DEPTH_MAX 4
#define SAVEPOINT_SQL_NAME "dojo_mutation"

/* --- errors ------------------------------------------------------------------------ */

/* Maps a SQLite result code to the project's codes, naming the operation. */
int sqlite_error(err_t *e, sqlite3 *db, int rc, const char *what)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        return err_set(e, ERR_CONSTRAINT, "%s: %s", what, msg);
    case SQLITE_NOMEM:
        return err_set(e, ERR_NOMEM, "%s: out of memory", what);
    default:
        return err_set(e, ERR_STORAGE, "%s: %s", what, msg);
    }
}

/* --- statements -------------------------------------------------------------------- */

/* The slot to fill next: an empty one, else the least recently used. */
static stmt_slot *cache_victim(sqlite_conn *c)
{
    stmt_slot *victim = &c->cache[0];
    for (int i = 0; i < SQLITE_STMT_CACHE_SLOTS; i++) {
        stmt_slot *s = &c->cache[i];
        if (!s->stmt) return s;
        if (s->used_at < victim->used_at) victim = s;
    }
    return victim;
}

/* A prepared statement for sql from the connection's cache, prepared on first
 * use. The caller resets it (stmt_done) before it uses another statement that
 * might evict it. */
int sqlite_stmt_get(sqlite_conn *c, const char *sql, sqlite3_stmt **out, err_t *e)
{
    uint64_t h = sql_hash(sql);
    for (int i = 0; i < SQLITE_STMT_CACHE_SLOTS; i++) {
        stmt_slot *s = &c->cache[i];
        if (s->stmt && s->hash == h && strcmp(s->sql, sql) == 0) {
            s->used_at = ++c->use_clock;
            *out = s->stmt;
            return 0;
        }
    }
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
    if (rc != SQLITE_OK) return sqlite_error(e, c->db, rc, "prepare statement");
    c->prepares++;
    char *copy = strdup(sql);
    if (!copy) {
        sqlite3_finalize(stmt);
        return err_set(e, ERR_NOMEM, "prepare statement: out of memory");
    }
    stmt_slot *s = cache_victim(c);
    sqlite3_finalize(s->stmt);
    free(s->sql);
    *s = (stmt_slot){.hash = h, .sql = copy, .stmt = stmt, .used_at = ++c->use_clock};
    *out = stmt;
    return 0;
}

void sqlite_stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Steps st once: 1 = a row, 0 = done, < 0 = an error code. The first step of
 * every execution is where an injected fault strikes. */
int sqlite_stmt_step(sqlite_conn *c, sqlite3_stmt *st, const char *what, err_t *e)
{
    if (!sqlite3_stmt_busy(st) && store_fault_due())
        return err_set(e, ERR_STORAGE, "%s: injected fault", what);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    return sqlite_error(e, c->db, rc, what);
}

/* Runs a statement that returns no rows, then resets it. */
int sqlite_stmt_run(sqlite_conn *c, sqlite3_stmt *st, const char *what, err_t *e)
{
    int rc = sqlite_stmt_step(c, st, what, e);
    sqlite_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* Runs a parameterless statement from the cache (BEGIN, COMMIT, …). */
static int run_cached(sqlite_conn *c, const char *sql, const char *what, err_t *e)
{
    sqlite3_stmt *st;
    int rc = sqlite_stmt_get(c, sql, &st, e);
    return rc ? rc : sqlite_stmt_run(c, st, what, e);
}

/* Runs a rollback-like statement: faults are never injected here, since it
 * is how a caller recovers from one. Failures are logged, not returned. */
static void run_undo(sqlite_conn *c, const char *sql)
{
    err_t e;
    err_init(&e);
    sqlite3_stmt *st;
    if (sqlite_stmt_get(c, sql, &st, &e) == 0) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) sqlite_error(&e, c->db, rc, sql);
        sqlite_stmt_done(st);
    }
    if (e.code) log_error("store: %s", e.msg);
    err_clear(&e);
}

/* Runs one statement without caching it (DDL), with fault injection. */
int sqlite_run_once(sqlite_conn *c, const char *sql, const char *what, err_t *e)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return sqlite_error(e, c->db, rc, what);
    rc = sqlite_stmt_step(c, st, what, e);
    sqlite3_finalize(st);
    return rc < 0 ? rc : 0;
}

int sqlite_bind_check(sqlite_conn *c, int rc, const char *what, err_t *e)
{
    return rc == SQLITE_OK ? 0 : sqlite_error(e, c->db, rc, what);
}

/* --- the driver of the statement layer (sql_driver.h) ------------------------------ */

static void drv_param(sqlbuf *b, int n)
{
    sqlbuf_add(b, "?%d", n);
}

static void drv_use_index(sqlbuf *b, const char *index)
{
    sqlbuf_add(b, " INDEXED BY \"%s\"", index);
}

int sqlite_bind_value(sqlite3_stmt *st, int i, const sql_value *v)
{
    switch (v->type) {
    case SQLV_TEXT:
        return sqlite3_bind_text(st, i, v->bytes, (int)v->len, SQLITE_STATIC);
    case SQLV_BLOB:
        return sqlite3_bind_blob(st, i, v->bytes, (int)v->len, SQLITE_STATIC);
    case SQLV_DOUBLE:
        return sqlite3_bind_double(st, i, v->d);
    case SQLV_INT64:
        return sqlite3_bind_int64(st, i, v->i);
    default:
        return sqlite3_bind_null(st, i);
    }
}

static int drv_run(store_conn *sc, const sql_stmt *s, sql_result *res, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    sqlite3_stmt *st;
    int rc = sqlite_stmt_get(c, s->sql, &st, e);
    if (rc) return rc;
    for (int i = 0; i < s->n_params && rc == 0; i++) {
        ASSERT(s->params[i].len <= INT32_MAX);
        rc = sqlite_bind_check(c, sqlite_bind_value(st, i + 1, &s->params[i]), s->what, e);
    }
    if (rc) {
        sqlite_stmt_done(st);
        return rc;
    }
    if (res) {
        /* Rows are stepped by drv_next; the first step is where a fault strikes. */
        *res = (sql_result){.conn = sc, .impl = st};
        return 0;
    }
    rc = sqlite_stmt_run(c, st, s->what, e);
    if (rc == 0 && s->not_found && sqlite3_changes(c->db) == 0)
        rc = err_set(e, ERR_NOT_FOUND, "%s", s->not_found);
    return rc;
}

static int drv_next(sql_result *res, const char *what, err_t *e)
{
    return sqlite_stmt_step(sqlite_conn_of(res->conn), res->impl, what, e);
}

static const uint8_t *drv_col_bytes(sql_result *res, int col, size_t *len)
{
    sqlite3_stmt *st = res->impl;
    const void *p = sqlite3_column_blob(st, col);
    *len = (size_t)sqlite3_column_bytes(st, col);
    if (!p && *len == 0 && sqlite3_errcode(sqlite3_db_handle(st)) != SQLITE_NOMEM) p = "";
    return p;
}

static double drv_col_double(sql_result *res, int col)
{
    return sqlite3_column_double(res->impl, col);
}

static int64_t drv_col_int64(sql_result *res, int col)
{
    return sqlite3_column_int64(res->impl, col);
}

static void drv_done(sql_result *res)
{
    if (res->impl) sqlite_stmt_done(res->impl);
    res->impl = NULL;
}

const sql_driver sqlite_driver = {
    .engine = "SQLite",
    .param = drv_param,
    .use_index = drv_use_index,
    .bounds_from_first_column = false,
    .run = drv_run,
    .next = drv_next,
    .col_bytes = drv_col_bytes,
    .col_double = drv_col_double,
    .col_int64 = drv_col_int64,
    .done = drv_done,
};

/* --- connections ------------------------------------------------------------------- */

int sqlite_exec(sqlite3 *db, const char *sql, const char *what, err_t *e)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sqlite_error(e, db, rc, what);
}

/* The first column of the first row of sql as text into out ("" when none). */
int sqlite_query_text(sqlite3 *db, const char *sql, char *out, size_t out_bytes, err_t *e)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return sqlite_error(e, db, rc, sql);
    out[0] = '\0';
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(st, 0);
        snprintf(out, out_bytes, "%s", text ? (const char *)text : "");
        rc = SQLITE_DONE;
    }
    int code = rc == SQLITE_DONE ? 0 : sqlite_error(e, db, rc, sql);
    sqlite3_finalize(st);
    return code;
}

/* Opens a connection with the settings every connection has; only
 * store_open creates the file, connections expect it. */
int sqlite_open_db(const char *path, bool create, bool writer, sqlite3 **out, err_t *e)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        int code =
            err_set(e, rc == SQLITE_NOMEM ? ERR_NOMEM : ERR_STORAGE, "cannot open database %s: %s",
                    path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return code;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    rc = sqlite_exec(db, "PRAGMA synchronous=FULL", "set synchronous=FULL", e);
    /* A mutation's savepoint keeps the pages it changes in a statement
     * journal: in memory, not in a temporary file written and read back on
     * every mutation. */
    if (rc == 0) rc = sqlite_exec(db, "PRAGMA temp_store=MEMORY", "set temp_store=MEMORY", e);
    if (rc == 0 && !writer) rc = sqlite_exec(db, "PRAGMA query_only=ON", "set query_only", e);
    if (rc) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

/* The writer's WAL hook: past the threshold, the checkpointer copies the
 * log back on its own thread (see sqlite_checkpoint.h). */
static int on_wal_commit(void *data, sqlite3 *db, const char *name, int pages)
{
    sqlite_store *ss = data;
    /* Once per threshold's worth of new log, not after every commit: a
     * checkpoint that could not reset the log (a reader still uses it) would
     * otherwise run, and fsync, after each commit. */
    if (pages < ss->wal_pages_seen) ss->next_wake_pages = ss->wake_pages;
    ss->wal_pages_seen = pages;
    if (pages >= ss->max_pages) {
        /* Under a load that never pauses the checkpointer never catches up,
         * and the log (and the index SQLite maps beside it) would grow
         * without end: past SQLITE_WAL_BYTES_MAX the writer, between two
         * commits, waits for a checkpoint of everything (most of it copied
         * already) and the next commit starts the log from its beginning. */
        int log_frames = 0, copied = 0;
        int rc =
            sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, &log_frames, &copied);
        if (rc != SQLITE_OK) log_warn("sqlite: bounding the log: %s", sqlite3_errmsg(db));
        ss->restarts++;
        ss->next_wake_pages = ss->wake_pages;
        return SQLITE_OK;
    }
    if (pages >= ss->next_wake_pages && ss->checkpointer) {
        sqlite_checkpointer_wake(ss->checkpointer);
        ss->next_wake_pages = pages + ss->wake_pages;
    }
    return SQLITE_OK;
}

static int hand_checkpoints_over(sqlite_store *ss, sqlite3 *db, err_t *e)
{
    /* The threshold is bytes of log: in this file's pages (an old file may
     * keep a page size of its own). */
    char page[32];
    if (sqlite_query_text(db, "PRAGMA page_size", page, sizeof page, e) == 0 && atoi(page) > 0) {
        ss->wake_pages = ss->wal_wake_bytes / atoi(page);
        ss->max_pages = ss->wal_bytes_max / atoi(page);
    }
    ss->next_wake_pages = ss->wake_pages;
    /* A log started again is cut back to this size on disk. */
    char limit[64];
    snprintf(limit, sizeof limit, "PRAGMA journal_size_limit=%d", ss->wal_bytes_max);
    int lrc = sqlite_query_text(db, limit, page, sizeof page, e);
    if (lrc) return lrc;
    if (!ss->checkpointer) {
        int rc = sqlite_checkpointer_start(ss->path, &ss->checkpointer, e);
        if (rc) return rc;
    }
    int rc = sqlite_exec(db, "PRAGMA wal_autocheckpoint=0", "turn automatic checkpoints off", e);
    if (rc == 0) sqlite3_wal_hook(db, on_wal_commit, ss);
    return rc;
}

static int sqlite_connect(store *st, bool writer, store_conn **out, err_t *e)
{
    sqlite_store *ss = (sqlite_store *)st;
    sqlite_conn *c = calloc(1, sizeof *c);
    if (!c) return err_set(e, ERR_NOMEM, "connect to %s: out of memory", ss->path);
    int rc = sqlite_open_db(ss->path, false, writer, &c->db, e);
    if (rc == 0 && writer) rc = hand_checkpoints_over(ss, c->db, e);
    if (rc) {
        if (c->db) sqlite3_close(c->db);
        free(c);
        return rc;
    }
    c->base = (store_conn){.ops = &sqlite_ops, .st = st};
    c->writer = writer;
    *out = &c->base;
    return 0;
}

static void sqlite_disconnect(store_conn *sc)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    if (!sqlite3_get_autocommit(c->db)) run_undo(c, "ROLLBACK");
    for (int i = 0; i < SQLITE_STMT_CACHE_SLOTS; i++) {
        sqlite3_finalize(c->cache[i].stmt);
        free(c->cache[i].sql);
    }
    int rc = sqlite3_close(c->db);
    ASSERT(rc == SQLITE_OK && "a statement outlived its connection");
    (void)rc;
    free(c);
}

static void sqlite_release_memory(store_conn *sc)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    ASSERT(sqlite3_get_autocommit(c->db) && "release memory inside a transaction");
    sqlite3_db_release_memory(c->db);
}

/* --- transactions ------------------------------------------------------------------ */

static int sqlite_begin(store_conn *sc, bool write, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    ASSERT(sqlite3_get_autocommit(c->db) && "store_begin inside a transaction");
    ASSERT((c->writer || !write) && "a write transaction on a reader connection");
    c->savepoint_depth = 0;
    if (write) return run_cached(c, "BEGIN IMMEDIATE", "begin write transaction", e);
    return run_cached(c, "BEGIN", "begin read transaction", e);
}

static int sqlite_commit(store_conn *sc, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    ASSERT(!sqlite3_get_autocommit(c->db) && "store_commit outside a transaction");
    int rc = run_cached(c, "COMMIT", "commit", e);
    if (rc == 0) c->savepoint_depth = 0;
    return rc;
}

static void sqlite_rollback(store_conn *sc)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    if (!sqlite3_get_autocommit(c->db)) run_undo(c, "ROLLBACK");
    c->savepoint_depth = 0;
}

static int sqlite_savepoint(store_conn *sc, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    ASSERT(c->writer && !sqlite3_get_autocommit(c->db) && "a savepoint outside a transaction");
    ASSERT(c->savepoint_depth < SAVEPOINT_DEPTH_MAX);
    int rc = run_cached(c, "SAVEPOINT " SAVEPOINT_SQL_NAME, "savepoint", e);
    if (rc == 0) c->savepoint_depth++;
    return rc;
}

static int sqlite_savepoint_release(store_conn *sc, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    ASSERT(c->savepoint_depth > 0 && "no savepoint to release");
    int rc = run_cached(c, "RELEASE " SAVEPOINT_SQL_NAME, "release savepoint", e);
    if (rc == 0) c->savepoint_depth--;
    return rc;
}

static void sqlite_savepoint_rollback(store_conn *sc)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    ASSERT(c->savepoint_depth > 0 && "no savepoint to roll back");
    c->savepoint_depth--;
    /* After an I/O error or out-of-memory SQLite may have rolled the whole
     * transaction back already; then there is no savepoint left to undo. */
    if (sqlite3_get_autocommit(c->db)) {
        c->savepoint_depth = 0;
        return;
    }
    run_undo(c, "ROLLBACK TO " SAVEPOINT_SQL_NAME);
    run_undo(c, "RELEASE " SAVEPOINT_SQL_NAME);
}

/* --- opening and closing ------------------------------------------------------------ */

/* Process-wide settings, before SQLite's first use: without memory
 * statistics every allocation of every connection takes a global mutex
 * (the writer and the readers contend on it for nothing). Too late when
 * something used SQLite first (tests): then it is only slower. */
static void configure_once(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int store_sqlite_open(const char *path, const schema *s, store **out,
                      char report[STORE_REPORT_BYTES_MAX], err_t *e)
{
    static pthread_once_t configured = PTHREAD_ONCE_INIT;
    pthread_once(&configured, configure_once);
    char local[STORE_REPORT_BYTES_MAX];
    int rc = sqlite_prepare_file(path, s, report ? report : local, e);
    if (rc) return rc;
    size_t path_bytes = strlen(path) + 1;
    sqlite_store *ss = malloc(sizeof *ss + path_bytes);
    if (!ss) return err_set(e, ERR_NOMEM, "open %s: out of memory", path);
    ss->base = (store){.ops = &sqlite_ops, .sql = &sqlite_driver, .schema = s};
    ss->checkpointer = NULL;
    ss->wal_pages_seen = 0;
    ss->wake_pages = SQLITE_CHECKPOINT_WAL_BYTES / SQLITE_PAGE_BYTES;
    ss->wal_wake_bytes = SQLITE_CHECKPOINT_WAL_BYTES;
    ss->wal_bytes_max = SQLITE_WAL_BYTES_MAX;
    ss->max_pages = SQLITE_WAL_BYTES_MAX / SQLITE_PAGE_BYTES;
    ss->restarts = 0;
    ss->next_wake_pages = ss->wake_pages;
    memcpy(ss->path, path, path_bytes);
    *out = &ss->base;
    return 0;
}

static void sqlite_close(store *st)
{
    ASSERT(st->ops == &sqlite_ops);
    sqlite_checkpointer_stop(((sqlite_store *)st)->checkpointer);
    free(st);
}

/* --- test hooks -------------------------------------------------------------------- */

int store_sqlite_query_text(store_conn *c, const char *sql, char *out, size_t out_bytes, err_t *e)
{
    return sqlite_query_text(sqlite_conn_of(c)->db, sql, out, out_bytes, e);
}

void store_sqlite_set_log_bounds(store *st, int wake_bytes, int max_bytes)
{
    ASSERT(st->ops == &sqlite_ops && wake_bytes > 0 && max_bytes > 0);
    ((sqlite_store *)st)->wal_wake_bytes = wake_bytes;
    ((sqlite_store *)st)->wal_bytes_max = max_bytes;
}

unsigned long store_sqlite_log_restarts(store *st)
{
    return ((sqlite_store *)st)->restarts;
}

unsigned long store_sqlite_checkpoints(store *st)
{
    sqlite_store *ss = (sqlite_store *)st;
    return ss->checkpointer ? sqlite_checkpointer_count(ss->checkpointer) : 0;
}

uint64_t store_sqlite_prepare_count(store_conn *c)
{
    return sqlite_conn_of(c)->prepares;
}

int store_sqlite_scan_plan(store_conn *sc, const store_range *r, char *out, size_t out_bytes,
                           err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    sql_scan_stmt *q = malloc(sizeof *q);
    if (!q) return err_set(e, ERR_NOMEM, "explain scan: out of memory");
    int rc = sql_scan_build(&sqlite_driver, r, false, q, e);
    char sql[SQL_TEXT_BYTES_MAX + 32];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", q->text);
    sqlite3_stmt *st = NULL;
    if (rc == 0 && sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        rc = sqlite_error(e, c->db, sqlite3_errcode(c->db), "explain scan");
    for (int i = 0; i < q->n_params && rc == 0; i++)
        rc = sqlite_bind_check(c, sqlite_bind_value(st, i + 1, &q->params[i]), "explain scan", e);
    sqlbuf b;
    sqlbuf_init(&b, out, out_bytes);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        sqlbuf_add(&b, "%s\n", (const char *)sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    sql_scan_free(q);
    free(q);
    return rc;
}

const store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sqlite_close,
    .connect = sqlite_connect,
    .disconnect = sqlite_disconnect,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .savepoint = sqlite_savepoint,
    .savepoint_release = sqlite_savepoint_release,
    .savepoint_rollback = sqlite_savepoint_rollback,
    .truncate_all = sqlite_truncate_all,
    .release_memory = sqlite_release_memory,
};
