/*
 * pg_docs.c — the documents of the PostgreSQL engine: get, insert, replace,
 * delete and count by id, the _dojo_meta key/value pairs, truncation (import
 * --replace) and the health ping; and documents as jsonb text.
 *
 * Documents travel as JSON text cast to jsonb and back. jsonb keeps decimal
 * text exactly (5.0 stays 5.0, _creationTime keeps its 17 digits) but prints
 * a large real such as 1e300 as a long run of digits; such integer-looking
 * literals beyond int64 are read back as reals.
 *
 * Callers: store.c through pg_ops — the storage thread on the writer
 * connection, reader threads on theirs; pg_scan.c for the rows it reads.
 * Thread: the thread that owns the connection.
 */
#include "base/invariant.h"
#include "store/pg_impl.h"

#include "store/ddl_common.h"
#include "store/sql_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void pg_format_double(char out[PG_NUMBER_BYTES_MAX], double v)
{
    snprintf(out, PG_NUMBER_BYTES_MAX, "%.17g", v);
}

/* --- documents --------------------------------------------------------------------- */

/* The doc column of row `row` of res. */
int pg_result_doc(const PGresult *res, int row, const char *table, json_t **out, err_t *e)
{
    const char *text = PQgetvalue(res, row, 0);
    return parse_doc(text, (size_t)PQgetlength(res, row, 0), table, out, e);
}

int pg_get(store_conn *sc, const schema_table *t, const char *id, json_t **doc_out, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    char sql[PG_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "SELECT doc FROM \"%s\" WHERE id = $1", t->name);
    snprintf(what, sizeof what, "get from %s", t->name);
    const char *values[] = {id};
    PGresult *res;
    int rc = pg_stmt_run(c, sql, 1, values, what, &res, e);
    if (rc) return rc;
    if (PQntuples(res) > 0) rc = pg_result_doc(res, 0, t->name, doc_out, e);
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
    int rc = sql_doc_identity_checked(doc, &id, &ct, what, e);
    if (rc) return rc;
    char *text = json_dumps(doc, SQL_DOC_DUMP_FLAGS);
    if (!text) return err_set(e, ERR_NOMEM, "%s: cannot encode the document", what);
    char ct_text[PG_NUMBER_BYTES_MAX];
    pg_format_double(ct_text, ct);
    const char *values[] = {id, ct_text, text};
    PGresult *res;
    rc = pg_stmt_run(c, sql, 3, values, what, &res, e);
    if (rc == 0) {
        *changed_out = strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
    }
    free(text);
    return rc;
}

int pg_insert(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e)
{
    char sql[PG_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\" (id, creation_time, doc) VALUES ($1, $2, $3::jsonb)", t->name);
    snprintf(what, sizeof what, "insert into %s", t->name);
    long changed = 0;
    return write_doc(pg_conn_of(sc), t, doc, sql, what, &changed, e);
}

int pg_replace(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e)
{
    char sql[PG_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "UPDATE \"%s\" SET creation_time = $2, doc = $3::jsonb WHERE id = $1",
             t->name);
    snprintf(what, sizeof what, "replace in %s", t->name);
    long changed = 0;
    int rc = write_doc(pg_conn_of(sc), t, doc, sql, what, &changed, e);
    if (rc || changed > 0) return rc;
    return sql_no_document(e, what, json_string_value(json_object_get(doc, "_id")), t->name);
}

int pg_delete(store_conn *sc, const schema_table *t, const char *id, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    char sql[PG_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\" WHERE id = $1", t->name);
    snprintf(what, sizeof what, "delete from %s", t->name);
    const char *values[] = {id};
    PGresult *res;
    int rc = pg_stmt_run(c, sql, 1, values, what, &res, e);
    if (rc) return rc;
    long changed = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return changed > 0 ? 0 : sql_no_document(e, what, id, t->name);
}

int pg_count(store_conn *sc, const schema_table *t, int64_t *n_out, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    char sql[PG_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", t->name);
    snprintf(what, sizeof what, "count %s", t->name);
    PGresult *res;
    int rc = pg_stmt_run(c, sql, 0, NULL, what, &res, e);
    if (rc) return rc;
    *n_out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* --- metadata, truncation, health -------------------------------------------------- */

int pg_meta_get(store_conn *sc, const char *key, char **value_out, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    const char *values[] = {key};
    PGresult *res;
    int rc = pg_stmt_run(c, "SELECT value FROM _dojo_meta WHERE key = $1", 1, values,
                         "read metadata", &res, e);
    if (rc) return rc;
    if (PQntuples(res) > 0) {
        *value_out = strdup(PQgetvalue(res, 0, 0));
        if (!*value_out) rc = err_set(e, ERR_NOMEM, "read metadata: out of memory");
    }
    PQclear(res);
    return rc;
}

int pg_meta_set(store_conn *sc, const char *key, const char *value, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    const char *values[] = {key, value};
    return pg_stmt_run(c,
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
    char sql[PG_SQL_BYTES_MAX], guard[STORE_SQL_NAME_BYTES_MAX];
    ddl_guard_name(t, "delete", guard);
    int rc = 0;
    if (t->append_only) {
        snprintf(sql, sizeof sql, "ALTER TABLE \"%s\" DISABLE TRIGGER \"%s\"", t->name, guard);
        rc = pg_run_simple(c, sql, "truncate: disable guard", e);
    }
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\"", t->name);
    if (rc == 0) rc = pg_run_simple(c, sql, "truncate", e);
    if (rc == 0 && t->append_only) {
        snprintf(sql, sizeof sql, "ALTER TABLE \"%s\" ENABLE TRIGGER \"%s\"", t->name, guard);
        rc = pg_run_simple(c, sql, "truncate: enable guard", e);
    }
    return rc;
}

int pg_truncate_all(store_conn *sc, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    ASSERT(c->writer && c->in_txn && "truncate outside a write transaction");
    const schema *s = c->base.st->schema;
    for (int i = 0; i < s->n_tables; i++) {
        int rc = truncate_table(c, &s->tables[i], e);
        if (rc) return rc;
    }
    return 0;
}

int pg_ping(store_conn *sc, err_t *e)
{
    return pg_stmt_run(pg_conn_of(sc), "SELECT 1", 0, NULL, "ping", NULL, e);
}
