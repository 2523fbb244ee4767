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

#include "base/err.h"

#define CLI_DEFAULT_URL "http://127.0.0.1:3210"
#define CLI_STATE_DIR ".dojo"
#define CLI_ADMIN_KEY_FILE ".dojo/admin_key"
#define CLI_DEFAULT_DB "sqlite:.dojo/dojo.db"
#define CLI_HTTP_TIMEOUT_MS 30000

typedef struct cli_target {
    char url[512];
    char admin_key[256];
} cli_target;

/* Fills t from --url/--admin-key values (NULL when not given), then the
 * environment, then the defaults. A missing admin key is an error only when
 * need_key. */
int cli_target_resolve(cli_target *t, const char *url_opt, const char *key_opt, bool need_key,
                       err_t *e);

/* Calls path with args (a JSON object) as admin through POST /api/function.
 * On a function error returns its code with the message (and data) in e; on
 * an HTTP or connection failure ERR_UNAVAILABLE with a message naming the
 * URL. *result_out is a new reference. */
int cli_call(const cli_target *t, const char *path, const json_t *args, json_t **result_out,
             err_t *e);

/* GETs url (for doctor and dev checks); *body_out malloc'd. */
int cli_http_get(const char *url, long timeout_ms, long *status_out, char **body_out, err_t *e);

/* Reads a whole small file (≤ 1 MiB) into a malloc'd, NUL-terminated buffer. */
char *cli_read_file(const char *path, size_t *len_out);

/* Prints "dojo <command>: <message>" to stderr. */
void cli_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Commands. Each returns the process exit status. */
int cmd_serve(int argc, char **argv);
int cmd_dev(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_env(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_codegen(int argc, char **argv);

/* Shared by serve and dev: runs a server until SIGINT/SIGTERM. */
struct server_config;
int cli_run_server(struct server_config *cfg, const char *command, bool print_banner_dev,
                   const char *admin_key_source);

/* "HOST:PORT" → host, port; -1 when malformed. */
int cli_parse_listen(const char *text, char *host, size_t host_bytes, int *port);
/* "debug"… → LOG_*; -1 when unknown. */
int cli_parse_log_level(const char *s);

#endif
