/*
 * fuzz_ws.c — libFuzzer target: the WebSocket frame layer of a real dojo
 * server. A valid upgrade, then arbitrary bytes as the client's frames:
 * the header scanner (net/ws_frame.c), wslay's decoding (fragments,
 * control frames, masks, close codes), the message bound, and whatever
 * messages come through reach the sync session. Nothing may crash, leak or
 * hang the server.
 * Thread: the fuzzer's (the server's loop runs on it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t head = strlen(fuzz_ws_upgrade);
    uint8_t *bytes = malloc(head + size);
    if (!bytes) return 0;
    memcpy(bytes, fuzz_ws_upgrade, head);
    memcpy(bytes + head, data, size);
    fuzz_exchange(bytes, head + size, 40, 400);
    free(bytes);
    return 0;
}
