/*
 * sql_cache.c — a write transaction's reads and writes, by id and by scan
 * (see sql_cache.h): an open-addressing hash table of malloc'd entries.
 *
 * How a write makes scans stale: each table counts its writes (its
 * generation); a scan remembers the count it ran at and is stale once it
 * moved — except a point scan (every field of an index fixed by equalities,
 * say a user by token), which only a write of a document with those values,
 * before or after, can change: it is forgotten by those writes alone (a
 * POINT entry leads from the values to it), and by the writes whose old
 * document the cache is not told (then every point scan of the table goes).
 * Callers: the statement layer (sql_docs.c, sql_scan.c) and store.c's
 * transaction calls, on the connection's thread.
 * Thread: the thread that owns the connection.
 */
#include "store/sql_cache.h"

#include "base/invariant.h"

#include <stdlib.h>
#include <string.h>

enum { EMPTY, DOC, SCAN, POINT, GONE };

typedef struct entry {
    uint64_t hash;
    int kind;
    const void *owner; /* DOC: its table; SCAN: none; POINT: its index */
    uint8_t *key;      /* DOC: the id; SCAN: statement and parameters; POINT: the values */
    size_t key_len;
    /* DOC: the row, or data NULL when there is none. */
    double creation_time;
    uint8_t *data;
    size_t data_len;
    /* SCAN: its rows (their bytes in `bytes`), its table and the count of
     * writes (or of point-blind writes, for a point scan) it ran at. */
    sql_cached_row *rows;
    int n_rows;
    const schema_table *table;
    bool point;
    uint32_t generation;
    uint8_t *bytes;
    /* POINT: the key of its scan. */
    uint8_t *scan_key;
    size_t scan_key_len;
    size_t size; /* what the entry holds, counted against SQL_CACHE_BYTES_MAX */
} entry;

#define TABLES_MAX 64 /* tables whose writes are counted */

typedef struct table_counts {
    const schema_table *t;
    uint32_t writes;       /* any write: stales its scans */
    uint32_t blind_writes; /* writes of unknown old documents: stale its point scans too */
    bool has_points;
} table_counts;

struct sql_cache {
    entry slots[SQL_CACHE_SLOTS];
    int used; /* DOC, SCAN, POINT and GONE slots: the probes' length */
    size_t bytes;
    table_counts tables[TABLES_MAX];
    int n_tables;
    table_counts unknown; /* tables past TABLES_MAX share one count */
};

static table_counts *counts_of(sql_cache *c, const schema_table *t)
{
    for (int i = 0; i < c->n_tables; i++)
        if (c->tables[i].t == t) return &c->tables[i];
    if (c->n_tables == TABLES_MAX) return &c->unknown;
    c->tables[c->n_tables] = (table_counts){.t = t};
    return &c->tables[c->n_tables++];
}

static uint64_t hash_of(int kind, const void *owner, const uint8_t *key, size_t len)
{
    uint64_t h = 14695981039346656037ull ^ (uint64_t)kind; /* FNV-1a */
    uintptr_t tp = (uintptr_t)owner;
    for (size_t i = 0; i < sizeof tp; i++)
        h = (h ^ ((tp >> (8 * i)) & 0xff)) * 1099511628211ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return h;
}

static void entry_free(sql_cache *c, entry *x)
{
    free(x->key);
    free(x->data);
    free(x->rows);
    free(x->bytes);
    free(x->scan_key);
    c->bytes -= x->size;
    *x = (entry){.kind = GONE};
}

sql_cache *sql_cache_new(void)
{
    return calloc(1, sizeof(sql_cache));
}

void sql_cache_clear(sql_cache *c)
{
    if (!c || c->used == 0) return;
    for (int i = 0; i < SQL_CACHE_SLOTS; i++) {
        int kind = c->slots[i].kind;
        if (kind == DOC || kind == SCAN || kind == POINT) entry_free(c, &c->slots[i]);
        c->slots[i].kind = EMPTY;
    }
    c->used = 0;
    for (int i = 0; i < c->n_tables; i++)
        c->tables[i].has_points = false;
    c->unknown.has_points = false;
    ASSERT(c->bytes == 0);
}

void sql_cache_free(sql_cache *c)
{
    sql_cache_clear(c);
    free(c);
}

size_t sql_cache_bytes(const sql_cache *c)
{
    return c ? c->bytes : 0;
}

/* The slot of (kind, owner, key), or NULL. */
static entry *find(sql_cache *c, int kind, const void *owner, const uint8_t *key, size_t len)
{
    uint64_t h = hash_of(kind, owner, key, len);
    for (int probe = 0; probe < SQL_CACHE_SLOTS; probe++) {
        entry *x = &c->slots[(h + (uint64_t)probe) & (SQL_CACHE_SLOTS - 1)];
        if (x->kind == EMPTY) return NULL;
        if (x->kind == kind && x->hash == h && x->owner == owner && x->key_len == len &&
            memcmp(x->key, key, len) == 0)
            return x;
    }
    return NULL;
}

/* A slot for a new entry (after removing the old one of that key), or NULL
 * when it is not worth keeping. A cache too full starts again, empty. */
static entry *claim(sql_cache *c, int kind, const void *owner, const uint8_t *key, size_t len,
                    size_t size)
{
    entry *old = find(c, kind, owner, key, len);
    if (old) entry_free(c, old);
    if (c->used >= SQL_CACHE_SLOTS * 3 / 4 || c->bytes + size > SQL_CACHE_BYTES_MAX)
        sql_cache_clear(c);
    if (size > SQL_CACHE_BYTES_MAX / 4) return NULL;
    uint64_t h = hash_of(kind, owner, key, len);
    for (int probe = 0; probe < SQL_CACHE_SLOTS; probe++) {
        entry *x = &c->slots[(h + (uint64_t)probe) & (SQL_CACHE_SLOTS - 1)];
        if (x->kind == EMPTY) c->used++;
        if (x->kind == EMPTY || x->kind == GONE) {
            *x = (entry){.hash = h, .kind = kind, .owner = owner, .key_len = len, .size = size};
            x->key = malloc(len ? len : 1);
            if (!x->key) {
                x->kind = GONE;
                return NULL;
            }
            memcpy(x->key, key, len);
            c->bytes += size;
            return x;
        }
    }
    return NULL;
}

/* --- documents --------------------------------------------------------------------------- */

int sql_cache_get_doc(sql_cache *c, const schema_table *t, const char *id, sql_cached_row *row)
{
    if (!c) return -1;
    entry *x = find(c, DOC, t, (const uint8_t *)id, strlen(id));
    if (!x) return -1;
    if (!x->data) return 0;
    *row = (sql_cached_row){.id = (const char *)x->key,
                            .id_len = x->key_len,
                            .creation_time = x->creation_time,
                            .data = x->data,
                            .data_len = x->data_len};
    return 1;
}

bool sql_cache_put_doc(sql_cache *c, const schema_table *t, const char *id, size_t id_len,
                       double creation_time, const uint8_t *data, size_t data_len)
{
    if (!c) return false;
    entry *x = claim(c, DOC, t, (const uint8_t *)id, id_len,
                     sizeof(entry) + id_len + (data ? data_len : 0));
    if (!x) return false;
    x->creation_time = creation_time;
    if (data) {
        x->data = malloc(data_len ? data_len : 1);
        if (!x->data) {
            entry_free(c, x);
            return false;
        }
        memcpy(x->data, data, data_len);
        x->data_len = data_len;
    }
    return true;
}

/* --- points ------------------------------------------------------------------------------ */

void sql_cache_point_start(sql_cache_point *p, const void *index)
{
    ASSERT(index);
    p->index = index;
    p->len = 0;
}

bool sql_cache_point_add(sql_cache_point *p, const uint8_t *key, size_t key_len)
{
    /* The length first: the bytes of two fields never read as others'. */
    ASSERT(p->len <= SQL_CACHE_POINT_BYTES_MAX);
    size_t room = SQL_CACHE_POINT_BYTES_MAX - p->len;
    if (room < sizeof key_len || key_len > room - sizeof key_len) return false;
    memcpy(p->values + p->len, &key_len, sizeof key_len);
    memcpy(p->values + p->len + sizeof key_len, key, key_len);
    p->len += sizeof key_len + key_len;
    return true;
}

/* --- scans --------------------------------------------------------------------------------- */

bool sql_cache_get_scan(sql_cache *c, const uint8_t *key, size_t key_len,
                        const sql_cached_row **rows, int *n)
{
    if (!c) return false;
    /* Scans are keyed by their statement, which names the table. */
    entry *x = find(c, SCAN, NULL, key, key_len);
    if (!x) return false;
    table_counts *tc = counts_of(c, x->table);
    if (x->generation != (x->point ? tc->blind_writes : tc->writes)) {
        entry_free(c, x); /* its table was written since */
        return false;
    }
    *rows = x->rows;
    *n = x->n_rows;
    return true;
}

bool sql_cache_put_scan(sql_cache *c, const schema_table *t, const uint8_t *key, size_t key_len,
                        const sql_cached_row *rows, int n, const sql_cache_point *point)
{
    if (!c) return false;
    if (point) {
        /* One scan per point: an older one of these values (another limit,
         * another order) goes, or no write could reach it any more. */
        entry *old = find(c, POINT, point->index, point->values, point->len);
        if (old && !(old->scan_key_len == key_len && memcmp(old->scan_key, key, key_len) == 0)) {
            entry *scan = find(c, SCAN, NULL, old->scan_key, old->scan_key_len);
            if (scan) entry_free(c, scan);
        }
        if (old) entry_free(c, old);
    }
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += rows[i].id_len + rows[i].data_len;
    entry *x = claim(c, SCAN, NULL, key, key_len,
                     sizeof(entry) + key_len + bytes + (size_t)n * sizeof *rows);
    if (!x) return false;
    table_counts *tc = counts_of(c, t);
    x->table = t;
    x->point = point != NULL;
    x->generation = point ? tc->blind_writes : tc->writes;
    x->rows = malloc((size_t)(n ? n : 1) * sizeof *x->rows);
    x->bytes = malloc(bytes ? bytes : 1);
    if (!x->rows || !x->bytes) {
        entry_free(c, x);
        return false;
    }
    uint8_t *p = x->bytes;
    for (int i = 0; i < n; i++) {
        memcpy(p, rows[i].id, rows[i].id_len);
        x->rows[i].id = (const char *)p;
        p += rows[i].id_len;
        memcpy(p, rows[i].data, rows[i].data_len);
        x->rows[i].data = p;
        p += rows[i].data_len;
        x->rows[i].id_len = rows[i].id_len;
        x->rows[i].data_len = rows[i].data_len;
        x->rows[i].creation_time = rows[i].creation_time;
    }
    x->n_rows = n;
    if (!point) return true;
    /* The way from its values to it. */
    entry *pt = claim(c, POINT, point->index, point->values, point->len,
                      sizeof(entry) + point->len + key_len);
    if (!pt || !(pt->scan_key = malloc(key_len))) {
        entry *scan = find(c, SCAN, NULL, key, key_len); /* the claim may have emptied it */
        if (scan) entry_free(c, scan);
        if (pt) entry_free(c, pt);
        return false;
    }
    memcpy(pt->scan_key, key, key_len);
    pt->scan_key_len = key_len;
    tc->has_points = true;
    return true;
}

void sql_cache_forget_scans(sql_cache *c, const schema_table *t)
{
    if (c) counts_of(c, t)->writes++;
}

void sql_cache_forget_points(sql_cache *c, const schema_table *t)
{
    if (c) counts_of(c, t)->blind_writes++;
}

bool sql_cache_has_points(sql_cache *c, const schema_table *t)
{
    return c && counts_of(c, t)->has_points;
}

void sql_cache_forget_point(sql_cache *c, const sql_cache_point *point)
{
    if (!c) return;
    ASSERT(point->index && point->len <= SQL_CACHE_POINT_BYTES_MAX);
    entry *pt = find(c, POINT, point->index, point->values, point->len);
    if (!pt) return;
    entry *scan = find(c, SCAN, NULL, pt->scan_key, pt->scan_key_len);
    if (scan) entry_free(c, scan);
    entry_free(c, pt);
}
