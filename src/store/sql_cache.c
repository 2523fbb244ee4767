/*
 * sql_cache.c — a write transaction's reads and writes, by id and by scan
 * (see sql_cache.h): an open-addressing hash table of malloc'd entries.
 * Callers: the statement layer (sql_docs.c, sql_scan.c) and store.c's
 * transaction calls, on the connection's thread.
 * Thread: the thread that owns the connection.
 */
#include "store/sql_cache.h"

#include "base/invariant.h"

#include <stdlib.h>
#include <string.h>

enum { EMPTY, DOC, SCAN, GONE };

typedef struct entry {
    uint64_t hash;
    int kind;
    const schema_table *table;
    uint8_t *key; /* a document's id, or a scan's statement and parameters */
    size_t key_len;
    /* DOC: the row, or data NULL when there is none. SCAN: its rows, whose
     * bytes live in `bytes`. */
    double creation_time;
    uint8_t *data;
    size_t data_len;
    sql_cached_row *rows;
    int n_rows;
    const schema_table *scan_table;
    uint32_t scan_generation; /* of scan_table when the scan ran */
    uint8_t *bytes;
    size_t size; /* what the entry holds, counted against SQL_CACHE_BYTES_MAX */
} entry;

#define TABLES_MAX 64 /* tables whose writes are counted */

struct sql_cache {
    entry slots[SQL_CACHE_SLOTS];
    int used; /* DOC, SCAN and GONE slots: the probes' length */
    size_t bytes;
    /* Per table, how many times it was written: a scan is stale when its
     * table's count moved since it ran. */
    struct {
        const schema_table *t;
        uint32_t generation;
    } tables[TABLES_MAX];
    int n_tables;
    uint32_t unknown_generation; /* tables past TABLES_MAX share one count */
};

static uint32_t *generation_of(sql_cache *c, const schema_table *t)
{
    for (int i = 0; i < c->n_tables; i++)
        if (c->tables[i].t == t) return &c->tables[i].generation;
    if (c->n_tables == TABLES_MAX) return &c->unknown_generation;
    c->tables[c->n_tables].t = t;
    c->tables[c->n_tables].generation = 0;
    return &c->tables[c->n_tables++].generation;
}

static uint64_t hash_of(int kind, const schema_table *t, const uint8_t *key, size_t len)
{
    uint64_t h = 14695981039346656037ull ^ (uint64_t)kind; /* FNV-1a */
    uintptr_t tp = (uintptr_t)t;
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
        if (c->slots[i].kind == DOC || c->slots[i].kind == SCAN) entry_free(c, &c->slots[i]);
        c->slots[i].kind = EMPTY;
    }
    c->used = 0;
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

/* The slot of (kind, t, key), or NULL. */
static entry *find(sql_cache *c, int kind, const schema_table *t, const uint8_t *key, size_t len,
                   uint64_t h)
{
    for (int probe = 0; probe < SQL_CACHE_SLOTS; probe++) {
        entry *x = &c->slots[(h + (uint64_t)probe) & (SQL_CACHE_SLOTS - 1)];
        if (x->kind == EMPTY) return NULL;
        if (x->kind == kind && x->hash == h && x->table == t && x->key_len == len &&
            memcmp(x->key, key, len) == 0)
            return x;
    }
    return NULL;
}

/* A slot for a new entry (after removing the old one of that key), or NULL
 * when the table is too full: then the cache starts again, empty. */
static entry *claim(sql_cache *c, int kind, const schema_table *t, const uint8_t *key, size_t len,
                    uint64_t h, size_t size)
{
    entry *old = find(c, kind, t, key, len, h);
    if (old) entry_free(c, old);
    if (c->used >= SQL_CACHE_SLOTS * 3 / 4 || c->bytes + size > SQL_CACHE_BYTES_MAX)
        sql_cache_clear(c);
    if (size > SQL_CACHE_BYTES_MAX / 4) return NULL; /* not worth keeping */
    for (int probe = 0; probe < SQL_CACHE_SLOTS; probe++) {
        entry *x = &c->slots[(h + (uint64_t)probe) & (SQL_CACHE_SLOTS - 1)];
        if (x->kind == EMPTY) c->used++;
        if (x->kind == EMPTY || x->kind == GONE) {
            *x = (entry){.hash = h, .kind = kind, .table = t, .key_len = len, .size = size};
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

int sql_cache_get_doc(sql_cache *c, const schema_table *t, const char *id, sql_cached_row *row)
{
    if (!c) return -1;
    size_t len = strlen(id);
    entry *x = find(c, DOC, t, (const uint8_t *)id, len, hash_of(DOC, t, (const uint8_t *)id, len));
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
    const uint8_t *key = (const uint8_t *)id;
    entry *x = claim(c, DOC, t, key, id_len, hash_of(DOC, t, key, id_len),
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

bool sql_cache_get_scan(sql_cache *c, const uint8_t *key, size_t key_len,
                        const sql_cached_row **rows, int *n)
{
    if (!c) return false;
    /* Scans are keyed by their statement, which names the table: no table
     * in the key, so that a lookup need not know it. */
    entry *x = find(c, SCAN, NULL, key, key_len, hash_of(SCAN, NULL, key, key_len));
    if (!x) return false;
    if (x->scan_generation != *generation_of(c, x->scan_table)) {
        entry_free(c, x); /* its table was written since */
        return false;
    }
    *rows = x->rows;
    *n = x->n_rows;
    return true;
}

bool sql_cache_put_scan(sql_cache *c, const schema_table *t, const uint8_t *key, size_t key_len,
                        const sql_cached_row *rows, int n)
{
    if (!c) return false;
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += rows[i].id_len + rows[i].data_len;
    entry *x = claim(c, SCAN, NULL, key, key_len, hash_of(SCAN, NULL, key, key_len),
                     sizeof(entry) + key_len + bytes + (size_t)n * sizeof *rows);
    if (!x) return false;
    x->scan_table = t;
    x->scan_generation = *generation_of(c, t);
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
    return true;
}

void sql_cache_forget_scans(sql_cache *c, const schema_table *t)
{
    if (c) (*generation_of(c, t))++;
}
