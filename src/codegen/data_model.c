/*
 * data_model.c — renders dataModel.d.ts from the schema: TableNames, Doc<T>,
 * Id<T> and DataModel (each table's document type, field paths and indexes in
 * the shape of convex's GenericDataModel, so that GenericQueryCtx<DataModel>
 * and friends type-check against dojo's tables). System tables are left out.
 * Called by codegen_write.
 * Thread: the caller's.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "codegen/codegen_impl.h"

#define DATA_MODEL_FIELD_PATH_BYTES_MAX 1024

static void data_model_header(codegen_buf *b)
{
    codegen_buf_puts(
        b, "/* eslint-disable */\n"
           "/**\n"
           " * " CODEGEN_HEADER_LINE "\n"
           " *\n"
           " * The documents of dojo's tables (declared in src/app/schema.c) as\n"
           " * TypeScript types: Doc<\"table\">, Id<\"table\">, TableNames and DataModel.\n"
           " * Regenerate with `dojo codegen` (`dojo dev` does it at start).\n"
           " * @module\n"
           " */\n\n"
           "import type { SystemTableNames } from \"convex/server\";\n"
           "import type { GenericId } from \"convex/values\";\n\n");
}

static void data_model_table_names(codegen_buf *b, const schema *s)
{
    codegen_buf_puts(b, "/**\n"
                        " * The names of all of the app's tables.\n"
                        " */\n"
                        "export type TableNames =");
    int n = 0;
    for (int i = 0; i < s->n_tables; i++) {
        if (s->tables[i].system) continue;
        codegen_buf_puts(b, n++ ? " | " : " ");
        codegen_ts_string(b, s->tables[i].name);
    }
    codegen_buf_puts(b, n ? ";\n\n" : " never;\n\n");
}

static void data_model_generic_types(codegen_buf *b)
{
    codegen_buf_puts(
        b, "/**\n"
           " * The type of a document stored in a table: its fields plus `_id` and\n"
           " * `_creationTime`.\n"
           " *\n"
           " * @typeParam TableName - A string literal type of the table name (like \"users\").\n"
           " */\n"
           "export type Doc<TableName extends TableNames> = DataModel[TableName][\"document\"];\n\n"
           "/**\n"
           " * An identifier for a document. Ids are strings at run time; the type carries\n"
           " * the table's name, so an id of one table is refused where another's is\n"
           " * expected.\n"
           " *\n"
           " * @typeParam TableName - A string literal type of the table name (like \"users\").\n"
           " */\n"
           "export type Id<TableName extends TableNames | SystemTableNames> =\n"
           "  GenericId<TableName>;\n\n");
}

/* A template literal type `prefix.${string}`: the paths below a field whose
 * keys are not declared (a record, or any). */
static void data_model_open_path(codegen_buf *b, const char *prefix)
{
    codegen_buf_puts(b, "\n      | `");
    for (const char *p = prefix; *p; p++) {
        if (*p == '`' || *p == '\\' || (*p == '$' && p[1] == '{')) codegen_buf_putn(b, "\\", 1);
        codegen_buf_putn(b, p, 1);
    }
    codegen_buf_puts(b, ".${string}`");
}

/* The field paths of a field at path (already written): the paths inside it,
 * the way convex's validators compute `fieldPaths`. */
static void data_model_inner_paths(codegen_buf *b, const validator *v, const char *path, int depth)
{
    if (!v) return;
    if (depth > CODEGEN_TYPE_DEPTH_MAX) {
        codegen_buf_fail(b, ERR_LIMIT, "a document validator nests deeper than %d levels",
                         CODEGEN_TYPE_DEPTH_MAX);
        return;
    }
    switch (v->kind) {
    case V_ANY:
    case V_RECORD:
        data_model_open_path(b, path);
        break;
    case V_OBJECT:
        for (int i = 0; i < v->n_fields; i++) {
            char sub[DATA_MODEL_FIELD_PATH_BYTES_MAX];
            int n = snprintf(sub, sizeof sub, "%s.%s", path, v->fields[i].name);
            if (n < 0 || (size_t)n >= sizeof sub) {
                codegen_buf_fail(b, ERR_LIMIT, "field path %s.%s is longer than %d bytes", path,
                                 v->fields[i].name, DATA_MODEL_FIELD_PATH_BYTES_MAX - 1);
                return;
            }
            codegen_buf_puts(b, "\n      | ");
            codegen_ts_string(b, sub);
            data_model_inner_paths(b, v->fields[i].type, sub, depth + 1);
        }
        break;
    case V_UNION:
        for (int i = 0; i < v->n_options; i++)
            data_model_inner_paths(b, v->options[i], path, depth + 1);
        break;
    default:
        break;
    }
}

static bool data_model_has_index(const schema_table *t, const char *name)
{
    for (int i = 0; i < t->n_indexes; i++)
        if (strcmp(t->indexes[i].name, name) == 0) return true;
    return false;
}

/* convex's index type: the declared fields, then the _creationTime tiebreaker
 * (dojo orders every index that way, see schema.h). */
static void data_model_index(codegen_buf *b, const schema_index *ix)
{
    codegen_buf_indent(b, 3);
    codegen_ts_key(b, ix->name);
    codegen_buf_puts(b, ": [");
    bool has_creation_time_last = false;
    for (int i = 0; i < ix->n_fields; i++) {
        if (i) codegen_buf_puts(b, ", ");
        codegen_ts_string(b, ix->fields[i]);
        has_creation_time_last = strcmp(ix->fields[i], "_creationTime") == 0;
    }
    if (!has_creation_time_last) {
        if (ix->n_fields) codegen_buf_puts(b, ", ");
        codegen_buf_puts(b, "\"_creationTime\"");
    }
    codegen_buf_puts(b, "];\n");
}

static void data_model_table(codegen_buf *b, const schema *s, const schema_table *t)
{
    const validator *doc = t->doc && t->doc->kind == V_OBJECT ? t->doc : NULL;
    codegen_buf_indent(b, 1);
    codegen_ts_key(b, t->name);
    codegen_buf_puts(b, ": {\n    document: {\n      _id: Id<");
    codegen_ts_string(b, t->name);
    codegen_buf_puts(b, ">;\n      _creationTime: number;\n");
    for (int i = 0; doc && i < doc->n_fields; i++) {
        const v_field *f = &doc->fields[i];
        codegen_buf_indent(b, 3);
        codegen_ts_key(b, f->name);
        codegen_buf_puts(b, f->optional ? "?: " : ": ");
        codegen_ts_type(b, f->type, s);
        codegen_buf_puts(b, ";\n");
    }
    if (!doc) codegen_buf_puts(b, "      [field: string]: any;\n");
    codegen_buf_puts(b, "    };\n    fieldPaths:\n      | \"_id\"\n      | \"_creationTime\"");
    for (int i = 0; doc && i < doc->n_fields; i++) {
        codegen_buf_puts(b, "\n      | ");
        codegen_ts_string(b, doc->fields[i].name);
        data_model_inner_paths(b, doc->fields[i].type, doc->fields[i].name, 1);
    }
    if (!doc) codegen_buf_puts(b, "\n      | string");
    codegen_buf_puts(b, ";\n    indexes: {\n");
    if (!data_model_has_index(t, "by_id")) codegen_buf_puts(b, "      by_id: [\"_id\"];\n");
    if (!data_model_has_index(t, "by_creation_time"))
        codegen_buf_puts(b, "      by_creation_time: [\"_creationTime\"];\n");
    for (int i = 0; i < t->n_indexes; i++)
        data_model_index(b, &t->indexes[i]);
    codegen_buf_puts(b, "    };\n    searchIndexes: {};\n    vectorIndexes: {};\n  };\n");
}

void codegen_render_data_model(codegen_buf *b, const schema *s)
{
    data_model_header(b);
    data_model_table_names(b, s);
    data_model_generic_types(b);
    codegen_buf_puts(b, "/**\n"
                        " * The app's tables: the type of their documents, their field paths and\n"
                        " * their indexes, in the shape of convex's GenericDataModel.\n"
                        " */\n"
                        "export type DataModel = {\n");
    for (int i = 0; i < s->n_tables; i++)
        if (!s->tables[i].system) data_model_table(b, s, &s->tables[i]);
    codegen_buf_puts(b, "};\n");
}
