/*
 * serve.c — `dojo serve`, the production server (api.md §7), and the run
 * loop it shares with `dojo dev`: start the server, stop it cleanly on
 * SIGINT/SIGTERM (in-flight requests finish, the engine drains, the store
 * closes), exit 0.
 * Thread: the main thread, which runs the event loop.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "backup/schedule.h"
#include "base/clock.h"
#include "base/limits.h"
#include "base/log.h"
#include "cli/cli.h"
#include "codegen/codegen.h"
#include "proto/server.h"

typedef struct run_state {
    server *srv;
    backup_schedule *backups; /* NULL when not scheduled */
    uv_signal_t sigint, sigterm;
    bool stopped;
} run_state;

static void on_stopped(void *data)
{
    run_state *rs = data;
    rs->stopped = true;
    uv_close((uv_handle_t *)&rs->sigint, NULL);
    uv_close((uv_handle_t *)&rs->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    run_state *rs = h->data;
    log_info("received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    backup_schedule_stop(rs->backups); /* a backup in progress is cancelled, not left half */
    rs->backups = NULL;
    server_stop(rs->srv, on_stopped, rs);
}

static registry app_registry;

/* A scheduled backup finished: the numbers /metrics shows. */
static void on_backup_done(void *data, const backup_outcome *o)
{
    run_state *rs = data;
    metrics_backup *m = &rs->srv->metrics.backup;
    if (!o->ok) {
        m->failed_total++;
        return;
    }
    m->ok_total++;
    m->last_ok_at_ms = o->finished_at_ms;
    m->last_ok_bytes = o->bytes;
    m->last_ok_duration_ms = o->duration_ms;
}

/* dojo dev: the TypeScript bindings, from the same declarations as the
 * schema and validators. A failure is reported but does not stop serving. */
static void write_bindings(const char *dir)
{
    char report[CODEGEN_REPORT_BYTES_MAX];
    err_t e;
    err_init(&e);
    if (codegen_write(app_schema(), &app_registry, dir, report, sizeof report, &e) == 0) {
        printf("  TypeScript bindings: %s\n", report);
    } else {
        printf("  TypeScript bindings NOT written: %s\n", e.msg);
        err_clear(&e);
    }
}

int cli_run_server(server_config *cfg, const char *command, bool dev_banner,
                   const char *admin_key_source, const cli_server_hooks *hooks)
{
    uv_loop_t *loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN);
    registry_init(&app_registry);
    app_register(&app_registry);
    cfg->schema = app_schema();
    cfg->registry = &app_registry;
    cfg->periodic[0].path = "runs:expireLeases";
    cfg->periodic[0].interval_ms = APP_LEASE_SWEEP_INTERVAL_MS;
    cfg->periodic[1].path = "_system:cleanupSessionRequests";
    cfg->periodic[1].interval_ms = APP_SESSION_CLEANUP_INTERVAL_MS;
    cfg->periodic[2].path = "_system:cleanupUploadTokens";
    cfg->periodic[2].interval_ms = APP_UPLOAD_TOKEN_CLEANUP_INTERVAL_MS;
    cfg->n_periodic = 3;
    run_state rs = {0};
    err_t e;
    err_init(&e);
    if (cfg->admin_key && strlen(cfg->admin_key) > LIMIT_ADMIN_KEY_BYTES_MAX) {
        cli_error(command, "the admin key is longer than %d bytes", LIMIT_ADMIN_KEY_BYTES_MAX);
        return 2;
    }
    /* SQLite serves one process: a second server on the file would never
     * see the first one's commits (its subscribers would go stale). */
    const char *path = cli_sqlite_path(cfg->db_url);
    long pid = 0;
    if (path && cli_sqlite_in_use(path, &pid) > 0) {
        cli_error(command,
                  "%s is open in another process (pid %ld): is another dojo serve or dojo dev "
                  "running on it? One SQLite database serves one process; to run several, share "
                  "a PostgreSQL database (--db postgres://…)",
                  path, pid);
        return 1;
    }
    if (hooks && hooks->codegen_dir) write_bindings(hooks->codegen_dir);
    if (server_start(loop, cfg, &rs.srv, &e) != 0) {
        cli_error(command, "%s", e.msg);
        err_clear(&e);
        return 1;
    }
    int port = http_server_port(rs.srv->http);
    const char *host = cfg->host ? cfg->host : "127.0.0.1";
    char db_shown[1024];
    store_redact_url(cfg->db_url, db_shown, sizeof db_shown); /* never print a password */
    bool v6 = strchr(host, ':') != NULL;
    if (dev_banner) {
        printf("\n  dojo dev is running\n\n"
               "  URL        http://%s%s%s:%d\n"
               "  Admin key  %s\n"
               "  Database   %s — %s\n\n",
               v6 ? "[" : "", host, v6 ? "]" : "", port, cfg->admin_key, db_shown,
               rs.srv->store_report);
        fflush(stdout);
    }
    if (hooks && hooks->backups) {
        if (backup_schedule_start(loop, hooks->backups, on_backup_done, &rs, &rs.backups, &e) !=
            0) {
            cli_error(command, "%s", e.msg);
            err_clear(&e);
            server_stop(rs.srv, NULL, NULL);
            uv_run(loop, UV_RUN_DEFAULT);
            return 1;
        }
        rs.srv->metrics.backup.enabled = true;
    }
    if (hooks && hooks->started) hooks->started(hooks->data, rs.srv);
    log_info("listening on http://%s%s%s:%d (store %s: %s; admin key %s)", v6 ? "[" : "", host,
             v6 ? "]" : "", port, db_shown, rs.srv->store_report, admin_key_source);
    uv_signal_init(loop, &rs.sigint);
    uv_signal_init(loop, &rs.sigterm);
    rs.sigint.data = rs.sigterm.data = &rs;
    uv_signal_start(&rs.sigint, on_signal, SIGINT);
    uv_signal_start(&rs.sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return rs.stopped ? 0 : 1;
}

/* "HOST:PORT", "[v6]:PORT" or ":PORT". */
int cli_parse_listen(const char *text, char *host, size_t host_bytes, int *port)
{
    const char *colon = strrchr(text, ':');
    if (!colon) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 || colon == text + strlen(text) - 1) return -1;
    size_t hl = (size_t)(colon - text);
    if (hl >= 2 && text[0] == '[' && text[hl - 1] == ']') {
        text++;
        hl -= 2;
    }
    if (hl >= host_bytes) return -1;
    if (hl == 0)
        snprintf(host, host_bytes, "0.0.0.0");
    else
        snprintf(host, host_bytes, "%.*s", (int)hl, text);
    *port = (int)p;
    return 0;
}

static void serve_usage(FILE *out)
{
    fprintf(out,
            "Usage: dojo serve [--db URL] [--listen HOST:PORT] [options]\n\n"
            "The production server. The admin key comes from DOJO_ADMIN_KEY or --admin-key\n"
            "(without one, admin functions and `dojo run` are refused; prefer the\n"
            "environment: a flag shows in the process list).\n\n"
            "  --db URL              sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB\n"
            "                        (default sqlite:dojo.db, or $DOJO_DB)\n"
            "  --admin-key KEY       the admin key (default $DOJO_ADMIN_KEY)\n"
            "  --listen HOST:PORT    address to listen on (default 127.0.0.1:3210)\n"
            "  --public-url URL      the URL clients reach this server at, which file URLs\n"
            "                        start with (default $DOJO_PUBLIC_URL, else http://HOST:PORT)\n"
            "  --max-body-bytes N    request body limit (default %u)\n"
            "  --readers N           reader threads for queries (default 2)\n"
            "  --query-cache-bytes N results kept for queries nobody subscribes to (default\n"
            "                        64 MiB; 0 turns the cache off)\n"
            "  --log-level LEVEL     debug, info, warn or error (default info)\n\n"
            "Scheduled online backups (SQLite; see `dojo backup --help` for what one holds):\n"
            "  --backup-dir DIR      write backups into DIR (created 0700 when missing)\n"
            "  --backup-every TIME   how often: 90s, 15m, 6h, 1d (default 1d; %ds to %dd)\n"
            "  --backup-keep N       complete backups kept; older ones are removed\n"
            "                        (default 7, at most %d)\n"
            "Each is DIR/dojo-backup-<UTC time>.tar, written under a temporary name and\n"
            "renamed when complete, taken off the event loop without holding up writers.\n"
            "/metrics reports the time, size and duration of the newest good one.\n",
            LIMIT_HTTP_BODY_BYTES_MAX, LIMIT_BACKUP_INTERVAL_S_MIN,
            LIMIT_BACKUP_INTERVAL_S_MAX / 86400, LIMIT_BACKUP_KEEP_MAX);
}

int cli_parse_log_level(const char *s)
{
    if (strcmp(s, "debug") == 0) return LOG_DEBUG;
    if (strcmp(s, "info") == 0) return LOG_INFO;
    if (strcmp(s, "warn") == 0) return LOG_WARN;
    if (strcmp(s, "error") == 0) return LOG_ERROR;
    return -1;
}

/* A whole decimal number from 0 to max, nothing else. */
static int parse_count(const char *text, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < 0 || v > max) return -1;
    *out = v;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"max-body-bytes", required_argument, NULL, 'b'},
        {"readers", required_argument, NULL, 'r'},
        {"query-cache-bytes", required_argument, NULL, 'Q'},
        {"log-level", required_argument, NULL, 'L'},
        {"admin-key", required_argument, NULL, 'k'},
        {"public-url", required_argument, NULL, 'P'},
        {"backup-dir", required_argument, NULL, 'B'},
        {"backup-every", required_argument, NULL, 'E'},
        {"backup-keep", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = getenv("DOJO_DB");
    const char *key = getenv("DOJO_ADMIN_KEY");
    const char *key_source = "from DOJO_ADMIN_KEY";
    const char *public_url = getenv("DOJO_PUBLIC_URL");
    char host[256] = "127.0.0.1";
    int port = 3210, readers = 0, c;
    long long body_max = 0;
    const char *backup_dir = NULL;
    uint64_t backup_every_ms = 0;
    long long backup_keep = 0;
    long long cache_bytes = LIMIT_QUERY_CACHE_BYTES_DEFAULT;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db = optarg;
            break;
        case 'l':
            if (cli_parse_listen(optarg, host, sizeof host, &port) != 0) {
                cli_error("serve", "--listen wants HOST:PORT, got \"%s\"", optarg);
                return 2;
            }
            break;
        case 'b':
            if (parse_count(optarg, 1ll << 31, &body_max) != 0) {
                cli_error("serve",
                          "--max-body-bytes wants a number of bytes up to 2^31 (0: the "
                          "default 8 MiB), got \"%s\"",
                          optarg);
                return 2;
            }
            break;
        case 'r': {
            long long n;
            if (parse_count(optarg, 16, &n) != 0) {
                cli_error("serve", "--readers wants a number from 0 (automatic) to 16, got \"%s\"",
                          optarg);
                return 2;
            }
            readers = (int)n;
            break;
        }
        case 'Q':
            if (parse_count(optarg, LIMIT_QUERY_CACHE_BYTES_MAX, &cache_bytes) != 0) {
                cli_error("serve",
                          "--query-cache-bytes wants a number of bytes up to %llu (0: no cache), "
                          "got \"%s\"",
                          (unsigned long long)LIMIT_QUERY_CACHE_BYTES_MAX, optarg);
                return 2;
            }
            break;
        case 'L':
            if (cli_parse_log_level(optarg) < 0) {
                cli_error("serve", "--log-level is debug, info, warn or error");
                return 2;
            }
            log_init(cli_parse_log_level(optarg));
            break;
        case 'P':
            public_url = optarg;
            break;
        case 'k':
            key = optarg;
            key_source = "from --admin-key";
            break;
        case 'B':
            backup_dir = optarg;
            break;
        case 'E':
            if (backup_parse_duration(optarg, &backup_every_ms) != 0) {
                cli_error("serve",
                          "--backup-every wants a duration from %ds to %dd such as 90s, 15m, 6h "
                          "or 1d, got \"%s\"",
                          LIMIT_BACKUP_INTERVAL_S_MIN, LIMIT_BACKUP_INTERVAL_S_MAX / 86400, optarg);
                return 2;
            }
            break;
        case 'K':
            if (parse_count(optarg, LIMIT_BACKUP_KEEP_MAX, &backup_keep) != 0 || backup_keep < 1) {
                cli_error("serve", "--backup-keep wants a number from 1 to %d, got \"%s\"",
                          LIMIT_BACKUP_KEEP_MAX, optarg);
                return 2;
            }
            break;
        case 'h':
            serve_usage(stdout);
            return 0;
        default:
            serve_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        cli_error("serve", "unexpected argument \"%s\"", argv[optind]);
        return 2;
    }
    if (body_max < 0 || body_max > (1ll << 31) || readers < 0 || readers > 16) {
        cli_error("serve", "--max-body-bytes must be 0..2^31 and --readers 0..16");
        return 2;
    }
    if (!key || !*key)
        log_warn("no admin key (DOJO_ADMIN_KEY or --admin-key): admin functions will be refused");
    const char *db_url = db && *db ? db : "sqlite:dojo.db";
    if (!backup_dir && (backup_every_ms || backup_keep)) {
        cli_error("serve", "--backup-every and --backup-keep need --backup-dir DIR");
        return 2;
    }
    backup_schedule_config backups = {
        .db_path = cli_sqlite_path(db_url),
        .dir = backup_dir,
        .every_ms = backup_every_ms ? backup_every_ms : 86400ull * 1000,
        .keep = backup_keep ? (int)backup_keep : 7,
    };
    if (backup_dir && !backups.db_path) {
        cli_error("serve",
                  "--backup-dir backs up a SQLite database; %s is PostgreSQL: use its own tools "
                  "(pg_basebackup with WAL archiving, pg_dump; docs/OPERATIONS.md) or `dojo "
                  "export`",
                  cli_db_shown(db_url));
        return 2;
    }
    cli_server_hooks hooks = {.backups = backup_dir ? &backups : NULL};
    server_config cfg = {.db_url = db_url,
                         .host = host,
                         .port = port,
                         .admin_key = key,
                         .public_url = public_url,
                         .body_bytes_max = (size_t)body_max,
                         .reader_threads = readers,
                         .query_cache_bytes = (size_t)cache_bytes,
                         .query_cache_set = true};
    return cli_run_server(&cfg, "serve", false, key && *key ? key_source : "none", &hooks);
}
