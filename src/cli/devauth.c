/*
 * devauth.c — `dojo dev --dev-auth`: a built-in OpenID issuer on the dev
 * server's own port, so that a newcomer can sign in and call every function
 * with curl before they have a Clerk account.
 *
 * Before the server starts: the RS256 key in ./.dojo/dev_auth_key.pem is
 * loaded (or made), the port is fixed (a free one is picked when --listen
 * asks for port 0, because the issuer URL names the port and must be known
 * before any token is verified), the issuer URL http://127.0.0.1:<port> is
 * written to ./.dojo/dev_auth_issuer for `dojo token`, and put in this
 * process's CLERK_ISSUER_URL — while no threads exist yet, so setenv is safe.
 * The server uses it unless a value is stored in the deployment (`dojo env
 * set`), which wins; cli_devauth_started says so loudly.
 *
 * While it runs: GET /.well-known/openid-configuration and
 * GET /.well-known/jwks.json are answered from documents built once at
 * start, through server_config.extra_route; every other request goes on to
 * the HTTP API. The server fetches its own JWKS like any issuer's (off the
 * loop, on libuv's thread pool), so verification is the production path.
 * Thread: the main thread, which is also the event-loop thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/dev_issuer.h"
#include "cli/cli.h"
#include "proto/server.h"

#define DEVAUTH_ISSUER_BYTES_MAX 128
#define DEVAUTH_HOST_BYTES_MAX 80 /* an IPv6 literal in brackets fits */

struct cli_devauth {
    char issuer[DEVAUTH_ISSUER_BYTES_MAX]; /* http://127.0.0.1:<port>, no trailing slash */
    char kid[DEV_ISSUER_KID_BYTES];
    char *discovery_json; /* the two published documents */
    char *jwks_json;
    char shell_issuer[DEVAUTH_ISSUER_BYTES_MAX * 4]; /* CLERK_ISSUER_URL this replaced, or "" */
    bool key_created;
};

/* The host tokens name in iss: loopback, reachable by the server itself.
 * A wildcard listen address includes loopback; any other address does not. */
static int issuer_host(const char *listen_host, char *out, size_t out_bytes, err_t *e)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (!*listen_host || strcmp(listen_host, "0.0.0.0") == 0) {
        snprintf(out, out_bytes, "127.0.0.1");
    } else if (strcmp(listen_host, "::") == 0) {
        snprintf(out, out_bytes, "[::1]");
    } else if (strcasecmp(listen_host, "localhost") == 0) {
        snprintf(out, out_bytes, "localhost");
    } else if (inet_pton(AF_INET, listen_host, &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127) {
        snprintf(out, out_bytes, "%s", listen_host);
    } else if (inet_pton(AF_INET6, listen_host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6)) {
        snprintf(out, out_bytes, "[%s]", listen_host);
    } else {
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "--dev-auth is for this machine only: its issuer URL must be a loopback "
                       "address, so listen on 127.0.0.1 (the default), ::1 or 0.0.0.0, not %s",
                       listen_host);
    }
    return 0;
}

/* A free TCP port on host, for --listen HOST:0: the issuer URL has to name
 * the port before the server starts. The port is released again at once;
 * the server binds it a moment later (another process taking that exact
 * ephemeral port in between is possible but unlikely; then the server's
 * start fails with "address in use" and a rerun picks another). */
static int pick_free_port(const char *host, int *port_out, err_t *e)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return err_set(e, ERR_IO, "cannot pick a free port: %s", strerror(errno));
    int rc = bind(fd, (struct sockaddr *)&ss, len);
    if (rc == 0) rc = getsockname(fd, (struct sockaddr *)&ss, &len);
    int saved = errno;
    close(fd);
    if (rc != 0)
        return err_set(e, ERR_IO, "cannot pick a free port on %s: %s", host, strerror(saved));
    *port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

/* Writes the issuer URL for `dojo token` (mode 0600 like the rest of ./.dojo). */
static int write_issuer_file(const char *issuer, err_t *e)
{
    int fd = open(CLI_DEV_AUTH_ISSUER_FILE, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return err_set(e, ERR_IO, "cannot write ./%s: %s", CLI_DEV_AUTH_ISSUER_FILE,
                       strerror(errno));
    size_t n = strlen(issuer);
    bool ok = write(fd, issuer, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    int saved = errno;
    ok = close(fd) == 0 && ok;
    if (!ok)
        return err_set(e, ERR_IO, "cannot write ./%s: %s", CLI_DEV_AUTH_ISSUER_FILE,
                       strerror(saved));
    return 0;
}

void cli_devauth_free(cli_devauth *da)
{
    if (!da) return;
    free(da->discovery_json);
    free(da->jwks_json);
    free(da);
}

int cli_devauth_prepare(const char *host, int *port, cli_devauth **out, err_t *e)
{
    *out = NULL;
    cli_devauth *da = calloc(1, sizeof *da);
    if (!da) return err_set(e, ERR_NOMEM, "out of memory");
    char ihost[DEVAUTH_HOST_BYTES_MAX];
    EVP_PKEY *key = NULL;
    int rc = issuer_host(host, ihost, sizeof ihost, e);
    if (rc == 0 && *port == 0) rc = pick_free_port(host, port, e);
    if (rc == 0) rc = dev_issuer_key_load(CLI_DEV_AUTH_KEY_FILE, true, &key, &da->key_created, e);
    if (rc == 0) rc = dev_issuer_kid(key, da->kid, e);
    if (rc == 0) {
        snprintf(da->issuer, sizeof da->issuer, "http://%s:%d", ihost, *port);
        json_t *discovery = dev_issuer_discovery(da->issuer);
        json_t *jwks = dev_issuer_jwks(key, da->kid);
        da->discovery_json = discovery ? json_dumps(discovery, JSON_COMPACT) : NULL;
        da->jwks_json = jwks ? json_dumps(jwks, JSON_COMPACT) : NULL;
        json_decref(discovery);
        json_decref(jwks);
        if (!da->discovery_json || !da->jwks_json)
            rc = err_set(e, ERR_NOMEM, "cannot build the dev issuer's documents");
    }
    EVP_PKEY_free(key);
    if (rc == 0) rc = write_issuer_file(da->issuer, e);
    if (rc == 0) {
        const char *shell = getenv("CLERK_ISSUER_URL");
        if (shell && *shell && strcmp(shell, da->issuer) != 0)
            snprintf(da->shell_issuer, sizeof da->shell_issuer, "%s", shell);
        if (setenv("CLERK_ISSUER_URL", da->issuer, 1) != 0)
            rc = err_set(e, ERR_NOMEM, "cannot set CLERK_ISSUER_URL: %s", strerror(errno));
    }
    if (rc) {
        cli_devauth_free(da);
        return rc;
    }
    *out = da;
    return 0;
}

void cli_devauth_forget(void)
{
    unlink(CLI_DEV_AUTH_ISSUER_FILE); /* `dojo token` then says dev auth is off */
}

void cli_devauth_print_setup(const cli_devauth *da)
{
    printf("  Auth setup\n"
           "    --dev-auth: dojo is its own OpenID issuer at %s\n"
           "    (%s ./%s, key id %.12s…)\n",
           da->issuer, da->key_created ? "new signing key in" : "signing key from",
           CLI_DEV_AUTH_KEY_FILE, da->kid);
    if (da->shell_issuer[0])
        printf("    CLERK_ISSUER_URL=%s from this shell is ignored while --dev-auth is on.\n",
               da->shell_issuer);
    printf("\n");
}

static void respond_document(http_request *req, const char *json)
{
    const http_header headers[] = {
        {"Content-Type", "application/json"},
        {"Cache-Control", "no-store"},
        {"Access-Control-Allow-Origin", "*"},
    };
    http_respond(req, 200, headers, 3, json, strlen(json));
}

/* server_config.extra_route: the two documents of the issuer, nothing else. */
static bool devauth_route(void *data, http_request *req)
{
    const cli_devauth *da = data;
    if (strcmp(req->method, "GET") != 0) return false;
    if (strcmp(req->path, DEV_ISSUER_DISCOVERY_PATH) == 0) {
        respond_document(req, da->discovery_json);
        return true;
    }
    if (strcmp(req->path, DEV_ISSUER_JWKS_PATH) == 0) {
        respond_document(req, da->jwks_json);
        return true;
    }
    return false;
}

void cli_devauth_attach(cli_devauth *da, server_config *cfg)
{
    cfg->extra_route = devauth_route;
    cfg->extra_route_data = da;
}

/* cli_server_hooks.started: the banner's dev-auth lines, and the warning
 * when a stored CLERK_ISSUER_URL overrides the built-in issuer. */
void cli_devauth_started(void *data, server *srv)
{
    const cli_devauth *da = data;
    const char *effective = engine_env(srv->en, "CLERK_ISSUER_URL");
    if (effective && strcmp(effective, da->issuer) != 0) {
        printf("  WARNING    CLERK_ISSUER_URL is stored in this deployment as\n"
               "             %s\n"
               "             and a stored value wins: tokens from `dojo token` will be refused\n"
               "             until you run  dojo env remove CLERK_ISSUER_URL\n\n",
               effective);
        fprintf(stderr,
                "dojo dev: warning: --dev-auth tokens will be refused: the stored "
                "CLERK_ISSUER_URL (%s) wins over the built-in issuer %s until `dojo env "
                "remove CLERK_ISSUER_URL`\n",
                effective, da->issuer);
    }
    printf("  Dev auth   on: sign in without Clerk (issuer %s)\n"
           "  Token      TOKEN=$(dojo token --sub user_1)\n"
           "  Try        curl -s %s/api/mutation -H \"Authorization: Bearer $TOKEN\" \\\n"
           "               -H 'Content-Type: application/json' \\\n"
           "               -d '{\"path\":\"users:getOrCreate\",\"args\":{}}'\n\n",
           da->issuer, da->issuer);
    fflush(stdout);
}
