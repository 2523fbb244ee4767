/*
 * cli.h — what the commands of the `dojo` binary share: finding the server
 * and its admin key (api.md §7: --url / DOJO_URL / http://127.0.0.1:3210 and
 * --admin-key / DOJO_ADMIN_KEY / ./.dojo/admin_key), calling a function on
 * it over HTTP, and printing errors a person can act on.
 * Thread: the main thread of a command-line process.
 */
#ifndef DOJO_CLI_CLI_H
#define DOJO_CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "base/err.h"
#include "base/limits.h"

#define CLI_DEFAULT_URL "http://127.0.0.1:3210"
#define CLI_STATE_DIR ".dojo"
#define CLI_ADMIN_KEY_FILE ".dojo/admin_key"
#define CLI_DEFAULT_DB "sqlite:.dojo/dojo.db"
#define CLI_DEV_AUTH_KEY_FILE ".dojo/dev_auth_key.pem"
#define CLI_DEV_AUTH_ISSUER_FILE ".dojo/dev_auth_issuer"
#define CLI_HTTP_TIMEOUT_MS 30000

typedef struct cli_target {
    char url[512];
    char admin_key[LIMIT_ADMIN_KEY_BYTES_MAX + 2]; /* one more byte tells a key too long */
} cli_target;

/* Fills t from --url/--admin-key values (NULL when not given), then the
 * environment, then the defaults. A missing admin key is an error only when
 * need_key. */
int cli_target_resolve(cli_target *t, const char *url_opt, const char *key_opt, bool need_key,
                       err_t *e);

/* Parses the options every server-talking command shares: --url, --admin-key
 * and --help (usage prints the command's help). Returns -1 to go on with the
 * arguments from optind, or the exit status to return now. */
int cli_target_getopt(int argc, char **argv, void (*usage)(FILE *out), const char **url_out,
                      const char **key_out);

/* Calls path with args (a JSON object) as admin through POST /api/function.
 * On a function error returns its code with the message (and data) in e; on
 * an HTTP or connection failure ERR_UNAVAILABLE with a message naming the
 * URL. *result_out is a new reference. */
int cli_call(const cli_target *t, const char *path, const json_t *args, json_t **result_out,
             err_t *e);

/* The whole admin call of `dojo run` / `dojo env`: finds the server and the
 * key (--url/--admin-key values may be NULL), calls path with args (a
 * reference is stolen) and on failure prints "dojo <command>: <why>".
 * Returns the result (a new reference), or NULL after printing. */
json_t *cli_admin_call(const char *command, const char *url_opt, const char *key_opt,
                       const char *path, json_t *args);

/* GETs url (for doctor and dev checks); *body_out malloc'd. */
int cli_http_get(const char *url, long timeout_ms, long *status_out, char **body_out, err_t *e);

/* Reads a whole small file (≤ 1 MiB) into a malloc'd, NUL-terminated buffer. */
char *cli_read_file(const char *path, size_t *len_out);

/* The offline commands' database (dbfile.c): --db, else $DOJO_DB, else
 * ./.dojo/dojo.db; the file of a SQLite URL (NULL for PostgreSQL); and
 * whether another process has that SQLite file open (1 and its pid; 0 when
 * not, or when there is no file; -1 when it cannot tell). Call
 * cli_sqlite_in_use before this process opens the database. */
const char *cli_db_resolve(const char *db_opt);
const char *cli_sqlite_path(const char *db_url);
bool cli_file_exists(const char *path);
/* cli_db_resolve, but a SQLite file that does not exist is an error printed
 * for `command` (NULL returned): the read-only commands must not create one. */
const char *cli_db_existing(const char *command, const char *db_opt);
int cli_sqlite_in_use(const char *path, long *pid_out);
/* The files of a SQLite database: its path with each of these appended. */
#define CLI_SQLITE_FILES 4
extern const char *const cli_sqlite_suffixes[CLI_SQLITE_FILES];
/* The URL as it may be printed: any password hidden (a static buffer). */
const char *cli_db_shown(const char *db_url);
/* Whether two paths name the same existing file. */
bool cli_same_file(const char *a, const char *b);

/* Prints "dojo <command>: <message>" to stderr. */
void cli_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Commands. Each returns the process exit status. */
int cmd_serve(int argc, char **argv);
int cmd_dev(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_env(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_codegen(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);

/* Shared by serve and dev: runs a server until SIGINT/SIGTERM. hooks may be
 * NULL; hooks->started runs once the server listens (after the dev banner),
 * before the loop runs. */
struct server_config;
struct server;
struct backup_schedule_config;
typedef struct cli_server_hooks {
    void (*started)(void *data, struct server *srv); /* may be NULL */
    void *data;
    const char *codegen_dir; /* write the TypeScript bindings here first (dojo dev); NULL = no */
    const struct backup_schedule_config *backups; /* scheduled backups (serve); NULL = none */
} cli_server_hooks;
int cli_run_server(struct server_config *cfg, const char *command, bool print_banner_dev,
                   const char *admin_key_source, const cli_server_hooks *hooks);

/* `dojo dev --dev-auth` (devauth.c): the built-in OpenID issuer. prepare
 * loads or makes ./.dojo/dev_auth_key.pem, fixes *port (a free one when 0),
 * writes ./.dojo/dev_auth_issuer and sets CLERK_ISSUER_URL in this process
 * (call it before any thread starts); attach installs its routes in cfg;
 * cli_devauth_started is its cli_server_hooks.started. forget removes the
 * issuer file when dev runs without --dev-auth. */
typedef struct cli_devauth cli_devauth;
int cli_devauth_prepare(const char *host, int *port, cli_devauth **out, err_t *e);
void cli_devauth_attach(cli_devauth *da, struct server_config *cfg);
void cli_devauth_print_setup(const cli_devauth *da);
void cli_devauth_started(void *data, struct server *srv);
void cli_devauth_free(cli_devauth *da);
void cli_devauth_forget(void);

/* "HOST:PORT" → host, port; -1 when malformed. */
int cli_parse_listen(const char *text, char *host, size_t host_bytes, int *port);
/* "debug"… → LOG_*; -1 when unknown. */
int cli_parse_log_level(const char *s);

#endif
