/*
 * notice.c — encoding and decoding commit notices (see notice.h). The
 * storage thread encodes the notice of each committing group (writer.c); the
 * event loop decodes the notices of other processes (remote.c).
 *
 * Encoding works table by table: each table collects the folded entries of
 * its documents and the bytes they will take; a table whose listing alone
 * passes the bound stops listing at once (so a huge write set costs little),
 * then the biggest listings are moved to "tables" until the whole fits.
 * Thread: any (pure functions).
 */
#include "engine/notice.h"

#include "base/invariant.h"
#include "base/jread.h"
#include "base/limits.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOTICE_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))
#define NOTICE_TABLES_MAX 256 /* table numbers are 1..255 */
/* Bytes of an entry besides its two projections: "[255,", ",", "],". */
#define NOTICE_ENTRY_OVERHEAD_BYTES 8
/* Bytes of "v", "node", "ts" and the keys around them, generously. */
#define NOTICE_HEADER_BYTES_MAX 128

/* --- encoding -------------------------------------------------------------------- */

/* One written document: its projections before and after the commit. */
typedef struct notice_entry {
    const char *id; /* borrowed from the write set */
    json_t *old_proj, *new_proj;
    size_t bytes;
} notice_entry;

/* What one table contributes to the notice. */
typedef struct table_listing {
    const schema_table *table;
    notice_entry *entries;
    int n, cap;
    size_t bytes; /* of its entries in "docs" */
    bool whole;   /* listed in "tables" instead */
} table_listing;

static size_t dumped_bytes(const json_t *v)
{
    return v ? json_dumpb(v, NULL, 0, NOTICE_DUMP_FLAGS) : strlen("null");
}

static size_t entry_bytes(const notice_entry *en)
{
    return dumped_bytes(en->old_proj) + dumped_bytes(en->new_proj) + NOTICE_ENTRY_OVERHEAD_BYTES;
}

static void listing_drop_entries(table_listing *tl)
{
    for (int i = 0; i < tl->n; i++) {
        json_decref(tl->entries[i].old_proj);
        json_decref(tl->entries[i].new_proj);
    }
    free(tl->entries);
    tl->entries = NULL;
    tl->n = tl->cap = 0;
    tl->bytes = 0;
}

static void listing_make_whole(table_listing *tl)
{
    listing_drop_entries(tl);
    tl->whole = true;
}

/* Adds one write record to its table's listing, folding it into the entry
 * of the same document (first old, last new). Out of memory, or a listing
 * past the bound, makes the table whole. */
static void listing_add(table_listing *tl, const write_rec *w, size_t payload_bytes_max)
{
    if (tl->whole) return;
    for (int i = 0; i < tl->n; i++) {
        notice_entry *en = &tl->entries[i];
        if (strcmp(en->id, w->id) != 0) continue;
        json_decref(en->new_proj);
        en->new_proj = write_rec_keys_of(w->table, w->new_doc);
        if (w->new_doc && !en->new_proj) {
            listing_make_whole(tl);
            return;
        }
        tl->bytes -= en->bytes;
        en->bytes = entry_bytes(en);
        tl->bytes += en->bytes;
        if (tl->bytes > payload_bytes_max) listing_make_whole(tl);
        return;
    }
    if (tl->n == tl->cap) {
        int cap = tl->cap ? tl->cap * 2 : 8;
        notice_entry *grown = realloc(tl->entries, (size_t)cap * sizeof *grown);
        if (!grown) {
            listing_make_whole(tl);
            return;
        }
        tl->entries = grown;
        tl->cap = cap;
    }
    notice_entry *en = &tl->entries[tl->n++];
    en->id = w->id;
    en->old_proj = write_rec_keys_of(w->table, w->old_doc);
    en->new_proj = write_rec_keys_of(w->table, w->new_doc);
    if ((w->old_doc && !en->old_proj) || (w->new_doc && !en->new_proj)) {
        listing_make_whole(tl); /* frees what this entry holds too */
        return;
    }
    en->bytes = entry_bytes(en);
    tl->bytes += en->bytes;
    if (tl->bytes > payload_bytes_max) listing_make_whole(tl);
}

/* The listed table with the most bytes, or NULL when none is listed. */
static table_listing *biggest_listing(table_listing *lists)
{
    table_listing *best = NULL;
    for (int n = 0; n < NOTICE_TABLES_MAX; n++) {
        table_listing *tl = &lists[n];
        if (tl->table && !tl->whole && tl->n > 0 && (!best || tl->bytes > best->bytes)) best = tl;
    }
    return best;
}

static json_t *notice_header(const char *node_id, uint64_t ts)
{
    char ts_text[24];
    snprintf(ts_text, sizeof ts_text, "%" PRIu64, ts);
    return json_pack("{s:i, s:s, s:s}", "v", NOTICE_VERSION, "node", node_id, "ts", ts_text);
}

/* The notice as JSON text with every listing as it stands; NULL when out of
 * memory. */
static char *notice_dump(const char *node_id, uint64_t ts, const table_listing *lists,
                         bool everything)
{
    json_t *root = notice_header(node_id, ts);
    json_t *docs = json_array(), *tables = json_array();
    if (!root || !docs || !tables) goto fail;
    for (int n = 0; n < NOTICE_TABLES_MAX && !everything; n++) {
        const table_listing *tl = &lists[n];
        if (!tl->table) continue;
        if (tl->whole) {
            if (json_array_append_new(tables, json_integer(n))) goto fail;
            continue;
        }
        for (int i = 0; i < tl->n; i++) {
            const notice_entry *en = &tl->entries[i];
            json_t *entry = json_pack("[iOO]", n, en->old_proj ? en->old_proj : json_null(),
                                      en->new_proj ? en->new_proj : json_null());
            if (!entry || json_array_append_new(docs, entry)) goto fail;
        }
    }
    if (json_array_size(docs) > 0 && json_object_set(root, "docs", docs)) goto fail;
    if (json_array_size(tables) > 0 && json_object_set(root, "tables", tables)) goto fail;
    if (everything && json_object_set_new(root, "all", json_true())) goto fail;
    char *text = json_dumps(root, NOTICE_DUMP_FLAGS);
    json_decref(root);
    json_decref(docs);
    json_decref(tables);
    return text;
fail:
    json_decref(root);
    json_decref(docs);
    json_decref(tables);
    return NULL;
}

char *notice_encode(const char *node_id, uint64_t ts, const write_set *ws, size_t payload_bytes_max)
{
    ASSERT(node_id && strlen(node_id) == NOTICE_NODE_ID_HEX_CHARS);
    ASSERT(payload_bytes_max >= NOTICE_PAYLOAD_BYTES_MIN);
    table_listing *lists = calloc(NOTICE_TABLES_MAX, sizeof *lists);
    if (!lists) return NULL;
    bool everything = ws->everything;
    for (int i = 0; i < ws->n_whole_tables && !everything; i++) {
        const schema_table *t = ws->whole_tables[i];
        ASSERT(t->number >= 1 && t->number < NOTICE_TABLES_MAX);
        lists[t->number].table = t;
        lists[t->number].whole = true;
    }
    for (int i = 0; i < ws->n_recs && !everything; i++) {
        const write_rec *w = &ws->recs[i];
        ASSERT(w->table->number >= 1 && w->table->number < NOTICE_TABLES_MAX);
        table_listing *tl = &lists[w->table->number];
        tl->table = w->table;
        listing_add(tl, w, payload_bytes_max);
    }
    /* Fit: estimate first, then check the real text, which may only be
     * shorter than the estimate by a few bytes per entry. */
    size_t estimate = NOTICE_HEADER_BYTES_MAX + 4 * NOTICE_TABLES_MAX;
    for (int n = 0; n < NOTICE_TABLES_MAX; n++)
        estimate += lists[n].bytes;
    table_listing *big;
    while (estimate > payload_bytes_max && (big = biggest_listing(lists))) {
        estimate -= big->bytes;
        listing_make_whole(big);
    }
    char *text = notice_dump(node_id, ts, lists, everything);
    while (text && strlen(text) > payload_bytes_max && (big = biggest_listing(lists))) {
        free(text);
        listing_make_whole(big);
        text = notice_dump(node_id, ts, lists, everything);
    }
    for (int n = 0; n < NOTICE_TABLES_MAX; n++)
        listing_drop_entries(&lists[n]);
    free(lists);
    ASSERT(!text || strlen(text) <= payload_bytes_max);
    return text;
}

/* --- decoding -------------------------------------------------------------------- */

static bool node_id_ok(const char *s)
{
    if (!s || strlen(s) != NOTICE_NODE_ID_HEX_CHARS) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

static bool ts_parse(const char *s, uint64_t *out)
{
    if (!s || !s[0] || strlen(s) > 20) return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = (uint64_t)v;
    return true;
}

static const schema_table *table_of(const schema *s, const json_t *number)
{
    int64_t n;
    err_t why;
    err_init(&why);
    if (jr_as_int(number, "table", 0, 1, NOTICE_TABLES_MAX - 1, &n, &why)) return NULL;
    return schema_table_by_number(s, (int)n);
}

static const char *projection_id(const json_t *proj)
{
    const char *id = NULL;
    err_t why;
    err_init(&why);
    if (jr_string(proj, "projection", "_id", 0, ID_BYTES_MAX - 1, &id, &why)) return NULL;
    return id;
}

/* One entry of "docs". A table this schema does not know is skipped; an entry
 * that cannot be read makes its table (or, unknown, everything) touched. */
static void decode_doc(const schema *s, const json_t *entry, write_set *ws)
{
    const json_t *number = jr_item(entry, 0);
    if (!json_is_array(entry) || json_array_size(entry) != 3 || !json_is_integer(number)) {
        ws->everything = true;
        return;
    }
    const schema_table *t = table_of(s, number);
    if (!t) return;
    json_t *old_proj = (json_t *)jr_item(entry, 1), *new_proj = (json_t *)jr_item(entry, 2);
    if (json_is_null(old_proj)) old_proj = NULL;
    if (json_is_null(new_proj)) new_proj = NULL;
    const char *old_id = projection_id(old_proj), *new_id = projection_id(new_proj);
    bool ok = (old_proj || new_proj) && (!old_proj || old_id) && (!new_proj || new_id) &&
              (!old_id || !new_id || strcmp(old_id, new_id) == 0);
    const char *id = old_id ? old_id : new_id;
    if (ok) ok = strlen(id) < ID_BYTES_MAX;
    if (!ok || write_set_add(ws, t, id, old_proj, new_proj) != 0) write_set_add_table(ws, t);
}

static void decode_writes(const schema *s, const json_t *root, write_set *ws)
{
    int64_t version = 0;
    bool all = false;
    const json_t *tables = NULL, *docs = NULL;
    err_t why;
    err_init(&why);
    /* What cannot be read is taken as the widest change: everything. */
    if (jr_int(root, "notice", "v", 0, 0, INT32_MAX, &version, &why) || version != NOTICE_VERSION ||
        jr_bool(root, "notice", "all", JR_OPTIONAL, &all, &why) || all ||
        jr_array(root, "notice", "tables", JR_OPTIONAL, NOTICE_TABLES_MAX, &tables, &why) ||
        jr_array(root, "notice", "docs", JR_OPTIONAL,
                 LIMIT_WRITES_PER_MUTATION_MAX * LIMIT_COMMIT_GROUP_MAX, &docs, &why)) {
        ws->everything = true;
        return;
    }
    size_t i;
    const json_t *item;
    json_array_foreach(tables, i, item)
    {
        const schema_table *t = table_of(s, item);
        if (t)
            write_set_add_table(ws, t);
        else if (!json_is_integer(item))
            ws->everything = true;
    }
    json_array_foreach(docs, i, item) decode_doc(s, item, ws);
}

int notice_decode(const schema *s, const char *payload, notice *out, err_t *e)
{
    ASSERT(s && payload && out);
    memset(out, 0, sizeof *out);
    write_set_init(&out->writes);
    json_error_t jerr;
    json_t *root = json_loads(payload, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(e, ERR_INVALID_ARGUMENT, "commit notice is not a JSON object: %.64s",
                       payload);
    }
    const char *node = NULL, *ts = NULL;
    err_t why;
    err_init(&why);
    jr_string(root, "notice", "node", 0, NOTICE_NODE_ID_HEX_CHARS, &node, &why);
    jr_string(root, "notice", "ts", 0, 20, &ts, &why);
    if (!node_id_ok(node) || !ts_parse(ts, &out->ts)) {
        json_decref(root);
        return err_set(e, ERR_INVALID_ARGUMENT, "commit notice without node or ts: %.64s", payload);
    }
    snprintf(out->node_id, sizeof out->node_id, "%s", node);
    decode_writes(s, root, &out->writes);
    json_decref(root);
    return 0;
}
