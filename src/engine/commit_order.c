/*
 * commit_order.c — the order of commits across processes (see
 * commit_order.h): two queues of entries, the order itself and the own
 * commits whose notice has not come yet.
 * Thread: whoever owns the struct (the event loop).
 */
#include "engine/commit_order.h"

#include <stdlib.h>

#include "base/invariant.h"
#include "base/limits.h"
#include "engine/system_tables.h"

struct commit_order_entry {
    uint64_t ts;
    bool from_elsewhere; /* another process's commit: writes is its notice's summary */
    bool waits_local;    /* own commit, notified; its local record has not come */
    bool read;           /* the variables (and ts) were read for it */
    bool ts_unknown;     /* announced without a notice: ts is a guess until read */
    write_set writes;
    size_t bytes; /* write_set_bytes(&writes), counted in the order's bytes */
    commit_order_entry *next;
};

/* Counts an entry's write set against the bound on what the queues hold;
 * past it the write set is widened to "everything" (its records dropped,
 * but for the deployment variables the loop applies itself): the queue
 * of a process that cannot hear notices for a while stays small, and its
 * subscriptions simply all run again. */
static void entry_account(commit_order *o, commit_order_entry *item)
{
    ASSERT(o->bytes >= item->bytes);
    o->bytes -= item->bytes;
    item->bytes = write_set_bytes(&item->writes);
    if (o->bytes + item->bytes > LIMIT_COMMIT_ORDER_BYTES_MAX) {
        write_set_widen(&item->writes, SYSTEM_TABLE_ENV);
        item->bytes = write_set_bytes(&item->writes);
    }
    o->bytes += item->bytes;
}

static commit_order_entry *entry_new(commit_order *o, uint64_t ts, bool from_elsewhere,
                                     write_set *writes)
{
    commit_order_entry *item = calloc(1, sizeof *item);
    ASSERT(item && "out of memory queueing a commit");
    item->ts = ts;
    item->from_elsewhere = from_elsewhere;
    write_set_init(&item->writes);
    if (writes) {
        item->writes = *writes;
        write_set_init(writes);
    }
    entry_account(o, item);
    return item;
}

static void entry_free(commit_order *o, commit_order_entry *item)
{
    ASSERT(o->bytes >= item->bytes);
    o->bytes -= item->bytes;
    write_set_free(&item->writes);
    free(item);
}

static void queue_push(commit_order_queue *q, commit_order_entry *item)
{
    item->next = NULL;
    if (q->tail)
        q->tail->next = item;
    else
        q->head = item;
    q->tail = item;
    q->len++;
}

static commit_order_entry *queue_pop(commit_order_queue *q)
{
    commit_order_entry *item = q->head;
    if (!item) return NULL;
    q->head = item->next;
    if (!q->head) q->tail = NULL;
    q->len--;
    item->next = NULL;
    return item;
}

void commit_order_init(commit_order *o, uint64_t covered_ts)
{
    *o = (commit_order){.covered_ts = covered_ts};
}

void commit_order_free(commit_order *o)
{
    commit_order_entry *item;
    while ((item = queue_pop(&o->order)))
        entry_free(o, item);
    while ((item = queue_pop(&o->local)))
        entry_free(o, item);
    ASSERT(o->bytes == 0);
}

/* Own commits below ts whose notice has not come never get one: into the
 * order they go. Returns the own commit at ts, taken out of the local queue,
 * or NULL when its record has not come. */
static commit_order_entry *take_local(commit_order *o, uint64_t ts)
{
    commit_order_entry *found = NULL;
    while (o->local.head && o->local.head->ts <= ts) {
        commit_order_entry *item = queue_pop(&o->local);
        if (item->ts == ts && !found)
            found = item;
        else
            queue_push(&o->order, item);
    }
    return found;
}

void commit_order_own_notice(commit_order *o, uint64_t ts)
{
    if (ts <= o->covered_ts) return; /* its commit was reported with a resync */
    commit_order_entry *item = take_local(o, ts);
    if (!item) {
        item = entry_new(o, ts, false, NULL);
        item->waits_local = true;
    }
    queue_push(&o->order, item);
}

void commit_order_local(commit_order *o, uint64_t ts, write_set *writes)
{
    for (commit_order_entry *item = o->order.head; item; item = item->next) {
        if (!item->waits_local || item->ts != ts) continue;
        item->writes = *writes;
        write_set_init(writes);
        entry_account(o, item);
        item->waits_local = false;
        return;
    }
    commit_order_entry *item = entry_new(o, ts, false, writes);
    if (ts <= o->covered_ts) {
        queue_push(&o->order, item); /* covered by a resync: its notice is gone */
        return;
    }
    ASSERT((!o->local.tail || o->local.tail->ts < ts) && "local commits in timestamp order");
    queue_push(&o->local, item);
}

void commit_order_remote(commit_order *o, uint64_t ts, write_set *writes)
{
    /* An own record at the very same ts would be a COMMIT that failed with
     * the same clock reading: reported like the others below ts. */
    commit_order_entry *own = take_local(o, ts);
    if (own) queue_push(&o->order, own);
    if (ts > o->covered_ts) o->covered_ts = ts;
    queue_push(&o->order, entry_new(o, ts, true, writes));
}

void commit_order_unknown(commit_order *o, uint64_t guess_ts)
{
    if (o->order.tail && o->order.tail->ts > guess_ts) guess_ts = o->order.tail->ts;
    commit_order_entry *item = entry_new(o, guess_ts, true, NULL);
    write_set_widen(&item->writes, NULL);
    entry_account(o, item);
    item->ts_unknown = true;
    queue_push(&o->order, item);
}

void commit_order_resync(commit_order *o, uint64_t ts)
{
    if (ts > o->covered_ts) o->covered_ts = ts;
    while (o->local.head && o->local.head->ts <= o->covered_ts)
        queue_push(&o->order, queue_pop(&o->local));
    commit_order_entry *item = entry_new(o, o->covered_ts, true, NULL);
    write_set_widen(&item->writes, NULL);
    entry_account(o, item);
    queue_push(&o->order, item);
}

static bool needs_read(const commit_order_entry *item)
{
    return item->from_elsewhere && !item->read &&
           (item->ts_unknown || write_set_touches_table(&item->writes, SYSTEM_TABLE_ENV));
}

commit_order_state commit_order_head(const commit_order *o)
{
    const commit_order_entry *item = o->order.head;
    if (!item) return COMMIT_ORDER_EMPTY;
    if (item->waits_local) return COMMIT_ORDER_WAITS;
    if (needs_read(item)) return COMMIT_ORDER_NEEDS_READ;
    return COMMIT_ORDER_READY;
}

void commit_order_head_read(commit_order *o, uint64_t snapshot_ts)
{
    ASSERT(commit_order_head(o) == COMMIT_ORDER_NEEDS_READ);
    commit_order_entry *item = o->order.head;
    item->read = true;
    if (item->ts_unknown && snapshot_ts > item->ts) item->ts = snapshot_ts;
    item->ts_unknown = false;
}

static void take(commit_order *o, commit_order_entry *item, uint64_t *ts, write_set *writes,
                 bool *from_elsewhere)
{
    *ts = item->ts;
    *writes = item->writes;
    write_set_init(&item->writes);
    *from_elsewhere = item->from_elsewhere;
    entry_free(o, item);
}

void commit_order_pop(commit_order *o, uint64_t *ts, write_set *writes, bool *from_elsewhere)
{
    ASSERT(commit_order_head(o) == COMMIT_ORDER_READY);
    take(o, queue_pop(&o->order), ts, writes, from_elsewhere);
}

bool commit_order_pop_any(commit_order *o, uint64_t *ts, write_set *writes, bool *from_elsewhere)
{
    while (o->local.head)
        queue_push(&o->order, queue_pop(&o->local));
    commit_order_entry *item;
    while ((item = queue_pop(&o->order))) {
        if (!item->waits_local) {
            take(o, item, ts, writes, from_elsewhere);
            return true;
        }
        entry_free(o, item); /* its record will be reported when it comes */
    }
    return false;
}
