/*
 * subs.c — shared reactive query instances (see subs.h). Instances live in a
 * hash table keyed by function, arguments, identity, admin and pinned page
 * end. Commits are matched against the instances' read sets (a table bitmask
 * first, then the index ranges); a bounded history of recent commits lets a
 * run that started before some commits find out, when it returns, whether
 * any of them touched what it read.
 * Thread: the event-loop thread only.
 */
#include "engine/subs.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/jsize.h"
#include "base/limits.h"
#include "base/invariant.h"
#include "base/log.h"
#include "base/rcbuf.h"

#define SUBS_BUCKETS 4096 /* power of two */
/* Identities whose key text is kept (power of two): at most this many
 * identities, each bounded by the token bound, stay referenced. */
#define SUBS_IDENTITY_MEMO 256
/* A run that failed for a passing reason waits this long before the next
 * try, twice as long after each further failure, up to the maximum. */
#define SUBS_RETRY_FIRST_MS 20
#define SUBS_RETRY_MAX_MS 1000
#define SUBS_RETRY_WALK_INTERVAL_MS 10 /* due retries are looked for at most this often */
#define SUBS_WARN_INTERVAL_MS 1000     /* one warning about passing failures per second */

typedef struct commit_rec {
    uint64_t ts;
    write_set writes; /* index keys only (writer.c cut the documents down) */
    size_t bytes;     /* write_set_bytes(&writes) */
    uint32_t mask[8];
} commit_rec;

struct subs {
    engine *en;
    sub_query *buckets[SUBS_BUCKETS];
    int n_instances;
    uint64_t processed_ts;
    uint64_t runs_started;
    int n_retry; /* instances with retry set */
    uint64_t retry_walked_ms;
    uint64_t warned_ms;                   /* last warning about passing failures */
    int warn_suppressed;                  /* failures since, not logged */
    char *(*encode)(const json_t *value); /* results are kept as this text */
    void (*advance_cb)(void *data);
    void *advance_data;
    /* Ring of the most recent commits, at most LIMIT_COMMIT_HISTORY_COMMITS_MAX
     * of them holding at most LIMIT_COMMIT_HISTORY_BYTES_MAX; commits at or
     * before history_floor_ts are no longer known. */
    commit_rec history[LIMIT_COMMIT_HISTORY_COMMITS_MAX];
    int history_head, history_len;
    size_t history_bytes;
    uint64_t history_floor_ts;
    /* The query cache: instances without listeners, most recently used
     * first; their bytes at most cache_bytes_max. */
    sub_query *lru_head, *lru_tail;
    size_t cache_bytes, cache_bytes_max, n_cached;
    uint64_t cache_hits, cache_misses, cache_evictions, cache_invalidations;
    /* Identities as the text keys hold, by identity object: an identity is
     * shared and never changed once made (auth hands every request with one
     * token the same object), so its text is made once, not per lookup.
     * Direct-mapped by address; an entry holds a reference, so the address
     * cannot be reused while it is here. */
    struct {
        json_t *identity;
        char *text;
    } identity_memo[SUBS_IDENTITY_MEMO];
};

#define KEY_JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY)

/* identity's key text (borrowed from the memo), or NULL when out of memory. */
static const char *identity_text(subs *s, const json_t *identity)
{
    uintptr_t a = (uintptr_t)identity;
    size_t slot = (size_t)((a >> 4) ^ (a >> 12)) & (SUBS_IDENTITY_MEMO - 1);
    if (s->identity_memo[slot].identity != identity) {
        char *text = json_dumps(identity, KEY_JSON_FLAGS);
        if (!text) return NULL;
        json_decref(s->identity_memo[slot].identity);
        free(s->identity_memo[slot].text);
        s->identity_memo[slot].identity = json_incref((json_t *)identity);
        s->identity_memo[slot].text = text;
    }
    return s->identity_memo[slot].text;
}

/* An instance whose last listener left while a run was in flight: freed
 * when the run returns. */
#define ORPHAN_MARK ((subs *)NULL)

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The key of fn(args) for identity. shared: identity is one the loop keeps
 * (a session's, a request's from the token cache), whose text the memo
 * keeps; a call's own copy (engine_submit makes one) is written out once. */
static char *make_key(subs *s, const fn_def *fn, const json_t *args, const json_t *identity,
                      bool shared, char role, const char *journal)
{
    char *a = json_dumps(args, KEY_JSON_FLAGS);
    char *own = identity && !shared ? json_dumps(identity, KEY_JSON_FLAGS) : NULL;
    const char *i = !identity ? "null" : shared ? identity_text(s, identity) : own;
    if (!a || !i) {
        free(a);
        free(own);
        return NULL;
    }
    size_t n = strlen(fn->path) + strlen(a) + strlen(i) + (journal ? strlen(journal) : 0) + 8;
    char *key = malloc(n);
    if (key)
        snprintf(key, n, "%s\x1f%s\x1f%s\x1f%c\x1f%s", fn->path, a, i, role,
                 journal ? journal : "");
    free(a);
    free(own);
    return key;
}

static void mask_add(uint32_t mask[8], const schema_table *t)
{
    mask[t->number / 32] |= 1u << (t->number % 32);
}

static bool masks_overlap(const uint32_t a[8], const uint32_t b[8])
{
    for (int i = 0; i < 8; i++)
        if (a[i] & b[i]) return true;
    return false;
}

static void read_mask(const read_set *rs, uint32_t mask[8])
{
    memset(mask, rs->whole_database ? 0xff : 0, 8 * sizeof mask[0]);
    for (int i = 0; i < rs->n_ranges; i++)
        mask_add(mask, rs->ranges[i].table);
}

static void write_mask(const write_set *ws, uint32_t mask[8])
{
    memset(mask, ws->everything ? 0xff : 0, 8 * sizeof mask[0]);
    for (int i = 0; i < ws->n_recs; i++)
        mask_add(mask, ws->recs[i].table);
    for (int i = 0; i < ws->n_whole_tables; i++)
        mask_add(mask, ws->whole_tables[i]);
}

subs *subs_new(engine *en)
{
    subs *s = calloc(1, sizeof *s);
    if (s) s->en = en;
    if (s) s->processed_ts = engine_last_ts(en);
    /* Commits before this process started are not in the history: about
     * them, it cannot tell. */
    if (s) s->history_floor_ts = s->processed_ts;
    return s;
}

static void query_free(sub_query *q)
{
    free(q->key);
    json_decref(q->args);
    json_decref(q->identity);
    free(q->journal);
    json_decref(q->value);
    err_clear(&q->err);
    json_decref(q->log_lines);
    read_set_free(&q->reads);
    rcbuf_unref(q->wire_value);
    rcbuf_unref(q->http_body[0]);
    rcbuf_unref(q->http_body[1]);
    free(q->listeners);
    free(q);
}

static void unlink_query(subs *s, sub_query *q)
{
    if (q->retry) {
        q->retry = false;
        s->n_retry--;
    }
    sub_query **p = &s->buckets[fnv1a(q->key) & (SUBS_BUCKETS - 1)];
    while (*p && *p != q)
        p = &(*p)->hash_next;
    if (*p) {
        *p = q->hash_next;
        s->n_instances--;
    }
    q->hash_next = NULL;
}

void subs_free(subs *s)
{
    for (int b = 0; b < SUBS_BUCKETS; b++) {
        sub_query *q = s->buckets[b];
        while (q) {
            sub_query *next = q->hash_next;
            if (q->running)
                q->owner = ORPHAN_MARK;
            else
                query_free(q);
            q = next;
        }
    }
    for (int i = 0; i < s->history_len; i++)
        write_set_free(
            &s->history[(s->history_head + i) % LIMIT_COMMIT_HISTORY_COMMITS_MAX].writes);
    for (int i = 0; i < SUBS_IDENTITY_MEMO; i++) {
        json_decref(s->identity_memo[i].identity);
        free(s->identity_memo[i].text);
    }
    free(s);
}

static void start_run(subs *s, sub_query *q);

/* Failures that say nothing about the query's inputs: the same run may well
 * succeed a moment later. Every other error is the query's result until
 * what it read changes. */
static bool passing_failure(int rc)
{
    return rc == ERR_BUSY || rc == ERR_STORAGE || rc == ERR_IO || rc == ERR_NOMEM ||
           rc == ERR_UNAVAILABLE;
}

/* Tries q again later, waiting longer the longer the failures go on, and
 * says so in the log at most once a second (an overload fails thousands of
 * runs a second). The client sees nothing: a query without a result keeps
 * its session waiting (a loading state), which is what the client expects
 * of a busy server; a passing failure is never shown as the query's error. */
static void retry_later(subs *s, sub_query *q, const err_t *why)
{
    uint32_t d = q->retry_delay_ms ? q->retry_delay_ms * 2 : SUBS_RETRY_FIRST_MS;
    q->retry_delay_ms = d > SUBS_RETRY_MAX_MS ? SUBS_RETRY_MAX_MS : d;
    if (!q->retry) s->n_retry++;
    q->retry = true;
    uint64_t now = clock_mono_ms();
    q->retry_at_ms = now + q->retry_delay_ms;
    if (now - s->warned_ms < SUBS_WARN_INTERVAL_MS) {
        s->warn_suppressed++;
        return;
    }
    log_warn("subscription %s: %s; trying again in %u ms (%d more such failures in the last "
             "second)",
             q->fn->path, why->msg, q->retry_delay_ms, s->warn_suppressed);
    s->warned_ms = now;
    s->warn_suppressed = 0;
}

static bool still_listening(const sub_query *q, const sub_listener *l)
{
    for (int i = 0; i < q->n_listeners; i++)
        if (q->listeners[i].listener == l->listener && q->listeners[i].cb == l->cb) return true;
    return false;
}

/* Tells every listener. A listener may unsubscribe (itself or, by closing,
 * others) while being told: work on a copy, skip whoever left, and keep q
 * alive until the round is over. */
static void notify(sub_query *q, bool changed)
{
    int n = q->n_listeners;
    if (n == 0) return;
    sub_listener *copy = malloc((size_t)n * sizeof *copy);
    if (!copy) return;
    memcpy(copy, q->listeners, (size_t)n * sizeof *copy);
    q->notifying++;
    for (int i = 0; i < n; i++)
        if (still_listening(q, &copy[i])) copy[i].cb(copy[i].listener, q, changed);
    q->notifying--;
    free(copy);
    if (q->owner == ORPHAN_MARK && !q->running && !q->notifying) query_free(q);
}

bool subs_unchanged_between(const subs *s, uint64_t from, uint64_t to, const read_set *reads)
{
    if (from >= to) return true;
    if (to > s->processed_ts || from < s->history_floor_ts) return false; /* cannot tell */
    uint32_t mask[8];
    read_mask(reads, mask);
    for (int i = 0; i < s->history_len; i++) {
        const commit_rec *c = &s->history[(s->history_head + i) % LIMIT_COMMIT_HISTORY_COMMITS_MAX];
        if (c->ts <= from || c->ts > to || !masks_overlap(mask, c->mask)) continue;
        if (rwset_intersects(reads, &c->writes)) return false;
    }
    return true;
}

/* True when a commit after `since` (up to processed_ts) wrote into what
 * reads covered; also true when history no longer reaches back that far. */
static bool missed_commit(const subs *s, uint64_t since, const read_set *reads)
{
    return !subs_unchanged_between(s, since, s->processed_ts, reads);
}

/* Whether c's outcome is q's: compared as encoded text when the manager
 * encodes results (text), else as values. */
static bool same_result(const sub_query *q, const call *c, const rcbuf *text)
{
    if (!q->has_result || q->rc != c->rc) return false;
    if (c->rc) return strcmp(q->err.msg, c->err.msg) == 0;
    bool same_value = text && q->wire_value
                          ? text->len == q->wire_value->len &&
                                memcmp(text->bytes, q->wire_value->bytes, text->len) == 0
                          : q->value && json_equal(q->value, c->result);
    return same_value && json_equal(q->log_lines, c->log_lines);
}

/* c's result encoded by the manager's encoder (NULL when there is none, or
 * out of memory: the value is kept instead). */
static rcbuf *encode_result(const subs *s, const call *c)
{
    if (c->rc || !s->encode) return NULL;
    char *text = s->encode(c->result);
    rcbuf *b = text ? rcbuf_new(text, strlen(text)) : NULL;
    free(text);
    return b;
}

static void store_result(subs *s, sub_query *q, call *c)
{
    rcbuf *text = encode_result(s, c);
    bool changed = !same_result(q, c, text);
    q->has_result = true;
    q->rc = c->rc;
    json_decref(q->value);
    q->value = NULL;
    rcbuf_unref(q->wire_value);
    q->wire_value = NULL;
    if (text) {
        /* Kept encoded only: the text is what is pushed and compared, and a
         * fraction of the value's tree in memory. */
        q->wire_value = text;
    } else if (c->rc == 0) {
        q->value = json_incref(c->result);
    }
    err_clear(&q->err);
    if (c->rc) err_move(&q->err, &c->err);
    json_decref(q->log_lines);
    q->log_lines = c->log_lines ? json_incref(c->log_lines) : json_array();
    q->result_ts = c->ts ? c->ts : s->processed_ts;
    read_set_free(&q->reads);
    q->reads = c->reads;
    read_set_init(&c->reads);
    read_mask(&q->reads, q->table_mask);
    if (!q->journal && c->journal_out) q->journal = strdup(c->journal_out);
    if (changed) q->version++;
    q->wire_value_version = q->version;
}

static void on_run_done(call *c)
{
    sub_query *q = c->data;
    q->running = false;
    if (q->owner == ORPHAN_MARK) {
        call_free(c);
        query_free(q);
        return;
    }
    subs *s = q->owner;
    if (passing_failure(c->rc)) {
        /* A previous result stays (its sessions wait for the new one); a
         * first run has none yet (its sessions wait for it). A failure
         * that outlasts the backoff and is not an overload (a database
         * that is gone, a document that cannot be read) becomes the answer
         * after all — a session must not wait for ever — and the retries
         * go on, so a recovery still reaches the client. */
        retry_later(s, q, &c->err);
        bool lasting = c->rc != ERR_BUSY && q->retry_delay_ms >= SUBS_RETRY_MAX_MS;
        if (!lasting) {
            call_free(c);
            return;
        }
        bool first = !q->has_result;
        uint64_t before = q->version;
        store_result(s, q, c);
        call_free(c);
        notify(q, first || q->version != before);
        return;
    }
    if (c->ts < q->invalidated_ts || missed_commit(s, c->ts, &c->reads)) {
        /* A commit that landed while this run was in flight may have
         * changed what it read after its snapshot: run again before anyone
         * sees it. */
        if (q->invalidated_ts <= c->ts) q->invalidated_ts = c->ts + 1;
        call_free(c);
        bool had_result = q->has_result;
        start_run(s, q);
        /* A first run whose re-run was refused got that refusal as its
         * result: say so. */
        if (!had_result && q->has_result) notify(q, true);
        return;
    }
    bool first = !q->has_result;
    uint64_t before = q->version;
    q->retry_delay_ms = 0;
    store_result(s, q, c);
    call_free(c);
    if (s->n_retry > 0) subs_retry_due(s);
    notify(q, first || q->version != before);
}

static void start_run(subs *s, sub_query *q)
{
    ASSERT(!q->running);
    call *c = call_new();
    c->fn = q->fn;
    c->args = json_deep_copy(q->args);
    c->identity = q->identity ? json_deep_copy(q->identity) : NULL;
    c->admin = q->admin;
    c->worker = q->worker;
    c->journal_in = q->journal ? strdup(q->journal) : NULL;
    c->record_reads = true;
    c->done = on_run_done;
    c->data = q;
    q->running = true;
    s->runs_started++;
    if (engine_submit(s->en, c) == 0) return;
    q->running = false;
    /* Nobody is told anything here: callers may be in the middle of
     * walking the instances. */
    if (passing_failure(c->rc) || q->has_result) {
        /* An overloaded engine: the instance waits for its retry. (Arguments
         * and permission never change, so a re-run is refused only for
         * overload.) */
        retry_later(s, q, &c->err);
        call_free(c);
        return;
    }
    /* The first run was refused before running for its arguments or its
     * permission: that is the result, for good. The subscriber reads it
     * when subs_subscribe returns. */
    c->ts = s->processed_ts;
    store_result(s, q, c);
    call_free(c);
}

/* --- the query cache ------------------------------------------------------------------ */

/* What a cached entry holds on the heap, estimated. */
static size_t entry_bytes(const sub_query *q)
{
    size_t n = sizeof *q + strlen(q->key) + 1 + json_heap_bytes(q->args) +
               json_heap_bytes(q->identity) + json_heap_bytes(q->value) +
               json_heap_bytes(q->log_lines) + json_heap_bytes(q->err.data) +
               (q->journal ? strlen(q->journal) + 1 : 0) +
               (size_t)q->reads.cap_ranges * sizeof(read_range) +
               (size_t)q->cap_listeners * sizeof(sub_listener);
    for (int i = 0; i < q->reads.n_ranges; i++)
        n += json_heap_bytes(q->reads.ranges[i].lo) + json_heap_bytes(q->reads.ranges[i].hi);
    if (q->wire_value) n += sizeof(rcbuf) + q->wire_value->len;
    for (int f = 0; f < 2; f++)
        if (q->http_body[f]) n += sizeof(rcbuf) + q->http_body[f]->len;
    return n;
}

/* Whether an instance nobody listens to any more is worth keeping. */
static bool cacheable(const subs *s, const sub_query *q)
{
    return s->cache_bytes_max > 0 && q->owner == s && q->has_result && !q->running &&
           !q->notifying && !passing_failure(q->rc) && !q->admin;
}

static void lru_unlink(subs *s, sub_query *q)
{
    ASSERT(q->cached && s->n_cached > 0 && s->cache_bytes >= q->cache_bytes);
    if (q->lru_prev)
        q->lru_prev->lru_next = q->lru_next;
    else
        s->lru_head = q->lru_next;
    if (q->lru_next)
        q->lru_next->lru_prev = q->lru_prev;
    else
        s->lru_tail = q->lru_prev;
    q->lru_prev = q->lru_next = NULL;
    q->cached = false;
    s->cache_bytes -= q->cache_bytes;
    s->n_cached--;
    q->cache_bytes = 0;
}

static void lru_push_front(subs *s, sub_query *q)
{
    q->lru_prev = NULL;
    q->lru_next = s->lru_head;
    if (s->lru_head)
        s->lru_head->lru_prev = q;
    else
        s->lru_tail = q;
    s->lru_head = q;
}

/* Drops a cached entry for good. */
static void cache_drop(subs *s, sub_query *q)
{
    lru_unlink(s, q);
    unlink_query(s, q);
    query_free(q);
}

/* Makes q a cached entry (most recently used), then evicts past the bound. */
static void lru_link(subs *s, sub_query *q)
{
    ASSERT(!q->cached && q->n_listeners == 0);
    q->cached = true;
    q->cache_bytes = entry_bytes(q);
    s->cache_bytes += q->cache_bytes;
    s->n_cached++;
    lru_push_front(s, q);
    while (s->cache_bytes > s->cache_bytes_max && s->lru_tail) {
        s->cache_evictions++;
        cache_drop(s, s->lru_tail);
    }
}

void subs_set_encoder(subs *s, char *(*encode)(const json_t *value))
{
    s->encode = encode;
}

void subs_cache_configure(subs *s, size_t bytes_max)
{
    s->cache_bytes_max = bytes_max;
    while (s->cache_bytes > s->cache_bytes_max && s->lru_tail) {
        s->cache_evictions++;
        cache_drop(s, s->lru_tail);
    }
}

static sub_query *find(subs *s, const char *key)
{
    sub_query *q = s->buckets[fnv1a(key) & (SUBS_BUCKETS - 1)];
    while (q && strcmp(q->key, key) != 0)
        q = q->hash_next;
    return q;
}

sub_query *subs_cache_lookup(subs *s, const fn_def *fn, const json_t *args, const json_t *identity,
                             bool admin, bool worker, uint64_t answered_ts)
{
    /* Admin calls (tools, the dashboard) always read the store: they are
     * few, and may look at what a tool changed outside the servers. */
    char *key = s->cache_bytes_max && !admin
                    ? make_key(s, fn, args, identity, true, worker ? 'W' : '-', NULL)
                    : NULL;
    sub_query *q = key ? find(s, key) : NULL;
    free(key);
    if (!q || !q->has_result || passing_failure(q->rc) || !sub_query_fresh(s, q) ||
        s->processed_ts < answered_ts) {
        s->cache_misses++;
        return NULL;
    }
    s->cache_hits++;
    if (q->cached && s->lru_head != q) {
        /* Most recently used: to the front. */
        size_t bytes = q->cache_bytes;
        lru_unlink(s, q);
        q->cached = true;
        q->cache_bytes = bytes;
        s->cache_bytes += bytes;
        s->n_cached++;
        lru_push_front(s, q);
    }
    return q;
}

void subs_cache_store(subs *s, call *c)
{
    if (!s->cache_bytes_max || !c->fn || c->fn->kind != FN_QUERY || !c->ts || c->admin) return;
    if (c->rc != 0 && (!err_is_application(c->rc) || passing_failure(c->rc))) return;
    /* Valid now only if nothing processed since its snapshot wrote into
     * what it read (and the history can tell). */
    if (missed_commit(s, c->ts, &c->reads)) return;
    char role = c->admin ? 'A' : c->worker ? 'W' : '-';
    char *key = make_key(s, c->fn, c->args, c->identity, false, role, NULL);
    if (!key) return;
    if (find(s, key)) { /* subscribed, or cached already: it keeps its own */
        free(key);
        return;
    }
    sub_query *q = calloc(1, sizeof *q);
    if (!q) {
        free(key);
        return;
    }
    q->key = key;
    q->fn = c->fn;
    q->args = json_incref(c->args);
    q->identity = json_incref(c->identity);
    q->admin = c->admin;
    q->worker = c->worker;
    q->owner = s;
    err_init(&q->err);
    read_set_init(&q->reads);
    store_result(s, q, c);
    uint64_t bucket = fnv1a(key) & (SUBS_BUCKETS - 1);
    q->hash_next = s->buckets[bucket];
    s->buckets[bucket] = q;
    s->n_instances++;
    lru_link(s, q);
}

void subs_cache_set_body(subs *s, sub_query *q, int f, rcbuf *body)
{
    ASSERT(f == 0 || f == 1);
    rcbuf_unref(q->http_body[f]);
    q->http_body[f] = body;
    q->http_body_version[f] = q->version;
    if (!q->cached) return;
    size_t bytes = entry_bytes(q);
    s->cache_bytes = s->cache_bytes - q->cache_bytes + bytes;
    q->cache_bytes = bytes;
    while (s->cache_bytes > s->cache_bytes_max && s->lru_tail && s->lru_tail != q) {
        s->cache_evictions++;
        cache_drop(s, s->lru_tail);
    }
}

void subs_cache_stats_get(const subs *s, subs_cache_stats *out)
{
    *out = (subs_cache_stats){.hits = s->cache_hits,
                              .misses = s->cache_misses,
                              .evictions = s->cache_evictions,
                              .invalidations = s->cache_invalidations,
                              .entries = s->n_cached,
                              .bytes = s->cache_bytes,
                              .bytes_max = s->cache_bytes_max};
}

void subs_retry_due(subs *s)
{
    uint64_t now = clock_mono_ms();
    if (now - s->retry_walked_ms < SUBS_RETRY_WALK_INTERVAL_MS) return;
    s->retry_walked_ms = now;
    for (int b = 0; b < SUBS_BUCKETS && s->n_retry > 0; b++)
        for (sub_query *q = s->buckets[b]; q; q = q->hash_next) {
            if (!q->retry || q->retry_at_ms > now) continue;
            q->retry = false;
            s->n_retry--;
            if (!q->running) start_run(s, q);
        }
}

static sub_query *subscribe(subs *s, const fn_def *fn, const json_t *args, const json_t *identity,
                            bool admin, bool worker, const char *journal, sub_result_cb cb,
                            void *listener);

sub_query *subs_subscribe(subs *s, const fn_def *fn, const json_t *args, const json_t *identity,
                          bool admin, const char *journal, sub_result_cb cb, void *listener)
{
    return subscribe(s, fn, args, identity, admin, false, journal, cb, listener);
}

sub_query *subs_subscribe_worker(subs *s, const fn_def *fn, const json_t *args, const char *journal,
                                 sub_result_cb cb, void *listener)
{
    return subscribe(s, fn, args, NULL, false, true, journal, cb, listener);
}

static sub_query *subscribe(subs *s, const fn_def *fn, const json_t *args, const json_t *identity,
                            bool admin, bool worker, const char *journal, sub_result_cb cb,
                            void *listener)
{
    char *key = make_key(s, fn, args, identity, true, admin ? 'A' : worker ? 'W' : '-', journal);
    if (!key) return NULL;
    uint64_t bucket = fnv1a(key) & (SUBS_BUCKETS - 1);
    sub_query *q = s->buckets[bucket];
    while (q && strcmp(q->key, key) != 0)
        q = q->hash_next;
    bool created = false;
    if (q) {
        free(key);
        if (q->cached) lru_unlink(s, q); /* listened to again */
    } else {
        q = calloc(1, sizeof *q);
        if (!q) {
            free(key);
            return NULL;
        }
        q->key = key;
        q->fn = fn;
        q->args = json_deep_copy(args);
        /* Identities are never changed once made: shared, not copied (a
         * run gets its own copy when it crosses to a reader thread). */
        q->identity = identity ? json_incref((json_t *)identity) : NULL;
        q->admin = admin;
        q->worker = worker;
        q->journal = journal ? strdup(journal) : NULL;
        q->owner = s;
        err_init(&q->err);
        read_set_init(&q->reads);
        q->hash_next = s->buckets[bucket];
        s->buckets[bucket] = q;
        s->n_instances++;
        created = true;
    }
    if (q->n_listeners == q->cap_listeners) {
        int cap = q->cap_listeners ? q->cap_listeners * 2 : 2;
        sub_listener *grown = realloc(q->listeners, (size_t)cap * sizeof *grown);
        if (!grown) {
            if (created) {
                unlink_query(s, q);
                query_free(q);
            }
            return NULL;
        }
        q->listeners = grown;
        q->cap_listeners = cap;
    }
    q->listeners[q->n_listeners++] = (sub_listener){cb, listener};
    if (created) start_run(s, q);
    return q;
}

void subs_unsubscribe(subs *s, sub_query *q, void *listener)
{
    for (int i = 0; i < q->n_listeners; i++) {
        if (q->listeners[i].listener != listener) continue;
        q->listeners[i] = q->listeners[--q->n_listeners];
        break;
    }
    if (q->n_listeners > 0) return;
    if (cacheable(s, q)) {
        /* Its result stays valid until a commit says otherwise: keep it for
         * the next subscriber or HTTP query (a reconnecting client re-adds
         * the same queries). */
        if (q->retry) {
            q->retry = false;
            s->n_retry--;
        }
        lru_link(s, q);
        return;
    }
    unlink_query(s, q);
    if (q->running || q->notifying)
        q->owner = ORPHAN_MARK;
    else
        query_free(q);
}

bool sub_query_fresh(const subs *s, const sub_query *q)
{
    return q->has_result && q->result_ts >= q->invalidated_ts && q->result_ts <= s->processed_ts;
}

uint64_t subs_processed_ts(const subs *s)
{
    return s->processed_ts;
}

void subs_on_advance(subs *s, void (*cb)(void *data), void *data)
{
    s->advance_cb = cb;
    s->advance_data = data;
}

int subs_instance_count(const subs *s)
{
    return s->n_instances;
}

uint64_t subs_runs_started(const subs *s)
{
    return s->runs_started;
}

/* Forgets the oldest commit of the history; what it said is then unknown. */
static void forget_oldest(subs *s)
{
    ASSERT(s->history_len > 0);
    commit_rec *old = &s->history[s->history_head];
    /* A late commit (lower ts than one already processed: another
     * process's, covered by a resynchronisation) must not lower it. */
    if (old->ts > s->history_floor_ts) s->history_floor_ts = old->ts;
    ASSERT(s->history_bytes >= old->bytes);
    s->history_bytes -= old->bytes;
    write_set_free(&old->writes);
    s->history_head = (s->history_head + 1) % LIMIT_COMMIT_HISTORY_COMMITS_MAX;
    s->history_len--;
}

static void remember_commit(subs *s, uint64_t ts, const write_set *writes)
{
    commit_rec rec = {.ts = ts};
    write_set_init(&rec.writes);
    write_set_copy(&rec.writes, writes); /* shares the key objects: a reference each */
    rec.bytes = write_set_bytes(&rec.writes);
    write_mask(&rec.writes, rec.mask);
    while (s->history_len > 0 && (s->history_len == LIMIT_COMMIT_HISTORY_COMMITS_MAX ||
                                  s->history_bytes + rec.bytes > LIMIT_COMMIT_HISTORY_BYTES_MAX))
        forget_oldest(s);
    if (rec.bytes > LIMIT_COMMIT_HISTORY_BYTES_MAX) {
        /* One commit bigger than the whole history: remember that it
         * happened, not what it wrote. */
        write_set_free(&rec.writes);
        rec.writes.everything = true;
        rec.bytes = write_set_bytes(&rec.writes);
        write_mask(&rec.writes, rec.mask);
    }
    s->history[(s->history_head + s->history_len) % LIMIT_COMMIT_HISTORY_COMMITS_MAX] = rec;
    s->history_len++;
    s->history_bytes += rec.bytes;
    ASSERT(s->history_bytes <= LIMIT_COMMIT_HISTORY_BYTES_MAX);
}

size_t subs_history_bytes(const subs *s)
{
    return s->history_bytes;
}

/* engine_on_commit listener: invalidate what the commit changed. */
void subs_commit(void *data, uint64_t ts, const write_set *writes)
{
    subs *s = data;
    uint32_t mask[8];
    write_mask(writes, mask);
    for (int b = 0; b < SUBS_BUCKETS; b++) {
        sub_query *next;
        for (sub_query *q = s->buckets[b]; q; q = next) {
            next = q->hash_next;
            if (!q->has_result || q->result_ts >= ts) continue;
            if (!masks_overlap(mask, q->table_mask) || !rwset_intersects(&q->reads, writes))
                continue;
            if (q->cached) {
                /* Nobody listens: not worth a run; the next asker runs it. */
                s->cache_invalidations++;
                cache_drop(s, q);
                continue;
            }
            if (q->invalidated_ts < ts) q->invalidated_ts = ts;
            if (!q->running) start_run(s, q);
        }
    }
    remember_commit(s, ts, writes);
    if (ts > s->processed_ts) s->processed_ts = ts;
    if (s->advance_cb) s->advance_cb(s->advance_data);
}
