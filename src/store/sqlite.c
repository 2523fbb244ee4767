/*
 * sqlite.c — the SQLite engine of the store (store.h, store_impl.h).
 *
 * store_open (via store.c) calls store_sqlite_open on the thread that starts
 * dojo: it puts the file in WAL mode and brings its schema in line with the
 * declared one, in one transaction. Afterwards each thread that talks to the
 * database owns one sqlite_conn: the storage thread the writer, each reader
 * thread a reader (PRAGMA query_only). Connections are opened with
 * SQLITE_OPEN_NOMUTEX: one thread at a time, never shared concurrently.
 *
 * Layout (see store.h): per table T a SQL table T(id, creation_time, doc) with
 * one CHECK per nonnegative field; per index an expression index "T_<index>"
 * over the index's full key (fields, creation_time, id); a unique index also
 * gets "T_<index>_unique" over its fields alone; every table has
 * "T_by_creation_time"; append-only tables get two triggers that refuse
 * UPDATE and DELETE.
 *
 * Nulls: a field in an index key is indexed as
 * ifnull(json_extract(doc,'$.f'), -9e999), i.e. a missing or null field as
 * -Infinity, below every JSON number. That is the key order of schema.h, and
 * unlike a SQL NULL it compares definitely, so that row-value bounds such as
 * (f, creation_time, id) < (?, ?, ?) treat missing fields as the smallest
 * values instead of as unknown. A null bound is bound as -Infinity.
 *
 * Scans force the index with INDEXED BY (a statement that cannot use it fails
 * to prepare instead of silently scanning the table), fix the leading fields
 * both bounds share with equalities, and seek the rest with row values; SQLite
 * can seek row values over plain columns only, so a bound that starts at an
 * extracted field also gets a scalar bound on that field to seek by.
 *
 * Thread: a store is immutable after open; a sqlite_conn belongs to one
 * thread at a time.
 */
#include "store/sqlite_checkpoint.h"
#include "store/store_impl.h"

#include "base/log.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#define BUSY_TIMEOUT_MS 5000
#define STMT_CACHE_SLOTS 128 /* prepared statements kept per connection */
#define SAVEPOINT_DEPTH_MAX 4
#define SQL_BYTES_MAX 4096  /* a generated DML statement */
#define DDL_BYTES_MAX 16384 /* a generated CREATE statement */
#define SAVEPOINT_SQL_NAME "dojo_mutation"
#define REBUILD_TABLE "_dojo_rebuild"
#define NULL_KEY_SQL "-9e999" /* -Infinity: a missing field in an index key */
#define DOC_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

typedef struct sqlite_store {
    store base;
    sqlite_checkpointer *checkpointer; /* started with the writer connection */
    int wal_pages_seen;                /* writer thread: log size after the last commit */
    int next_wake_pages;               /* writer thread: wake the checkpointer at this size */
    char path[];                       /* the database file */
} sqlite_store;

typedef struct stmt_slot {
    uint64_t hash; /* of sql */
    char *sql;
    sqlite3_stmt *stmt;
    uint64_t used_at; /* the connection's use_clock when last handed out */
} stmt_slot;

typedef struct sqlite_conn {
    store_conn base;
    sqlite3 *db;
    bool writer;
    int savepoint_depth;
    uint64_t use_clock;
    uint64_t prepares; /* statements prepared into the cache, for tests */
    stmt_slot cache[STMT_CACHE_SLOTS];
} sqlite_conn;

static const store_ops sqlite_ops;

static sqlite_conn *conn_of(store_conn *c)
{
    assert(c && c->ops == &sqlite_ops);
    return (sqlite_conn *)c;
}

/* --- errors ------------------------------------------------------------------------ */

/* Maps a SQLite result code to the project's codes, naming the operation. */
static int sqlite_error(err_t *e, sqlite3 *db, int rc, const char *what)
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

/* --- building SQL ------------------------------------------------------------------ */

typedef struct sqlbuf {
    char *text;
    size_t len, cap;
    bool overflow;
} sqlbuf;

static void sql_init(sqlbuf *b, char *storage, size_t cap)
{
    b->text = storage;
    b->len = 0;
    b->cap = cap;
    b->overflow = false;
    storage[0] = '\0';
}

__attribute__((format(printf, 2, 3))) static void sql_add(sqlbuf *b, const char *fmt, ...)
{
    if (b->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->text + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = true;
        return;
    }
    b->len += (size_t)n;
}

/* The field of position i of ix's full key: its fields, then _creationTime
 * (unless already last), then _id — as schema_key_of. */
static const char *key_field(const schema_index *ix, int i)
{
    assert(i >= 0 && i < schema_key_len(ix));
    if (i < ix->n_fields) return ix->fields[i];
    if (i == schema_key_len(ix) - 1) return "_id";
    return "_creationTime";
}

static const char *system_column(const char *field)
{
    if (strcmp(field, "_creationTime") == 0) return "creation_time";
    if (strcmp(field, "_id") == 0) return "id";
    return NULL;
}

/* The expression a field is indexed by in an ordered (non-unique) index. */
static void sql_key_expr(sqlbuf *b, const char *field)
{
    const char *column = system_column(field);
    if (column)
        sql_add(b, "%s", column);
    else
        sql_add(b, "ifnull(json_extract(doc,'$.%s')," NULL_KEY_SQL ")", field);
}

/* The expression a field is constrained by in a unique index: a plain
 * json_extract, so that documents without the field (NULL) never collide. */
static void sql_unique_expr(sqlbuf *b, const char *field)
{
    const char *column = system_column(field);
    if (column)
        sql_add(b, "%s", column);
    else
        sql_add(b, "json_extract(doc,'$.%s')", field);
}

/* --- statements -------------------------------------------------------------------- */

static uint64_t hash_text(const char *s)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot to fill next: an empty one, else the least recently used. */
static stmt_slot *cache_victim(sqlite_conn *c)
{
    stmt_slot *victim = &c->cache[0];
    for (int i = 0; i < STMT_CACHE_SLOTS; i++) {
        stmt_slot *s = &c->cache[i];
        if (!s->stmt) return s;
        if (s->used_at < victim->used_at) victim = s;
    }
    return victim;
}

/* A prepared statement for sql from the connection's cache, prepared on first
 * use. The caller resets it (stmt_done) before it uses another statement that
 * might evict it. */
static int stmt_get(sqlite_conn *c, const char *sql, sqlite3_stmt **out, err_t *e)
{
    uint64_t h = hash_text(sql);
    for (int i = 0; i < STMT_CACHE_SLOTS; i++) {
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

static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Steps st once: 1 = a row, 0 = done, < 0 = an error code. The first step of
 * every execution is where an injected fault strikes. */
static int stmt_step(sqlite_conn *c, sqlite3_stmt *st, const char *what, err_t *e)
{
    if (!sqlite3_stmt_busy(st) && store_fault_due())
        return err_set(e, ERR_STORAGE, "%s: injected fault", what);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    return sqlite_error(e, c->db, rc, what);
}

/* Runs a statement that returns no rows, then resets it. */
static int stmt_run(sqlite_conn *c, sqlite3_stmt *st, const char *what, err_t *e)
{
    int rc = stmt_step(c, st, what, e);
    stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* Runs a parameterless statement from the cache (BEGIN, COMMIT, …). */
static int run_cached(sqlite_conn *c, const char *sql, const char *what, err_t *e)
{
    sqlite3_stmt *st;
    int rc = stmt_get(c, sql, &st, e);
    return rc ? rc : stmt_run(c, st, what, e);
}

/* Runs a rollback-like statement: faults are never injected here, since it
 * is how a caller recovers from one. Failures are logged, not returned. */
static void run_undo(sqlite_conn *c, const char *sql)
{
    err_t e;
    err_init(&e);
    sqlite3_stmt *st;
    if (stmt_get(c, sql, &st, &e) == 0) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) sqlite_error(&e, c->db, rc, sql);
        stmt_done(st);
    }
    if (e.code) log_error("store: %s", e.msg);
    err_clear(&e);
}

/* Runs one statement without caching it (DDL), with fault injection. */
static int run_once(sqlite_conn *c, const char *sql, const char *what, err_t *e)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return sqlite_error(e, c->db, rc, what);
    rc = stmt_step(c, st, what, e);
    sqlite3_finalize(st);
    return rc < 0 ? rc : 0;
}

static int bind_check(sqlite_conn *c, int rc, const char *what, err_t *e)
{
    return rc == SQLITE_OK ? 0 : sqlite_error(e, c->db, rc, what);
}

/* Binds an index value the way json_extract yields it: strings as TEXT,
 * integers as INTEGER, reals as REAL, booleans as 1/0, null as -Infinity. The
 * value must outlive the statement's execution. */
static int bind_value(sqlite3_stmt *st, int i, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return sqlite3_bind_text(st, i, json_string_value(v), (int)json_string_length(v),
                                 SQLITE_STATIC);
    case JSON_INTEGER:
        return sqlite3_bind_int64(st, i, json_integer_value(v));
    case JSON_REAL:
        return sqlite3_bind_double(st, i, json_real_value(v));
    case JSON_TRUE:
        return sqlite3_bind_int(st, i, 1);
    case JSON_FALSE:
        return sqlite3_bind_int(st, i, 0);
    case JSON_NULL:
        return sqlite3_bind_double(st, i, -INFINITY);
    default:
        return SQLITE_MISMATCH;
    }
}

/* Parses the doc column of the current row. */
static int column_doc(sqlite3_stmt *st, int col, const char *table, json_t **out, err_t *e)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (!text) return err_set(e, ERR_NOMEM, "read %s: out of memory", table);
    json_error_t jerr;
    *out = json_loadb(text, (size_t)n, JSON_ALLOW_NUL, &jerr);
    if (!*out)
        return err_set(e, ERR_STORAGE, "read %s: a stored document is not valid JSON: %s", table,
                       jerr.text);
    return 0;
}

/* --- connections ------------------------------------------------------------------- */

static int exec_sql(sqlite3 *db, const char *sql, const char *what, err_t *e)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sqlite_error(e, db, rc, what);
}

/* The first column of the first row of sql as text into out ("" when none). */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t out_bytes, err_t *e)
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
static int open_db(const char *path, bool create, bool writer, sqlite3 **out, err_t *e)
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
    rc = exec_sql(db, "PRAGMA synchronous=FULL", "set synchronous=FULL", e);
    if (rc == 0 && !writer) rc = exec_sql(db, "PRAGMA query_only=ON", "set query_only", e);
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
    (void)db;
    (void)name;
    sqlite_store *ss = data;
    /* Once per threshold's worth of new log, not after every commit: a
     * checkpoint that could not reset the log (a reader still uses it) would
     * otherwise run, and fsync, after each commit. */
    if (pages < ss->wal_pages_seen) ss->next_wake_pages = SQLITE_CHECKPOINT_WAL_PAGES;
    ss->wal_pages_seen = pages;
    if (pages >= ss->next_wake_pages && ss->checkpointer) {
        sqlite_checkpointer_wake(ss->checkpointer);
        ss->next_wake_pages = pages + SQLITE_CHECKPOINT_WAL_PAGES;
    }
    return SQLITE_OK;
}

static int hand_checkpoints_over(sqlite_store *ss, sqlite3 *db, err_t *e)
{
    if (!ss->checkpointer) {
        int rc = sqlite_checkpointer_start(ss->path, &ss->checkpointer, e);
        if (rc) return rc;
    }
    int rc = exec_sql(db, "PRAGMA wal_autocheckpoint=0", "turn automatic checkpoints off", e);
    if (rc == 0) sqlite3_wal_hook(db, on_wal_commit, ss);
    return rc;
}

static int sqlite_connect(store *st, bool writer, store_conn **out, err_t *e)
{
    sqlite_store *ss = (sqlite_store *)st;
    sqlite_conn *c = calloc(1, sizeof *c);
    if (!c) return err_set(e, ERR_NOMEM, "connect to %s: out of memory", ss->path);
    int rc = open_db(ss->path, false, writer, &c->db, e);
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
    sqlite_conn *c = conn_of(sc);
    if (!sqlite3_get_autocommit(c->db)) run_undo(c, "ROLLBACK");
    for (int i = 0; i < STMT_CACHE_SLOTS; i++) {
        sqlite3_finalize(c->cache[i].stmt);
        free(c->cache[i].sql);
    }
    int rc = sqlite3_close(c->db);
    assert(rc == SQLITE_OK && "a statement outlived its connection");
    (void)rc;
    free(c);
}

/* --- transactions ------------------------------------------------------------------ */

static int sqlite_begin(store_conn *sc, bool write, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    assert(sqlite3_get_autocommit(c->db) && "store_begin inside a transaction");
    assert((c->writer || !write) && "a write transaction on a reader connection");
    c->savepoint_depth = 0;
    if (write) return run_cached(c, "BEGIN IMMEDIATE", "begin write transaction", e);
    return run_cached(c, "BEGIN", "begin read transaction", e);
}

static int sqlite_commit(store_conn *sc, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    assert(!sqlite3_get_autocommit(c->db) && "store_commit outside a transaction");
    int rc = run_cached(c, "COMMIT", "commit", e);
    if (rc == 0) c->savepoint_depth = 0;
    return rc;
}

static void sqlite_rollback(store_conn *sc)
{
    sqlite_conn *c = conn_of(sc);
    if (!sqlite3_get_autocommit(c->db)) run_undo(c, "ROLLBACK");
    c->savepoint_depth = 0;
}

static int sqlite_savepoint(store_conn *sc, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    assert(c->writer && !sqlite3_get_autocommit(c->db) && "a savepoint outside a transaction");
    assert(c->savepoint_depth < SAVEPOINT_DEPTH_MAX);
    int rc = run_cached(c, "SAVEPOINT " SAVEPOINT_SQL_NAME, "savepoint", e);
    if (rc == 0) c->savepoint_depth++;
    return rc;
}

static int sqlite_savepoint_release(store_conn *sc, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    assert(c->savepoint_depth > 0 && "no savepoint to release");
    int rc = run_cached(c, "RELEASE " SAVEPOINT_SQL_NAME, "release savepoint", e);
    if (rc == 0) c->savepoint_depth--;
    return rc;
}

static void sqlite_savepoint_rollback(store_conn *sc)
{
    sqlite_conn *c = conn_of(sc);
    assert(c->savepoint_depth > 0 && "no savepoint to roll back");
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

/* --- documents --------------------------------------------------------------------- */

/* _id and _creationTime of a document about to be written. */
static int doc_identity(const schema_table *t, const json_t *doc, const char **id, double *ct,
                        const char *what, err_t *e)
{
    const json_t *jid = json_object_get(doc, "_id");
    const json_t *jct = json_object_get(doc, "_creationTime");
    if (!json_is_string(jid) || !json_is_number(jct))
        return err_set(e, ERR_INTERNAL, "%s %s: the document lacks _id or _creationTime", what,
                       t->name);
    *id = json_string_value(jid);
    *ct = json_number_value(jct);
    return 0;
}

static int sqlite_get(store_conn *sc, const schema_table *t, const char *id, json_t **doc_out,
                      err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    char sql[SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "SELECT doc FROM \"%s\" WHERE id = ?", t->name);
    snprintf(what, sizeof what, "get from %s", t->name);
    sqlite3_stmt *st;
    int rc = stmt_get(c, sql, &st, e);
    if (rc) return rc;
    rc = bind_check(c, sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), what, e);
    if (rc == 0) rc = stmt_step(c, st, what, e);
    if (rc == 1) rc = column_doc(st, 0, t->name, doc_out, e);
    stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* Writes (id, creation_time, doc) with sql, whose parameters are
 * creation_time, doc, id in this order. */
static int write_doc(sqlite_conn *c, const schema_table *t, const json_t *doc, const char *sql,
                     const char *what, err_t *e)
{
    const char *id = NULL;
    double ct = 0;
    int rc = doc_identity(t, doc, &id, &ct, what, e);
    if (rc) return rc;
    char *text = json_dumps(doc, DOC_DUMP_FLAGS);
    if (!text) return err_set(e, ERR_NOMEM, "%s %s: cannot encode the document", what, t->name);
    sqlite3_stmt *st;
    rc = stmt_get(c, sql, &st, e);
    if (rc == 0) {
        int brc = sqlite3_bind_double(st, 1, ct);
        if (brc == SQLITE_OK) brc = sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
        if (brc == SQLITE_OK) brc = sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
        rc = bind_check(c, brc, what, e);
        if (rc == 0)
            rc = stmt_run(c, st, what, e);
        else
            stmt_done(st);
    }
    free(text);
    return rc;
}

static int sqlite_insert(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e)
{
    char sql[SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "INSERT INTO \"%s\" (creation_time, doc, id) VALUES (?1, ?2, ?3)",
             t->name);
    snprintf(what, sizeof what, "insert into %s", t->name);
    return write_doc(conn_of(sc), t, doc, sql, what, e);
}

/* ERR_NOT_FOUND when the last statement changed no row. */
static int changed_one(sqlite_conn *c, const schema_table *t, const char *id, const char *what,
                       err_t *e)
{
    if (sqlite3_changes(c->db) > 0) return 0;
    return err_set(e, ERR_NOT_FOUND, "%s: no document %s in %s", what, id, t->name);
}

static int sqlite_replace(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    char sql[SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "UPDATE \"%s\" SET creation_time = ?1, doc = ?2 WHERE id = ?3",
             t->name);
    snprintf(what, sizeof what, "replace in %s", t->name);
    int rc = write_doc(c, t, doc, sql, what, e);
    if (rc) return rc;
    return changed_one(c, t, json_string_value(json_object_get(doc, "_id")), what, e);
}

static int sqlite_delete(store_conn *sc, const schema_table *t, const char *id, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    char sql[SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\" WHERE id = ?", t->name);
    snprintf(what, sizeof what, "delete from %s", t->name);
    sqlite3_stmt *st;
    int rc = stmt_get(c, sql, &st, e);
    if (rc) return rc;
    rc = bind_check(c, sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), what, e);
    if (rc == 0)
        rc = stmt_run(c, st, what, e);
    else
        stmt_done(st);
    return rc ? rc : changed_one(c, t, id, what, e);
}

static int sqlite_count(store_conn *sc, const schema_table *t, int64_t *n_out, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    char sql[SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", t->name);
    snprintf(what, sizeof what, "count %s", t->name);
    sqlite3_stmt *st;
    int rc = stmt_get(c, sql, &st, e);
    if (rc) return rc;
    rc = stmt_step(c, st, what, e);
    if (rc == 1) *n_out = sqlite3_column_int64(st, 0);
    stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* --- scans ------------------------------------------------------------------------- */

/* The statement of a scan and the values its parameters are bound to, in
 * order; the LIMIT comes last. */
typedef struct scan_sql {
    char text[SQL_BYTES_MAX];
    sqlbuf b;
    const json_t *params[3 * SCHEMA_KEY_LEN_MAX + 2];
    int n_params;
    int n_conditions;
    bool empty; /* the bounds admit no key: nothing to run */
} scan_sql;

static void scan_param(scan_sql *q, const json_t *v)
{
    assert(q->n_params < (int)(sizeof q->params / sizeof q->params[0]));
    q->params[q->n_params++] = v;
}

static void scan_condition_start(scan_sql *q)
{
    sql_add(&q->b, q->n_conditions++ ? " AND " : " WHERE ");
}

/* "(E_from, …, E_to-1) op (?, …)" for the bound's values from..to. */
static void scan_row_condition(scan_sql *q, const schema_index *ix, const json_t *bound, int from,
                               int to, const char *op)
{
    scan_condition_start(q);
    sql_add(&q->b, "(");
    for (int i = from; i < to; i++) {
        if (i > from) sql_add(&q->b, ", ");
        sql_key_expr(&q->b, key_field(ix, i));
    }
    sql_add(&q->b, ") %s (", op);
    for (int i = from; i < to; i++) {
        sql_add(&q->b, i > from ? ", ?" : "?");
        scan_param(q, json_array_get(bound, (size_t)i));
    }
    sql_add(&q->b, ")");
}

/* The part of a bound past the equality prefix: a row value, plus a scalar
 * bound on its first field when that is an extracted field, to seek by. */
static void scan_bound(scan_sql *q, const schema_index *ix, const json_t *bound, int from,
                       bool lower, bool inclusive)
{
    int to = (int)json_array_size(bound);
    const char *op = lower ? (inclusive ? ">=" : ">") : (inclusive ? "<=" : "<");
    if (to - from > 1 && !system_column(key_field(ix, from))) {
        scan_condition_start(q);
        sql_key_expr(&q->b, key_field(ix, from));
        sql_add(&q->b, " %s ?", lower ? ">=" : "<=");
        scan_param(q, json_array_get(bound, (size_t)from));
    }
    scan_row_condition(q, ix, bound, from, to, op);
}

/* Length of the prefix both bounds share: those fields are fixed. */
static int equal_prefix(const store_range *r)
{
    if (!r->lo || !r->hi) return 0;
    size_t n = json_array_size(r->lo) < json_array_size(r->hi) ? json_array_size(r->lo)
                                                               : json_array_size(r->hi);
    size_t i = 0;
    while (i < n && schema_value_cmp(json_array_get(r->lo, i), json_array_get(r->hi, i)) == 0)
        i++;
    return (int)i;
}

static int check_bound(const store_range *r, const json_t *bound, err_t *e)
{
    if (!bound) return 0;
    size_t n = json_is_array(bound) ? json_array_size(bound) : 0;
    if (n < 1 || (int)n > schema_key_len(r->index))
        return err_set(e, ERR_INTERNAL, "scan %s.%s: a bound must be an array of 1..%d values",
                       r->table->name, r->index->name, schema_key_len(r->index));
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(bound, i);
        if (json_is_object(v) || json_is_array(v))
            return err_set(e, ERR_INTERNAL, "scan %s.%s: bound value %zu is not a scalar",
                           r->table->name, r->index->name, i);
    }
    return 0;
}

static void scan_order(scan_sql *q, const schema_index *ix, int from, bool descending)
{
    int key_len = schema_key_len(ix);
    for (int i = from; i < key_len; i++) {
        sql_add(&q->b, i > from ? ", " : " ORDER BY ");
        sql_key_expr(&q->b, key_field(ix, i));
        if (descending) sql_add(&q->b, " DESC");
    }
}

/* Builds the statement of a scan (see the file comment). */
static int scan_build(const store_range *r, scan_sql *q, err_t *e)
{
    int rc = check_bound(r, r->lo, e);
    if (rc == 0) rc = check_bound(r, r->hi, e);
    if (rc) return rc;
    sql_init(&q->b, q->text, sizeof q->text);
    q->n_params = q->n_conditions = 0;
    int eq = equal_prefix(r);
    int n_lo = r->lo ? (int)json_array_size(r->lo) : 0;
    int n_hi = r->hi ? (int)json_array_size(r->hi) : 0;
    /* K[0..eq) == lo[0..eq): an exclusive bound that ends there admits nothing. */
    q->empty =
        (r->lo && n_lo == eq && !r->lo_inclusive) || (r->hi && n_hi == eq && !r->hi_inclusive);
    const char *t = r->table->name, *ix = r->index->name;
    sql_add(&q->b, "SELECT doc FROM \"%s\" INDEXED BY \"%s_%s\"", t, t, ix);
    for (int i = 0; i < eq; i++) {
        scan_condition_start(q);
        sql_key_expr(&q->b, key_field(r->index, i));
        sql_add(&q->b, " = ?");
        scan_param(q, json_array_get(r->lo, (size_t)i));
    }
    if (n_lo > eq) scan_bound(q, r->index, r->lo, eq, true, r->lo_inclusive);
    if (n_hi > eq) scan_bound(q, r->index, r->hi, eq, false, r->hi_inclusive);
    scan_order(q, r->index, eq, r->descending);
    sql_add(&q->b, " LIMIT ?");
    if (q->b.overflow)
        return err_set(e, ERR_INTERNAL, "scan %s.%s: statement longer than %d bytes", t, ix,
                       SQL_BYTES_MAX);
    return 0;
}

static int scan_bind(sqlite_conn *c, sqlite3_stmt *st, const scan_sql *q, int limit,
                     const char *what, err_t *e)
{
    for (int i = 0; i < q->n_params; i++) {
        int rc = bind_value(st, i + 1, q->params[i]);
        if (rc != SQLITE_OK) return bind_check(c, rc, what, e);
    }
    return bind_check(c, sqlite3_bind_int(st, q->n_params + 1, limit), what, e);
}

static int scan_rows(sqlite_conn *c, sqlite3_stmt *st, const char *table, json_t *rows,
                     const char *what, err_t *e)
{
    int rc;
    while ((rc = stmt_step(c, st, what, e)) == 1) {
        json_t *doc;
        rc = column_doc(st, 0, table, &doc, e);
        if (rc) return rc;
        if (json_array_append_new(rows, doc) != 0)
            return err_set(e, ERR_NOMEM, "%s: out of memory", what);
    }
    return rc;
}

static int sqlite_scan(store_conn *sc, const store_range *r, json_t **rows_out, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    scan_sql q;
    int rc = scan_build(r, &q, e);
    if (rc) return rc;
    json_t *rows = json_array();
    if (!rows) return err_set(e, ERR_NOMEM, "scan %s: out of memory", r->table->name);
    if (q.empty) {
        *rows_out = rows;
        return 0;
    }
    char what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(what, sizeof what, "scan %s.%s", r->table->name, r->index->name);
    sqlite3_stmt *st;
    rc = stmt_get(c, q.text, &st, e);
    if (rc == 0) {
        rc = scan_bind(c, st, &q, r->limit, what, e);
        if (rc == 0) rc = scan_rows(c, st, r->table->name, rows, what, e);
        stmt_done(st);
    }
    if (rc) {
        json_decref(rows);
        return rc;
    }
    *rows_out = rows;
    return 0;
}

/* --- metadata, truncation, health -------------------------------------------------- */

static int sqlite_meta_get(store_conn *sc, const char *key, char **value_out, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    sqlite3_stmt *st;
    int rc = stmt_get(c, "SELECT value FROM _dojo_meta WHERE key = ?", &st, e);
    if (rc) return rc;
    rc = bind_check(c, sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC), "read metadata", e);
    if (rc == 0) rc = stmt_step(c, st, "read metadata", e);
    if (rc == 1) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        *value_out = text ? strdup(text) : NULL;
        rc = *value_out ? 0 : err_set(e, ERR_NOMEM, "read metadata: out of memory");
    }
    stmt_done(st);
    return rc < 0 ? rc : 0;
}

static int sqlite_meta_set(store_conn *sc, const char *key, const char *value, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    sqlite3_stmt *st;
    int rc = stmt_get(c,
                      "INSERT INTO _dojo_meta (key, value) VALUES (?1, ?2) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                      &st, e);
    if (rc) return rc;
    int brc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (brc == SQLITE_OK) brc = sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    rc = bind_check(c, brc, "write metadata", e);
    if (rc == 0) return stmt_run(c, st, "write metadata", e);
    stmt_done(st);
    return rc;
}

/* The DDL of the guard triggers of an append-only table. */
static void sql_guard_trigger(sqlbuf *b, const schema_table *t, bool on_update)
{
    const char *op = on_update ? "UPDATE" : "DELETE";
    sql_add(b,
            "CREATE TRIGGER \"%s_append_only_%s\" BEFORE %s ON \"%s\" BEGIN SELECT "
            "RAISE(ABORT, '%s is append-only: rows are never updated or deleted'); END",
            t->name, on_update ? "update" : "delete", op, t->name, t->name);
}

static int truncate_table(sqlite_conn *c, const schema_table *t, err_t *e)
{
    char sql[DDL_BYTES_MAX];
    int rc = 0;
    for (int update = 0; update < 2 && rc == 0 && t->append_only; update++) {
        snprintf(sql, sizeof sql, "DROP TRIGGER IF EXISTS \"%s_append_only_%s\"", t->name,
                 update ? "update" : "delete");
        rc = run_once(c, sql, "truncate: drop guard", e);
    }
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\"", t->name);
    if (rc == 0) rc = run_once(c, sql, "truncate", e);
    for (int update = 0; update < 2 && rc == 0 && t->append_only; update++) {
        sqlbuf b;
        sql_init(&b, sql, sizeof sql);
        sql_guard_trigger(&b, t, update);
        assert(!b.overflow);
        rc = run_once(c, sql, "truncate: re-create guard", e);
    }
    return rc;
}

static int sqlite_truncate_all(store_conn *sc, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    assert(c->writer && !sqlite3_get_autocommit(c->db) && "truncate outside a write transaction");
    const schema *s = c->base.st->schema;
    for (int i = 0; i < s->n_tables; i++) {
        int rc = truncate_table(c, &s->tables[i], e);
        if (rc) return rc;
    }
    return 0;
}

static int sqlite_ping(store_conn *sc, err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    sqlite3_stmt *st;
    int rc = stmt_get(c, "SELECT 1", &st, e);
    if (rc) return rc;
    rc = stmt_step(c, st, "ping", e);
    stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* --- schema: the DDL a schema asks for --------------------------------------------- */

typedef enum { OBJ_TABLE, OBJ_INDEX, OBJ_TRIGGER } obj_type;

static const char *const obj_type_names[] = {"table", "index", "trigger"};

/* One schema object the declared schema asks for. */
typedef struct ddl_object {
    obj_type type;
    char name[STORE_SQL_NAME_BYTES_MAX];
    const schema_table *table;
    char *sql; /* malloc'd; exactly as sqlite_master will store it */
} ddl_object;

typedef struct ddl_plan {
    ddl_object *objects;
    int n;
} ddl_plan;

static void plan_free(ddl_plan *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->objects[i].sql);
    free(p->objects);
    p->objects = NULL;
    p->n = 0;
}

static void sql_table(sqlbuf *b, const schema_table *t)
{
    sql_add(b,
            "CREATE TABLE \"%s\" (id TEXT PRIMARY KEY, creation_time REAL NOT NULL, "
            "doc TEXT NOT NULL",
            t->name);
    for (const char *const *f = t->nonnegative_fields; f && *f; f++)
        sql_add(b, ", CONSTRAINT \"%s_%s_nonnegative\" CHECK (json_extract(doc,'$.%s') >= 0)",
                t->name, *f, *f);
    sql_add(b, ")");
}

static void sql_index(sqlbuf *b, const schema_table *t, const schema_index *ix)
{
    sql_add(b, "CREATE INDEX \"%s_%s\" ON \"%s\" (", t->name, ix->name, t->name);
    for (int i = 0; i < schema_key_len(ix); i++) {
        if (i > 0) sql_add(b, ", ");
        sql_key_expr(b, key_field(ix, i));
    }
    sql_add(b, ")");
}

static void sql_unique_index(sqlbuf *b, const schema_table *t, const schema_index *ix)
{
    sql_add(b, "CREATE UNIQUE INDEX \"%s_%s_unique\" ON \"%s\" (", t->name, ix->name, t->name);
    for (int i = 0; i < ix->n_fields; i++) {
        if (i > 0) sql_add(b, ", ");
        sql_unique_expr(b, ix->fields[i]);
    }
    sql_add(b, ")");
}

/* Appends one object with the DDL in b, refusing a name given twice. */
static int plan_add(ddl_plan *p, obj_type type, const schema_table *t, const char *name,
                    const sqlbuf *b, err_t *e)
{
    if (b->overflow)
        return err_set(e, ERR_INTERNAL, "schema: the DDL of %s is longer than %d bytes", name,
                       DDL_BYTES_MAX);
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->objects[i].name, name) == 0)
            return err_set(e, ERR_INTERNAL, "schema: two schema objects are named %s", name);
    ddl_object *o = &p->objects[p->n];
    o->type = type;
    o->table = t;
    snprintf(o->name, sizeof o->name, "%s", name);
    o->sql = strdup(b->text);
    if (!o->sql) return err_set(e, ERR_NOMEM, "schema: out of memory");
    p->n++;
    return 0;
}

static int plan_table(ddl_plan *p, const schema_table *t, char *ddl, err_t *e)
{
    char name[STORE_SQL_NAME_BYTES_MAX];
    sqlbuf b;
    sql_init(&b, ddl, DDL_BYTES_MAX);
    sql_table(&b, t);
    int rc = plan_add(p, OBJ_TABLE, t, t->name, &b, e);
    for (int i = -1; i < t->n_indexes && rc == 0; i++) {
        const schema_index *ix = i < 0 ? &schema_by_creation_time : &t->indexes[i];
        sql_init(&b, ddl, DDL_BYTES_MAX);
        sql_index(&b, t, ix);
        snprintf(name, sizeof name, "%s_%s", t->name, ix->name);
        rc = plan_add(p, OBJ_INDEX, t, name, &b, e);
        if (rc || !ix->unique) continue;
        sql_init(&b, ddl, DDL_BYTES_MAX);
        sql_unique_index(&b, t, ix);
        snprintf(name, sizeof name, "%s_%s_unique", t->name, ix->name);
        rc = plan_add(p, OBJ_INDEX, t, name, &b, e);
    }
    for (int update = 0; update < 2 && rc == 0 && t->append_only; update++) {
        sql_init(&b, ddl, DDL_BYTES_MAX);
        sql_guard_trigger(&b, t, update);
        snprintf(name, sizeof name, "%s_append_only_%s", t->name, update ? "update" : "delete");
        rc = plan_add(p, OBJ_TRIGGER, t, name, &b, e);
    }
    return rc;
}

/* Every object the schema asks for: per table the table, then its indexes,
 * then its triggers. */
static int plan_schema(const schema *s, ddl_plan *p, err_t *e)
{
    size_t n_max = 1;
    for (int i = 0; i < s->n_tables; i++)
        n_max += 4 + 2 * (size_t)s->tables[i].n_indexes; /* table, implicit index, 2 guards */
    p->n = 0;
    p->objects = calloc(n_max, sizeof *p->objects);
    char *ddl = malloc(DDL_BYTES_MAX);
    int rc = (p->objects && ddl) ? 0 : err_set(e, ERR_NOMEM, "schema: out of memory");
    for (int i = 0; i < s->n_tables && rc == 0; i++)
        rc = plan_table(p, &s->tables[i], ddl, e);
    free(ddl);
    if (rc) plan_free(p);
    return rc;
}

/* --- schema: bringing a database in line ------------------------------------------- */

typedef struct ddl_counts {
    int tables_created, tables_rebuilt;
    int indexes_created, indexes_dropped;
    int triggers_created, triggers_dropped;
} ddl_counts;

/* The DDL sqlite_master holds for an object (malloc'd), or NULL when there is
 * no such object. */
static int stored_sql(sqlite3 *db, obj_type type, const char *name, char **out, err_t *e)
{
    *out = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE type = ? AND name = ?", -1,
                                &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, obj_type_names[type], -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *sql = (const char *)sqlite3_column_text(st, 0);
        *out = strdup(sql ? sql : "");
        rc = *out ? SQLITE_DONE : SQLITE_NOMEM;
    }
    int code = rc == SQLITE_DONE ? 0 : sqlite_error(e, db, rc, "read the schema");
    sqlite3_finalize(st);
    return code;
}

static const ddl_object *plan_find(const ddl_plan *p, const char *type, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(obj_type_names[p->objects[i].type], type) == 0 &&
            strcmp(p->objects[i].name, name) == 0)
            return &p->objects[i];
    return NULL;
}

/* DROP statements (sqlite3_mprintf'd) for the indexes and triggers on
 * declared tables that the schema no longer asks for. Collected first:
 * sqlite_master cannot change while it is being read. */
static int collect_undeclared(sqlite3 *db, const schema *s, const ddl_plan *p, char **drops,
                              bool *is_index, int drops_max, int *n_drops, err_t *e)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT type, name, tbl_name FROM sqlite_master "
                                "WHERE type IN ('index', 'trigger') AND sql IS NOT NULL",
                                -1, &st, NULL);
    *n_drops = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *table = (const char *)sqlite3_column_text(st, 2);
        if (!type || !name || !table || !schema_table_by_name(s, table))
            rc = SQLITE_OK;
        else if (plan_find(p, type, name))
            rc = SQLITE_OK;
        else if (*n_drops >= drops_max)
            rc = SQLITE_FULL;
        else {
            bool index = strcmp(type, "index") == 0;
            drops[*n_drops] = sqlite3_mprintf("DROP %s \"%w\"", index ? "INDEX" : "TRIGGER", name);
            is_index[*n_drops] = index;
            rc = drops[(*n_drops)++] ? SQLITE_OK : SQLITE_NOMEM;
        }
    }
    int code = rc == SQLITE_DONE ? 0 : sqlite_error(e, db, rc, "list schema objects");
    sqlite3_finalize(st);
    return code;
}

static int drop_undeclared(sqlite3 *db, const schema *s, const ddl_plan *p, ddl_counts *n, err_t *e)
{
    enum { DROPS_MAX = 1024 };
    char **drops = calloc(DROPS_MAX, sizeof *drops);
    bool *is_index = calloc(DROPS_MAX, sizeof *is_index);
    int n_drops = 0;
    int rc = (drops && is_index) ? 0 : err_set(e, ERR_NOMEM, "schema: out of memory");
    if (rc == 0) rc = collect_undeclared(db, s, p, drops, is_index, DROPS_MAX, &n_drops, e);
    for (int i = 0; i < n_drops; i++) {
        if (rc == 0) rc = exec_sql(db, drops[i], "drop an undeclared index or trigger", e);
        if (rc == 0 && is_index[i]) n->indexes_dropped++;
        if (rc == 0 && !is_index[i]) n->triggers_dropped++;
        sqlite3_free(drops[i]);
    }
    free(drops);
    free(is_index);
    return rc;
}

/* Re-creates a table whose DDL (its CHECKs) changed, keeping its rows. Its
 * indexes and triggers go with the old table and are re-created afterwards. */
static int rebuild_table(sqlite3 *db, const ddl_object *o, err_t *e)
{
    char sql[DDL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX + 32];
    snprintf(what, sizeof what, "migrate table %s", o->name);
    snprintf(sql, sizeof sql, "ALTER TABLE \"%s\" RENAME TO \"" REBUILD_TABLE "\"", o->name);
    int rc = exec_sql(db, sql, what, e);
    if (rc == 0) rc = exec_sql(db, o->sql, what, e);
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\" (id, creation_time, doc) "
             "SELECT id, creation_time, doc FROM \"" REBUILD_TABLE "\"",
             o->name);
    if (rc == 0) rc = exec_sql(db, sql, what, e);
    if (rc == 0) rc = exec_sql(db, "DROP TABLE \"" REBUILD_TABLE "\"", what, e);
    return rc;
}

static int ensure_table(sqlite3 *db, const ddl_object *o, ddl_counts *n, err_t *e)
{
    char *stored;
    int rc = stored_sql(db, OBJ_TABLE, o->name, &stored, e);
    if (rc) return rc;
    if (!stored) {
        rc = exec_sql(db, o->sql, "create table", e);
        if (rc == 0) n->tables_created++;
    } else if (strcmp(stored, o->sql) != 0) {
        rc = rebuild_table(db, o, e);
        if (rc == 0) n->tables_rebuilt++;
    }
    free(stored);
    return rc;
}

/* Creates an index or trigger, replacing one of that name whose DDL differs. */
static int ensure_object(sqlite3 *db, const ddl_object *o, ddl_counts *n, err_t *e)
{
    char *stored;
    int rc = stored_sql(db, o->type, o->name, &stored, e);
    if (rc || (stored && strcmp(stored, o->sql) == 0)) {
        free(stored);
        return rc;
    }
    bool index = o->type == OBJ_INDEX;
    if (stored) {
        char sql[STORE_SQL_NAME_BYTES_MAX + 32];
        snprintf(sql, sizeof sql, "DROP %s \"%s\"", index ? "INDEX" : "TRIGGER", o->name);
        rc = exec_sql(db, sql, "drop a changed index or trigger", e);
        if (rc == 0) *(index ? &n->indexes_dropped : &n->triggers_dropped) += 1;
        free(stored);
    }
    if (rc == 0) rc = exec_sql(db, o->sql, index ? "create index" : "create trigger", e);
    if (rc == 0) *(index ? &n->indexes_created : &n->triggers_created) += 1;
    return rc;
}

static int apply_plan(sqlite3 *db, const schema *s, const ddl_plan *p, ddl_counts *n, err_t *e)
{
    int rc = drop_undeclared(db, s, p, n, e);
    for (int i = 0; i < p->n && rc == 0; i++)
        if (p->objects[i].type == OBJ_TABLE) rc = ensure_table(db, &p->objects[i], n, e);
    for (int i = 0; i < p->n && rc == 0; i++)
        if (p->objects[i].type != OBJ_TABLE) rc = ensure_object(db, &p->objects[i], n, e);
    return rc;
}

/* "created 3 tables, 8 indexes; dropped 1 index" — or "" when nothing changed. */
static void add_phrase(sqlbuf *b, const char *verb, int tables, int indexes, int triggers)
{
    if (!tables && !indexes && !triggers) return;
    sql_add(b, "%s%s", b->len ? "; " : "", verb);
    const char *sep = " ";
    if (tables) sql_add(b, "%s%d table%s", sep, tables, tables == 1 ? "" : "s");
    if (tables) sep = ", ";
    if (indexes) sql_add(b, "%s%d index%s", sep, indexes, indexes == 1 ? "" : "es");
    if (indexes) sep = ", ";
    if (triggers) sql_add(b, "%s%d trigger%s", sep, triggers, triggers == 1 ? "" : "s");
}

static void write_report(char *report, int from, int to, const ddl_counts *n)
{
    char text[STORE_REPORT_BYTES_MAX - 64]; /* room for the words around it */
    sqlbuf b;
    sql_init(&b, text, sizeof text);
    add_phrase(&b, "created", n->tables_created, n->indexes_created, n->triggers_created);
    add_phrase(&b, "rebuilt", n->tables_rebuilt, 0, 0);
    add_phrase(&b, "dropped", 0, n->indexes_dropped, n->triggers_dropped);
    bool changed = b.len > 0;
    if (from < to && from > 0)
        snprintf(report, STORE_REPORT_BYTES_MAX, "migrated schema %d → %d: %s", from, to,
                 changed ? text : "no DDL changes");
    else if (from == 0 && changed)
        snprintf(report, STORE_REPORT_BYTES_MAX, "%s (schema version %d)", text, to);
    else if (from == 0)
        snprintf(report, STORE_REPORT_BYTES_MAX, "adopted the existing tables (schema version %d)",
                 to);
    else if (changed)
        snprintf(report, STORE_REPORT_BYTES_MAX, "repaired schema (version %d): %s", to, text);
    else
        snprintf(report, STORE_REPORT_BYTES_MAX, "schema up to date (version %d)", to);
}

/* The schema version the database was last brought to; 0 when never. */
static int stored_version(sqlite3 *db, int *version, err_t *e)
{
    char text[32];
    int rc = query_text(db, "SELECT value FROM _dojo_meta WHERE key = 'schema_version'", text,
                        sizeof text, e);
    if (rc) return rc;
    char *end;
    long v = strtol(text, &end, 10);
    if (text[0] && (*end || v < 1 || v > 1000000))
        return err_set(e, ERR_STORAGE, "_dojo_meta holds a bad schema_version '%s'", text);
    *version = text[0] ? (int)v : 0;
    return 0;
}

/* Brings the schema of db to s, inside the caller's transaction. */
static int migrate(sqlite3 *db, const schema *s, char *report, err_t *e)
{
    int rc = exec_sql(db,
                      "CREATE TABLE IF NOT EXISTS _dojo_meta "
                      "(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                      "create _dojo_meta", e);
    int from = 0;
    if (rc == 0) rc = stored_version(db, &from, e);
    if (rc) return rc;
    if (from > s->version)
        return err_set(e, ERR_STORAGE,
                       "database schema version %d is newer than this dojo (%d); upgrade dojo",
                       from, s->version);
    ddl_plan plan;
    rc = plan_schema(s, &plan, e);
    if (rc) return rc;
    ddl_counts n = {0};
    rc = apply_plan(db, s, &plan, &n, e);
    plan_free(&plan);
    char sql[128];
    snprintf(sql, sizeof sql,
             "INSERT INTO _dojo_meta (key, value) VALUES ('schema_version', '%d') "
             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
             s->version);
    if (rc == 0) rc = exec_sql(db, sql, "record the schema version", e);
    if (rc == 0) write_report(report, from, s->version, &n);
    return rc;
}

static int use_wal(sqlite3 *db, const char *path, err_t *e)
{
    char mode[32];
    int rc = query_text(db, "PRAGMA journal_mode=WAL", mode, sizeof mode, e);
    if (rc == 0 && strcmp(mode, "wal") != 0)
        rc = err_set(e, ERR_STORAGE, "cannot put %s in WAL mode (journal_mode is %s)", path, mode);
    return rc;
}

/* Opens path, puts it in WAL mode and migrates it to s in one transaction. */
static int prepare_file(const char *path, const schema *s, char *report, err_t *e)
{
    sqlite3 *db;
    int rc = open_db(path, true, true, &db, e);
    if (rc) return rc;
    rc = use_wal(db, path, e);
    if (rc == 0) rc = exec_sql(db, "BEGIN IMMEDIATE", "begin the schema transaction", e);
    if (rc == 0) {
        rc = migrate(db, s, report, e);
        if (rc == 0) rc = exec_sql(db, "COMMIT", "commit the schema", e);
        if (rc) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return rc;
}

int store_sqlite_open(const char *path, const schema *s, store **out,
                      char report[STORE_REPORT_BYTES_MAX], err_t *e)
{
    char local[STORE_REPORT_BYTES_MAX];
    int rc = prepare_file(path, s, report ? report : local, e);
    if (rc) return rc;
    size_t path_bytes = strlen(path) + 1;
    sqlite_store *ss = malloc(sizeof *ss + path_bytes);
    if (!ss) return err_set(e, ERR_NOMEM, "open %s: out of memory", path);
    ss->base = (store){.ops = &sqlite_ops, .schema = s};
    ss->checkpointer = NULL;
    ss->wal_pages_seen = 0;
    ss->next_wake_pages = SQLITE_CHECKPOINT_WAL_PAGES;
    memcpy(ss->path, path, path_bytes);
    *out = &ss->base;
    return 0;
}

static void sqlite_close(store *st)
{
    assert(st->ops == &sqlite_ops);
    sqlite_checkpointer_stop(((sqlite_store *)st)->checkpointer);
    free(st);
}

/* --- test hooks -------------------------------------------------------------------- */

int store_sqlite_query_text(store_conn *c, const char *sql, char *out, size_t out_bytes, err_t *e)
{
    return query_text(conn_of(c)->db, sql, out, out_bytes, e);
}

int store_sqlite_scan_plan(store_conn *sc, const store_range *r, char *out, size_t out_bytes,
                           err_t *e)
{
    sqlite_conn *c = conn_of(sc);
    scan_sql q;
    int rc = scan_build(r, &q, e);
    if (rc) return rc;
    char sql[SQL_BYTES_MAX + 32];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", q.text);
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return sqlite_error(e, c->db, rc, "explain scan");
    rc = scan_bind(c, st, &q, r->limit, "explain scan", e);
    sqlbuf b;
    sql_init(&b, out, out_bytes);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        sql_add(&b, "%s\n", (const char *)sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    return rc;
}

unsigned long store_sqlite_checkpoints(store *st)
{
    sqlite_store *ss = (sqlite_store *)st;
    return ss->checkpointer ? sqlite_checkpointer_count(ss->checkpointer) : 0;
}

uint64_t store_sqlite_prepare_count(store_conn *c)
{
    return conn_of(c)->prepares;
}

static const store_ops sqlite_ops = {
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
    .get = sqlite_get,
    .scan = sqlite_scan,
    .insert = sqlite_insert,
    .replace = sqlite_replace,
    .remove = sqlite_delete,
    .count = sqlite_count,
    .meta_get = sqlite_meta_get,
    .meta_set = sqlite_meta_set,
    .truncate_all = sqlite_truncate_all,
    .ping = sqlite_ping,
};
