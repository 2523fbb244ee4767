/*
 * sql_common.c — the pieces of SQL generation both engines share (see
 * sql_common.h). Callers: the scan, document and DDL builders of
 * sqlite_*.c and pg_*.c, on whichever thread owns the connection.
 * Thread: any; everything here is pure.
 */
#include "store/sql_common.h"

#include "base/invariant.h"

#include <string.h>

const char *sql_key_field(const schema_index *ix, int i)
{
    ASSERT(i >= 0 && i < schema_key_len(ix));
    if (i < ix->n_fields) return ix->fields[i];
    if (i == schema_key_len(ix) - 1) return "_id";
    return "_creationTime";
}

const char *sql_system_column(const char *field)
{
    if (strcmp(field, "_creationTime") == 0) return "creation_time";
    if (strcmp(field, "_id") == 0) return "id";
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
        if (json_is_object(v) || json_is_array(v))
            return err_set(e, ERR_INTERNAL, "scan %s.%s: bound value %zu is not a scalar",
                           r->table->name, r->index->name, i);
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
