/*
 * fuzz_sync.c — libFuzzer target: the sync session as a state machine. The
 * input is a sequence of client messages, one per line; each is sent as a
 * WebSocket text frame on one session of a real dojo server, in order
 * (Connect, ModifyQuerySet, Authenticate — the admin key is
 * FUZZ_ADMIN_KEY —, Mutation, Action, Event, or anything else), so the
 * fuzzer explores orders, versions, identities and the inbox, not single
 * messages. Nothing may crash, leak, or leave the server unable to answer.
 * Thread: the fuzzer's (the server's loop runs on it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define FUZZ_SYNC_BYTES_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap = strlen(fuzz_ws_upgrade) + size * 2 + 1024;
    if (cap > FUZZ_SYNC_BYTES_MAX) return 0;
    uint8_t *out = malloc(cap);
    if (!out) return 0;
    size_t len = strlen(fuzz_ws_upgrade);
    memcpy(out, fuzz_ws_upgrade, len);
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n') continue;
        if (i > start) len = fuzz_ws_frame(out, len, cap, data + start, i - start);
        if (len == 0) break;
        start = i + 1;
    }
    if (len) fuzz_exchange(out, len, 40, 600);
    free(out);
    return 0;
}
