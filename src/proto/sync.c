/*
 * sync.c — placeholder hub until the WebSocket protocol lands (issue 4):
 * refuses upgrades with 503 so clients fall back to HTTP.
 * Thread: the event-loop thread.
 */
#include "proto/sync.h"

#include <stdlib.h>

struct sync_hub {
    int sessions;
};

sync_hub *sync_hub_new(struct server *srv)
{
    (void)srv;
    return calloc(1, sizeof(sync_hub));
}

void sync_hub_close(sync_hub *hub, void (*done)(void *data), void *data)
{
    free(hub);
    if (done) done(data);
}

void sync_handle_upgrade(sync_hub *hub, http_request *req)
{
    (void)hub;
    http_respond_error(req, 503, "SyncUnavailable", "WebSocket sync is not available yet");
}

int sync_session_count(const sync_hub *hub)
{
    return hub->sessions;
}
