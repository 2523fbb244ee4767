/*
 * sync_version.c — the Transition version rules (see sync_version.h).
 * Thread: any; pure.
 */
#include "proto/sync_version.h"

#include "base/invariant.h"

sync_decision sync_versions_next(sync_versions *v, uint64_t processed_ts, bool all_fresh,
                                 bool results_pending, state_version *start, state_version *end)
{
    bool moved = v->qs_received != v->sent.query_set || v->identity_received != v->sent.identity;
    bool uncovered = v->need_ts > v->sent.ts || v->owe_transition;
    if (!moved && !uncovered && !results_pending) return SYNC_NOTHING;
    if (!all_fresh || v->need_ts > processed_ts) return SYNC_WAIT;
    *start = v->sent;
    end->query_set = v->qs_received;
    end->identity = v->identity_received;
    end->ts = processed_ts > v->sent.ts ? processed_ts : v->sent.ts;
    /* The rules the client checks: a Transition starts where the last one
     * ended, never goes back in time, and covers every answered mutation. */
    ASSERT(end->ts >= start->ts && end->ts >= v->need_ts);
    ASSERT(end->query_set >= start->query_set && end->identity >= start->identity);
    v->sent = *end;
    v->owe_transition = false;
    return SYNC_SEND;
}
