/*
 * store.c — the public face of the store (store.h): picks the engine from the
 * database URL, checks the declared schema once so that engines can quote its
 * names into SQL as they are, and forwards every call: statements on
 * documents to the one statement layer (sql_docs.h) over the engine's driver,
 * connections and transactions to the engine's store_ops (store_impl.h).
 * Also owns the fault-injection countdown.
 *
 * Callers: cli/ opens and closes the store; the engine's storage thread and
 * reader threads call the rest on their own connections; the engine's
 * commit listener (engine/remote.c) drains a listener on the event loop and
 * opens one on libuv's thread pool.
 * Thread: any; a store_conn is used by one thread at a time.
 */
#include "store/store_impl.h"

#include "base/invariant.h"
#include "store/sql_cache.h"
#include "store/sql_docs.h"

#include <stdatomic.h>
#include <string.h>

/* --- the declared schema ------------------------------------------------------ */

static bool name_ok(const char *name)
{
    if (!name || !name[0] || strlen(name) >= STORE_NAME_BYTES_MAX) return false;
    if (!(name[0] == '_' || (name[0] >= 'a' && name[0] <= 'z') ||
          (name[0] >= 'A' && name[0] <= 'Z')))
        return false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        bool ok = ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9');
        if (!ok) return false;
    }
    return true;
}

static int check_index(const schema_table *t, const schema_index *ix, err_t *e)
{
    if (!name_ok(ix->name) || strcmp(ix->name, schema_by_creation_time.name) == 0)
        return err_set(e, ERR_INTERNAL, "schema: table %s: bad index name '%s'", t->name,
                       ix->name ? ix->name : "");
    if (ix->n_fields < 1 || ix->n_fields > SCHEMA_INDEX_FIELDS_MAX)
        return err_set(e, ERR_INTERNAL, "schema: index %s.%s has %d fields (1..%d)", t->name,
                       ix->name, ix->n_fields, SCHEMA_INDEX_FIELDS_MAX);
    for (int f = 0; f < ix->n_fields; f++)
        if (!name_ok(ix->fields[f]))
            return err_set(e, ERR_INTERNAL, "schema: index %s.%s: bad field name '%s'", t->name,
                           ix->name, ix->fields[f] ? ix->fields[f] : "");
    for (const schema_index *o = t->indexes; o < ix; o++)
        if (strcmp(o->name, ix->name) == 0)
            return err_set(e, ERR_INTERNAL, "schema: index %s.%s declared twice", t->name,
                           ix->name);
    return 0;
}

static int check_table(const schema *s, const schema_table *t, err_t *e)
{
    if (!name_ok(t->name) || strncmp(t->name, "sqlite_", 7) == 0 ||
        strncmp(t->name, "_dojo", 5) == 0)
        return err_set(e, ERR_INTERNAL, "schema: bad table name '%s'", t->name ? t->name : "");
    if (t->number < 1 || t->number > 255)
        return err_set(e, ERR_INTERNAL, "schema: table %s has number %d (1..255)", t->name,
                       t->number);
    for (const schema_table *o = s->tables; o < t; o++)
        if (strcmp(o->name, t->name) == 0 || o->number == t->number)
            return err_set(e, ERR_INTERNAL, "schema: tables %s and %s share a name or number",
                           o->name, t->name);
    for (int i = 0; i < t->n_indexes; i++) {
        int rc = check_index(t, &t->indexes[i], e);
        if (rc) return rc;
    }
    for (const char *const *f = t->nonnegative_fields; f && *f; f++)
        if (!name_ok(*f))
            return err_set(e, ERR_INTERNAL, "schema: table %s: bad nonnegative field '%s'", t->name,
                           *f);
    return 0;
}

static int check_schema(const schema *s, err_t *e)
{
    if (s->version < 1)
        return err_set(e, ERR_INTERNAL, "schema: version %d (must be >= 1)", s->version);
    for (int i = 0; i < s->n_tables; i++) {
        int rc = check_table(s, &s->tables[i], e);
        if (rc) return rc;
    }
    return 0;
}

/* --- opening --------------------------------------------------------------------- */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int store_open(const char *url, const schema *s, store **out, char report[STORE_REPORT_BYTES_MAX],
               err_t *e)
{
    ASSERT(url && s && out);
    *out = NULL;
    if (report) report[0] = '\0';
    int rc = check_schema(s, e);
    if (rc) return rc;
    if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://"))
        return store_pg_open(url, s, out, report, e);
    const char *path = has_prefix(url, "sqlite:") ? url + strlen("sqlite:") : url;
    if (!path[0]) return err_set(e, ERR_STORAGE, "no database path in '%s'", url);
    if (strstr(url, "://") && !has_prefix(url, "sqlite:")) {
        char shown[256];
        store_redact_url(url, shown, sizeof shown);
        return err_set(e, ERR_STORAGE,
                       "unsupported database URL '%s': use sqlite:PATH (or a file path) or "
                       "postgres://USER:PASSWORD@HOST:PORT/DB",
                       shown);
    }
    return store_sqlite_open(path, s, out, report, e);
}

void store_close(store *st)
{
    if (st) st->ops->close(st);
}

const schema *store_schema(const store *st)
{
    return st->schema;
}

const char *store_engine_name(const store *st)
{
    return st->ops->name;
}

/* --- connections and transactions ----------------------------------------------- */

int store_connect(store *st, bool writer, store_conn **out, err_t *e)
{
    ASSERT(st && out);
    *out = NULL;
    return st->ops->connect(st, writer, out, e);
}

void store_disconnect(store_conn *c)
{
    if (!c) return;
    sql_cache_free(c->cache_storage);
    c->ops->disconnect(c);
}

/* The transaction's cache of reads (sql_cache.h) ends with it. */
static void end_cache(store_conn *c)
{
    sql_cache_clear(c->cache);
    c->cache = NULL;
}

int store_begin(store_conn *c, bool write, err_t *e)
{
    end_cache(c);
    c->txn_bytes = 0;
    int rc = c->ops->begin(c, write, e);
    if (rc == 0 && write && c->st->sql->cache_reads) {
        if (!c->cache_storage) c->cache_storage = sql_cache_new();
        c->cache = c->cache_storage; /* none when out of memory: reads go to the database */
    }
    return rc;
}

int store_commit(store_conn *c, err_t *e)
{
    end_cache(c);
    return c->ops->commit(c, e);
}

void store_rollback(store_conn *c)
{
    end_cache(c);
    c->ops->rollback(c);
}

int store_savepoint(store_conn *c, err_t *e)
{
    return c->ops->savepoint(c, e);
}

int store_savepoint_release(store_conn *c, err_t *e)
{
    return c->ops->savepoint_release(c, e);
}

void store_savepoint_rollback(store_conn *c)
{
    sql_cache_clear(c->cache); /* what the savepoint wrote is gone */
    c->ops->savepoint_rollback(c);
}

/* --- documents ------------------------------------------------------------------- */

int store_get(store_conn *c, const schema_table *t, const char *id, json_t **doc_out, err_t *e)
{
    ASSERT(t && id && doc_out);
    *doc_out = NULL;
    return sql_get(c->st->sql, c, t, id, doc_out, e);
}

int store_scan(store_conn *c, const store_range *r, json_t **rows_out, err_t *e)
{
    ASSERT(r && r->table && r->index && rows_out);
    ASSERT(r->limit >= 1);
    *rows_out = NULL;
    return sql_scan(c->st->sql, c, r, rows_out, e);
}

json_t *store_scan_resume_after(const json_t *rows)
{
    size_t n = json_array_size(rows);
    if (n == 0) return NULL;
    const json_t *last = json_array_get(rows, n - 1);
    const json_t *ct = json_object_get(last, "_creationTime"), *id = json_object_get(last, "_id");
    ASSERT(json_is_number(ct) && json_is_string(id)); /* every stored document has both */
    return json_pack("[O,O]", ct, id);
}

int store_insert(store_conn *c, const schema_table *t, const json_t *doc, err_t *e)
{
    ASSERT(t && json_is_object(doc));
    return sql_insert(c->st->sql, c, t, doc, e);
}

int store_replace(store_conn *c, const schema_table *t, const json_t *doc, err_t *e)
{
    ASSERT(t && json_is_object(doc));
    return sql_update(c->st->sql, c, t, NULL, doc, e);
}

int store_update(store_conn *c, const schema_table *t, const json_t *old_doc, const json_t *doc,
                 err_t *e)
{
    ASSERT(t && json_is_object(old_doc) && json_is_object(doc));
    return sql_update(c->st->sql, c, t, old_doc, doc, e);
}

int store_delete(store_conn *c, const schema_table *t, const char *id, err_t *e)
{
    ASSERT(t && id);
    return sql_delete(c->st->sql, c, t, id, e);
}

int store_count(store_conn *c, const schema_table *t, int64_t *n_out, err_t *e)
{
    ASSERT(t && n_out);
    *n_out = 0;
    return sql_count(c->st->sql, c, t, n_out, e);
}

int store_count_range(store_conn *c, const store_range *r, int64_t *n_out, err_t *e)
{
    ASSERT(r && r->table && r->index && n_out);
    ASSERT(r->limit >= 1);
    *n_out = 0;
    return sql_count_range(c->st->sql, c, r, n_out, e);
}

int store_meta_get(store_conn *c, const char *key, char **value_out, err_t *e)
{
    ASSERT(key && value_out);
    *value_out = NULL;
    return sql_meta_get(c->st->sql, c, key, value_out, e);
}

int store_meta_set(store_conn *c, const char *key, const char *value, err_t *e)
{
    ASSERT(key && value);
    return sql_meta_set(c->st->sql, c, key, value, e);
}

int store_truncate_all(store_conn *c, err_t *e)
{
    sql_cache_clear(c->cache);
    return c->ops->truncate_all(c, e);
}

void store_release_memory(store_conn *c)
{
    ASSERT(!c->cache && "store_release_memory inside a write transaction");
    sql_cache_free(c->cache_storage);
    c->cache_storage = NULL;
    if (c->ops->release_memory) c->ops->release_memory(c);
}

int store_prefetch(store_conn *c, const store_range *ranges, int n, err_t *e)
{
    ASSERT(n >= 0 && (n == 0 || ranges));
    return sql_prefetch(c->st->sql, c, ranges, n, e);
}

bool store_prefetches(const store *st)
{
    return st->sql->cache_reads && st->sql->run_many;
}

size_t store_txn_bytes(const store_conn *c)
{
    return c->txn_bytes;
}

size_t store_cache_bytes(const store_conn *c)
{
    return sql_cache_bytes(c->cache_storage);
}

int store_ping(store_conn *c, err_t *e)
{
    return sql_ping(c->st->sql, c, e);
}

/* --- deferred writes -------------------------------------------------------------- */

void store_defer_writes(store_conn *c, bool on)
{
    if (c->ops->defer_writes) c->ops->defer_writes(c, on);
}

bool store_deferred_failure(const store_conn *c)
{
    return c->ops->deferred_failure && c->ops->deferred_failure(c);
}

/* --- commit notifications --------------------------------------------------------- */

bool store_notifies(const store *st)
{
    return st->ops->listener_open != NULL;
}

int store_notify_commit(store_conn *c, const char *payload, err_t *e)
{
    ASSERT(payload && payload[0] && strlen(payload) <= STORE_NOTIFY_PAYLOAD_BYTES_MAX);
    if (!c->ops->notify_commit) return 0;
    return c->ops->notify_commit(c, payload, e);
}

int store_listener_open(store *st, store_listener **out, err_t *e)
{
    ASSERT(st && out);
    *out = NULL;
    if (!st->ops->listener_open)
        return err_set(e, ERR_INTERNAL,
                       "the %s store has no commit notifications (one process per database)",
                       st->ops->name);
    return st->ops->listener_open(st, out, e);
}

int store_listener_fd(const store_listener *l)
{
    return l->ops->listener_fd(l);
}

int store_listener_drain(store_listener *l, void (*cb)(void *data, const char *payload), void *data,
                         err_t *e)
{
    ASSERT(l && cb);
    return l->ops->listener_drain(l, cb, data, e);
}

int store_listener_meta_get(store_listener *l, const char *key, char **value_out, err_t *e)
{
    ASSERT(l && key && value_out);
    *value_out = NULL;
    return l->ops->listener_meta_get(l, key, value_out, e);
}

void store_listener_close(store_listener *l)
{
    if (l) l->ops->listener_close(l);
}

/* --- fault injection --------------------------------------------------------------- */

/* Statements left before the injected fault; 0 = none armed. Process-wide on
 * purpose: a test arms it and the engine's own threads trip over it. */
static atomic_int fault_countdown;

void store_inject_fault_after(int n_statements)
{
    ASSERT(n_statements >= 0);
    atomic_store(&fault_countdown, n_statements);
}

int store_fault_pending(void)
{
    return atomic_load(&fault_countdown);
}

bool store_fault_due(void)
{
    int n = atomic_load(&fault_countdown);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&fault_countdown, &n, n - 1)) return n == 1;
    }
    return false;
}
