/*
 * postgres.c — the PostgreSQL engine of the store (store.h, store_impl.h),
 * for `--db postgres://…` and `postgresql://…`, through libpq.
 *
 * store_open (via store.c) calls store_pg_open on the thread that starts
 * dojo: it connects once, brings the schema in line with the declared one in
 * one transaction, and keeps the URL. Afterwards each thread that talks to
 * the database owns one pg_conn (one libpq connection): the storage thread the
 * writer, each reader thread a reader (default_transaction_read_only). Several
 * `dojo serve` processes may share one database (ARCHITECTURE "Scale-out").
 *
 * Layout (see store.h): per table T a SQL table T(id TEXT COLLATE "C" PRIMARY
 * KEY, creation_time DOUBLE PRECISION, doc JSONB) with one CHECK per
 * nonnegative field; per index an expression index "T_<index>" over the
 * index's full key; a unique index also gets "T_<index>_unique" over its
 * fields alone; every table has "T_by_creation_time"; append-only tables get
 * three triggers (UPDATE, DELETE, TRUNCATE) that call _dojo_append_only_guard,
 * which raises "<T> is append-only: …". Each created object carries the DDL
 * that made it as its COMMENT, the way sqlite_master keeps it for SQLite, so
 * that reopening can tell what changed.
 *
 * Key order. jsonb's own order is not schema.h's (it ranks strings below
 * numbers, and compares strings by the database collation), so every field of
 * an index key is indexed as three typed columns:
 *   rank: 0 null or missing, 1 number, 2 string, 3 boolean, 4 array, 5 object
 *   num:  the number as NUMERIC (exact: 2^53 + 1 is not 2^53), else 0
 *   str:  the string (or true/false, or the JSON text) COLLATE "C", else ''
 * Compared left to right these give null < numbers by value < strings
 * bytewise < booleans (false < true) — schema_value_cmp; arrays and objects,
 * never index values, are ranked but ordered by their jsonb text.
 * None of them is ever NULL, so row-value bounds (rank, num, str,
 * creation_time, id) > ($1, …) compare definitely, and PostgreSQL seeks the
 * index with them directly. A bound value is encoded into the same three
 * parameters by the client.
 *
 * Transactions. A write transaction is BEGIN ISOLATION LEVEL SERIALIZABLE
 * followed by LOCK TABLE _dojo_meta IN EXCLUSIVE MODE: writers of every
 * process queue on that lock instead of failing. The lock is a table lock,
 * not pg_advisory_xact_lock(), on purpose: a serializable transaction fixes
 * its snapshot at its first SELECT, so a writer that waited inside
 * `SELECT pg_advisory_xact_lock()` would read data older than the commit it
 * waited for, and fail with a serialization error on its first write to the
 * same rows. LOCK TABLE takes no snapshot. Plain SELECTs (readers, meta
 * reads) are not blocked by it. A read transaction is REPEATABLE READ, its
 * snapshot fixed by its first statement. After a statement fails inside a
 * transaction PostgreSQL refuses further statements until the caller rolls
 * back (store_savepoint_rollback or store_rollback) — unlike SQLite, whose
 * failed statement leaves the transaction usable.
 *
 * Statements are prepared once per connection and cached by their text;
 * parameters travel as text, documents as JSON text cast to jsonb and back.
 * jsonb keeps decimal text exactly (5.0 stays 5.0, _creationTime keeps its 17
 * digits) but prints a large real such as 1e300 as a long run of digits; such
 * integer-looking literals beyond int64 are read back as reals.
 *
 * Commit notifications (store_notify_commit, store_listener_*). A writer
 * sends `SELECT pg_notify(channel, payload)` inside its write transaction;
 * PostgreSQL delivers it only if the transaction commits, after it commits,
 * and in commit order (its notification queue is filled in commit order, and
 * writers here commit one at a time under the write lock anyway). A write
 * transaction that sent none (an import, any tool writing outside the
 * engine) sends an empty payload at commit, so that no committed write goes
 * unannounced. A listener is a connection of its own that ran
 * `LISTEN channel` and is then only read from (PQconsumeInput, PQnotifies),
 * with TCP keepalives so that a silently dead link is noticed;
 * pg_stat_activity shows it as "dojo-listener-<pid>". Notifications go to
 * every listener of the database, whatever its schema, so the channel names
 * the deployment: "dojo_commits_<16 hex digits of FNV-1a of
 * current_schema()>", the schema the tables live in.
 *
 * Thread: a store is immutable after open; a pg_conn or pg_listener belongs
 * to one thread at a time.
 */
#include "store/store_impl.h"

#include "base/log.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#define PG_CONNECT_TIMEOUT_S "10"
#define PG_LOCK_TIMEOUT_MS 30000 /* a writer waits this long for the write lock */
#define PG_STMT_CACHE_SLOTS 256  /* prepared statements kept per connection */
#define PG_SAVEPOINT_DEPTH_MAX 4
#define PG_SQL_BYTES_MAX 16384       /* a generated DML statement */
#define PG_DDL_BYTES_MAX 16384       /* a generated CREATE statement */
#define PG_URL_BYTES_MAX 1024        /* a URL as shown in messages */
#define PG_NUMBER_BYTES_MAX 40       /* "%.17g" of a double, or an int64 */
#define PG_IDENT_BYTES_MAX 63        /* PostgreSQL truncates longer names */
#define PG_SERVER_VERSION_MIN 110000 /* jsonb::numeric, EXECUTE FUNCTION */
#define PG_SAVEPOINT_SQL_NAME "dojo_mutation"
#define PG_GUARD_FUNCTION "_dojo_append_only_guard"
#define PG_WRITE_LOCK_SQL "LOCK TABLE _dojo_meta IN EXCLUSIVE MODE"
/* Serializes schema changes of processes opening the same database at once. */
#define PG_DDL_LOCK_KEY "7236828216384647217"
#define DOC_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

#define PG_CHANNEL_PREFIX "dojo_commits_"
/* Listener connections: probe a silent link after this long, this often, and
 * give up after this many unanswered probes (about 25 s in all). */
#define PG_LISTENER_KEEPALIVE_IDLE_S "10"
#define PG_LISTENER_KEEPALIVE_INTERVAL_S "5"
#define PG_LISTENER_KEEPALIVE_COUNT "3"

typedef struct pg_store {
    store base;
    char *url;                            /* as given, for libpq */
    char shown_url[PG_URL_BYTES_MAX];     /* password redacted, for messages */
    char channel[PG_IDENT_BYTES_MAX + 1]; /* commit notifications (see the file comment) */
} pg_store;

typedef struct pg_stmt {
    uint64_t hash; /* of sql */
    char *sql;
    char name[24]; /* server-side name, "dojo_<n>" */
    uint64_t used_at;
} pg_stmt;

typedef struct pg_conn {
    store_conn base;
    PGconn *pg;
    bool writer;
    bool in_txn; /* a BEGIN of ours is open (PQtransactionStatus lies once the link is gone) */
    bool write_txn; /* that transaction is a write transaction */
    bool notified;  /* and it sent its commit notification (store_notify_commit) */
    int savepoint_depth;
    uint64_t use_clock;
    uint64_t stmt_serial; /* names of prepared statements */
    uint64_t prepares;    /* statements prepared into the cache, for tests */
    pg_stmt cache[PG_STMT_CACHE_SLOTS];
} pg_conn;

static const store_ops pg_ops;

static pg_conn *conn_of(store_conn *c)
{
    assert(c && c->ops == &pg_ops);
    return (pg_conn *)c;
}

static const pg_store *store_of(const pg_conn *c)
{
    return (const pg_store *)c->base.st;
}

/* --- building SQL ------------------------------------------------------------------ */

typedef struct sqlbuf {
    char *text;
    size_t len, cap;
    bool overflow;
} sqlbuf;

static void sql_init(sqlbuf *b, char *storage, size_t cap)
{
    assert(cap > 0);
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

enum { KEY_RANK, KEY_NUM, KEY_STR };

/* One typed column of an extracted field (see the file comment). Field names
 * are [A-Za-z_][A-Za-z0-9_]* (store.c checks), so they quote as they are. */
static void sql_key_part(sqlbuf *b, const char *field, int part)
{
    switch (part) {
    case KEY_RANK:
        sql_add(b,
                "(CASE jsonb_typeof(doc->'%s') WHEN 'number' THEN 1 WHEN 'string' THEN 2 "
                "WHEN 'boolean' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 5 ELSE 0 END)",
                field);
        break;
    case KEY_NUM:
        sql_add(b,
                "(CASE WHEN jsonb_typeof(doc->'%s') = 'number' THEN (doc->'%s')::numeric "
                "ELSE 0 END)",
                field, field);
        break;
    default:
        assert(part == KEY_STR);
        sql_add(b,
                "(COALESCE(CASE WHEN jsonb_typeof(doc->'%s') <> 'number' THEN doc->>'%s' END, '') "
                "COLLATE \"C\")",
                field, field);
    }
}

/* The index columns of one key field, comma-separated, each followed by
 * suffix (" DESC" or ""). */
static void sql_key_exprs(sqlbuf *b, const char *field, const char *suffix)
{
    const char *column = system_column(field);
    if (column) {
        sql_add(b, "%s%s", column, suffix);
        return;
    }
    for (int part = KEY_RANK; part <= KEY_STR; part++) {
        if (part > KEY_RANK) sql_add(b, ", ");
        sql_key_part(b, field, part);
        sql_add(b, "%s", suffix);
    }
}

/* The expression a field is constrained by in a unique index: NULL when the
 * field is missing or null, so that such documents never collide (as with
 * SQLite's json_extract); jsonb equality makes 1 and 1.0 the same value. */
static void sql_unique_expr(sqlbuf *b, const char *field)
{
    const char *column = system_column(field);
    if (column)
        sql_add(b, "%s", column);
    else
        sql_add(b, "(NULLIF(doc->'%s', 'null'::jsonb))", field);
}

/* --- errors ------------------------------------------------------------------------ */

/* Copies a libpq message into out on one line, without its trailing newline. */
static void one_line(const char *msg, char *out, size_t out_bytes)
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
static int pg_error(err_t *e, PGconn *pg, const PGresult *res, const char *what)
{
    char msg[ERR_MSG_BYTES_MAX];
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    one_line(primary ? primary : PQerrorMessage(pg), msg, sizeof msg);
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
    sql_init(&b, out, out_bytes);
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
            sql_add(&b, "%.*s:***", (int)(colon - url), url);
            p = at;
        }
    }
    while (*p) {
        const char *key = strstr(p, "password=");
        bool param = key && key > url && (key[-1] == '?' || key[-1] == '&');
        if (!key) {
            sql_add(&b, "%s", p);
            break;
        }
        size_t head = (size_t)(key - p) + strlen("password=");
        sql_add(&b, "%.*s", (int)head, p);
        p += head;
        if (param) {
            sql_add(&b, "***");
            p += strcspn(p, "&");
        }
    }
    if (b.overflow && out_bytes > 4) snprintf(out + out_bytes - 4, 4, "...");
}

void store_redact_url(const char *url, char *out, size_t out_bytes)
{
    assert(url && out && out_bytes > 0);
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        redact_url(url, out, out_bytes);
    else
        snprintf(out, out_bytes, "%s", url);
}

/* --- documents as text ----------------------------------------------------------- */

/* The length of the JSON number at s (within len), and whether it is an
 * integer literal too large for int64 (jsonb prints 1e300 as 1000…0). */
static size_t number_token(const char *s, size_t len, bool *too_big)
{
    size_t i = 0;
    bool negative = s[0] == '-';
    if (negative) i++;
    size_t digits_at = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    size_t digits = i - digits_at;
    bool integer = i >= len || (s[i] != '.' && s[i] != 'e' && s[i] != 'E');
    while (i < len && strchr("0123456789.eE+-", s[i]))
        i++;
    const char *limit = negative ? "9223372036854775808" : "9223372036854775807";
    *too_big = integer && (digits > 19 || (digits == 19 && memcmp(s + digits_at, limit, 19) > 0));
    return i;
}

/* A copy of the JSON text with ".0" after every integer literal beyond int64,
 * so that jansson reads it as the real it was; NULL when there is none (or
 * out of memory). */
static char *widen_big_integers(const char *text, size_t len, size_t *len_out)
{
    char *out = malloc(len + len / 10 + 3); /* a widened literal has >= 20 digits */
    if (!out) return NULL;
    size_t n = 0;
    bool in_string = false, widened = false;
    for (size_t i = 0; i < len;) {
        char ch = text[i];
        if (in_string) {
            out[n++] = text[i++];
            if (ch == '\\' && i < len)
                out[n++] = text[i++];
            else if (ch == '"')
                in_string = false;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            bool too_big;
            size_t k = number_token(text + i, len - i, &too_big);
            memcpy(out + n, text + i, k);
            n += k;
            i += k;
            if (too_big) {
                memcpy(out + n, ".0", 2);
                n += 2;
                widened = true;
            }
        } else {
            in_string = ch == '"';
            out[n++] = text[i++];
        }
    }
    if (!widened) {
        free(out);
        return NULL;
    }
    *len_out = n;
    return out;
}

/* Parses a doc as PostgreSQL prints jsonb. */
static int parse_doc(const char *text, size_t len, const char *table, json_t **out, err_t *e)
{
    json_error_t jerr;
    *out = json_loadb(text, len, 0, &jerr);
    if (*out) return 0;
    size_t wide_len = 0;
    char *wide = widen_big_integers(text, len, &wide_len);
    if (wide) {
        *out = json_loadb(wide, wide_len, 0, &jerr);
        free(wide);
        if (*out) return 0;
    }
    return err_set(e, ERR_STORAGE, "read %s: a stored document is not valid JSON: %s", table,
                   jerr.text);
}

static void format_double(char out[PG_NUMBER_BYTES_MAX], double v)
{
    snprintf(out, PG_NUMBER_BYTES_MAX, "%.17g", v);
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
    char sql[128];
    snprintf(sql, sizeof sql, "SET lock_timeout = %d%s", PG_LOCK_TIMEOUT_MS,
             writer ? "" : "; SET default_transaction_read_only = on");
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
    one_line(message, line, sizeof line);
    log_debug("store: postgres says: %s", line);
}

/* Opens one libpq connection. The URL's own parameters win over the defaults
 * before it; the client encoding is always UTF-8. A listener's connection
 * sits idle for long stretches: it probes the link with TCP keepalives. */
static int dial_as(const pg_store *ps, bool writer, bool listener, PGconn **out, err_t *e)
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
    assert(n < (int)(sizeof keys / sizeof keys[0]));
    PGconn *pg = PQconnectdbParams(keys, values, 1);
    if (!pg) return err_set(e, ERR_NOMEM, "cannot connect to %s: out of memory", ps->shown_url);
    if (PQstatus(pg) != CONNECTION_OK) {
        char msg[ERR_MSG_BYTES_MAX];
        one_line(PQerrorMessage(pg), msg, sizeof msg);
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

static int dial(const pg_store *ps, bool writer, PGconn **out, err_t *e)
{
    return dial_as(ps, writer, false, out, e);
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
                       store_of(c)->shown_url);
    PQreset(c->pg);
    cache_clear(c);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        char msg[ERR_MSG_BYTES_MAX];
        one_line(PQerrorMessage(c->pg), msg, sizeof msg);
        return err_set(e, ERR_STORAGE, "%s: cannot connect to %s: %s", what, store_of(c)->shown_url,
                       msg);
    }
    log_info("store: reconnected to %s", store_of(c)->shown_url);
    return session_setup(c->pg, c->writer, store_of(c)->shown_url, e);
}

static int pg_connect(store *st, bool writer, store_conn **out, err_t *e)
{
    pg_store *ps = (pg_store *)st;
    pg_conn *c = calloc(1, sizeof *c);
    if (!c) return err_set(e, ERR_NOMEM, "connect to %s: out of memory", ps->shown_url);
    int rc = dial(ps, writer, &c->pg, e);
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
    pg_conn *c = conn_of(sc);
    cache_clear(c);
    PQfinish(c->pg); /* an open transaction is rolled back by the server */
    free(c);
}

/* --- statements -------------------------------------------------------------------- */

static uint64_t hash_text(const char *s)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

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
    if (PQtransactionStatus(c->pg) != PQTRANS_INERROR) {
        char sql[64];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", victim->name);
        PQclear(PQexec(c->pg, sql));
    }
    free(victim->sql);
    *victim = (pg_stmt){0};
    return victim;
}

/* The server-side name of sql, prepared on first use on this connection. */
static int stmt_get(pg_conn *c, const char *sql, int n_params, const char **name_out,
                    const char *what, err_t *e)
{
    uint64_t h = hash_text(sql);
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
    PGresult *res = PQprepare(c->pg, s->name, sql, n_params, NULL);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_error(e, c->pg, res, what);
    PQclear(res);
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
static int stmt_run(pg_conn *c, const char *sql, int n_params, const char *const *values,
                    const char *what, PGresult **res_out, err_t *e)
{
    if (res_out) *res_out = NULL;
    if (store_fault_due()) return err_set(e, ERR_STORAGE, "%s: injected fault", what);
    int rc = ensure_connected(c, what, e);
    const char *name = NULL;
    if (rc == 0) rc = stmt_get(c, sql, n_params, &name, what, e);
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
static int run_simple(pg_conn *c, const char *sql, const char *what, err_t *e)
{
    if (store_fault_due()) return err_set(e, ERR_STORAGE, "%s: injected fault", what);
    int rc = ensure_connected(c, what, e);
    if (rc) return rc;
    PGresult *res = PQexec(c->pg, sql);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_error(e, c->pg, res, what);
    PQclear(res);
    return rc;
}

/* Runs a rollback-like statement: faults are never injected here, since it
 * is how a caller recovers from one. Failures are logged, not returned. */
static void run_undo(pg_conn *c, const char *sql)
{
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

/* --- transactions ------------------------------------------------------------------ */

static int pg_begin(store_conn *sc, bool write, err_t *e)
{
    pg_conn *c = conn_of(sc);
    assert(!c->in_txn && "store_begin inside a transaction");
    assert((c->writer || !write) && "a write transaction on a reader connection");
    c->savepoint_depth = 0;
    int rc;
    if (write) {
        rc = run_simple(c, "BEGIN ISOLATION LEVEL SERIALIZABLE; " PG_WRITE_LOCK_SQL,
                        "begin write transaction", e);
        if (rc && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
            run_undo(c, "ROLLBACK");
        if (rc == ERR_BUSY)
            rc = err_set(e, ERR_BUSY,
                         "begin write transaction: another writer kept the write lock past "
                         "lock_timeout; try again");
    } else {
        rc = run_simple(c, "BEGIN ISOLATION LEVEL REPEATABLE READ", "begin read transaction", e);
    }
    c->in_txn = rc == 0;
    c->write_txn = write;
    c->notified = false;
    return rc;
}

/* A write transaction that commits without a notification of its own (an
 * import, a tool writing outside the engine) still tells the listeners that
 * something changed: an empty payload. Not a cached statement and never an
 * injected fault, so that it is invisible to callers that never notify. */
static int notify_unknown_commit(pg_conn *c, err_t *e)
{
    const char *values[] = {store_of(c)->channel};
    PGresult *res = PQexecParams(c->pg, "SELECT pg_notify($1, '')", 1, NULL, values, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : pg_error(e, c->pg, res, "commit");
    PQclear(res);
    return rc;
}

static int pg_commit(store_conn *sc, err_t *e)
{
    pg_conn *c = conn_of(sc);
    assert(c->in_txn && "store_commit outside a transaction");
    if (store_fault_due()) return err_set(e, ERR_STORAGE, "commit: injected fault");
    if (PQstatus(c->pg) != CONNECTION_OK)
        return err_set(e, ERR_STORAGE, "commit: the connection to %s was lost",
                       store_of(c)->shown_url);
    if (PQtransactionStatus(c->pg) == PQTRANS_INERROR)
        return err_set(e, ERR_STORAGE,
                       "commit: a statement of this transaction failed; roll it back");
    int rc = c->write_txn && !c->notified ? notify_unknown_commit(c, e) : 0;
    if (rc) return rc;
    PGresult *res = PQexec(c->pg, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_error(e, c->pg, res, "commit");
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
        rc = err_set(e, ERR_STORAGE, "commit: the server rolled the transaction back");
    PQclear(res);
    /* A COMMIT that fails ends the transaction all the same. */
    if (rc == 0 || PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
        c->in_txn = false;
        c->savepoint_depth = 0;
    }
    return rc;
}

static void pg_rollback(store_conn *sc)
{
    pg_conn *c = conn_of(sc);
    if (c->in_txn) run_undo(c, "ROLLBACK");
    c->in_txn = false;
    c->savepoint_depth = 0;
}

static int pg_savepoint(store_conn *sc, err_t *e)
{
    pg_conn *c = conn_of(sc);
    assert(c->writer && c->in_txn && "a savepoint outside a transaction");
    assert(c->savepoint_depth < PG_SAVEPOINT_DEPTH_MAX);
    int rc = run_simple(c, "SAVEPOINT " PG_SAVEPOINT_SQL_NAME, "savepoint", e);
    if (rc == 0) c->savepoint_depth++;
    return rc;
}

static int pg_savepoint_release(store_conn *sc, err_t *e)
{
    pg_conn *c = conn_of(sc);
    assert(c->savepoint_depth > 0 && "no savepoint to release");
    int rc = run_simple(c, "RELEASE SAVEPOINT " PG_SAVEPOINT_SQL_NAME, "release savepoint", e);
    if (rc == 0) c->savepoint_depth--;
    return rc;
}

/* Also how a transaction recovers from a failed statement: PostgreSQL
 * accepts ROLLBACK TO in a failed transaction. */
static void pg_savepoint_rollback(store_conn *sc)
{
    pg_conn *c = conn_of(sc);
    assert(c->savepoint_depth > 0 && "no savepoint to roll back");
    c->savepoint_depth--;
    run_undo(c, "ROLLBACK TO SAVEPOINT " PG_SAVEPOINT_SQL_NAME);
    run_undo(c, "RELEASE SAVEPOINT " PG_SAVEPOINT_SQL_NAME);
}

/* --- documents --------------------------------------------------------------------- */

/* _id and _creationTime of a document about to be written. */
static int doc_identity(const json_t *doc, const char **id, double *ct, const char *what, err_t *e)
{
    const json_t *jid = json_object_get(doc, "_id");
    const json_t *jct = json_object_get(doc, "_creationTime");
    if (!json_is_string(jid) || !json_is_number(jct))
        return err_set(e, ERR_INTERNAL, "%s: the document lacks _id or _creationTime", what);
    *id = json_string_value(jid);
    *ct = json_number_value(jct);
    return 0;
}

/* The doc column of row `row` of res. */
static int result_doc(const PGresult *res, int row, const char *table, json_t **out, err_t *e)
{
    const char *text = PQgetvalue(res, row, 0);
    return parse_doc(text, (size_t)PQgetlength(res, row, 0), table, out, e);
}

static int pg_get(store_conn *sc, const schema_table *t, const char *id, json_t **doc_out, err_t *e)
{
    pg_conn *c = conn_of(sc);
    char sql[PG_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "SELECT doc FROM \"%s\" WHERE id = $1", t->name);
    snprintf(what, sizeof what, "get from %s", t->name);
    const char *values[] = {id};
    PGresult *res;
    int rc = stmt_run(c, sql, 1, values, what, &res, e);
    if (rc) return rc;
    if (PQntuples(res) > 0) rc = result_doc(res, 0, t->name, doc_out, e);
    PQclear(res);
    return rc;
}

/* Writes (id, creation_time, doc) with sql, whose parameters are id,
 * creation_time, doc in this order. *changed_out: rows the statement changed. */
static int write_doc(pg_conn *c, const schema_table *t, const json_t *doc, const char *sql,
                     const char *what, long *changed_out, err_t *e)
{
    const char *id = NULL;
    double ct = 0;
    int rc = doc_identity(doc, &id, &ct, what, e);
    if (rc) return rc;
    char *text = json_dumps(doc, DOC_DUMP_FLAGS);
    if (!text) return err_set(e, ERR_NOMEM, "%s: cannot encode the document", what);
    char ct_text[PG_NUMBER_BYTES_MAX];
    format_double(ct_text, ct);
    const char *values[] = {id, ct_text, text};
    PGresult *res;
    rc = stmt_run(c, sql, 3, values, what, &res, e);
    if (rc == 0) {
        *changed_out = strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
    }
    free(text);
    return rc;
}

static int pg_insert(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e)
{
    char sql[PG_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\" (id, creation_time, doc) VALUES ($1, $2, $3::jsonb)", t->name);
    snprintf(what, sizeof what, "insert into %s", t->name);
    long changed = 0;
    return write_doc(conn_of(sc), t, doc, sql, what, &changed, e);
}

static int pg_replace(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e)
{
    char sql[PG_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "UPDATE \"%s\" SET creation_time = $2, doc = $3::jsonb WHERE id = $1",
             t->name);
    snprintf(what, sizeof what, "replace in %s", t->name);
    long changed = 0;
    int rc = write_doc(conn_of(sc), t, doc, sql, what, &changed, e);
    if (rc || changed > 0) return rc;
    return err_set(e, ERR_NOT_FOUND, "%s: no document %s in %s", what,
                   json_string_value(json_object_get(doc, "_id")), t->name);
}

static int pg_delete(store_conn *sc, const schema_table *t, const char *id, err_t *e)
{
    pg_conn *c = conn_of(sc);
    char sql[PG_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\" WHERE id = $1", t->name);
    snprintf(what, sizeof what, "delete from %s", t->name);
    const char *values[] = {id};
    PGresult *res;
    int rc = stmt_run(c, sql, 1, values, what, &res, e);
    if (rc) return rc;
    long changed = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (changed > 0) return 0;
    return err_set(e, ERR_NOT_FOUND, "%s: no document %s in %s", what, id, t->name);
}

static int pg_count(store_conn *sc, const schema_table *t, int64_t *n_out, err_t *e)
{
    pg_conn *c = conn_of(sc);
    char sql[PG_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", t->name);
    snprintf(what, sizeof what, "count %s", t->name);
    PGresult *res;
    int rc = stmt_run(c, sql, 0, NULL, what, &res, e);
    if (rc) return rc;
    *n_out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* --- scans ------------------------------------------------------------------------- */

/* Parameters: per key value 1 (a column) or 3 (rank, num, str), for the
 * equality prefix and both bounds, then the LIMIT. */
#define SCAN_PARAMS_MAX (3 * 3 * SCHEMA_KEY_LEN_MAX + 1)

/* The statement of a scan and its parameters, in order; the LIMIT last. */
typedef struct scan_sql {
    char text[PG_SQL_BYTES_MAX];
    sqlbuf b;
    const char *values[SCAN_PARAMS_MAX];
    char numbers[SCAN_PARAMS_MAX][PG_NUMBER_BYTES_MAX]; /* storage for formatted values */
    int n_params;
    int n_conditions;
    bool empty; /* the bounds admit no key: nothing to run */
} scan_sql;

/* Appends the placeholder of a new parameter whose value is text; text NULL
 * means "formatted into this parameter's own buffer", which is returned. */
static char *scan_param(scan_sql *q, const char *text)
{
    assert(q->n_params < SCAN_PARAMS_MAX);
    int i = q->n_params++;
    q->values[i] = text ? text : q->numbers[i];
    sql_add(&q->b, "$%d", i + 1);
    return q->numbers[i];
}

/* The three parameters (rank, num, str) of an extracted field's value. */
static void scan_typed(scan_sql *q, const char *rank, const char *num, const char *str)
{
    scan_param(q, rank);
    sql_add(&q->b, ", ");
    scan_param(q, num);
    sql_add(&q->b, ", ");
    scan_param(q, str);
}

static void format_number(char out[PG_NUMBER_BYTES_MAX], const json_t *v)
{
    if (json_is_integer(v))
        snprintf(out, PG_NUMBER_BYTES_MAX, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        format_double(out, json_real_value(v));
}

/* The parameters of value v at key position `field`, as its index columns
 * are computed (see the file comment). */
static int scan_value(scan_sql *q, const char *field, const json_t *v, err_t *e)
{
    const char *column = system_column(field);
    if (column && strcmp(column, "creation_time") == 0) {
        if (!json_is_number(v))
            return err_set(e, ERR_INTERNAL, "scan: a bound on _creationTime is not a number");
        format_number(scan_param(q, NULL), v);
        return 0;
    }
    if (column) {
        if (!json_is_string(v))
            return err_set(e, ERR_INTERNAL, "scan: a bound on _id is not a string");
        scan_param(q, json_string_value(v));
        return 0;
    }
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL:
        scan_param(q, "1");
        sql_add(&q->b, ", ");
        format_number(scan_param(q, NULL), v);
        sql_add(&q->b, ", ");
        scan_param(q, "");
        return 0;
    case JSON_STRING: /* cut at a U+0000: see bound_length */
        scan_typed(q, "2", "0", json_string_value(v));
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        scan_typed(q, "3", "0", json_is_true(v) ? "true" : "false");
        return 0;
    case JSON_NULL:
        scan_typed(q, "0", "0", "");
        return 0;
    default:
        return err_set(e, ERR_INTERNAL, "scan: a bound value is not a scalar");
    }
}

static void scan_condition_start(scan_sql *q)
{
    sql_add(&q->b, q->n_conditions++ ? " AND " : " WHERE ");
}

/* "(cols of from..to-1) op ($…)" for the bound's values from..to. */
static int scan_row_condition(scan_sql *q, const schema_index *ix, const json_t *bound, int from,
                              int to, const char *op, err_t *e)
{
    scan_condition_start(q);
    sql_add(&q->b, "(");
    for (int i = from; i < to; i++) {
        if (i > from) sql_add(&q->b, ", ");
        sql_key_exprs(&q->b, key_field(ix, i), "");
    }
    sql_add(&q->b, ") %s (", op);
    for (int i = from; i < to; i++) {
        if (i > from) sql_add(&q->b, ", ");
        int rc = scan_value(q, key_field(ix, i), json_array_get(bound, (size_t)i), e);
        if (rc) return rc;
    }
    sql_add(&q->b, ")");
    return 0;
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

static bool has_nul(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v);
}

/* A string holding U+0000 cannot be stored in jsonb, nor sent as a text
 * parameter; the bound is cut after the first such value, whose text up to
 * the U+0000 (prefix p) is what gets sent. No stored string lies strictly
 * between p and p+"\0…", so "> or >= that value" is "> p", and "< or <=" is
 * "<= p": the cut bound is exclusive below and inclusive above. */
static int bound_length(const json_t *bound, int from, bool *inclusive, bool lower)
{
    int n = (int)json_array_size(bound);
    for (int i = from; i < n; i++)
        if (has_nul(json_array_get(bound, (size_t)i))) {
            *inclusive = !lower;
            return i + 1;
        }
    return n;
}

static void scan_order(scan_sql *q, const schema_index *ix, int from, bool descending)
{
    int key_len = schema_key_len(ix);
    for (int i = from; i < key_len; i++) {
        sql_add(&q->b, i > from ? ", " : " ORDER BY ");
        sql_key_exprs(&q->b, key_field(ix, i), descending ? " DESC" : "");
    }
}

/* Builds the statement of a scan: equalities for the prefix both bounds
 * share, then a row-value comparison for the rest of each bound — all of
 * them index conditions of "T_<index>" — ordered as the index. */
static int scan_build(const store_range *r, scan_sql *q, err_t *e)
{
    int rc = check_bound(r, r->lo, e);
    if (rc == 0) rc = check_bound(r, r->hi, e);
    if (rc) return rc;
    sql_init(&q->b, q->text, sizeof q->text);
    q->n_params = q->n_conditions = 0;
    q->empty = false;
    int eq = equal_prefix(r);
    for (int i = 0; i < eq; i++)
        if (has_nul(json_array_get(r->lo, (size_t)i))) q->empty = true; /* no key equals it */
    bool lo_incl = r->lo_inclusive, hi_incl = r->hi_inclusive;
    int n_lo = r->lo ? bound_length(r->lo, eq, &lo_incl, true) : 0;
    int n_hi = r->hi ? bound_length(r->hi, eq, &hi_incl, false) : 0;
    /* K[0..eq) == lo[0..eq): an exclusive bound that ends there admits nothing. */
    q->empty = q->empty || (r->lo && n_lo == eq && !lo_incl) || (r->hi && n_hi == eq && !hi_incl);
    const char *t = r->table->name;
    sql_add(&q->b, "SELECT doc FROM \"%s\"", t);
    for (int i = 0; i < eq && rc == 0; i++) {
        const char *field = key_field(r->index, i);
        scan_condition_start(q);
        sql_add(&q->b, "(");
        sql_key_exprs(&q->b, field, "");
        sql_add(&q->b, ") = (");
        rc = scan_value(q, field, json_array_get(r->lo, (size_t)i), e);
        sql_add(&q->b, ")");
    }
    if (rc == 0 && n_lo > eq)
        rc = scan_row_condition(q, r->index, r->lo, eq, n_lo, lo_incl ? ">=" : ">", e);
    if (rc == 0 && n_hi > eq)
        rc = scan_row_condition(q, r->index, r->hi, eq, n_hi, hi_incl ? "<=" : "<", e);
    if (rc) return rc;
    scan_order(q, r->index, eq, r->descending);
    sql_add(&q->b, " LIMIT ");
    snprintf(scan_param(q, NULL), PG_NUMBER_BYTES_MAX, "%d", r->limit);
    if (q->b.overflow)
        return err_set(e, ERR_INTERNAL, "scan %s.%s: statement longer than %d bytes", t,
                       r->index->name, PG_SQL_BYTES_MAX);
    return 0;
}

static int pg_scan(store_conn *sc, const store_range *r, json_t **rows_out, err_t *e)
{
    pg_conn *c = conn_of(sc);
    scan_sql *q = malloc(sizeof *q);
    json_t *rows = json_array();
    if (!q || !rows) {
        free(q);
        json_decref(rows);
        return err_set(e, ERR_NOMEM, "scan %s: out of memory", r->table->name);
    }
    int rc = scan_build(r, q, e);
    if (rc == 0 && !q->empty) {
        char what[STORE_SQL_NAME_BYTES_MAX];
        snprintf(what, sizeof what, "scan %s.%s", r->table->name, r->index->name);
        PGresult *res;
        rc = stmt_run(c, q->text, q->n_params, q->values, what, &res, e);
        int n = rc == 0 ? PQntuples(res) : 0;
        assert(n <= r->limit);
        for (int i = 0; i < n && rc == 0; i++) {
            json_t *doc;
            rc = result_doc(res, i, r->table->name, &doc, e);
            if (rc == 0 && json_array_append_new(rows, doc) != 0)
                rc = err_set(e, ERR_NOMEM, "%s: out of memory", what);
        }
        PQclear(res);
    }
    free(q);
    if (rc) {
        json_decref(rows);
        return rc;
    }
    *rows_out = rows;
    return 0;
}

/* --- metadata, truncation, health -------------------------------------------------- */

static int pg_meta_get(store_conn *sc, const char *key, char **value_out, err_t *e)
{
    pg_conn *c = conn_of(sc);
    const char *values[] = {key};
    PGresult *res;
    int rc = stmt_run(c, "SELECT value FROM _dojo_meta WHERE key = $1", 1, values, "read metadata",
                      &res, e);
    if (rc) return rc;
    if (PQntuples(res) > 0) {
        *value_out = strdup(PQgetvalue(res, 0, 0));
        if (!*value_out) rc = err_set(e, ERR_NOMEM, "read metadata: out of memory");
    }
    PQclear(res);
    return rc;
}

static int pg_meta_set(store_conn *sc, const char *key, const char *value, err_t *e)
{
    pg_conn *c = conn_of(sc);
    const char *values[] = {key, value};
    return stmt_run(c,
                    "INSERT INTO _dojo_meta (key, value) VALUES ($1, $2) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    2, values, "write metadata", NULL, e);
}

/* Empties one table with DELETE rather than TRUNCATE: DELETE is MVCC-safe (a
 * reader's older snapshot still sees the rows) where TRUNCATE is not. On an
 * append-only table its DELETE guard is disabled around it, inside the
 * transaction, so a rollback restores it too. */
static int truncate_table(pg_conn *c, const schema_table *t, err_t *e)
{
    char sql[PG_SQL_BYTES_MAX];
    int rc = 0;
    if (t->append_only) {
        snprintf(sql, sizeof sql, "ALTER TABLE \"%s\" DISABLE TRIGGER \"%s_append_only_delete\"",
                 t->name, t->name);
        rc = run_simple(c, sql, "truncate: disable guard", e);
    }
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\"", t->name);
    if (rc == 0) rc = run_simple(c, sql, "truncate", e);
    if (rc == 0 && t->append_only) {
        snprintf(sql, sizeof sql, "ALTER TABLE \"%s\" ENABLE TRIGGER \"%s_append_only_delete\"",
                 t->name, t->name);
        rc = run_simple(c, sql, "truncate: enable guard", e);
    }
    return rc;
}

static int pg_truncate_all(store_conn *sc, err_t *e)
{
    pg_conn *c = conn_of(sc);
    assert(c->writer && c->in_txn && "truncate outside a write transaction");
    const schema *s = c->base.st->schema;
    for (int i = 0; i < s->n_tables; i++) {
        int rc = truncate_table(c, &s->tables[i], e);
        if (rc) return rc;
    }
    return 0;
}

static int pg_ping(store_conn *sc, err_t *e)
{
    return stmt_run(conn_of(sc), "SELECT 1", 0, NULL, "ping", NULL, e);
}

/* --- commit notifications ---------------------------------------------------------- */

typedef struct pg_listener {
    store_listener base;
    PGconn *pg;
} pg_listener;

static pg_listener *listener_of(const store_listener *l)
{
    assert(l && l->ops == &pg_ops);
    return (pg_listener *)l;
}

static int pg_notify_commit(store_conn *sc, const char *payload, err_t *e)
{
    pg_conn *c = conn_of(sc);
    assert(c->writer && c->in_txn && "a commit notification outside a write transaction");
    assert(c->savepoint_depth == 0 && "a savepoint rollback would drop the notification");
    const char *values[] = {store_of(c)->channel, payload};
    int rc =
        stmt_run(c, "SELECT pg_notify($1, $2)", 2, values, "send the commit notification", NULL, e);
    if (rc == 0) c->notified = true;
    return rc;
}

static int pg_listener_open(store *st, store_listener **out, err_t *e)
{
    pg_store *ps = (pg_store *)st;
    pg_listener *l = calloc(1, sizeof *l);
    if (!l) return err_set(e, ERR_NOMEM, "listen to %s: out of memory", ps->shown_url);
    int rc = dial_as(ps, false, true, &l->pg, e);
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

static int pg_listener_fd(const store_listener *sl)
{
    return PQsocket(listener_of(sl)->pg);
}

static int pg_listener_drain(store_listener *sl, void (*cb)(void *data, const char *payload),
                             void *data, err_t *e)
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
    one_line(PQerrorMessage(l->pg), msg, sizeof msg);
    return err_set(e, ERR_STORAGE, "commit notifications from %s: %s",
                   ((const pg_store *)sl->st)->shown_url, msg[0] ? msg : "connection lost");
}

static int pg_listener_meta_get(store_listener *sl, const char *key, char **value_out, err_t *e)
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

static void pg_listener_close(store_listener *sl)
{
    pg_listener *l = listener_of(sl);
    PQfinish(l->pg);
    free(l);
}

/* --- schema: the DDL a schema asks for --------------------------------------------- */

typedef enum { OBJ_TABLE, OBJ_INDEX, OBJ_TRIGGER } obj_type;

/* One schema object the declared schema asks for. */
typedef struct ddl_object {
    obj_type type;
    char name[STORE_SQL_NAME_BYTES_MAX];
    const schema_table *table;
    char *sql; /* malloc'd; also the object's COMMENT */
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

static void sql_check(sqlbuf *b, const schema_table *t, const char *field)
{
    sql_add(b,
            "CONSTRAINT \"%s_%s_nonnegative\" CHECK (CASE WHEN jsonb_typeof(doc->'%s') = 'number' "
            "THEN (doc->'%s')::numeric >= 0 ELSE true END)",
            t->name, field, field, field);
}

static void sql_table(sqlbuf *b, const schema_table *t)
{
    sql_add(b,
            "CREATE TABLE \"%s\" (id TEXT COLLATE \"C\" PRIMARY KEY, "
            "creation_time DOUBLE PRECISION NOT NULL, doc JSONB NOT NULL",
            t->name);
    for (const char *const *f = t->nonnegative_fields; f && *f; f++) {
        sql_add(b, ", ");
        sql_check(b, t, *f);
    }
    sql_add(b, ")");
}

static void sql_index(sqlbuf *b, const schema_table *t, const schema_index *ix)
{
    sql_add(b, "CREATE INDEX \"%s_%s\" ON \"%s\" (", t->name, ix->name, t->name);
    for (int i = 0; i < schema_key_len(ix); i++) {
        if (i > 0) sql_add(b, ", ");
        sql_key_exprs(b, key_field(ix, i), "");
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

static const char *const guard_ops[] = {"update", "delete", "truncate"};

static void sql_guard_trigger(sqlbuf *b, const schema_table *t, int op)
{
    const char *verbs[] = {"UPDATE", "DELETE", "TRUNCATE"};
    sql_add(b,
            "CREATE TRIGGER \"%s_append_only_%s\" BEFORE %s ON \"%s\" FOR EACH %s "
            "EXECUTE FUNCTION \"" PG_GUARD_FUNCTION "\"()",
            t->name, guard_ops[op], verbs[op], t->name, op == 2 ? "STATEMENT" : "ROW");
}

/* Appends one object with the DDL in b, refusing a name given twice or one
 * PostgreSQL would truncate. */
static int plan_add(ddl_plan *p, obj_type type, const schema_table *t, const char *name,
                    const sqlbuf *b, err_t *e)
{
    if (b->overflow)
        return err_set(e, ERR_INTERNAL, "schema: the DDL of %s is longer than %d bytes", name,
                       PG_DDL_BYTES_MAX);
    if (strlen(name) > PG_IDENT_BYTES_MAX)
        return err_set(e, ERR_INTERNAL,
                       "schema: the name %s is longer than PostgreSQL's %d-byte limit", name,
                       PG_IDENT_BYTES_MAX);
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
    sql_init(&b, ddl, PG_DDL_BYTES_MAX);
    sql_table(&b, t);
    int rc = plan_add(p, OBJ_TABLE, t, t->name, &b, e);
    for (int i = -1; i < t->n_indexes && rc == 0; i++) {
        const schema_index *ix = i < 0 ? &schema_by_creation_time : &t->indexes[i];
        sql_init(&b, ddl, PG_DDL_BYTES_MAX);
        sql_index(&b, t, ix);
        snprintf(name, sizeof name, "%s_%s", t->name, ix->name);
        rc = plan_add(p, OBJ_INDEX, t, name, &b, e);
        if (rc || !ix->unique) continue;
        sql_init(&b, ddl, PG_DDL_BYTES_MAX);
        sql_unique_index(&b, t, ix);
        snprintf(name, sizeof name, "%s_%s_unique", t->name, ix->name);
        rc = plan_add(p, OBJ_INDEX, t, name, &b, e);
    }
    for (int op = 0; op < 3 && rc == 0 && t->append_only; op++) {
        sql_init(&b, ddl, PG_DDL_BYTES_MAX);
        sql_guard_trigger(&b, t, op);
        snprintf(name, sizeof name, "%s_append_only_%s", t->name, guard_ops[op]);
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
        n_max += 5 + 2 * (size_t)s->tables[i].n_indexes; /* table, implicit index, 3 guards */
    p->n = 0;
    p->objects = calloc(n_max, sizeof *p->objects);
    char *ddl = malloc(PG_DDL_BYTES_MAX);
    int rc = (p->objects && ddl) ? 0 : err_set(e, ERR_NOMEM, "schema: out of memory");
    for (int i = 0; i < s->n_tables && rc == 0; i++)
        rc = plan_table(p, &s->tables[i], ddl, e);
    free(ddl);
    if (rc) plan_free(p);
    return rc;
}

/* --- schema: bringing a database in line ------------------------------------------- */

typedef struct ddl_counts {
    int tables_created, tables_altered;
    int indexes_created, indexes_dropped;
    int triggers_created, triggers_dropped;
} ddl_counts;

/* Runs DDL (several statements allowed) on the schema connection. */
static int ddl_exec(PGconn *pg, const char *sql, const char *what, err_t *e)
{
    PGresult *res = PQexec(pg, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_error(e, pg, res, what);
    PQclear(res);
    return rc;
}

/* A catalog query with text parameters; the caller PQclears *res_out. */
static int ddl_query(PGconn *pg, const char *sql, int n_params, const char *const *values,
                     PGresult **res_out, err_t *e)
{
    PGresult *res = PQexecParams(pg, sql, n_params, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = pg_error(e, pg, res, "read the schema");
        PQclear(res);
        return rc;
    }
    *res_out = res;
    return 0;
}

/* "\"name\"", for to_regclass. */
static void quoted(const char *name, char out[STORE_SQL_NAME_BYTES_MAX + 2])
{
    snprintf(out, STORE_SQL_NAME_BYTES_MAX + 2, "\"%s\"", name);
}

/* The DDL an existing object was made with (its COMMENT; "" when it has
 * none), malloc'd, or NULL when there is no such object. */
static int stored_sql(PGconn *pg, const ddl_object *o, char **out, err_t *e)
{
    *out = NULL;
    char table[STORE_SQL_NAME_BYTES_MAX + 2], self[STORE_SQL_NAME_BYTES_MAX + 2];
    quoted(o->table->name, table);
    quoted(o->name, self);
    const char *values[] = {o->type == OBJ_TRIGGER ? table : self, o->name};
    const char *sql =
        o->type == OBJ_TRIGGER
            ? "SELECT coalesce(obj_description(oid, 'pg_trigger'), '') FROM pg_trigger "
              "WHERE tgrelid = to_regclass($1) AND tgname = $2"
            : "SELECT coalesce(obj_description(oid, 'pg_class'), '') FROM pg_class "
              "WHERE oid = to_regclass($1) AND relkind = $2";
    if (o->type != OBJ_TRIGGER) values[1] = o->type == OBJ_TABLE ? "r" : "i";
    PGresult *res;
    int rc = ddl_query(pg, sql, 2, values, &res, e);
    if (rc) return rc;
    if (PQntuples(res) > 0) {
        *out = strdup(PQgetvalue(res, 0, 0));
        if (!*out) rc = err_set(e, ERR_NOMEM, "schema: out of memory");
    }
    PQclear(res);
    return rc;
}

/* Creates o and records its DDL as its COMMENT. */
static int create_object(PGconn *pg, const ddl_object *o, err_t *e)
{
    static const char *const kinds[] = {"TABLE", "INDEX", "TRIGGER"};
    char *literal = PQescapeLiteral(pg, o->sql, strlen(o->sql));
    if (!literal) return pg_error(e, pg, NULL, "schema: quote DDL");
    size_t bytes = strlen(o->sql) + strlen(literal) + 3 * STORE_SQL_NAME_BYTES_MAX + 64;
    char *sql = malloc(bytes);
    int rc = 0;
    if (!sql) {
        rc = err_set(e, ERR_NOMEM, "schema: out of memory");
    } else {
        int n = snprintf(sql, bytes, "%s; COMMENT ON %s \"%s\"", o->sql, kinds[o->type], o->name);
        if (o->type == OBJ_TRIGGER)
            n += snprintf(sql + n, bytes - (size_t)n, " ON \"%s\"", o->table->name);
        snprintf(sql + n, bytes - (size_t)n, " IS %s", literal);
        char what[STORE_SQL_NAME_BYTES_MAX + 16];
        snprintf(what, sizeof what, "create %s", o->name);
        rc = ddl_exec(pg, sql, what, e);
    }
    free(sql);
    PQfreemem(literal);
    return rc;
}

/* Names (rows of the first column) of a catalog query about one table. */
static int table_names(PGconn *pg, const char *sql, const schema_table *t, PGresult **res_out,
                       err_t *e)
{
    char table[STORE_SQL_NAME_BYTES_MAX + 2];
    quoted(t->name, table);
    const char *values[] = {table};
    return ddl_query(pg, sql, 1, values, res_out, e);
}

static const ddl_object *plan_find(const ddl_plan *p, obj_type type, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (p->objects[i].type == type && strcmp(p->objects[i].name, name) == 0)
            return &p->objects[i];
    return NULL;
}

/* Drops the indexes and triggers of one declared table that the schema no
 * longer asks for (the primary key's index is not ours to drop). */
static int drop_undeclared(PGconn *pg, const schema_table *t, const ddl_plan *p, ddl_counts *n,
                           err_t *e)
{
    static const char *const lists[] = {
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = to_regclass($1) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid) "
        "ORDER BY 1",
        "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass($1) AND NOT tgisinternal "
        "ORDER BY 1",
    };
    int rc = 0;
    for (int kind = 0; kind < 2 && rc == 0; kind++) {
        bool index = kind == 0;
        PGresult *res;
        rc = table_names(pg, lists[kind], t, &res, e);
        if (rc) break;
        for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
            const char *name = PQgetvalue(res, i, 0);
            if (plan_find(p, index ? OBJ_INDEX : OBJ_TRIGGER, name)) continue;
            char sql[3 * STORE_SQL_NAME_BYTES_MAX];
            if (index)
                snprintf(sql, sizeof sql, "DROP INDEX \"%s\"", name);
            else
                snprintf(sql, sizeof sql, "DROP TRIGGER \"%s\" ON \"%s\"", name, t->name);
            rc = ddl_exec(pg, sql, "drop an undeclared index or trigger", e);
            if (rc == 0) *(index ? &n->indexes_dropped : &n->triggers_dropped) += 1;
        }
        PQclear(res);
    }
    return rc;
}

/* Brings the CHECK constraints of an existing table to the declared ones
 * (its columns are the same for every schema), then records its DDL. */
static int alter_table(PGconn *pg, const ddl_object *o, err_t *e)
{
    const schema_table *t = o->table;
    PGresult *res;
    int rc = table_names(pg,
                         "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) "
                         "AND contype = 'c' ORDER BY 1",
                         t, &res, e);
    if (rc) return rc;
    char sql[PG_DDL_BYTES_MAX];
    char what[STORE_SQL_NAME_BYTES_MAX + 32];
    snprintf(what, sizeof what, "migrate table %s", t->name);
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        snprintf(sql, sizeof sql, "ALTER TABLE \"%s\" DROP CONSTRAINT \"%s\"", t->name,
                 PQgetvalue(res, i, 0));
        rc = ddl_exec(pg, sql, what, e);
    }
    PQclear(res);
    for (const char *const *f = t->nonnegative_fields; f && *f && rc == 0; f++) {
        sqlbuf b;
        sql_init(&b, sql, sizeof sql);
        sql_add(&b, "ALTER TABLE \"%s\" ADD ", t->name);
        sql_check(&b, t, *f);
        assert(!b.overflow);
        rc = ddl_exec(pg, sql, what, e);
    }
    char *literal = rc == 0 ? PQescapeLiteral(pg, o->sql, strlen(o->sql)) : NULL;
    if (rc == 0 && !literal) rc = pg_error(e, pg, NULL, what);
    if (rc == 0) {
        size_t bytes = strlen(literal) + STORE_SQL_NAME_BYTES_MAX + 32;
        char *comment = malloc(bytes);
        if (!comment) {
            rc = err_set(e, ERR_NOMEM, "schema: out of memory");
        } else {
            snprintf(comment, bytes, "COMMENT ON TABLE \"%s\" IS %s", t->name, literal);
            rc = ddl_exec(pg, comment, what, e);
            free(comment);
        }
    }
    PQfreemem(literal);
    return rc;
}

static int ensure_table(PGconn *pg, const ddl_object *o, ddl_counts *n, err_t *e)
{
    char *stored;
    int rc = stored_sql(pg, o, &stored, e);
    if (rc) return rc;
    if (!stored) {
        rc = create_object(pg, o, e);
        if (rc == 0) n->tables_created++;
    } else if (strcmp(stored, o->sql) != 0) {
        rc = alter_table(pg, o, e);
        if (rc == 0) n->tables_altered++;
    }
    free(stored);
    return rc;
}

/* Creates an index or trigger, replacing one of that name whose DDL differs. */
static int ensure_object(PGconn *pg, const ddl_object *o, ddl_counts *n, err_t *e)
{
    char *stored;
    int rc = stored_sql(pg, o, &stored, e);
    if (rc || (stored && strcmp(stored, o->sql) == 0)) {
        free(stored);
        return rc;
    }
    bool index = o->type == OBJ_INDEX;
    if (stored) {
        char sql[3 * STORE_SQL_NAME_BYTES_MAX];
        if (index)
            snprintf(sql, sizeof sql, "DROP INDEX \"%s\"", o->name);
        else
            snprintf(sql, sizeof sql, "DROP TRIGGER \"%s\" ON \"%s\"", o->name, o->table->name);
        rc = ddl_exec(pg, sql, "drop a changed index or trigger", e);
        if (rc == 0) *(index ? &n->indexes_dropped : &n->triggers_dropped) += 1;
        free(stored);
    }
    if (rc == 0) rc = create_object(pg, o, e);
    if (rc == 0) *(index ? &n->indexes_created : &n->triggers_created) += 1;
    return rc;
}

/* The function every append-only guard calls; replaced when it changed. */
static int ensure_guard_function(PGconn *pg, err_t *e)
{
    static const char body[] =
        "CREATE OR REPLACE FUNCTION \"" PG_GUARD_FUNCTION "\"() RETURNS trigger "
        "LANGUAGE plpgsql AS $dojo$BEGIN RAISE EXCEPTION "
        "'% is append-only: rows are never updated or deleted', TG_TABLE_NAME "
        "USING ERRCODE = 'restrict_violation'; END$dojo$";
    const char *values[] = {"\"" PG_GUARD_FUNCTION "\"()"};
    PGresult *res;
    int rc = ddl_query(pg,
                       "SELECT coalesce(obj_description(to_regprocedure($1), 'pg_proc'), '')"
                       " WHERE to_regprocedure($1) IS NOT NULL",
                       1, values, &res, e);
    if (rc) return rc;
    bool same = PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), body) == 0;
    PQclear(res);
    if (same) return 0;
    char *literal = PQescapeLiteral(pg, body, strlen(body));
    if (!literal) return pg_error(e, pg, NULL, "schema: quote DDL");
    char sql[2 * sizeof body + 128];
    snprintf(sql, sizeof sql, "%s; COMMENT ON FUNCTION \"" PG_GUARD_FUNCTION "\"() IS %s", body,
             literal);
    PQfreemem(literal);
    return ddl_exec(pg, sql, "create the append-only guard", e);
}

static int apply_plan(PGconn *pg, const schema *s, const ddl_plan *p, ddl_counts *n, err_t *e)
{
    int rc = 0;
    for (int i = 0; i < s->n_tables && rc == 0; i++)
        rc = drop_undeclared(pg, &s->tables[i], p, n, e);
    for (int i = 0; i < s->n_tables && rc == 0; i++)
        if (s->tables[i].append_only) rc = ensure_guard_function(pg, e);
    for (int i = 0; i < p->n && rc == 0; i++)
        if (p->objects[i].type == OBJ_TABLE) rc = ensure_table(pg, &p->objects[i], n, e);
    for (int i = 0; i < p->n && rc == 0; i++)
        if (p->objects[i].type != OBJ_TABLE) rc = ensure_object(pg, &p->objects[i], n, e);
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

/* The same sentences as the SQLite engine's report, with "altered" where
 * SQLite rebuilds a table (PostgreSQL changes its CHECKs in place). */
static void write_report(char *report, int from, int to, const ddl_counts *n)
{
    char text[STORE_REPORT_BYTES_MAX - 64]; /* room for the words around it */
    sqlbuf b;
    sql_init(&b, text, sizeof text);
    add_phrase(&b, "created", n->tables_created, n->indexes_created, n->triggers_created);
    add_phrase(&b, "altered", n->tables_altered, 0, 0);
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
static int stored_version(PGconn *pg, int *version, err_t *e)
{
    PGresult *res;
    int rc = ddl_query(pg, "SELECT value FROM _dojo_meta WHERE key = 'schema_version'", 0, NULL,
                       &res, e);
    if (rc) return rc;
    const char *text = PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "";
    char *end;
    long v = strtol(text, &end, 10);
    if (text[0] && (*end || v < 1 || v > 1000000))
        rc = err_set(e, ERR_STORAGE, "_dojo_meta holds a bad schema_version '%s'", text);
    else
        *version = text[0] ? (int)v : 0;
    PQclear(res);
    return rc;
}

/* Brings the schema of the database to s, inside the caller's transaction.
 * Two processes opening one database at once take turns on an advisory lock,
 * then on the write lock, so that DDL never races DDL nor a writer. */
static int migrate(PGconn *pg, const schema *s, char *report, err_t *e)
{
    int rc =
        ddl_exec(pg,
                 "SELECT pg_advisory_xact_lock(" PG_DDL_LOCK_KEY "); "
                 "CREATE TABLE IF NOT EXISTS _dojo_meta "
                 "(key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT NOT NULL); " PG_WRITE_LOCK_SQL,
                 "lock the schema", e);
    int from = 0;
    if (rc == 0) rc = stored_version(pg, &from, e);
    if (rc) return rc;
    if (from > s->version)
        return err_set(e, ERR_STORAGE,
                       "database schema version %d is newer than this dojo (%d); upgrade dojo",
                       from, s->version);
    ddl_plan plan;
    rc = plan_schema(s, &plan, e);
    if (rc) return rc;
    ddl_counts n = {0};
    rc = apply_plan(pg, s, &plan, &n, e);
    plan_free(&plan);
    char sql[160];
    snprintf(sql, sizeof sql,
             "INSERT INTO _dojo_meta (key, value) VALUES ('schema_version', '%d') "
             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
             s->version);
    if (rc == 0) rc = ddl_exec(pg, sql, "record the schema version", e);
    if (rc == 0) write_report(report, from, s->version, &n);
    return rc;
}

/* The channel of this deployment: its schema's name, hashed so that any
 * schema name gives a short identifier. */
static int name_channel(PGconn *pg, pg_store *ps, err_t *e)
{
    PGresult *res;
    int rc = ddl_query(pg, "SELECT coalesce(current_schema(), '')", 0, NULL, &res, e);
    if (rc) return rc;
    const char *schema_name = PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "";
    snprintf(ps->channel, sizeof ps->channel, PG_CHANNEL_PREFIX "%016" PRIx64,
             hash_text(schema_name));
    PQclear(res);
    return 0;
}

/* Connects once, migrates the database to s in one transaction, and names
 * the deployment's notification channel. */
static int prepare_database(pg_store *ps, const schema *s, char *report, err_t *e)
{
    PGconn *pg;
    int rc = dial(ps, true, &pg, e);
    if (rc) return rc;
    /* DDL output such as "relation already exists, skipping" is not news. */
    rc =
        ddl_exec(pg, "SET client_min_messages = warning; BEGIN", "begin the schema transaction", e);
    if (rc == 0) {
        rc = migrate(pg, s, report, e);
        if (rc == 0) rc = ddl_exec(pg, "COMMIT", "commit the schema", e);
        if (rc) PQclear(PQexec(pg, "ROLLBACK"));
    }
    if (rc == 0) rc = name_channel(pg, ps, e);
    PQfinish(pg);
    return rc;
}

int store_pg_open(const char *url, const schema *s, store **out,
                  char report[STORE_REPORT_BYTES_MAX], err_t *e)
{
    pg_store *ps = calloc(1, sizeof *ps);
    if (!ps) return err_set(e, ERR_NOMEM, "open PostgreSQL: out of memory");
    store_redact_url(url, ps->shown_url, sizeof ps->shown_url);
    ps->url = strdup(url);
    ps->base = (store){.ops = &pg_ops, .schema = s};
    char local[STORE_REPORT_BYTES_MAX];
    int rc = ps->url ? prepare_database(ps, s, report ? report : local, e)
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
    assert(st->ops == &pg_ops);
    pg_store *ps = (pg_store *)st;
    free(ps->url);
    free(ps);
}

/* --- test hooks -------------------------------------------------------------------- */

int store_pg_query_text(store_conn *sc, const char *sql, char *out, size_t out_bytes, err_t *e)
{
    pg_conn *c = conn_of(sc);
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

/* EXPLAIN of a scan's statement: with its parameters bound (the custom plan
 * an unnamed statement gets), or, when generic, of the statement prepared
 * under a name with plan_cache_mode = force_generic_plan — the plan a cached
 * statement may settle on after a few executions. */
static int explain_scan(pg_conn *c, const scan_sql *q, bool generic, sqlbuf *out, err_t *e)
{
    size_t bytes = 2 * PG_SQL_BYTES_MAX;
    char *sql = malloc(bytes);
    if (!sql) return err_set(e, ERR_NOMEM, "explain scan: out of memory");
    sqlbuf b;
    sql_init(&b, sql, bytes);
    PGresult *res = NULL;
    int rc = 0;
    if (!generic) {
        sql_add(&b, "EXPLAIN (COSTS OFF) %s", q->text);
        res = PQexecParams(c->pg, sql, q->n_params, NULL, q->values, NULL, NULL, 0);
    } else {
        PGresult *prep = PQprepare(c->pg, "dojo_explain", q->text, q->n_params, NULL);
        if (PQresultStatus(prep) != PGRES_COMMAND_OK) rc = pg_error(e, c->pg, prep, "explain scan");
        PQclear(prep);
        sql_add(&b, "EXPLAIN (COSTS OFF) EXECUTE dojo_explain(");
        for (int i = 0; i < q->n_params && rc == 0; i++) {
            char *literal = PQescapeLiteral(c->pg, q->values[i], strlen(q->values[i]));
            if (!literal) rc = pg_error(e, c->pg, NULL, "explain scan");
            sql_add(&b, "%s%s", i ? ", " : "", literal ? literal : "");
            PQfreemem(literal);
        }
        sql_add(&b, ")");
        if (rc == 0) {
            PQclear(PQexec(c->pg, "SET plan_cache_mode = force_generic_plan"));
            res = PQexec(c->pg, sql);
            PQclear(PQexec(c->pg, "RESET plan_cache_mode"));
        }
        PQclear(PQexec(c->pg, "DEALLOCATE dojo_explain"));
    }
    assert(!b.overflow);
    if (rc == 0 && PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_error(e, c->pg, res, "explain scan");
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        sql_add(out, "%s\n", PQgetvalue(res, i, 0));
    PQclear(res);
    free(sql);
    return rc;
}

int store_pg_scan_plan(store_conn *sc, const store_range *r, bool generic, char *out,
                       size_t out_bytes, err_t *e)
{
    scan_sql *q = malloc(sizeof *q);
    if (!q) return err_set(e, ERR_NOMEM, "explain scan: out of memory");
    sqlbuf b;
    sql_init(&b, out, out_bytes);
    int rc = scan_build(r, q, e);
    if (rc == 0) rc = explain_scan(conn_of(sc), q, generic, &b, e);
    free(q);
    return rc;
}

uint64_t store_pg_prepare_count(store_conn *c)
{
    return conn_of(c)->prepares;
}

static const store_ops pg_ops = {
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
    .get = pg_get,
    .scan = pg_scan,
    .insert = pg_insert,
    .replace = pg_replace,
    .remove = pg_delete,
    .count = pg_count,
    .meta_get = pg_meta_get,
    .meta_set = pg_meta_set,
    .truncate_all = pg_truncate_all,
    .ping = pg_ping,
    .notify_commit = pg_notify_commit,
    .listener_open = pg_listener_open,
    .listener_fd = pg_listener_fd,
    .listener_drain = pg_listener_drain,
    .listener_meta_get = pg_listener_meta_get,
    .listener_close = pg_listener_close,
};
