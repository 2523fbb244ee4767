/*
 * sql_docs.c — the store's statements on documents, written once for both
 * engines over their drivers (sql_driver.h): get, insert, update, delete and
 * count by id, the _dojo_meta key/value pairs and the health ping. Rows are
 * laid out as sql_common.h says: id, creation_time, one key column per
 * indexed (or guarded) field, and the document's bytes (doc_codec.h).
 *
 * Writes touch only what changed: an update sets the key columns whose
 * encoded value differs from the stored document's (and the document's
 * bytes), so SQLite leaves every index whose columns kept their values
 * alone, and PostgreSQL can update the row in place (HOT).
 *
 * Callers: store.c, on the thread that owns the connection; the storage
 * format upgrade (sqlite_ddl.c, pg_ddl.c) for sql_row_*.
 * Thread: the thread that owns the connection.
 */
#include "store/sql_docs.h"

#include "base/invariant.h"
#include "store/ddl_common.h"
#include "store/doc_codec.h"
#include "store/sql_cache.h"
#include "store/key_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- a document as a row ---------------------------------------------------------------- */

void sql_row_free(sql_row *row)
{
    for (int i = 0; i < row->n_keys; i++)
        key_buf_free(&row->keys[i]);
    free(row->data);
    memset(row, 0, sizeof *row);
}

int sql_row_of(const sql_layout *l, const json_t *doc, sql_row *row, const char *what, err_t *e)
{
    memset(row, 0, sizeof *row);
    int rc = sql_doc_identity_checked(doc, &row->id, &row->creation_time, what, e);
    if (rc) return rc;
    for (int i = 0; i < l->n_keys; i++) {
        if (key_encode(json_object_get(doc, l->key_fields[i]), &row->keys[i]) != 0) {
            sql_row_free(row);
            return err_set(e, ERR_NOMEM, "%s %s: out of memory", what, l->table->name);
        }
        row->n_keys = i + 1;
    }
    if (doc_encode(doc, &row->data, &row->data_len) != 0) {
        sql_row_free(row);
        return err_set(e, ERR_NOMEM, "%s %s: cannot encode the document", what, l->table->name);
    }
    return 0;
}

void sql_insert_text(const sql_driver *d, const sql_layout *l, sqlbuf *b)
{
    sqlbuf_add(b, "INSERT INTO \"%s\" (" SQL_ID_COLUMN ", " SQL_CREATION_TIME_COLUMN,
               l->table->name);
    for (int i = 0; i < l->n_keys; i++)
        sqlbuf_add(b, ", \"k_%s\"", l->key_fields[i]);
    sqlbuf_add(b, ", " SQL_DATA_COLUMN ") VALUES (");
    for (int i = 1; i <= l->n_keys + 3; i++) {
        if (i > 1) sqlbuf_add(b, ", ");
        d->param(b, i);
    }
    sqlbuf_add(b, ")");
}

int sql_insert_params(const sql_row *row, sql_value *params)
{
    int n = 0;
    params[n++] = sqlv_text(row->id, strlen(row->id));
    params[n++] = sqlv_double(row->creation_time);
    for (int i = 0; i < row->n_keys; i++)
        params[n++] = sqlv_blob(row->keys[i].bytes, row->keys[i].len);
    params[n++] = sqlv_blob(row->data, row->data_len);
    return n;
}

/* --- reading rows ------------------------------------------------------------------------ */

int sql_read_doc(const sql_driver *d, sql_result *res, int col, const char *what, json_t **out,
                 err_t *e)
{
    size_t id_len = 0, data_len = 0;
    const uint8_t *id = d->col_bytes(res, col, &id_len);
    double ct = d->col_double(res, col + 1);
    const uint8_t *data = d->col_bytes(res, col + 2, &data_len);
    if (!id || !data) return err_set(e, ERR_NOMEM, "%s: out of memory", what);
    char small[64];
    char *idz = id_len < sizeof small ? small : malloc(id_len + 1);
    if (!idz) return err_set(e, ERR_NOMEM, "%s: out of memory", what);
    memcpy(idz, id, id_len);
    idz[id_len] = '\0';
    int rc = doc_decode(data, data_len, idz, ct, out, what, e);
    if (idz != small) free(idz);
    return rc;
}

/* --- documents ---------------------------------------------------------------------------- */

/* A unique index that refused a write is named in the message on every
 * engine: PostgreSQL names it by itself; SQLite names the columns
 * ("UNIQUE constraint failed: users.k_tokenIdentifier"), to which this adds
 * ": index 'users_by_token_unique'". */
static int name_unique_index(const schema_table *t, int rc, err_t *e)
{
    if (rc != ERR_CONSTRAINT || !strstr(e->msg, "UNIQUE constraint failed: ")) return rc;
    for (int i = 0; i < t->n_indexes; i++) {
        const schema_index *ix = &t->indexes[i];
        if (!ix->unique) continue;
        char columns[STORE_SQL_NAME_BYTES_MAX * SCHEMA_INDEX_FIELDS_MAX],
            name[STORE_SQL_NAME_BYTES_MAX];
        sqlbuf b;
        sqlbuf_init(&b, columns, sizeof columns);
        for (int f = 0; f < ix->n_fields; f++) {
            char column[SQL_COLUMN_BYTES_MAX];
            sql_column_of(ix->fields[f], column);
            sqlbuf_add(&b, "%s%s.%s", f ? ", " : "", t->name, column);
        }
        const char *at = strstr(e->msg, columns);
        if (!at || b.overflow || at[strlen(columns)] != '\0') continue;
        ddl_unique_name(t, ix, name);
        size_t len = strlen(e->msg);
        snprintf(e->msg + len, sizeof e->msg - len, ": index '%s'", name);
        break;
    }
    return rc;
}

static int layout_checked(const schema_table *t, sql_layout *l, err_t *e)
{
    return sql_layout_of(t, l, e);
}

static int overflow(err_t *e, const char *what, const sqlbuf *b)
{
    (void)b;
    return err_set(e, ERR_INTERNAL, "%s: statement longer than %d bytes", what, SQL_TEXT_BYTES_MAX);
}

/* A cached row's document (a new object). */
int sql_cached_doc(const sql_cached_row *row, const char *what, json_t **out, err_t *e)
{
    char small[64];
    char *idz = row->id_len < sizeof small ? small : malloc(row->id_len + 1);
    if (!idz) return err_set(e, ERR_NOMEM, "%s: out of memory", what);
    memcpy(idz, row->id, row->id_len);
    idz[row->id_len] = '\0';
    int rc = doc_decode(row->data, row->data_len, idz, row->creation_time, out, what, e);
    if (idz != small) free(idz);
    return rc;
}

/* The current row into the transaction's cache (when there is one). */
void sql_cache_row(const sql_driver *d, store_conn *c, const schema_table *t, sql_result *res,
                   int col)
{
    if (!c->cache) return;
    size_t id_len = 0, data_len = 0;
    const uint8_t *id = d->col_bytes(res, col, &id_len);
    const uint8_t *data = d->col_bytes(res, col + 2, &data_len);
    if (id && data)
        sql_cache_put_doc(c->cache, t, (const char *)id, id_len, d->col_double(res, col + 1), data,
                          data_len);
}

/* --- the transaction's cache (sql_cache.h) -------------------------------------------- */

bool sql_point_index(const schema_index *ix)
{
    if (ix->n_fields < 1) return false; /* every document lies on its one point */
    for (int f = 0; f < ix->n_fields; f++)
        if (sql_system_column(ix->fields[f])) return false;
    return true;
}

/* Forgets the point scans of l's table that a document whose key columns
 * hold keys (in l's order) lies on: one per index that has points. */
static void forget_points_at(sql_cache *cache, const sql_layout *l, const key_buf *keys)
{
    const schema_table *t = l->table;
    for (int i = 0; i < t->n_indexes; i++) {
        const schema_index *ix = &t->indexes[i];
        if (!sql_point_index(ix)) continue;
        sql_cache_point p;
        sql_cache_point_start(&p, ix);
        bool fits = true;
        for (int f = 0; f < ix->n_fields && fits; f++) {
            int k = sql_layout_key(l, ix->fields[f]);
            ASSERT(k >= 0 && "an index's fields have key columns");
            fits = sql_cache_point_add(&p, keys[k].bytes, keys[k].len);
        }
        if (fits)
            sql_cache_forget_point(cache, &p);
        else
            sql_cache_forget_points(cache, t); /* never kept as a point; to be sure */
    }
}

/* The stored row of id as the transaction's cache holds it, when it has
 * point scans to keep right (false: not known, or not needed). */
static bool old_row_cached(store_conn *c, const sql_layout *l, const char *id, sql_row *old)
{
    sql_cached_row cached;
    if (!c->cache || !sql_cache_has_points(c->cache, l->table) ||
        sql_cache_get_doc(c->cache, l->table, id, &cached) != 1)
        return false;
    json_t *doc = NULL;
    err_t e;
    err_init(&e);
    bool known = sql_cached_doc(&cached, "delete", &doc, &e) == 0 &&
                 sql_row_of(l, doc, old, "delete", &e) == 0;
    json_decref(doc);
    err_clear(&e);
    return known;
}

/* What a write changes of the scans kept: the document it wrote (row; NULL
 * for a delete) and the one it replaced (old_keys: its key columns; NULL
 * and old_known for an insert, NULL and !old_known when the stored
 * document was not given) leave their points; any scan of the table that
 * is not a point goes. */
typedef struct written {
    const sql_layout *l;
    const key_buf *old_keys;
    bool old_known;
} written;

/* After a write of row (NULL: a delete of id) in w->l's table: what the
 * transaction reads of it from now on is this — or, when the write failed,
 * nothing it kept is sure any more. */
static void cache_written(store_conn *c, const written *w, const char *id, const sql_row *row,
                          int rc)
{
    const schema_table *t = w->l->table;
    if (rc == 0 && row) {
        c->txn_bytes += row->data_len + strlen(row->id);
        for (int i = 0; i < row->n_keys; i++)
            c->txn_bytes += row->keys[i].len;
    }
    if (!c->cache) return;
    if (rc) {
        sql_cache_clear(c->cache);
        return;
    }
    sql_cache_forget_scans(c->cache, t);
    if (sql_cache_has_points(c->cache, t)) {
        if (!w->old_known)
            sql_cache_forget_points(c->cache, t);
        else if (w->old_keys)
            forget_points_at(c->cache, w->l, w->old_keys);
        if (row) forget_points_at(c->cache, w->l, row->keys);
    }
    if (row)
        sql_cache_put_doc(c->cache, t, row->id, strlen(row->id), row->creation_time, row->data,
                          row->data_len);
    else
        sql_cache_put_doc(c->cache, t, id, strlen(id), 0, NULL, 0);
}

int sql_get(const sql_driver *d, store_conn *c, const schema_table *t, const char *id,
            json_t **doc_out, err_t *e)
{
    char text[SQL_TEXT_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    sql_cached_row cached;
    int known = sql_cache_get_doc(c->cache, t, id, &cached);
    if (known == 0) return 0;
    if (known == 1) {
        snprintf(what, sizeof what, "get from %s", t->name);
        return sql_cached_doc(&cached, what, doc_out, e);
    }
    sqlbuf b;
    sqlbuf_init(&b, text, sizeof text);
    sqlbuf_add(&b, "SELECT " SQL_ROW_COLUMNS " FROM \"%s\" WHERE " SQL_ID_COLUMN " = ", t->name);
    d->param(&b, 1);
    snprintf(what, sizeof what, "get from %s", t->name);
    if (b.overflow) return overflow(e, what, &b);
    sql_value params[] = {sqlv_text(id, strlen(id))};
    sql_stmt s = {.sql = text, .params = params, .n_params = 1, .what = what};
    sql_result res;
    int rc = d->run(c, &s, &res, e);
    if (rc) return rc;
    rc = d->next(&res, what, e);
    if (rc == 1) {
        sql_cache_row(d, c, t, &res, 0);
        rc = sql_read_doc(d, &res, 0, what, doc_out, e);
    } else if (rc == 0 && c->cache) {
        sql_cache_put_doc(c->cache, t, id, strlen(id), 0, NULL, 0);
    }
    d->done(&res);
    return rc < 0 ? rc : 0;
}

int sql_insert(const sql_driver *d, store_conn *c, const schema_table *t, const json_t *doc,
               err_t *e)
{
    char what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(what, sizeof what, "insert into %s", t->name);
    sql_layout l;
    int rc = layout_checked(t, &l, e);
    if (rc) return rc;
    sql_row row;
    rc = sql_row_of(&l, doc, &row, what, e);
    if (rc) return rc;
    char text[SQL_TEXT_BYTES_MAX];
    sqlbuf b;
    sqlbuf_init(&b, text, sizeof text);
    sql_insert_text(d, &l, &b);
    sql_value params[SQL_KEY_COLUMNS_MAX + 3];
    int n = sql_insert_params(&row, params);
    sql_stmt s = {.sql = text, .params = params, .n_params = n, .what = what, .flags = SQL_DEFER};
    rc = b.overflow ? overflow(e, what, &b) : d->run(c, &s, NULL, e);
    cache_written(c, &(written){.l = &l, .old_known = true}, row.id, &row, rc);
    sql_row_free(&row);
    return name_unique_index(t, rc, e);
}

int sql_update(const sql_driver *d, store_conn *c, const schema_table *t, const json_t *old_doc,
               const json_t *doc, err_t *e)
{
    char what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(what, sizeof what, "replace in %s", t->name);
    sql_layout l;
    int rc = layout_checked(t, &l, e);
    if (rc) return rc;
    sql_row row;
    rc = sql_row_of(&l, doc, &row, what, e);
    if (rc) return rc;
    /* What the stored document's key columns hold, to leave alone those
     * that keep their value (only its keys are encoded, not its bytes). */
    key_buf old_keys[SQL_KEY_COLUMNS_MAX];
    int n_old = 0;
    const char *old_id = NULL;
    double old_ct = 0;
    bool have_old =
        old_doc && sql_doc_identity(old_doc, &old_id, &old_ct) && strcmp(old_id, row.id) == 0;
    for (; have_old && n_old < l.n_keys; n_old++)
        if (key_encode(json_object_get(old_doc, l.key_fields[n_old]), &old_keys[n_old]) != 0) {
            rc = err_set(e, ERR_NOMEM, "%s: out of memory", what);
            break;
        }
    char text[SQL_TEXT_BYTES_MAX];
    sqlbuf b;
    sqlbuf_init(&b, text, sizeof text);
    sql_value params[SQL_KEY_COLUMNS_MAX + 3];
    int n = 0;
    sqlbuf_add(&b, "UPDATE \"%s\" SET ", t->name);
    if (!have_old || old_ct != row.creation_time) {
        sqlbuf_add(&b, SQL_CREATION_TIME_COLUMN " = ");
        params[n] = sqlv_double(row.creation_time);
        d->param(&b, ++n);
        sqlbuf_add(&b, ", ");
    }
    for (int i = 0; i < l.n_keys && rc == 0; i++) {
        if (have_old && key_bytes_cmp(old_keys[i].bytes, old_keys[i].len, row.keys[i].bytes,
                                      row.keys[i].len) == 0)
            continue;
        sqlbuf_add(&b, "\"k_%s\" = ", l.key_fields[i]);
        params[n] = sqlv_blob(row.keys[i].bytes, row.keys[i].len);
        d->param(&b, ++n);
        sqlbuf_add(&b, ", ");
    }
    sqlbuf_add(&b, SQL_DATA_COLUMN " = ");
    params[n] = sqlv_blob(row.data, row.data_len);
    d->param(&b, ++n);
    sqlbuf_add(&b, " WHERE " SQL_ID_COLUMN " = ");
    params[n] = sqlv_text(row.id, strlen(row.id));
    d->param(&b, ++n);
    char not_found[ERR_MSG_BYTES_MAX];
    snprintf(not_found, sizeof not_found, "%s: no document %s in %s", what, row.id, t->name);
    sql_stmt s = {.sql = text,
                  .params = params,
                  .n_params = n,
                  .what = what,
                  .flags = SQL_DEFER,
                  .not_found = not_found};
    if (rc == 0 && b.overflow) rc = overflow(e, what, &b);
    if (rc == 0) rc = d->run(c, &s, NULL, e);
    cache_written(
        c, &(written){.l = &l, .old_keys = have_old ? old_keys : NULL, .old_known = have_old},
        row.id, &row, rc);
    for (int i = 0; i < n_old; i++)
        key_buf_free(&old_keys[i]);
    sql_row_free(&row);
    return name_unique_index(t, rc, e);
}

int sql_delete(const sql_driver *d, store_conn *c, const schema_table *t, const char *id, err_t *e)
{
    char text[SQL_TEXT_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(what, sizeof what, "delete from %s", t->name);
    sqlbuf b;
    sqlbuf_init(&b, text, sizeof text);
    sqlbuf_add(&b, "DELETE FROM \"%s\" WHERE " SQL_ID_COLUMN " = ", t->name);
    d->param(&b, 1);
    if (b.overflow) return overflow(e, what, &b);
    char not_found[ERR_MSG_BYTES_MAX];
    snprintf(not_found, sizeof not_found, "%s: no document %s in %s", what, id, t->name);
    sql_value params[] = {sqlv_text(id, strlen(id))};
    sql_stmt s = {.sql = text,
                  .params = params,
                  .n_params = 1,
                  .what = what,
                  .flags = SQL_DEFER,
                  .not_found = not_found};
    sql_layout l;
    int rc = layout_checked(t, &l, e);
    if (rc) return rc;
    /* The document it removes, when the transaction holds it (it read it to
     * delete it): its points are all the point scans it changes. */
    sql_row old = {0};
    bool old_known = old_row_cached(c, &l, id, &old);
    rc = d->run(c, &s, NULL, e);
    cache_written(
        c, &(written){.l = &l, .old_keys = old_known ? old.keys : NULL, .old_known = old_known}, id,
        NULL, rc);
    sql_row_free(&old);
    return rc;
}

int sql_count(const sql_driver *d, store_conn *c, const schema_table *t, int64_t *n_out, err_t *e)
{
    char text[SQL_TEXT_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(text, sizeof text, "SELECT count(*) FROM \"%s\"", t->name);
    snprintf(what, sizeof what, "count %s", t->name);
    sql_stmt s = {.sql = text, .what = what};
    sql_result res;
    int rc = d->run(c, &s, &res, e);
    if (rc) return rc;
    rc = d->next(&res, what, e);
    if (rc == 1) *n_out = d->col_int64(&res, 0);
    d->done(&res);
    return rc < 0 ? rc : 0;
}

/* --- metadata and health -------------------------------------------------------------------- */

int sql_meta_get(const sql_driver *d, store_conn *c, const char *key, char **value_out, err_t *e)
{
    char text[128];
    sqlbuf b;
    sqlbuf_init(&b, text, sizeof text);
    sqlbuf_add(&b, "SELECT value FROM _dojo_meta WHERE key = ");
    d->param(&b, 1);
    sql_value params[] = {sqlv_text(key, strlen(key))};
    sql_stmt s = {.sql = text, .params = params, .n_params = 1, .what = "read metadata"};
    sql_result res;
    int rc = d->run(c, &s, &res, e);
    if (rc) return rc;
    rc = d->next(&res, "read metadata", e);
    if (rc == 1) {
        size_t len = 0;
        const uint8_t *v = d->col_bytes(&res, 0, &len);
        *value_out = v ? strndup((const char *)v, len) : NULL;
        rc = *value_out ? 0 : err_set(e, ERR_NOMEM, "read metadata: out of memory");
    }
    d->done(&res);
    return rc < 0 ? rc : 0;
}

int sql_meta_set(const sql_driver *d, store_conn *c, const char *key, const char *value, err_t *e)
{
    char text[256];
    sqlbuf b;
    sqlbuf_init(&b, text, sizeof text);
    sqlbuf_add(&b, "INSERT INTO _dojo_meta (key, value) VALUES (");
    d->param(&b, 1);
    sqlbuf_add(&b, ", ");
    d->param(&b, 2);
    sqlbuf_add(&b, ") ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    sql_value params[] = {sqlv_text(key, strlen(key)), sqlv_text(value, strlen(value))};
    sql_stmt s = {
        .sql = text, .params = params, .n_params = 2, .what = "write metadata", .flags = SQL_DEFER};
    return d->run(c, &s, NULL, e);
}

int sql_ping(const sql_driver *d, store_conn *c, err_t *e)
{
    sql_stmt s = {.sql = "SELECT 1", .what = "ping"};
    sql_result res;
    int rc = d->run(c, &s, &res, e);
    if (rc) return rc;
    rc = d->next(&res, "ping", e);
    d->done(&res);
    return rc < 0 ? rc : 0;
}
