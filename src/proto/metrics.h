/*
 * metrics.h — counters and a latency histogram for GET /metrics, in the
 * Prometheus text format: requests by route and status, request latency,
 * function calls by function and outcome, and scheduled backups.
 * Thread: the event-loop thread only.
 */
#ifndef DOJO_PROTO_METRICS_H
#define DOJO_PROTO_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define METRICS_ROUTES_MAX 32
#define METRICS_STATUSES_MAX 24
#define METRICS_BUCKETS 12
#define METRICS_FUNCTIONS_MAX 128

typedef struct metrics_route {
    const char *route;
    int statuses[METRICS_STATUSES_MAX];
    uint64_t counts[METRICS_STATUSES_MAX];
    int n_statuses;
    uint64_t latency_buckets[METRICS_BUCKETS]; /* cumulative at render time */
    uint64_t latency_count;
    double latency_sum_s;
} metrics_route;

typedef struct metrics_function {
    const char *path; /* static storage (registry) */
    uint64_t ok, app_error, internal_error;
} metrics_function;

/* Scheduled backups (`dojo serve --backup-dir`), set by the scheduler's
 * done callback on the loop. */
typedef struct metrics_backup {
    bool enabled;
    uint64_t last_ok_at_ms; /* wall clock; 0: none yet */
    uint64_t last_ok_bytes;
    uint64_t last_ok_duration_ms;
    uint64_t ok_total, failed_total;
} metrics_backup;

typedef struct metrics {
    metrics_route routes[METRICS_ROUTES_MAX];
    int n_routes;
    metrics_function functions[METRICS_FUNCTIONS_MAX];
    int n_functions;
    uint64_t started_at_ms;
    metrics_backup backup;
} metrics;

void metrics_init(metrics *m);
/* route must be a string with static storage duration (a route name). */
void metrics_record_request(metrics *m, const char *route, int status, uint64_t duration_us);
void metrics_record_call(metrics *m, const char *fn_path, int rc);
/* One structure that grows with input, its bytes now and its bound
 * (base/limits.h). */
typedef struct metrics_bounded {
    const char *name; /* static */
    size_t bytes, bytes_max;
} metrics_bounded;

#define METRICS_BOUNDED_MAX 16

/* The gauges read at render time. */
typedef struct metrics_gauges {
    int open_connections, ws_sessions, subscriptions;
    uint64_t last_ts;
    size_t rss_bytes, heap_free_bytes;
    /* The query cache (engine/subs.h). */
    uint64_t cache_hits, cache_misses, cache_evictions, cache_invalidations;
    size_t cache_entries;
    metrics_bounded bounded[METRICS_BOUNDED_MAX];
    int n_bounded;
} metrics_gauges;

/* Appends one bounded structure to g (ignored past METRICS_BOUNDED_MAX). */
void metrics_bounded_add(metrics_gauges *g, const char *name, size_t bytes, size_t bytes_max);
/* Renders the exposition text plus the gauges; malloc'd. */
char *metrics_render(const metrics *m, const metrics_gauges *g);

#endif
