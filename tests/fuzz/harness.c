/*
 * harness.c — see harness.h. The client side is a plain non-blocking
 * socket polled between turns of the server's loop, so one thread plays
 * both ends; the engine's own threads run the queries and mutations.
 * Thread: the fuzzer's.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "base/clock.h"
#include "base/log.h"
#include "engine/registry.h"
#include "proto/server.h"

#define FUZZ_HEALTH_EVERY 256 /* inputs between two checks that the server answers */

const char fuzz_ws_upgrade[] =
    "GET /api/1.48.0/sync HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

static struct {
    uv_loop_t *loop;
    server *srv;
    registry reg;
    int port;
    char dir[64];
    char db_url[128];
    unsigned inputs;
} fz;

static void die(const char *what)
{
    fprintf(stderr, "fuzz harness: %s\n", what);
    abort();
}

void fuzz_server_start(void)
{
    if (fz.srv) return;
    signal(SIGPIPE, SIG_IGN);
    log_init(getenv("FUZZ_LOG") ? LOG_DEBUG : LOG_OFF);
    snprintf(fz.dir, sizeof fz.dir, "/tmp/dojo-fuzz-XXXXXX");
    if (!mkdtemp(fz.dir)) die("mkdtemp");
    snprintf(fz.db_url, sizeof fz.db_url, "sqlite:%s/dojo.db", fz.dir);
    registry_init(&fz.reg);
    app_register(&fz.reg);
    server_config cfg = {.db_url = fz.db_url,
                         .host = "127.0.0.1",
                         .port = 0,
                         .admin_key = FUZZ_ADMIN_KEY,
                         .reader_threads = 2,
                         .schema = app_schema(),
                         .registry = &fz.reg};
    fz.loop = uv_default_loop();
    err_t e;
    err_init(&e);
    if (server_start(fz.loop, &cfg, &fz.srv, &e) != 0) die(e.msg);
    fz.port = http_server_port(fz.srv->http);
}

static int connect_client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fz.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) die("connect");
    return fd;
}

/* One turn of the server's loop, then up to wait_ms for the client socket. */
static short turn(int fd, short events, int wait_ms)
{
    uv_run(fz.loop, UV_RUN_NOWAIT);
    struct pollfd p = {.fd = fd, .events = events};
    if (poll(&p, 1, wait_ms) <= 0) return 0;
    return p.revents;
}

static void check_health(void);

size_t fuzz_exchange(const uint8_t *bytes, size_t n, int idle_ms, int deadline_ms)
{
    fuzz_server_start();
    int fd = connect_client();
    uint64_t start = clock_mono_ms(), last = start;
    size_t sent = 0, received = 0;
    bool half_closed = false, closed = false;
    char buf[65536];
    while (!closed) {
        uint64_t now = clock_mono_ms();
        if (now - start > (uint64_t)deadline_ms || now - last > (uint64_t)idle_ms) break;
        short ev = turn(fd, (short)(POLLIN | (sent < n ? POLLOUT : 0)), 1);
        if (ev & POLLOUT && sent < n) {
            ssize_t w = send(fd, bytes + sent, n - sent, MSG_NOSIGNAL);
            if (w > 0) {
                sent += (size_t)w;
                last = clock_mono_ms();
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                break; /* the server closed first: fine */
            }
        }
        if (sent == n && !half_closed) {
            shutdown(fd, SHUT_WR);
            half_closed = true;
        }
        if (ev & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r > 0) {
                received += (size_t)r;
                last = clock_mono_ms();
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                closed = true;
            }
        }
    }
    close(fd);
    /* Let the server see the close and release what the connection held. */
    for (int i = 0; i < 20; i++)
        turn(-1, 0, 0);
    if (++fz.inputs % FUZZ_HEALTH_EVERY == 0) check_health();
    return received;
}

/* The server must still answer after whatever came before. */
static void check_health(void)
{
    static const char req[] = "GET /health HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
    int fd = connect_client();
    uint64_t start = clock_mono_ms();
    size_t sent = 0;
    char buf[4096];
    size_t got = 0;
    while (clock_mono_ms() - start < 10000) {
        short ev = turn(fd, (short)(POLLIN | (sent < sizeof req - 1 ? POLLOUT : 0)), 1);
        if (ev & POLLOUT && sent < sizeof req - 1) {
            ssize_t w = send(fd, req + sent, sizeof req - 1 - sent, MSG_NOSIGNAL);
            if (w > 0) sent += (size_t)w;
        }
        if (ev & (POLLIN | POLLHUP)) {
            ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
            if (r <= 0) break;
            got += (size_t)r;
        }
    }
    close(fd);
    buf[got] = '\0';
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "fuzz harness: /health answered: %.200s\n", buf);
        abort();
    }
}

size_t fuzz_ws_frame(uint8_t *out, size_t len, size_t cap, const uint8_t *msg, size_t msg_len)
{
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    size_t head = msg_len < 126 ? 2 : msg_len <= 0xffff ? 4 : 10;
    if (len + head + 4 + msg_len > cap) return 0;
    uint8_t *p = out + len;
    p[0] = 0x81;
    if (msg_len < 126) {
        p[1] = (uint8_t)(0x80 | msg_len);
    } else if (msg_len <= 0xffff) {
        p[1] = 0x80 | 126;
        p[2] = (uint8_t)(msg_len >> 8);
        p[3] = (uint8_t)msg_len;
    } else {
        p[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            p[2 + i] = (uint8_t)((uint64_t)msg_len >> (56 - 8 * i));
    }
    memcpy(p + head, mask, 4);
    for (size_t i = 0; i < msg_len; i++)
        p[head + 4 + i] = msg[i] ^ mask[i % 4];
    return len + head + 4 + msg_len;
}
