/*
 * export_format.c — building, parsing and checking the lines of a dojo
 * export file (see export_format.h), and the bounded line reader.
 * Callers: export.c (dojo export / dojo import); tests/unit/test_export.c.
 * Thread: the command line's main thread.
 */
#include "cli/export_format.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/ids.h"
#include "base/invariant.h"
#include "base/jread.h"
#include "base/limits.h"
#include "engine/validator.h"

#define READER_START_BYTES (64u * 1024)
#define WHAT_BYTES_MAX 96

/* ---- the header ------------------------------------------------------------------- */

json_t *export_header_build(const schema *s, const int64_t *counts, int64_t files,
                            double exported_at_ms)
{
    json_t *tables = json_object();
    for (int i = 0; tables && i < s->n_tables; i++)
        json_object_set_new(tables, s->tables[i].name, json_integer((json_int_t)counts[i]));
    if (!tables) return NULL;
    return json_pack("{s:s, s:i, s:i, s:f, s:o, s:I}", "format", EXPORT_FORMAT_NAME, "version",
                     EXPORT_FORMAT_VERSION, "schemaVersion", s->version, "exportedAt",
                     exported_at_ms, "tables", tables, "files", (json_int_t)files);
}

static int table_index(const schema *s, const char *name)
{
    for (int i = 0; i < s->n_tables; i++)
        if (strcmp(s->tables[i].name, name) == 0) return i;
    return -1;
}

int export_header_parse(const char *line, size_t len, const schema *s, export_header *out, err_t *e)
{
    ASSERT(s->n_tables <= EXPORT_TABLES_MAX);
    memset(out, 0, sizeof *out);
    json_t *h = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    const char *format = NULL;
    int64_t version = 0, schema_version = 0;
    double exported_at_ms = 0;
    const json_t *tables = NULL;
    err_t why;
    err_init(&why);
    int rc = 0;
    if (!json_is_object(h) || jr_string(h, "header", "format", 0, 64, &format, &why) ||
        strcmp(format, EXPORT_FORMAT_NAME) != 0) {
        rc = err_set(e, ERR_INVALID_ARGUMENT,
                     "the first line is not a dojo export header ({\"format\":\"%s\",…}): is "
                     "this a file written by `dojo export`?",
                     EXPORT_FORMAT_NAME);
    } else if (jr_int(h, "header", "version", 0, 1, INT32_MAX, &version, &why)) {
        rc = err_set(e, ERR_INVALID_ARGUMENT, "the header has no format version: %s", why.msg);
    } else if (version > EXPORT_FORMAT_VERSION) {
        rc = err_set(e, ERR_INVALID_ARGUMENT,
                     "the file is format version %lld, written by a newer dojo; this one reads "
                     "version %d",
                     (long long)version, EXPORT_FORMAT_VERSION);
    } else if (jr_int(h, "header", "schemaVersion", 0, 0, INT32_MAX, &schema_version, &why)) {
        rc = err_set(e, ERR_INVALID_ARGUMENT, "the header has no schemaVersion: %s", why.msg);
    } else if (schema_version > s->version || schema_version < EXPORT_SCHEMA_VERSION_MIN) {
        rc = err_set(e, ERR_INVALID_ARGUMENT,
                     "the file holds schema version %lld and this dojo's schema is version %d: "
                     "import it with the dojo version that exported it, then upgrade",
                     (long long)schema_version, s->version);
    } else if (jr_object(h, "header", "tables", 0, &tables, &why)) {
        rc = err_set(e, ERR_INVALID_ARGUMENT, "the header has no \"tables\" object of counts");
    } else if (jr_number(h, "header", "exportedAt", JR_OPTIONAL, 0, EXPORT_TIME_MS_MAX,
                         &exported_at_ms, &why)) {
        rc = err_set(e, ERR_INVALID_ARGUMENT, "%s", why.msg);
    }
    const char *name;
    json_t *count;
    if (rc == 0) {
        json_object_foreach((json_t *)tables, name, count)
        {
            int i = table_index(s, name);
            if (i < 0) {
                rc = err_set(e, ERR_INVALID_ARGUMENT,
                             "the header names table \"%.64s\", which this dojo does not have",
                             name);
                break;
            }
            int64_t n;
            if (jr_as_int(count, "count", 0, 0, INT64_MAX, &n, &why)) {
                rc = err_set(e, ERR_INVALID_ARGUMENT,
                             "the header's count for table %s is not a non-negative integer", name);
                break;
            }
            out->counts[i] = n;
        }
    }
    int64_t files = 0;
    if (rc == 0 && jr_int(h, "header", "files", JR_OPTIONAL, 0, INT64_MAX, &files, &why))
        rc = err_set(e, ERR_INVALID_ARGUMENT, "%s", why.msg);
    if (rc == 0) {
        out->files = files;
        out->version = (int)version;
        out->schema_version = (int)schema_version;
        out->exported_at_ms = exported_at_ms;
    }
    json_decref(h);
    return rc;
}

/* ---- document lines ------------------------------------------------------------------- */

char *export_line_build(const schema_table *t, const json_t *doc)
{
    json_t *line = json_pack("{s:s, s:O}", "table", t->name, "doc", doc);
    char *text = line ? json_dumps(line, EXPORT_DUMP_FLAGS) : NULL;
    json_decref(line);
    return text;
}

/* The checks of one document of table t (whose ids carry t->number). */
static int check_doc(const schema *s, const schema_table *t, json_t *doc, err_t *e)
{
    const char *id;
    double ct;
    err_t why;
    err_init(&why);
    if (jr_string(doc, "document", "_id", 0, ID_BYTES_MAX - 1, &id, &why))
        return err_set(e, ERR_INVALID_ARGUMENT, "a %s document without a valid _id: %s", t->name,
                       why.msg);
    int number = id_table_number(id);
    if (number < 0)
        return err_set(e, ERR_INVALID_ARGUMENT, "_id \"%.64s\" is not a dojo document id", id);
    if (number != t->number) {
        const schema_table *other = schema_table_by_number(s, number);
        return err_set(e, ERR_INVALID_ARGUMENT, "_id %s is an id of table %s, not of %s", id,
                       other ? other->name : "(unknown)", t->name);
    }
    if (jr_number(doc, "document", "_creationTime", 0, DBL_MIN, DBL_MAX, &ct, &why))
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "document %s: _creationTime must be a positive number of milliseconds", id);
    json_t *user = json_copy(doc);
    if (!user) return err_set(e, ERR_NOMEM, "out of memory");
    json_object_del(user, "_id");
    json_object_del(user, "_creationTime");
    char what[WHAT_BYTES_MAX];
    snprintf(what, sizeof what, "field of %s", t->name);
    err_t v;
    err_init(&v);
    int rc = validate(t->doc, user, what, s, &v);
    json_decref(user);
    if (rc) {
        rc = err_set(e, ERR_INVALID_ARGUMENT, "document %s: %s", id, v.msg);
        err_clear(&v);
        return rc;
    }
    size_t bytes = json_dumpb(doc, NULL, 0, EXPORT_DUMP_FLAGS);
    if (bytes > LIMIT_DOC_BYTES_MAX)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "document %s is %zu bytes; a document is at most %u bytes (1 MiB)", id,
                       bytes, LIMIT_DOC_BYTES_MAX);
    return 0;
}

int export_line_parse(const char *line, size_t len, const schema *s, int *table_index_out,
                      json_t **doc_out, err_t *e)
{
    *doc_out = NULL;
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        return err_set(e, ERR_INVALID_ARGUMENT, "not JSON (%s at column %d)", jerr.text,
                       jerr.column);
    const char *table = NULL;
    const json_t *doc = NULL;
    err_t why;
    err_init(&why);
    int rc = 0, i = -1;
    if (!json_is_object(obj) || json_object_size(obj) != 2 ||
        jr_string(obj, "line", "table", 0, 64, &table, &why) ||
        jr_object(obj, "line", "doc", 0, &doc, &why))
        rc = err_set(e, ERR_INVALID_ARGUMENT,
                     "expected {\"table\": \"<name>\", \"doc\": {…}} and nothing else");
    else if ((i = table_index(s, table)) < 0)
        rc = err_set(e, ERR_INVALID_ARGUMENT, "unknown table \"%.64s\"", table);
    else
        rc = check_doc(s, &s->tables[i], (json_t *)doc, e);
    if (rc == 0) {
        *doc_out = json_incref((json_t *)doc);
        *table_index_out = i;
    }
    json_decref(obj);
    return rc;
}

/* ---- the bounded reader ------------------------------------------------------------------ */

void export_reader_init(export_reader *r, FILE *f)
{
    *r = (export_reader){.f = f};
}

void export_reader_free(export_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

int export_read_line(export_reader *r, const char **line, size_t *len, err_t *e)
{
    const size_t cap_max = (size_t)EXPORT_LINE_BYTES_MAX + 3; /* "\r\n" and the NUL */
    size_t n = 0;
    for (;;) {
        if (r->cap - n < 2) {
            if (r->cap >= cap_max) {
                r->line_no++;
                return err_set(e, ERR_LIMIT, "line %lld is longer than %u bytes (16 MiB)",
                               (long long)r->line_no, EXPORT_LINE_BYTES_MAX);
            }
            size_t cap = r->cap ? r->cap * 2 : READER_START_BYTES;
            if (cap > cap_max) cap = cap_max;
            char *grown = realloc(r->buf, cap);
            if (!grown) return err_set(e, ERR_NOMEM, "out of memory reading a line");
            r->buf = grown;
            r->cap = cap;
        }
        if (!fgets(r->buf + n, (int)(r->cap - n), r->f)) {
            if (ferror(r->f)) return err_set(e, ERR_IO, "cannot read the file");
            break; /* end of file */
        }
        n += strlen(r->buf + n);
        if (n > 0 && r->buf[n - 1] == '\n') break;
    }
    if (n == 0) return 0;
    r->line_no++;
    if (r->buf[n - 1] == '\n') n--;
    if (n > 0 && r->buf[n - 1] == '\r') n--;
    if (n > EXPORT_LINE_BYTES_MAX)
        return err_set(e, ERR_LIMIT, "line %lld is longer than %u bytes (16 MiB)",
                       (long long)r->line_no, EXPORT_LINE_BYTES_MAX);
    r->buf[n] = '\0';
    *line = r->buf;
    *len = n;
    return 1;
}

/* ---- file lines ---------------------------------------------------------------------- */

#define FILE_LINE_PREFIX "{\"file\":"

char *export_file_line_build(const char *storage_id, int64_t part, const uint8_t *data, size_t n)
{
    ASSERT(n <= EXPORT_FILE_PART_BYTES);
    size_t b64 = b64_encoded_size(n);
    size_t cap = b64 + strlen(storage_id) + 64;
    char *line = malloc(cap);
    if (!line) return NULL;
    int at = snprintf(line, cap, FILE_LINE_PREFIX "\"%s\",\"part\":%lld,\"data\":\"", storage_id,
                      (long long)part);
    size_t len = (size_t)at;
    len += b64_encode(data, n, line + len);
    memcpy(line + len, "\"}", 3);
    return line;
}

bool export_line_is_file(const char *line, size_t len)
{
    size_t n = sizeof FILE_LINE_PREFIX - 1;
    return len >= n && memcmp(line, FILE_LINE_PREFIX, n) == 0;
}

int export_file_line_parse(const char *line, size_t len, char id_out[ID_BYTES_MAX],
                           int64_t *part_out, uint8_t **data_out, size_t *n_out, err_t *e)
{
    *data_out = NULL;
    *n_out = 0;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    const char *id = NULL, *data = NULL;
    int64_t part = 0;
    err_t why;
    err_init(&why);
    int rc = 0;
    if (!j || jr_as_object(j, "file line", &why) ||
        jr_string(j, "file line", "file", 0, ID_BYTES_MAX - 1, &id, &why) ||
        jr_int(j, "file line", "part", 0, 0, INT64_MAX, &part, &why) ||
        jr_string(j, "file line", "data", 0, 2 * EXPORT_FILE_PART_BYTES, &data, &why)) {
        rc = err_set(e, ERR_INVALID_ARGUMENT,
                     "a file line is {\"file\": storage id, \"part\": N, \"data\": base64}%s%s",
                     why.msg[0] ? ": " : "", why.msg);
    } else if (json_object_size(j) != 3) {
        rc =
            err_set(e, ERR_INVALID_ARGUMENT, "a file line has the fields file, part and data only");
    } else if (id_table_number(id) < 0 || strlen(id) != ID_RANDOM_CHARS) {
        rc = err_set(e, ERR_INVALID_ARGUMENT, "\"%.40s\" is not a storage id", id);
    } else {
        size_t b64_len = strlen(data);
        uint8_t *raw = malloc(b64_len / 4 * 3 + 3);
        long n = raw ? b64_decode(data, b64_len, raw) : -1;
        if (!raw) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
        } else if (n < 0 || (size_t)n > EXPORT_FILE_PART_BYTES) {
            free(raw);
            rc = err_set(e, ERR_INVALID_ARGUMENT,
                         "a file line's data is not base64 of at most %u bytes",
                         EXPORT_FILE_PART_BYTES);
        } else {
            snprintf(id_out, ID_BYTES_MAX, "%s", id);
            *part_out = part;
            *data_out = raw;
            *n_out = (size_t)n;
        }
    }
    err_clear(&why);
    json_decref(j);
    return rc;
}
