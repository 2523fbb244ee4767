/*
 * commit_order.h — the order in which a process reports commits to its
 * commit listeners when several processes share one database: the
 * database's own commit order, as its commit notifications tell it. A pure
 * state machine (no I/O, no clock, no loop) so that its rules can be tested
 * alone; engine/remote.c feeds it and reports what it lets through.
 *
 * Why an order at all: the subscription manager's "processed up to P" must
 * mean "every commit up to P is known". Writers of all processes commit one
 * at a time and take timestamps above the newest stored one, so commit order
 * is timestamp order and the notifications arrive in it. This process's own
 * commits are known at once (from its storage thread), but reporting one
 * while another process's earlier commit is still on its way would let P
 * pass a commit nobody here has seen. So own commits wait for their own
 * notification and everything is reported in notification order.
 *
 * Inputs:
 *   own notice (ts)         this process's commit at ts was notified
 *   local (ts, writes)      the storage thread's record of an own commit
 *                           (exact write set; in timestamp order); it may
 *                           come before or after its notice
 *   remote (ts, writes)     another process's commit, with its summary
 *   unknown (guess)         a commit announced without a notice (an import):
 *                           it touched anything; its timestamp is read later
 *   resync (ts)             notifications were lost; ts is the newest commit
 *                           when listening started again: every commit up to
 *                           it is covered by one that touches anything
 * Rules:
 *   - entries are reported in the order their notices came;
 *   - an own notice waits for its local record (COMMIT_ORDER_WAITS);
 *   - another process's commit that touches the deployment variables, and an
 *     unknown commit, wait until the variables (and the newest timestamp)
 *     are read again (COMMIT_ORDER_NEEDS_READ, then commit_order_head_read);
 *   - a notice at ts proves that own commits below ts that were not notified
 *     never will be (they did not commit: a COMMIT that failed): they are
 *     reported as they are (a few queries run again for nothing);
 *   - "covered_ts": every commit up to it is reported or queued; an own
 *     notice at or below it is stale (its commit was reported by a resync),
 *     a local record at or below it is reported without waiting.
 * Thread: whoever owns the struct (the event loop).
 */
#ifndef DOJO_ENGINE_COMMIT_ORDER_H
#define DOJO_ENGINE_COMMIT_ORDER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/rwset.h"

typedef enum {
    COMMIT_ORDER_EMPTY,
    COMMIT_ORDER_WAITS,      /* the head is an own commit whose local record has not come */
    COMMIT_ORDER_NEEDS_READ, /* the head waits for the variables (and ts) to be read */
    COMMIT_ORDER_READY,
} commit_order_state;

typedef struct commit_order_entry commit_order_entry;

typedef struct commit_order_queue {
    commit_order_entry *head, *tail;
    int len;
} commit_order_queue;

typedef struct commit_order {
    commit_order_queue order; /* in the database's commit order */
    commit_order_queue local; /* own commits whose notice has not come, by ts */
    uint64_t covered_ts;
    size_t bytes; /* of the write sets queued, ≤ LIMIT_COMMIT_ORDER_BYTES_MAX (+ one) */
} commit_order;

/* covered_ts: the newest commit timestamp read after listening started. */
void commit_order_init(commit_order *o, uint64_t covered_ts);
void commit_order_free(commit_order *o);

void commit_order_own_notice(commit_order *o, uint64_t ts);
/* writes are moved (left empty). */
void commit_order_local(commit_order *o, uint64_t ts, write_set *writes);
void commit_order_remote(commit_order *o, uint64_t ts, write_set *writes);
/* guess: a timestamp to use if reading one fails (the newest known). */
void commit_order_unknown(commit_order *o, uint64_t guess_ts);
void commit_order_resync(commit_order *o, uint64_t ts);

commit_order_state commit_order_head(const commit_order *o);
/* The head of state COMMIT_ORDER_NEEDS_READ was read at a snapshot whose
 * newest commit is snapshot_ts (0 when reading failed): it becomes ready. */
void commit_order_head_read(commit_order *o, uint64_t snapshot_ts);
/* Takes the ready head: its timestamp, its write set (moved into writes,
 * which the caller frees), whether another process committed it. */
void commit_order_pop(commit_order *o, uint64_t *ts, write_set *writes, bool *from_elsewhere);
/* Closing: takes every entry that has a write set, waiting or not, own
 * commits not notified included; false when none is left. */
bool commit_order_pop_any(commit_order *o, uint64_t *ts, write_set *writes, bool *from_elsewhere);

#endif
