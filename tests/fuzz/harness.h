/*
 * harness.h — a real dojo server inside a fuzzer's process, for the targets
 * that drive it from the network: the HTTP handler from raw bytes, the
 * WebSocket frame layer, the sync session from sequences of messages. The
 * server is started once (SQLite in a temporary directory, the app's
 * functions, a known admin key) and kept; each input talks to it over a
 * fresh loopback connection while the harness runs the server's loop.
 * Thread: the fuzzer's (which is also the server's loop thread).
 */
#ifndef DOJO_FUZZ_HARNESS_H
#define DOJO_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_ADMIN_KEY "fuzz-admin-key-0123456789abcdef"

/* Starts the server on first use; aborts when it cannot. */
void fuzz_server_start(void);

/* Opens a connection, writes bytes (all of them, in one go or as the
 * server reads them), half-closes it, and runs the loop until the server
 * closes the connection or nothing has happened for idle_ms (at most
 * deadline_ms in all). Returns the bytes the server sent. The server must
 * still answer /health afterwards (checked every so many inputs). */
size_t fuzz_exchange(const uint8_t *bytes, size_t n, int idle_ms, int deadline_ms);

/* The bytes of a WebSocket upgrade of /api/1.48.0/sync. */
extern const char fuzz_ws_upgrade[];
/* Appends a masked client text frame carrying msg to out (cap bytes);
 * returns the new length, or 0 when it does not fit. */
size_t fuzz_ws_frame(uint8_t *out, size_t len, size_t cap, const uint8_t *msg, size_t msg_len);

#endif
