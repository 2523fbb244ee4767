/*
 * sync_version.h — the version rules of the sync protocol
 * (convex-protocol.md §2.5), as a small pure state machine so they can be
 * tested alone. Per connection the server tracks what the client has sent
 * (the newest query-set version, the number of accepted Authenticates) and
 * the endVersion of the last Transition it sent. A Transition:
 *   - starts exactly at the previous endVersion (the first at {0,0,0});
 *   - ends at the received query-set and identity versions and at the
 *     processed timestamp, which never goes backwards;
 *   - is only sent when every query is valid at that timestamp and the
 *     timestamp covers every mutation already answered (need_ts);
 *   - is sent whenever a version moved, even if no result changed (an
 *     Authenticate must always be confirmed), and after every successful
 *     MutationResponse, even when its timestamp was already covered (a
 *     replayed mutation's): the client resolves a mutation only while
 *     handling a later Transition.
 * Thread: any; pure.
 */
#ifndef DOJO_PROTO_SYNC_VERSION_H
#define DOJO_PROTO_SYNC_VERSION_H

#include <stdbool.h>
#include <stdint.h>

typedef struct state_version {
    uint32_t query_set;
    uint32_t identity;
    uint64_t ts;
} state_version;

typedef struct sync_versions {
    uint32_t qs_received, identity_received;
    state_version sent;  /* endVersion of the last Transition */
    uint64_t need_ts;    /* a Transition must reach this (answered mutations) */
    bool owe_transition; /* a MutationResponse went out: a Transition must follow it */
} sync_versions;

typedef enum {
    SYNC_NOTHING = 0, /* nothing to tell the client */
    SYNC_WAIT,        /* something to tell, but not every query is valid yet */
    SYNC_SEND,        /* send a Transition from *start to *end now */
} sync_decision;

/* Decides the next Transition. results_pending: some query has a result the
 * client has not seen (or a removal to report); all_fresh: every query is
 * valid at processed_ts. On SYNC_SEND fills start/end and records end as
 * sent. */
sync_decision sync_versions_next(sync_versions *v, uint64_t processed_ts, bool all_fresh,
                                 bool results_pending, state_version *start, state_version *end);

#endif
