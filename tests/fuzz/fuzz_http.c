/*
 * fuzz_http.c — libFuzzer target: arbitrary bytes on a connection to a real
 * dojo server (harness.c), through the HTTP parser, the connection's state
 * machine (pipelining, chunked bodies, timeouts, back-pressure), routing,
 * the typed reading of bodies, query strings and headers, argument
 * decoding and the functions themselves. Nothing may crash, leak, or leave
 * the server unable to answer /health.
 * Thread: the fuzzer's (the server's loop runs on it).
 */
#include <stdint.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_exchange(data, size, 40, 400);
    return 0;
}
