/*
 * files_pg.c — the PostgreSQL file store (files.h): a file's bytes are rows
 * of _dojo_file_chunks(storage_id, seq, data), LIMIT_FILE_PG_CHUNK_BYTES
 * each, in the deployment's schema, so every node of a deployment serves
 * every file.
 *
 * An upload writes its rows in one transaction on a connection of its own
 * (a crash before it commits leaves nothing), and holds the session
 * advisory lock of its storage id from before the first row until its
 * `_storage` document is committed or given up. The sweep of orphans
 * (rows whose document is missing: a crash between the two commits) takes
 * each storage id's lock with pg_try_advisory_lock and looks again before
 * deleting, so it never takes the rows of another node's upload in
 * progress. Deleting the rows of a removed document needs no lock: its id
 * is never used again.
 *
 * Connections are kept in a small pool (FILES_PG_POOL_MAX idle ones).
 * Thread: any (blocking); the pool is guarded by a mutex, a connection is
 * used by one thread at a time.
 */
#include "store/files_impl.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/limits.h"
#include "base/log.h"

#define FILES_PG_POOL_MAX 8
#define FILES_PG_TABLE "_dojo_file_chunks"
#define FILES_PG_DOCS "\"_storage\"" /* api.md §1: the documents that name the files */
#define FILES_PG_URL_SHOWN_BYTES 1024

typedef struct pg_files {
    files base;
    char *url;
    char shown[FILES_PG_URL_SHOWN_BYTES];
    uv_mutex_t lock;
    PGconn *idle[FILES_PG_POOL_MAX];
    int n_idle;
} pg_files;

typedef struct pg_writer {
    file_writer base;
    PGconn *pg;
    bool locked, in_txn;
    int seq;
    uint8_t *chunk; /* LIMIT_FILE_PG_CHUNK_BYTES */
    size_t chunk_len;
} pg_writer;

static pg_files *pg_of(files *fs)
{
    return (pg_files *)fs;
}

/* The one-line error of a failed statement or connection. */
static int pg_fail(err_t *e, PGconn *pg, PGresult *res, const char *what)
{
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
    char line[ERR_MSG_BYTES_MAX / 2];
    size_t n = 0;
    for (const char *p = msg ? msg : ""; *p && n + 1 < sizeof line; p++)
        line[n++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
    while (n > 0 && line[n - 1] == ' ')
        n--;
    line[n] = '\0';
    return err_set(e, ERR_STORAGE, "%s: %s", what, line);
}

static int pg_exec(PGconn *pg, const char *sql, const char *what, err_t *e)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : pg_fail(e, pg, res, what);
    PQclear(res);
    return rc;
}

static int dial(pg_files *p, PGconn **out, err_t *e)
{
    const char *keys[] = {"dbname", "application_name", "client_encoding", "connect_timeout", NULL};
    const char *values[] = {p->url, "dojo-files", "UTF8", "10", NULL};
    PGconn *pg = PQconnectdbParams(keys, values, 1);
    if (!pg) return err_set(e, ERR_NOMEM, "cannot connect to %s: out of memory", p->shown);
    if (PQstatus(pg) != CONNECTION_OK) {
        int rc = pg_fail(e, pg, NULL, "cannot connect for files");
        PQfinish(pg);
        return rc;
    }
    *out = pg;
    return 0;
}

static int conn_take(pg_files *p, PGconn **out, err_t *e)
{
    uv_mutex_lock(&p->lock);
    PGconn *pg = p->n_idle > 0 ? p->idle[--p->n_idle] : NULL;
    uv_mutex_unlock(&p->lock);
    if (pg && PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) == PQTRANS_IDLE) {
        *out = pg;
        return 0;
    }
    if (pg) PQfinish(pg);
    return dial(p, out, e);
}

/* A connection in a clean state goes back to the pool; any other is closed. */
static void conn_give(pg_files *p, PGconn *pg)
{
    if (!pg) return;
    bool clean = PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) == PQTRANS_IDLE;
    uv_mutex_lock(&p->lock);
    if (clean && p->n_idle < FILES_PG_POOL_MAX) {
        p->idle[p->n_idle++] = pg;
        pg = NULL;
    }
    uv_mutex_unlock(&p->lock);
    if (pg) PQfinish(pg);
}

/* The advisory lock key of a storage id: 64 bits of its FNV-1a hash. A
 * collision (with another id, or another deployment on the same database)
 * only makes a sweep skip rows it could have removed. */
static void lock_key(const char *storage_id, char out[24])
{
    uint64_t h = 1469598103934665603ull;
    for (const char *s = storage_id; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    snprintf(out, 24, "%lld", (long long)h);
}

static int lock_call(PGconn *pg, const char *fn, const char *storage_id, bool *got, err_t *e)
{
    char key[24], sql[96];
    lock_key(storage_id, key);
    snprintf(sql, sizeof sql, "SELECT %s($1::bigint)", fn);
    const char *params[] = {key};
    PGresult *res = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_fail(e, pg, res, fn);
    else if (got)
        *got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return rc;
}

static int delete_rows(PGconn *pg, const char *storage_id, bool only_orphans, err_t *e)
{
    const char *sql = only_orphans ? "DELETE FROM " FILES_PG_TABLE " c WHERE c.storage_id = $1 "
                                     "AND NOT EXISTS (SELECT 1 FROM " FILES_PG_DOCS
                                     " d WHERE d.id = $1)"
                                   : "DELETE FROM " FILES_PG_TABLE " WHERE storage_id = $1";
    const char *params[] = {storage_id};
    PGresult *res = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_fail(e, pg, res, "delete file rows");
    PQclear(res);
    return rc;
}

/* --- writing ---------------------------------------------------------------------------- */

static int pg_write_begin(files *fs, const char *storage_id, file_writer **out, err_t *e)
{
    pg_files *p = pg_of(fs);
    pg_writer *w = calloc(1, sizeof *w);
    uint8_t *chunk = malloc(LIMIT_FILE_PG_CHUNK_BYTES);
    if (!w || !chunk) {
        free(w);
        free(chunk);
        return err_set(e, ERR_NOMEM, "out of memory starting an upload");
    }
    w->chunk = chunk;
    w->base.fs = fs;
    int rc = conn_take(p, &w->pg, e);
    if (rc == 0) rc = lock_call(w->pg, "pg_advisory_lock", storage_id, NULL, e);
    if (rc == 0) w->locked = true;
    if (rc == 0) rc = pg_exec(w->pg, "BEGIN", "begin an upload", e);
    if (rc == 0) w->in_txn = true;
    snprintf(w->base.storage_id, sizeof w->base.storage_id, "%s", storage_id);
    *out = &w->base;
    return rc; /* on failure files.c ends the writer */
}

static int flush_chunk(pg_writer *w, err_t *e)
{
    if (w->chunk_len == 0) return 0;
    char seq[16];
    snprintf(seq, sizeof seq, "%d", w->seq);
    const char *params[] = {w->base.storage_id, seq, (const char *)w->chunk};
    int lengths[] = {0, 0, (int)w->chunk_len};
    int formats[] = {0, 0, 1};
    PGresult *res = PQexecParams(w->pg,
                                 "INSERT INTO " FILES_PG_TABLE
                                 " (storage_id, seq, data) VALUES ($1, $2::integer, $3::bytea)",
                                 3, NULL, params, lengths, formats, 0);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_fail(e, w->pg, res, "store a file");
    PQclear(res);
    if (rc == 0) {
        w->seq++;
        w->chunk_len = 0;
    }
    return rc;
}

static int pg_write(file_writer *fw, const void *data, size_t len, err_t *e)
{
    pg_writer *w = (pg_writer *)fw;
    const uint8_t *p = data;
    while (len > 0) {
        size_t room = LIMIT_FILE_PG_CHUNK_BYTES - w->chunk_len;
        size_t n = len < room ? len : room;
        memcpy(w->chunk + w->chunk_len, p, n);
        w->chunk_len += n;
        p += n;
        len -= n;
        if (w->chunk_len == LIMIT_FILE_PG_CHUNK_BYTES) {
            int rc = flush_chunk(w, e);
            if (rc) return rc;
        }
    }
    return 0;
}

static int pg_seal(file_writer *fw, err_t *e)
{
    pg_writer *w = (pg_writer *)fw;
    int rc = flush_chunk(w, e);
    if (rc == 0) rc = pg_exec(w->pg, "COMMIT", "commit an upload", e);
    if (rc == 0) w->in_txn = false;
    return rc;
}

static void pg_end(file_writer *fw, bool keep)
{
    pg_writer *w = (pg_writer *)fw;
    pg_files *p = pg_of(fw->fs);
    err_t e;
    err_init(&e);
    if (w->pg && w->in_txn) pg_exec(w->pg, "ROLLBACK", "roll an upload back", &e);
    if (w->pg && !keep && !w->in_txn && fw->sealed && delete_rows(w->pg, fw->storage_id, false, &e))
        log_warn("files: could not remove the rows of an abandoned upload: %s", e.msg);
    if (w->pg && w->locked) lock_call(w->pg, "pg_advisory_unlock", fw->storage_id, NULL, &e);
    err_clear(&e);
    conn_give(p, w->pg);
    free(w->chunk);
    free(w);
}

/* --- reading ---------------------------------------------------------------------------- */

static int pg_read(files *fs, const char *storage_id, const char *sha, uint64_t offset, void *buf,
                   size_t len, size_t *n_out, err_t *e)
{
    (void)sha;
    pg_files *p = pg_of(fs);
    PGconn *pg;
    int rc = conn_take(p, &pg, e);
    if (rc) return rc;
    uint64_t first = offset / LIMIT_FILE_PG_CHUNK_BYTES;
    uint64_t last = (offset + (len ? len : 1) - 1) / LIMIT_FILE_PG_CHUNK_BYTES;
    char a[24], b[24];
    snprintf(a, sizeof a, "%llu", (unsigned long long)first);
    snprintf(b, sizeof b, "%llu", (unsigned long long)last);
    const char *params[] = {storage_id, a, b};
    PGresult *res = PQexecParams(pg,
                                 "SELECT seq, data FROM " FILES_PG_TABLE
                                 " WHERE storage_id = $1 AND seq BETWEEN $2::integer AND "
                                 "$3::integer ORDER BY seq",
                                 3, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pg_fail(e, pg, res, "read a file");
    } else {
        size_t done = 0;
        int rows = PQntuples(res);
        for (int i = 0; i < rows && done < len; i++) {
            uint32_t seq_be;
            memcpy(&seq_be, PQgetvalue(res, i, 0), 4);
            uint64_t seq = ntohl(seq_be);
            uint64_t start = seq * LIMIT_FILE_PG_CHUNK_BYTES;
            if (start > offset + done) break; /* a gap: the rows end here */
            size_t n = (size_t)PQgetlength(res, i, 1);
            size_t skip = (size_t)(offset + done - start);
            if (skip >= n) break; /* the last row ends before offset */
            size_t take = n - skip < len - done ? n - skip : len - done;
            memcpy((char *)buf + done, PQgetvalue(res, i, 1) + skip, take);
            done += take;
            if (n < LIMIT_FILE_PG_CHUNK_BYTES) break; /* the last row */
        }
        *n_out = done;
    }
    PQclear(res);
    conn_give(p, pg);
    return rc;
}

/* --- removing ----------------------------------------------------------------------------- */

static int pg_forget(files *fs, const char *storage_id, const char *sha, err_t *e)
{
    (void)sha;
    pg_files *p = pg_of(fs);
    PGconn *pg;
    int rc = conn_take(p, &pg, e);
    if (rc) return rc;
    rc = delete_rows(pg, storage_id, true, e);
    conn_give(p, pg);
    return rc;
}

static int pg_sweep(files *fs, bool at_start, int64_t *removed, err_t *e)
{
    (void)at_start;
    pg_files *p = pg_of(fs);
    PGconn *pg;
    int rc = conn_take(p, &pg, e);
    if (rc) return rc;
    PGresult *res = PQexec(pg, "SELECT DISTINCT c.storage_id FROM " FILES_PG_TABLE
                               " c WHERE NOT EXISTS (SELECT 1 FROM " FILES_PG_DOCS
                               " d WHERE d.id = c.storage_id)");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) rc = pg_fail(e, pg, res, "find orphan files");
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0);
        bool got = false;
        rc = lock_call(pg, "pg_try_advisory_lock", id, &got, e);
        if (rc || !got) continue; /* an upload in progress holds it */
        rc = delete_rows(pg, id, true, e);
        if (rc == 0) (*removed)++;
        err_t ue;
        err_init(&ue);
        lock_call(pg, "pg_advisory_unlock", id, NULL, &ue);
        err_clear(&ue);
    }
    PQclear(res);
    conn_give(p, pg);
    return rc;
}

static int pg_remove_all(files *fs, err_t *e)
{
    pg_files *p = pg_of(fs);
    PGconn *pg;
    int rc = conn_take(p, &pg, e);
    if (rc) return rc;
    rc = pg_exec(pg, "DELETE FROM " FILES_PG_TABLE, "remove every file", e);
    conn_give(p, pg);
    return rc;
}

static void pg_close(files *fs)
{
    pg_files *p = pg_of(fs);
    for (int i = 0; i < p->n_idle; i++)
        PQfinish(p->idle[i]);
    uv_mutex_destroy(&p->lock);
    free(p->url);
    free(p);
}

static const files_ops pg_ops = {
    .close = pg_close,
    .write_begin = pg_write_begin,
    .write = pg_write,
    .seal = pg_seal,
    .end = pg_end,
    .open_fd = NULL,
    .read = pg_read,
    .forget = pg_forget,
    .sweep = pg_sweep,
    .remove_all = pg_remove_all,
};

static bool table_exists(PGconn *pg)
{
    PGresult *res = PQexec(pg, "SELECT to_regclass('" FILES_PG_TABLE "') IS NOT NULL");
    bool exists = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                  strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return exists;
}

/* Creates the table once; several nodes starting together may race to it,
 * and the losers find it made. Rows are written once and read whole, and
 * hold images and videos (compressed already): stored uncompressed. */
static int create_table(PGconn *pg, err_t *e)
{
    if (table_exists(pg)) return 0;
    int rc =
        pg_exec(pg,
                "CREATE TABLE IF NOT EXISTS " FILES_PG_TABLE
                " (storage_id TEXT COLLATE \"C\" NOT NULL, seq INTEGER NOT NULL, "
                "data BYTEA NOT NULL, PRIMARY KEY (storage_id, seq)); ALTER TABLE " FILES_PG_TABLE
                " ALTER COLUMN data SET STORAGE EXTERNAL",
                "create the file table", e);
    if (rc && table_exists(pg)) {
        err_clear(e);
        rc = 0;
    }
    return rc;
}

int files_pg_open(const char *url, store *st, bool create, files **out, err_t *e)
{
    pg_files *p = calloc(1, sizeof *p);
    if (!p || !(p->url = strdup(url))) {
        free(p);
        return err_set(e, ERR_NOMEM, "out of memory opening the file store");
    }
    store_redact_url(url, p->shown, sizeof p->shown);
    uv_mutex_init(&p->lock);
    p->base.ops = &pg_ops;
    p->base.st = st;
    p->base.has_fds = false;
    snprintf(p->base.describe, sizeof p->base.describe, "PostgreSQL table " FILES_PG_TABLE);
    PGconn *pg = NULL;
    int rc = dial(p, &pg, e);
    if (rc == 0 && create) rc = create_table(pg, e);
    if (rc) {
        if (pg) PQfinish(pg);
        pg_close(&p->base);
        return rc;
    }
    conn_give(p, pg);
    *out = &p->base;
    return 0;
}
