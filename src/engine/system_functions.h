/*
 * system_functions.h — functions the engine itself offers to the server:
 * `_system:health` (the store answers a read) and
 * `_system:cleanupSessionRequests` (drops exactly-once records older than
 * LIMIT_SESSION_REQUEST_RETENTION_MS, in bounded batches; run periodically).
 * They are FN_SYSTEM: admin only and never listed.
 * Thread: registered on the main thread; run by the engine's threads.
 */
#ifndef DOJO_ENGINE_SYSTEM_FUNCTIONS_H
#define DOJO_ENGINE_SYSTEM_FUNCTIONS_H

#include "engine/registry.h"

#define SYSTEM_CLEANUP_BATCH_MAX 500

void system_functions_register(registry *r);

#endif
