/*
 * ts.c — the TypeScript spelling of dojo's declarations: string literals,
 * property names, JSDoc lines, and the type of the values a validator accepts
 * (the same types convex's `v.*` validators infer). Used by the renderers of
 * dataModel.d.ts and api.d.ts.
 * Thread: the caller's.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "codegen/codegen_impl.h"

void codegen_ts_string(codegen_buf *b, const char *s)
{
    codegen_buf_putn(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            codegen_buf_putn(b, "\\\"", 2);
            break;
        case '\\':
            codegen_buf_putn(b, "\\\\", 2);
            break;
        case '\n':
            codegen_buf_putn(b, "\\n", 2);
            break;
        case '\r':
            codegen_buf_putn(b, "\\r", 2);
            break;
        case '\t':
            codegen_buf_putn(b, "\\t", 2);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                codegen_buf_printf(b, "\\u%04x", *p);
            else
                codegen_buf_putn(b, (const char *)p, 1);
        }
    }
    codegen_buf_putn(b, "\"", 1);
}

static bool ts_is_identifier(const char *name)
{
    if (!name[0]) return false;
    for (const char *p = name; *p; p++) {
        bool letter =
            (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == '$';
        bool digit = *p >= '0' && *p <= '9';
        if (!letter && !(digit && p != name)) return false;
    }
    return true;
}

void codegen_ts_key(codegen_buf *b, const char *name)
{
    if (ts_is_identifier(name))
        codegen_buf_puts(b, name);
    else
        codegen_ts_string(b, name);
}

void codegen_ts_doc(codegen_buf *b, int indent, const char *doc)
{
    if (!doc || !doc[0]) return;
    codegen_buf_indent(b, indent);
    codegen_buf_puts(b, "/** ");
    for (const char *p = doc; *p; p++) {
        if (p[0] == '*' && p[1] == '/')
            codegen_buf_puts(b, "*\\"); /* "*\/" keeps the comment open */
        else if (*p == '\n' || *p == '\r')
            codegen_buf_putn(b, " ", 1);
        else
            codegen_buf_putn(b, p, 1);
    }
    codegen_buf_puts(b, " */\n");
}

bool codegen_is_app_table(const schema *s, const char *table)
{
    const schema_table *t = s ? schema_table_by_name(s, table) : NULL;
    return t && !t->system;
}

/* True when text, used as the element type of an array, needs parentheses:
 * it has a top-level union, intersection, function or conditional type. */
static bool ts_needs_parens(const char *text)
{
    int depth = 0;
    char quote = 0;
    for (const char *p = text; *p; p++) {
        if (quote) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == quote)
                quote = 0;
            continue;
        }
        switch (*p) {
        case '"':
        case '\'':
        case '`':
            quote = *p;
            break;
        case '(':
        case '[':
        case '{':
        case '<':
            depth++;
            break;
        case ')':
        case ']':
        case '}':
        case '>':
            depth--;
            break;
        case '=':
            if (p[1] == '>') {
                if (depth == 0) return true;
                p++;
            }
            break;
        case '|':
        case '&':
        case '?':
            if (depth == 0) return true;
            break;
        default:
            break;
        }
    }
    return false;
}

static void ts_type_at(codegen_buf *b, const validator *v, const schema *s, int depth);

static void ts_object(codegen_buf *b, const validator *v, const schema *s, int depth,
                      bool pagination_opts)
{
    if (v->n_fields == 0) {
        codegen_buf_puts(b, "Record<string, never>");
        return;
    }
    codegen_buf_puts(b, "{ ");
    for (int i = 0; i < v->n_fields; i++) {
        const v_field *f = &v->fields[i];
        if (i) codegen_buf_puts(b, "; ");
        codegen_ts_key(b, f->name);
        codegen_buf_puts(b, f->optional ? "?: " : ": ");
        if (pagination_opts && strcmp(f->name, "paginationOpts") == 0)
            codegen_buf_puts(b, "PaginationOptions");
        else
            ts_type_at(b, f->type, s, depth + 1);
    }
    codegen_buf_puts(b, " }");
}

static void ts_array(codegen_buf *b, const validator *v, const schema *s, int depth)
{
    codegen_buf item;
    codegen_buf_init(&item);
    ts_type_at(&item, v->item, s, depth + 1);
    if (item.err) {
        codegen_buf_fail(b, item.err, "%s", item.err_msg);
    } else {
        bool parens = ts_needs_parens(item.data);
        if (parens) codegen_buf_putn(b, "(", 1);
        codegen_buf_puts(b, item.data);
        codegen_buf_puts(b, parens ? ")[]" : "[]");
    }
    codegen_buf_free(&item);
}

static void ts_type_at(codegen_buf *b, const validator *v, const schema *s, int depth)
{
    if (depth > CODEGEN_TYPE_DEPTH_MAX) {
        codegen_buf_fail(b, ERR_LIMIT, "a validator nests deeper than %d levels",
                         CODEGEN_TYPE_DEPTH_MAX);
        return;
    }
    if (!v) {
        codegen_buf_puts(b, "any");
        return;
    }
    if (v->ts_type) {
        codegen_buf_puts(b, v->ts_type);
        return;
    }
    switch (v->kind) {
    case V_ANY:
        codegen_buf_puts(b, "any");
        break;
    case V_NULL:
        codegen_buf_puts(b, "null");
        break;
    case V_BOOLEAN:
        codegen_buf_puts(b, "boolean");
        break;
    case V_NUMBER:
    case V_INTEGER:
        codegen_buf_puts(b, "number");
        break;
    case V_STRING:
        codegen_buf_puts(b, "string");
        break;
    case V_ID:
        /* Id<> takes the app's tables and the system tables the client knows
         * ("_storage"); any other is a GenericId. */
        codegen_buf_puts(b, codegen_is_app_table(s, v->table) || strcmp(v->table, "_storage") == 0
                                ? "Id<"
                                : "GenericId<");
        codegen_ts_string(b, v->table);
        codegen_buf_puts(b, ">");
        break;
    case V_ARRAY:
        ts_array(b, v, s, depth);
        break;
    case V_OBJECT:
        ts_object(b, v, s, depth, false);
        break;
    case V_RECORD:
        codegen_buf_puts(b, "Record<string, ");
        ts_type_at(b, v->item, s, depth + 1);
        codegen_buf_puts(b, ">");
        break;
    case V_ENUM:
        if (v->n_literals == 0) codegen_buf_puts(b, "never");
        for (int i = 0; i < v->n_literals; i++) {
            if (i) codegen_buf_puts(b, " | ");
            codegen_ts_string(b, v->literals[i]);
        }
        break;
    case V_UNION:
        if (v->n_options == 0) codegen_buf_puts(b, "never");
        for (int i = 0; i < v->n_options; i++) {
            if (i) codegen_buf_puts(b, " | ");
            ts_type_at(b, v->options[i], s, depth + 1);
        }
        break;
    default:
        codegen_buf_fail(b, ERR_INVALID_ARGUMENT, "unknown validator kind %d", (int)v->kind);
    }
}

void codegen_ts_type(codegen_buf *b, const validator *v, const schema *s)
{
    ts_type_at(b, v, s, 0);
}

void codegen_ts_args_type(codegen_buf *b, const validator *args, const schema *s)
{
    if (args && !args->ts_type && args->kind == V_OBJECT)
        ts_object(b, args, s, 0, true);
    else
        ts_type_at(b, args, s, 0);
}
