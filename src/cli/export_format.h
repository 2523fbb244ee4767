/*
 * export_format.h — the file format of `dojo export` / `dojo import`: JSON
 * Lines. The first line is a header
 *   {"format":"dojo-export","version":1,"schemaVersion":N,
 *    "exportedAt":<ms since the epoch>,"tables":{"users":<count>,…}}
 * then one line per document, {"table":"users","doc":{…}}, tables in schema
 * order and documents in (_creationTime, _id) order; documents keep their
 * _id and _creationTime. Numbers are written with 17 significant digits so
 * that every float reads back to the same value. Then the bytes of every
 * stored file (api.md §9), in the order of its `_storage` document, as lines
 * {"file":"<storage id>","part":N,"data":"<base64>"} of at most
 * EXPORT_FILE_PART_BYTES bytes each, parts numbered from 0 (a file of no
 * bytes has one empty part); the header's "files" counts the files.
 *
 * Parsing checks everything a line can be checked for on its own: its shape,
 * the table, the id (well-formed, and of that table), _creationTime, the
 * document against its table's validator (as the engine checks every write)
 * and the document size. Lines are read with a bound (EXPORT_LINE_BYTES_MAX).
 * Callers: export.c; tests/unit/test_export.c.
 * Thread: the command line's main thread; the parse/build functions are pure.
 */
#ifndef DOJO_CLI_EXPORT_FORMAT_H
#define DOJO_CLI_EXPORT_FORMAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "base/ids.h"
#include "store/schema.h"

#define EXPORT_FORMAT_NAME "dojo-export"
#define EXPORT_FORMAT_VERSION 1
#define EXPORT_LINE_BYTES_MAX (16u * 1024 * 1024) /* one line, without its newline */
#define EXPORT_TABLES_MAX 255                     /* table numbers are 1..255 */
#define EXPORT_FILE_PART_BYTES (1u * 1024 * 1024) /* file bytes per line (1.4 MiB in base64) */
#define EXPORT_TIME_MS_MAX 8.64e15                /* the latest JavaScript date, in ms */
#define EXPORT_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))
/* The oldest schema version an import reads: version 2 (files) only added
 * tables, an optional run field and an index, so a version-1 file is a
 * version-2 file without files. */
#define EXPORT_SCHEMA_VERSION_MIN 1

typedef struct export_header {
    int version;
    int schema_version;
    double exported_at_ms;
    int64_t counts[EXPORT_TABLES_MAX]; /* by position in the schema's table list */
    int64_t files;                     /* files whose bytes follow the documents */
} export_header;

/* The header line's object for counts (by schema position). New object. */
json_t *export_header_build(const schema *s, const int64_t *counts, int64_t files,
                            double exported_at_ms);

/* Parses and checks a header line against s: the format name, a version
 * this dojo reads, a schema version from EXPORT_SCHEMA_VERSION_MIN to s's,
 * and a count for known tables only. */
int export_header_parse(const char *line, size_t len, const schema *s, export_header *out,
                        err_t *e);

/* One document line (no newline), malloc'd; NULL when out of memory. */
char *export_line_build(const schema_table *t, const json_t *doc);

/* Parses and checks one document line; *doc_out is a new reference and
 * *table_index_out the table's position in s. Errors do not name the line
 * number: the caller adds it. */
int export_line_parse(const char *line, size_t len, const schema *s, int *table_index_out,
                      json_t **doc_out, err_t *e);

/* A line of a file's bytes (no newline), malloc'd; NULL when out of memory. */
char *export_file_line_build(const char *storage_id, int64_t part, const uint8_t *data, size_t n);
/* Whether a line is one of a file's bytes (else a document line). */
bool export_line_is_file(const char *line, size_t len);
/* Parses a file line: its storage id (well-formed, of `_storage`), part number
 * and bytes (*data_out malloc'd, at most EXPORT_FILE_PART_BYTES). */
int export_file_line_parse(const char *line, size_t len, char id_out[ID_BYTES_MAX],
                           int64_t *part_out, uint8_t **data_out, size_t *n_out, err_t *e);

/* Reads a file line by line with a bound on the line length. */
typedef struct export_reader {
    FILE *f;
    char *buf;
    size_t cap;
    int64_t line_no; /* of the line last returned, from 1 */
} export_reader;

void export_reader_init(export_reader *r, FILE *f);
void export_reader_free(export_reader *r);
/* 1 and the line (without "\n" or "\r\n", NUL-terminated) in *line and *len; 0
 * at the end of the file; or ERR_LIMIT ("line N is longer than 16 MiB") /
 * ERR_IO / ERR_NOMEM. */
int export_read_line(export_reader *r, const char **line, size_t *len, err_t *e);

#endif
