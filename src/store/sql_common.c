/*
 * sql_common.c — the pieces of SQL generation both engines share (see
 * sql_common.h). Callers: the statement layer (sql_docs.c, sql_scan.c), the
 * DDL of ddl_common.c and the engines' own files, on whichever thread owns
 * the connection.
 * Thread: any; everything here is pure.
 */
#include "store/sql_common.h"

#include "base/invariant.h"

#include <stdio.h>
#include <string.h>

static int layout_add(sql_layout *l, const char *field, err_t *e)
{
    if (sql_system_column(field) || sql_layout_key(l, field) >= 0) return 0;
    if (l->n_keys >= SQL_KEY_COLUMNS_MAX)
        return err_set(e, ERR_INTERNAL, "schema: table %s needs more than %d key columns",
                       l->table->name, SQL_KEY_COLUMNS_MAX);
    l->key_fields[l->n_keys++] = field;
    return 0;
}

int sql_layout_of(const schema_table *t, sql_layout *out, err_t *e)
{
    memset(out, 0, sizeof *out);
    out->table = t;
    int rc = 0;
    for (int i = 0; i < t->n_indexes && rc == 0; i++)
        for (int f = 0; f < t->indexes[i].n_fields && rc == 0; f++)
            rc = layout_add(out, t->indexes[i].fields[f], e);
    for (const char *const *f = t->nonnegative_fields; f && *f && rc == 0; f++)
        rc = layout_add(out, *f, e);
    return rc;
}

int sql_layout_key(const sql_layout *l, const char *field)
{
    for (int i = 0; i < l->n_keys; i++)
        if (strcmp(l->key_fields[i], field) == 0) return i;
    return -1;
}

void sql_column_of(const char *field, char out[SQL_COLUMN_BYTES_MAX])
{
    const char *column = sql_system_column(field);
    if (column)
        snprintf(out, SQL_COLUMN_BYTES_MAX, "%s", column);
    else
        snprintf(out, SQL_COLUMN_BYTES_MAX, "k_%s", field);
}

const char *sql_key_field(const schema_index *ix, int i)
{
    ASSERT(i >= 0 && i < schema_key_len(ix));
    if (i < ix->n_fields) return ix->fields[i];
    if (i == schema_key_len(ix) - 1) return "_id";
    return "_creationTime";
}

const char *sql_system_column(const char *field)
{
    if (strcmp(field, "_creationTime") == 0) return SQL_CREATION_TIME_COLUMN;
    if (strcmp(field, "_id") == 0) return SQL_ID_COLUMN;
    return NULL;
}

int sql_equal_prefix(const store_range *r)
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
        const char *field = sql_key_field(r->index, (int)i);
        if (json_is_object(v) || json_is_array(v))
            return err_set(e, ERR_INTERNAL, "scan %s.%s: bound value %zu is not a scalar",
                           r->table->name, r->index->name, i);
        if (strcmp(field, "_creationTime") == 0 && !json_is_number(v))
            return err_set(e, ERR_INTERNAL, "scan %s.%s: a bound on _creationTime is not a number",
                           r->table->name, r->index->name);
        if (strcmp(field, "_id") == 0 && !json_is_string(v))
            return err_set(e, ERR_INTERNAL, "scan %s.%s: a bound on _id is not a string",
                           r->table->name, r->index->name);
    }
    return 0;
}

int sql_check_bounds(const store_range *r, err_t *e)
{
    int rc = check_bound(r, r->lo, e);
    return rc ? rc : check_bound(r, r->hi, e);
}

bool sql_doc_identity(const json_t *doc, const char **id, double *creation_time)
{
    const json_t *jid = json_object_get(doc, "_id");
    const json_t *jct = json_object_get(doc, "_creationTime");
    if (!json_is_string(jid) || !json_is_number(jct)) return false;
    *id = json_string_value(jid);
    *creation_time = json_number_value(jct);
    return true;
}

uint64_t sql_hash(const char *text)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (; *text; text++)
        h = (h ^ (unsigned char)*text) * 1099511628211ull;
    return h;
}

int sql_doc_identity_checked(const json_t *doc, const char **id, double *creation_time,
                             const char *what, err_t *e)
{
    if (!sql_doc_identity(doc, id, creation_time))
        return err_set(e, ERR_INTERNAL, "%s: the document lacks _id or _creationTime", what);
    return 0;
}

int sql_no_document(err_t *e, const char *what, const char *id, const char *table)
{
    return err_set(e, ERR_NOT_FOUND, "%s: no document %s in %s", what, id, table);
}
