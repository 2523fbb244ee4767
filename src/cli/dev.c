/*
 * dev.c — `dojo dev`: the local setup in one command (api.md §7). Creates or
 * reuses ./.dojo/ (the SQLite database and an admin key readable only by its
 * owner), applies the schema (the store says what changed), checks the auth
 * setup and says exactly what is still missing, then serves on
 * http://127.0.0.1:3210 with one readable log line per call. Running it again
 * keeps the data and the key. With --dev-auth it is also its own OpenID
 * issuer (devauth.c), for signing in without Clerk through `dojo token`.
 * Thread: the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/log.h"
#include "cli/cli.h"
#include "codegen/codegen.h"
#include "proto/server.h"

#define DEV_DB_PATH ".dojo/dojo.db"

/* Reads ./.dojo/admin_key, or creates it (mode 0600) with a new key. */
static int dev_admin_key(char key[ADMIN_KEY_BYTES_MAX], bool *created)
{
    *created = false;
    char *text = cli_read_file(CLI_ADMIN_KEY_FILE, NULL);
    if (text) {
        snprintf(key, ADMIN_KEY_BYTES_MAX, "%s", text);
        free(text);
        key[strcspn(key, "\r\n ")] = '\0';
        chmod(CLI_ADMIN_KEY_FILE, 0600);
        if (key[0]) return 0;
    }
    if (admin_key_generate(key) != 0) return -1;
    int fd = open(CLI_ADMIN_KEY_FILE, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    size_t n = strlen(key);
    bool ok = write(fd, key, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    ok = fsync(fd) == 0 && ok;
    close(fd);
    *created = ok;
    return ok ? 0 : -1;
}

/* What the auth setup still needs, printed for a person once the server is
 * up (so a value stored with `dojo env set` counts as much as the shell's):
 * is CLERK_ISSUER_URL set, is it an acceptable URL, do its discovery
 * document and JWKS answer. Runs before the loop starts serving. */
static void dev_check_auth(void *data, server *srv)
{
    (void)data;
    const char *issuer = engine_env(srv->en, "CLERK_ISSUER_URL");
    printf("  Auth setup\n");
    if (!issuer || !*issuer) {
        printf("    Still to configure: CLERK_ISSUER_URL is not set, so every token is refused.\n"
               "      dojo env set CLERK_ISSUER_URL https://<your-clerk-frontend-api>\n"
               "    and create a JWT template named \"convex\" in Clerk. To try dojo without\n"
               "    Clerk, run `dojo dev --dev-auth` and sign tokens with `dojo token`.\n\n");
        fflush(stdout);
        return;
    }
    err_t e;
    err_init(&e);
    if (auth_check_issuer_url(issuer, &e) != 0) {
        printf("    CLERK_ISSUER_URL problem: %s\n\n", e.msg);
        err_clear(&e);
        fflush(stdout);
        return;
    }
    jwk_set *keys = NULL;
    if (auth_fetch_jwks(issuer, &keys, &e) != 0) {
        printf("    CLERK_ISSUER_URL is %s, but its keys cannot be fetched: %s\n"
               "    Check the URL (your Clerk Frontend API URL) and the network; `dojo doctor`\n"
               "    walks through it.\n\n",
               issuer, e.msg);
        err_clear(&e);
        fflush(stdout);
        return;
    }
    printf("    CLERK_ISSUER_URL %s: discovery and JWKS answer (%d usable key%s).\n"
           "    Tokens must come from the Clerk JWT template named \"%s\".\n\n",
           issuer, keys->n_keys, keys->n_keys == 1 ? "" : "s",
           engine_env(srv->en, "AUTH_APPLICATION_ID") ? engine_env(srv->en, "AUTH_APPLICATION_ID")
                                                      : "convex");
    jwks_free(keys);
    fflush(stdout);
}

static void dev_usage(FILE *out)
{
    fprintf(out, "Usage: dojo dev [--listen HOST:PORT] [--log-level LEVEL] [--dev-auth]\n"
                 "                [--codegen-dir DIR]\n\n"
                 "Sets up ./.dojo (database, admin key) in the current folder, applies the\n"
                 "schema, checks the auth setup, writes the TypeScript bindings to\n"
                 "./" CODEGEN_DEFAULT_DIR " (or --codegen-dir) and serves a local deployment on\n"
                 "http://127.0.0.1:3210. Safe to run again: the data and the key are kept.\n\n"
                 "  --dev-auth   sign in without Clerk: dojo becomes its own OpenID issuer on\n"
                 "               the same port (GET /.well-known/openid-configuration and\n"
                 "               /.well-known/jwks.json, key in ./" CLI_DEV_AUTH_KEY_FILE "),\n"
                 "               and `dojo token --sub user_1` prints a token it accepts.\n"
                 "               A CLERK_ISSUER_URL stored with `dojo env set` still wins\n"
                 "               (you are warned); `dojo serve` never does this.\n"
                 "  --codegen-dir DIR  where to write the TypeScript bindings\n"
                 "               (default ./" CODEGEN_DEFAULT_DIR ")\n"
                 "  --public-url URL  the URL clients reach this server at, which file URLs\n"
                 "               start with (default $DOJO_PUBLIC_URL, else http://HOST:PORT)\n");
}

int cmd_dev(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"log-level", required_argument, NULL, 'L'},
        {"dev-auth", no_argument, NULL, 'A'},
        {"codegen-dir", required_argument, NULL, 'G'},
        {"public-url", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *public_url = getenv("DOJO_PUBLIC_URL");
    char host[256] = "127.0.0.1";
    int port = 3210, c;
    bool dev_auth = false;
    const char *codegen_dir = CODEGEN_DEFAULT_DIR;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (cli_parse_listen(optarg, host, sizeof host, &port) != 0) {
                cli_error("dev", "--listen wants HOST:PORT, got \"%s\"", optarg);
                return 2;
            }
            break;
        case 'L':
            if (cli_parse_log_level(optarg) < 0) {
                cli_error("dev", "--log-level is debug, info, warn or error");
                return 2;
            }
            log_init(cli_parse_log_level(optarg));
            break;
        case 'A':
            dev_auth = true;
            break;
        case 'G':
            codegen_dir = optarg;
            break;
        case 'P':
            public_url = optarg;
            break;
        case 'h':
            dev_usage(stdout);
            return 0;
        default:
            dev_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        cli_error("dev", "unexpected argument \"%s\"", argv[optind]);
        return 2;
    }
    if (mkdir(CLI_STATE_DIR, 0700) != 0 && errno != EEXIST) {
        cli_error("dev", "cannot create ./%s: %s", CLI_STATE_DIR, strerror(errno));
        return 1;
    }
    char key[ADMIN_KEY_BYTES_MAX];
    bool created;
    if (dev_admin_key(key, &created) != 0) {
        cli_error("dev", "cannot read or write ./%s: %s", CLI_ADMIN_KEY_FILE, strerror(errno));
        return 1;
    }
    printf("  Project state in ./%s (%s)\n", CLI_STATE_DIR,
           created ? "created a new admin key" : "reusing the admin key and data");
    cli_devauth *da = NULL;
    if (dev_auth) {
        err_t e;
        err_init(&e);
        if (cli_devauth_prepare(host, &port, &da, &e) != 0) {
            cli_error("dev", "--dev-auth: %s", e.msg);
            err_clear(&e);
            return 1;
        }
        cli_devauth_print_setup(da);
    } else {
        cli_devauth_forget();
    }
    server_config cfg = {.db_url = "sqlite:" DEV_DB_PATH,
                         .host = host,
                         .port = port,
                         .admin_key = key,
                         .public_url = public_url,
                         .dev_logs = true};
    cli_server_hooks hooks = {.started = da ? cli_devauth_started : dev_check_auth,
                              .data = da,
                              .codegen_dir = codegen_dir};
    if (da) cli_devauth_attach(da, &cfg);
    int status = cli_run_server(&cfg, "dev", true, "from ./" CLI_ADMIN_KEY_FILE, &hooks);
    cli_devauth_free(da);
    return status;
}
