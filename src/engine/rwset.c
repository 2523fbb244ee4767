/*
 * rwset.c — read sets, write sets and their intersection (see rwset.h).
 * Thread: the transaction's thread while building; the loop while matching.
 */
#include "engine/rwset.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/invariant.h"
#include "base/jsize.h"
#include "base/limits.h"

void read_set_init(read_set *rs)
{
    memset(rs, 0, sizeof *rs);
}

void read_set_free(read_set *rs)
{
    for (int i = 0; i < rs->n_ranges; i++) {
        json_decref(rs->ranges[i].lo);
        json_decref(rs->ranges[i].hi);
    }
    free(rs->ranges);
    read_set_init(rs);
}

void read_set_add(read_set *rs, const schema_table *t, const schema_index *ix, json_t *lo,
                  bool lo_inclusive, json_t *hi, bool hi_inclusive)
{
    if (rs->whole_database) return;
    if (rs->n_ranges == READ_SET_RANGES_MAX) {
        /* Bounded: a query that reads this many ranges is re-run on any write. */
        rs->whole_database = true;
        return;
    }
    if (rs->n_ranges == rs->cap_ranges) {
        int cap = rs->cap_ranges ? rs->cap_ranges * 2 : 2; /* most queries read one or two */
        read_range *grown = realloc(rs->ranges, (size_t)cap * sizeof *grown);
        if (!grown) {
            rs->whole_database = true;
            return;
        }
        rs->ranges = grown;
        rs->cap_ranges = cap;
    }
    read_range *r = &rs->ranges[rs->n_ranges++];
    r->table = t;
    r->index = ix;
    r->lo = json_incref(lo);
    r->hi = json_incref(hi);
    r->lo_inclusive = lo_inclusive;
    r->hi_inclusive = hi_inclusive;
}

void read_set_add_point(read_set *rs, const schema_table *t, const char *id)
{
    json_t *key = json_pack("[s]", id);
    read_set_add(rs, t, NULL, key, true, key, true);
    json_decref(key);
}

void write_set_init(write_set *ws)
{
    memset(ws, 0, sizeof *ws);
}

static void write_rec_free(write_rec *w)
{
    json_decref(w->old_doc);
    json_decref(w->new_doc);
}

void write_set_free(write_set *ws)
{
    for (int i = 0; i < ws->n_recs; i++)
        write_rec_free(&ws->recs[i]);
    free(ws->recs);
    free(ws->whole_tables);
    write_set_init(ws);
}

static int write_set_push(write_set *ws, const schema_table *t, const char *id, json_t *old_doc,
                          json_t *new_doc)
{
    if (ws->n_recs == ws->cap_recs) {
        int cap = ws->cap_recs ? ws->cap_recs * 2 : 8;
        write_rec *grown = realloc(ws->recs, (size_t)cap * sizeof *grown);
        if (!grown) return ERR_NOMEM;
        ws->recs = grown;
        ws->cap_recs = cap;
    }
    write_rec *w = &ws->recs[ws->n_recs++];
    w->table = t;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->old_doc = json_incref(old_doc);
    w->new_doc = json_incref(new_doc);
    return 0;
}

int write_set_add(write_set *ws, const schema_table *t, const char *id, json_t *old_doc,
                  json_t *new_doc)
{
    for (int i = ws->n_recs - 1; i >= 0; i--) {
        write_rec *w = &ws->recs[i];
        if (w->table == t && strcmp(w->id, id) == 0) {
            json_decref(w->new_doc);
            w->new_doc = json_incref(new_doc);
            return 0;
        }
    }
    if (ws->n_recs >= LIMIT_WRITES_PER_MUTATION_MAX) return ERR_LIMIT;
    return write_set_push(ws, t, id, old_doc, new_doc);
}

bool write_set_covers_table(const write_set *ws, const schema_table *t)
{
    if (ws->everything) return true;
    for (int i = 0; i < ws->n_whole_tables; i++)
        if (ws->whole_tables[i] == t) return true;
    return false;
}

int write_set_add_table(write_set *ws, const schema_table *t)
{
    ASSERT(t);
    if (write_set_covers_table(ws, t)) return 0;
    if (ws->n_whole_tables == ws->cap_whole_tables) {
        int cap = ws->cap_whole_tables ? ws->cap_whole_tables * 2 : 4;
        const schema_table **grown = realloc(ws->whole_tables, (size_t)cap * sizeof *grown);
        if (!grown) {
            ws->everything = true;
            return ERR_NOMEM;
        }
        ws->whole_tables = grown;
        ws->cap_whole_tables = cap;
    }
    ws->whole_tables[ws->n_whole_tables++] = t;
    return 0;
}

static void copy_whole_tables(write_set *dst, const write_set *src)
{
    for (int i = 0; i < src->n_whole_tables; i++)
        write_set_add_table(dst, src->whole_tables[i]);
}

void write_set_append(write_set *dst, write_set *src)
{
    dst->everything |= src->everything;
    copy_whole_tables(dst, src);
    for (int i = 0; i < src->n_recs; i++) {
        write_rec *w = &src->recs[i];
        if (write_set_push(dst, w->table, w->id, w->old_doc, w->new_doc) != 0)
            dst->everything = true;
    }
    write_set_free(src);
}

void write_set_copy(write_set *dst, const write_set *src)
{
    dst->everything |= src->everything;
    copy_whole_tables(dst, src);
    for (int i = 0; i < src->n_recs; i++) {
        const write_rec *w = &src->recs[i];
        if (write_set_push(dst, w->table, w->id, w->old_doc, w->new_doc) != 0)
            dst->everything = true;
    }
}

void write_set_truncate(write_set *ws, int n)
{
    ASSERT(n >= 0 && n <= ws->n_recs);
    for (int i = n; i < ws->n_recs; i++)
        write_rec_free(&ws->recs[i]);
    ws->n_recs = n;
}

bool write_set_touches_table(const write_set *ws, const char *table_name)
{
    if (ws->everything) return true;
    for (int i = 0; i < ws->n_whole_tables; i++)
        if (strcmp(ws->whole_tables[i]->name, table_name) == 0) return true;
    for (int i = 0; i < ws->n_recs; i++)
        if (strcmp(ws->recs[i].table->name, table_name) == 0) return true;
    return false;
}

json_t *write_rec_keys_of(const schema_table *t, const json_t *doc)
{
    if (!doc) return NULL;
    json_t *p = json_object();
    if (!p) return NULL;
    json_t *id = json_object_get(doc, "_id"), *ct = json_object_get(doc, "_creationTime");
    if ((id && json_object_set(p, "_id", id)) || (ct && json_object_set(p, "_creationTime", ct)))
        goto fail;
    for (int i = 0; i < t->n_indexes; i++) {
        const schema_index *ix = &t->indexes[i];
        for (int f = 0; f < ix->n_fields; f++) {
            json_t *v = json_object_get(doc, ix->fields[f]);
            if (v && json_object_set(p, ix->fields[f], v)) goto fail;
        }
    }
    return p;
fail:
    json_decref(p);
    return NULL;
}

void write_set_keep_keys(write_set *ws, const schema_table *keep)
{
    for (int i = 0; i < ws->n_recs && !ws->everything; i++) {
        write_rec *w = &ws->recs[i];
        if (w->table == keep) continue;
        json_t *old_keys = write_rec_keys_of(w->table, w->old_doc);
        json_t *new_keys = write_rec_keys_of(w->table, w->new_doc);
        if ((w->old_doc && !old_keys) || (w->new_doc && !new_keys)) {
            json_decref(old_keys);
            json_decref(new_keys);
            ws->everything = true; /* says more, never less */
            break;
        }
        json_decref(w->old_doc);
        json_decref(w->new_doc);
        w->old_doc = old_keys;
        w->new_doc = new_keys;
    }
    if (ws->everything) {
        /* The records no longer matter: let their memory go. */
        for (int i = 0; i < ws->n_recs; i++)
            write_rec_free(&ws->recs[i]);
        ws->n_recs = 0;
    }
}

void write_set_widen(write_set *ws, const char *keep)
{
    ws->everything = true;
    int kept = 0;
    for (int i = 0; i < ws->n_recs; i++) {
        if (keep && strcmp(ws->recs[i].table->name, keep) == 0)
            ws->recs[kept++] = ws->recs[i];
        else
            write_rec_free(&ws->recs[i]);
    }
    ws->n_recs = kept;
    ws->n_whole_tables = 0; /* everything covers them */
}

size_t write_set_bytes(const write_set *ws)
{
    size_t n = sizeof *ws + (size_t)ws->cap_recs * sizeof(write_rec) +
               (size_t)ws->cap_whole_tables * sizeof(ws->whole_tables[0]);
    for (int i = 0; i < ws->n_recs; i++) {
        if (ws->recs[i].old_doc) n += json_heap_bytes(ws->recs[i].old_doc);
        if (ws->recs[i].new_doc && ws->recs[i].new_doc != ws->recs[i].old_doc)
            n += json_heap_bytes(ws->recs[i].new_doc);
    }
    return n;
}

bool read_range_contains(const read_range *r, const json_t *key)
{
    if (r->lo) {
        size_t n = json_array_size(r->lo);
        int c = schema_key_cmp_prefix(key, r->lo, n);
        if (c < 0 || (c == 0 && !r->lo_inclusive)) return false;
    }
    if (r->hi) {
        size_t n = json_array_size(r->hi);
        int c = schema_key_cmp_prefix(key, r->hi, n);
        if (c > 0 || (c == 0 && !r->hi_inclusive)) return false;
    }
    return true;
}

static bool doc_in_range(const read_range *r, const json_t *doc)
{
    if (!doc) return false;
    if (!r->index) {
        const char *id = json_string_value(json_object_get(doc, "_id"));
        return id && strcmp(id, json_string_value(json_array_get(r->lo, 0))) == 0;
    }
    json_t *key = schema_key_of(r->index, doc);
    bool inside = key && read_range_contains(r, key);
    json_decref(key);
    return inside;
}

bool rwset_intersects(const read_set *rs, const write_set *ws)
{
    if (ws->everything) return true;
    if (ws->n_recs == 0 && ws->n_whole_tables == 0) return false;
    if (rs->whole_database) return true;
    for (int j = 0; j < rs->n_ranges && ws->n_whole_tables > 0; j++)
        if (write_set_covers_table(ws, rs->ranges[j].table)) return true;
    for (int i = 0; i < ws->n_recs; i++) {
        const write_rec *w = &ws->recs[i];
        for (int j = 0; j < rs->n_ranges; j++) {
            const read_range *r = &rs->ranges[j];
            if (r->table != w->table) continue;
            if (doc_in_range(r, w->old_doc) || doc_in_range(r, w->new_doc)) return true;
        }
    }
    return false;
}
