/*
 * sync.c — the sync hub (see sync.h): accepts WebSocket upgrades on
 * /api/<version>/sync, keeps the list of sessions, feeds the subscription
 * manager the commits, retries waiting sessions after each one, sends the
 * heartbeat (a Ping message after LIMIT_WS_PING_INTERVAL_MS of silence, a
 * WebSocket ping to a silent client, a close after LIMIT_WS_CLIENT_SILENCE_MS)
 * and closes every session when the server stops.
 * Thread: the event-loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/limits.h"
#include "base/log.h"
#include "proto/metrics.h"
#include "proto/wire.h"
#include "proto/sync_internal.h"

static void on_advance(void *data)
{
    hub_flush_waiting(data);
}

static void on_tick(uv_timer_t *t)
{
    sync_hub *hub = t->data;
    if (hub->subs) subs_retry_due(hub->subs);
    uint64_t now = clock_mono_ms();
    session *s = hub->sessions;
    while (s) {
        session *next = s->next;
        uint64_t silent_ms = now - ws_last_receive_ms(s->ws);
        if (silent_ms >= LIMIT_WS_CLIENT_SILENCE_MS) {
            log_info("sync: closing session %s: silent for %llu ms", s->session_id,
                     (unsigned long long)silent_ms);
            ws_close(s->ws, 1001, "ClientSilent");
        } else if (ws_check_unread(s->ws) != 0) {
            /* Over its share while every socket together holds too much. */
        } else {
            if (silent_ms >= SYNC_WS_PING_AFTER_SILENCE_MS &&
                now - s->last_ws_ping_ms >= SYNC_WS_PING_INTERVAL_MS) {
                ws_send_ping(s->ws);
                s->last_ws_ping_ms = now;
            }
            if (now - s->last_send_ms >= LIMIT_WS_PING_INTERVAL_MS)
                session_send(s, json_pack("{s:s}", "type", "Ping"));
        }
        s = next;
    }
}

/* Results are kept as the wire text they are pushed as. */
static char *encode_value(const json_t *value)
{
    return wire_dumps(value, WIRE_ENCODED);
}

static void hub_commit(void *data, uint64_t ts, const write_set *writes)
{
    sync_hub *hub = data;
    if (hub->subs) subs_commit(hub->subs, ts, writes);
}

sync_hub *sync_hub_new(server *srv)
{
    sync_hub *hub = calloc(1, sizeof *hub);
    if (!hub) return NULL;
    hub->srv = srv;
    hub->subs = subs_new(srv->en);
    subs_on_advance(hub->subs, on_advance, hub);
    subs_set_encoder(hub->subs, encode_value);
    subs_cache_configure(hub->subs, srv->cfg.query_cache_set ? srv->cfg.query_cache_bytes
                                                             : LIMIT_QUERY_CACHE_BYTES_DEFAULT);
    engine_on_commit(srv->en, hub_commit, hub);
    uv_timer_init(srv->loop, &hub->tick);
    hub->tick.data = hub;
    uv_timer_start(&hub->tick, on_tick, SYNC_TICK_MS, SYNC_TICK_MS);
    return hub;
}

static void maybe_done(sync_hub *hub)
{
    if (!hub->closing || hub->n_sessions > 0 || !hub->done) return;
    void (*done)(void *) = hub->done;
    hub->done = NULL;
    done(hub->done_data);
}

static void on_tick_closed(uv_handle_t *h)
{
    sync_hub *hub = h->data;
    hub->tick.data = NULL;
    maybe_done(hub);
}

void sync_hub_close(sync_hub *hub, void (*done)(void *data), void *data)
{
    hub->closing = true;
    hub->done = done;
    hub->done_data = data;
    for (session *s = hub->sessions; s; s = s->next)
        ws_close(s->ws, 1001, "ServerShutdown");
    uv_timer_stop(&hub->tick);
    uv_close((uv_handle_t *)&hub->tick, on_tick_closed);
}

void sync_hub_free(sync_hub *hub)
{
    /* Sessions still on the wait list hold a reference: let them go. */
    hub_flush_waiting(hub);
    if (hub->subs) subs_free(hub->subs);
    free(hub);
}

void sync_hub_session_gone(sync_hub *hub, session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        hub->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
    hub->n_sessions--;
    if (hub->tick.data == NULL) maybe_done(hub);
}

void sync_handle_upgrade(sync_hub *hub, http_request *req)
{
    if (hub->closing) {
        http_respond_error(req, 503, "ServerShutdown", "The server is stopping");
        return;
    }
    if (!ws_is_upgrade(req)) {
        http_respond_error(req, 400, "BadWebSocketUpgrade",
                           "This endpoint speaks the sync protocol over WebSocket: send a GET "
                           "with Upgrade: websocket");
        return;
    }
    if (hub->n_sessions >= LIMIT_WS_SESSIONS_MAX) {
        http_respond_error(req, 503, "TooManySessions",
                           "The server has reached its limit of 10000 sync sessions; try again "
                           "later");
        return;
    }
    session *s = calloc(1, sizeof *s);
    if (!s) {
        http_respond_error(req, 503, "Overloaded", "out of memory");
        return;
    }
    s->hub = hub;
    s->refs = 1;
    s->last_send_ms = clock_mono_ms();
    static const ws_callbacks cb = {.on_message = session_on_message,
                                    .on_close = session_on_close,
                                    .on_drain = session_on_drain};
    err_t e;
    err_init(&e);
    if (ws_accept(req, &cb, s, &s->ws, &e) != 0) {
        free(s);
        err_clear(&e);
        return;
    }
    s->next = hub->sessions;
    if (hub->sessions) hub->sessions->prev = s;
    hub->sessions = s;
    hub->n_sessions++;
}

void sync_hub_gauges(const sync_hub *hub, metrics_gauges *g)
{
    g->subscriptions = hub->subs ? subs_instance_count(hub->subs) : 0;
    metrics_bounded_add(g, "sync_held_messages", hub->held_bytes_total,
                        LIMIT_WS_HELD_BYTES_TOTAL_MAX);
    metrics_bounded_add(g, "sync_query_sets", hub->query_set_bytes_total,
                        SYNC_QUERY_SETS_TOTAL_BYTES_MAX);
    metrics_bounded_add(g, "ws_unread", ws_unread_total_bytes(),
                        LIMIT_WS_SEND_BUFFER_TOTAL_BYTES_MAX);
    if (!hub->subs) return;
    metrics_bounded_add(g, "commit_history", subs_history_bytes(hub->subs),
                        LIMIT_COMMIT_HISTORY_BYTES_MAX);
    subs_cache_stats cs;
    subs_cache_stats_get(hub->subs, &cs);
    metrics_bounded_add(g, "query_cache", cs.bytes, cs.bytes_max);
    g->cache_hits = cs.hits;
    g->cache_misses = cs.misses;
    g->cache_evictions = cs.evictions;
    g->cache_invalidations = cs.invalidations;
    g->cache_entries = cs.entries;
}

int sync_session_count(const sync_hub *hub)
{
    return hub ? hub->n_sessions : 0;
}

struct subs *sync_hub_subs(const sync_hub *hub)
{
    return hub->subs;
}
