/*
 * metrics.c — recording and rendering the counters of /metrics (see
 * metrics.h).
 * Thread: the event-loop thread only.
 */
#include "proto/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/sbuf.h"

static const double bucket_bounds_s[METRICS_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                        0.05,   0.1,   0.25,   0.5,   1.0,  5.0};

void metrics_init(metrics *m)
{
    memset(m, 0, sizeof *m);
    m->started_at_ms = (uint64_t)clock_now_ms();
}

static metrics_route *route_slot(metrics *m, const char *route)
{
    for (int i = 0; i < m->n_routes; i++)
        if (strcmp(m->routes[i].route, route) == 0) return &m->routes[i];
    if (m->n_routes == METRICS_ROUTES_MAX) return &m->routes[METRICS_ROUTES_MAX - 1];
    metrics_route *r = &m->routes[m->n_routes++];
    r->route = route;
    return r;
}

void metrics_record_request(metrics *m, const char *route, int status, uint64_t duration_us)
{
    metrics_route *r = route_slot(m, route);
    int i = 0;
    while (i < r->n_statuses && r->statuses[i] != status)
        i++;
    if (i == r->n_statuses) {
        if (r->n_statuses == METRICS_STATUSES_MAX)
            i = METRICS_STATUSES_MAX - 1;
        else
            r->statuses[r->n_statuses++] = status;
    }
    r->counts[i]++;
    double s = (double)duration_us / 1e6;
    for (int b = 0; b < METRICS_BUCKETS; b++)
        if (s <= bucket_bounds_s[b]) {
            r->latency_buckets[b]++;
            break;
        }
    r->latency_count++;
    r->latency_sum_s += s;
}

void metrics_record_call(metrics *m, const char *fn_path, int rc)
{
    metrics_function *f = NULL;
    for (int i = 0; i < m->n_functions; i++)
        if (m->functions[i].path == fn_path || strcmp(m->functions[i].path, fn_path) == 0)
            f = &m->functions[i];
    if (!f) {
        if (m->n_functions == METRICS_FUNCTIONS_MAX) return;
        f = &m->functions[m->n_functions++];
        f->path = fn_path;
    }
    if (rc == 0)
        f->ok++;
    else if (err_is_application(rc))
        f->app_error++;
    else
        f->internal_error++;
}

void metrics_bounded_add(metrics_gauges *g, const char *name, size_t bytes, size_t bytes_max)
{
    if (g->n_bounded == METRICS_BOUNDED_MAX) return;
    g->bounded[g->n_bounded++] = (metrics_bounded){name, bytes, bytes_max};
}

char *metrics_render(const metrics *m, const metrics_gauges *g)
{
    sbuf b;
    sbuf_init(&b, 4096);
    sbuf_printf(&b, "# HELP dojo_http_requests_total HTTP requests by route and status.\n"
                    "# TYPE dojo_http_requests_total counter\n");
    for (int i = 0; i < m->n_routes; i++)
        for (int s = 0; s < m->routes[i].n_statuses; s++)
            sbuf_printf(&b, "dojo_http_requests_total{route=\"%s\",status=\"%d\"} %" PRIu64 "\n",
                        m->routes[i].route, m->routes[i].statuses[s], m->routes[i].counts[s]);
    sbuf_printf(&b, "# HELP dojo_http_request_duration_seconds HTTP request latency.\n"
                    "# TYPE dojo_http_request_duration_seconds histogram\n");
    for (int i = 0; i < m->n_routes; i++) {
        const metrics_route *r = &m->routes[i];
        uint64_t cumulative = 0;
        for (int bkt = 0; bkt < METRICS_BUCKETS; bkt++) {
            cumulative += r->latency_buckets[bkt];
            sbuf_printf(&b,
                        "dojo_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %" PRIu64
                        "\n",
                        r->route, bucket_bounds_s[bkt], cumulative);
        }
        sbuf_printf(
            &b,
            "dojo_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n"
            "dojo_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
            "dojo_http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n",
            r->route, r->latency_count, r->route, r->latency_sum_s, r->route, r->latency_count);
    }
    sbuf_printf(&b, "# HELP dojo_function_calls_total Function calls by function and outcome.\n"
                    "# TYPE dojo_function_calls_total counter\n");
    for (int i = 0; i < m->n_functions; i++) {
        const metrics_function *f = &m->functions[i];
        sbuf_printf(&b,
                    "dojo_function_calls_total{function=\"%s\",outcome=\"ok\"} %" PRIu64 "\n"
                    "dojo_function_calls_total{function=\"%s\",outcome=\"error\"} %" PRIu64 "\n"
                    "dojo_function_calls_total{function=\"%s\",outcome=\"internal_error\"} %" PRIu64
                    "\n",
                    f->path, f->ok, f->path, f->app_error, f->path, f->internal_error);
    }
    sbuf_printf(&b,
                "# HELP dojo_http_connections Open HTTP connections.\n"
                "# TYPE dojo_http_connections gauge\ndojo_http_connections %d\n"
                "# HELP dojo_sync_sessions Open WebSocket sync sessions.\n"
                "# TYPE dojo_sync_sessions gauge\ndojo_sync_sessions %d\n"
                "# HELP dojo_subscriptions Shared subscription instances.\n"
                "# TYPE dojo_subscriptions gauge\ndojo_subscriptions %d\n"
                "# HELP dojo_commit_timestamp_ns Newest commit timestamp.\n"
                "# TYPE dojo_commit_timestamp_ns gauge\ndojo_commit_timestamp_ns %" PRIu64 "\n"
                "# HELP dojo_start_time_seconds Process start time.\n"
                "# TYPE dojo_start_time_seconds gauge\ndojo_start_time_seconds %" PRIu64 "\n"
                "# HELP dojo_resident_memory_bytes Resident set size of the process.\n"
                "# TYPE dojo_resident_memory_bytes gauge\ndojo_resident_memory_bytes %zu\n"
                "# HELP dojo_heap_free_bytes Freed heap the allocator still holds.\n"
                "# TYPE dojo_heap_free_bytes gauge\ndojo_heap_free_bytes %zu\n",
                g->open_connections, g->ws_sessions, g->subscriptions, g->last_ts,
                m->started_at_ms / 1000, g->rss_bytes, g->heap_free_bytes);
    sbuf_printf(
        &b,
        "# HELP dojo_query_cache_hits_total Queries answered from the cache.\n"
        "# TYPE dojo_query_cache_hits_total counter\ndojo_query_cache_hits_total %" PRIu64 "\n"
        "# HELP dojo_query_cache_misses_total Queries the cache could not answer.\n"
        "# TYPE dojo_query_cache_misses_total counter\ndojo_query_cache_misses_total %" PRIu64 "\n"
        "# HELP dojo_query_cache_evictions_total Results evicted for the byte bound.\n"
        "# TYPE dojo_query_cache_evictions_total counter\n"
        "dojo_query_cache_evictions_total %" PRIu64 "\n"
        "# HELP dojo_query_cache_invalidations_total Results dropped by a commit that "
        "wrote into what they read.\n"
        "# TYPE dojo_query_cache_invalidations_total counter\n"
        "dojo_query_cache_invalidations_total %" PRIu64 "\n"
        "# HELP dojo_query_cache_entries Results the cache holds.\n"
        "# TYPE dojo_query_cache_entries gauge\ndojo_query_cache_entries %zu\n",
        g->cache_hits, g->cache_misses, g->cache_evictions, g->cache_invalidations,
        g->cache_entries);
    sbuf_puts(&b, "# HELP dojo_bounded_bytes Bytes held by a structure that grows with input.\n"
                  "# TYPE dojo_bounded_bytes gauge\n");
    for (int i = 0; i < g->n_bounded; i++)
        sbuf_printf(&b, "dojo_bounded_bytes{structure=\"%s\"} %zu\n", g->bounded[i].name,
                    g->bounded[i].bytes);
    sbuf_puts(&b, "# HELP dojo_bounded_bytes_max The bound of that structure (base/limits.h).\n"
                  "# TYPE dojo_bounded_bytes_max gauge\n");
    for (int i = 0; i < g->n_bounded; i++)
        sbuf_printf(&b, "dojo_bounded_bytes_max{structure=\"%s\"} %zu\n", g->bounded[i].name,
                    g->bounded[i].bytes_max);
    const metrics_backup *bk = &m->backup;
    if (bk->enabled)
        sbuf_printf(&b,
                    "# HELP dojo_backup_last_success_timestamp_seconds When the newest good "
                    "scheduled backup finished (0: none yet).\n"
                    "# TYPE dojo_backup_last_success_timestamp_seconds gauge\n"
                    "dojo_backup_last_success_timestamp_seconds %.3f\n"
                    "# HELP dojo_backup_last_success_size_bytes Size of the newest good backup.\n"
                    "# TYPE dojo_backup_last_success_size_bytes gauge\n"
                    "dojo_backup_last_success_size_bytes %" PRIu64 "\n"
                    "# HELP dojo_backup_last_success_duration_seconds How long the newest good "
                    "backup took.\n"
                    "# TYPE dojo_backup_last_success_duration_seconds gauge\n"
                    "dojo_backup_last_success_duration_seconds %.3f\n"
                    "# HELP dojo_backups_total Scheduled backups by outcome.\n"
                    "# TYPE dojo_backups_total counter\n"
                    "dojo_backups_total{outcome=\"ok\"} %" PRIu64 "\n"
                    "dojo_backups_total{outcome=\"error\"} %" PRIu64 "\n",
                    (double)bk->last_ok_at_ms / 1000.0, bk->last_ok_bytes,
                    (double)bk->last_ok_duration_ms / 1000.0, bk->ok_total, bk->failed_total);
    return sbuf_take(&b);
}
