/*
 * client.c — the command line's side of the HTTP API: finding the server and
 * the admin key, calling a function, GETting a URL (see cli.h).
 * Thread: the main thread of a command-line process.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jread.h"
#include "base/limits.h"
#include "cli/cli.h"

#define CLI_RESPONSE_BYTES_MAX (64u * 1024 * 1024)
#define CLI_FILE_BYTES_MAX (1u * 1024 * 1024)

void cli_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dojo %s: ", command);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

char *cli_read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(CLI_FILE_BYTES_MAX + 1);
    size_t n = buf ? fread(buf, 1, CLI_FILE_BYTES_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > CLI_FILE_BYTES_MAX) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len_out) *len_out = n;
    return buf;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

int cli_target_resolve(cli_target *t, const char *url_opt, const char *key_opt, bool need_key,
                       err_t *e)
{
    const char *url = url_opt ? url_opt : getenv("DOJO_URL");
    snprintf(t->url, sizeof t->url, "%s", url && *url ? url : CLI_DEFAULT_URL);
    trim(t->url);
    size_t n = strlen(t->url);
    while (n > 0 && t->url[n - 1] == '/')
        t->url[--n] = '\0';
    const char *key = key_opt ? key_opt : getenv("DOJO_ADMIN_KEY");
    t->admin_key[0] = '\0';
    if (key && *key) {
        snprintf(t->admin_key, sizeof t->admin_key, "%s", key);
    } else {
        char *file = cli_read_file(CLI_ADMIN_KEY_FILE, NULL);
        if (file) {
            snprintf(t->admin_key, sizeof t->admin_key, "%s", file);
            free(file);
        }
    }
    trim(t->admin_key);
    if (strlen(t->admin_key) > LIMIT_ADMIN_KEY_BYTES_MAX)
        return err_set(e, ERR_INVALID_ARGUMENT, "the admin key is longer than %d bytes",
                       LIMIT_ADMIN_KEY_BYTES_MAX);
    if (need_key && !t->admin_key[0])
        return err_set(e, ERR_FORBIDDEN,
                       "no admin key: pass --admin-key, set DOJO_ADMIN_KEY, or run this in the "
                       "folder where `dojo dev` created ./.dojo/admin_key");
    return 0;
}

int cli_target_getopt(int argc, char **argv, void (*usage)(FILE *out), const char **url_out,
                      const char **key_out)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"admin-key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *url_out = *key_out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            *url_out = optarg;
            break;
        case 'k':
            *key_out = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

typedef struct response_buf {
    char *data;
    size_t len;
    bool too_big;
} response_buf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    response_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > CLI_RESPONSE_BYTES_MAX) {
        b->too_big = true;
        return 0;
    }
    char *grown = realloc(b->data, b->len + n + 1);
    if (!grown) return 0;
    memcpy(grown + b->len, ptr, n);
    b->data = grown;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static int perform(CURL *curl, const char *url, long *status_out, char **body_out, err_t *e)
{
    response_buf b = {0};
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        free(b.data);
        return err_set(e, ERR_UNAVAILABLE, "cannot reach %s: %s", url,
                       b.too_big     ? "response too large"
                       : curl_err[0] ? curl_err
                                     : curl_easy_strerror(cc));
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status_out);
    *body_out = b.data ? b.data : strdup("");
    return 0;
}

int cli_http_get(const char *url, long timeout_ms, long *status_out, char **body_out, err_t *e)
{
    CURL *curl = curl_easy_init();
    if (!curl) return err_set(e, ERR_NOMEM, "cannot start libcurl");
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 3L);
    int rc = perform(curl, url, status_out, body_out, e);
    curl_easy_cleanup(curl);
    return rc;
}

/* Turns a response of /api/function into a result or an error. */
static int parse_udf_response(const cli_target *t, long status, const char *body,
                              json_t **result_out, err_t *e)
{
    json_t *doc = json_loads(body, 0, NULL);
    const char *st = NULL, *message = NULL, *code = NULL;
    const json_t *data = NULL;
    err_t why;
    err_init(&why);
    jr_string(doc, "response", "status", JR_OPTIONAL, 16, &st, &why);
    int rc = 0;
    if (status == 200 && st && strcmp(st, "success") == 0) {
        *result_out = json_incref((json_t *)jr_field(doc, "value"));
        if (!*result_out) *result_out = json_null();
    } else if (status == 200 && st && strcmp(st, "error") == 0) {
        jr_string(doc, "response", "errorMessage", JR_OPTIONAL, SIZE_MAX, &message, &why);
        jr_object(doc, "response", "errorData", JR_OPTIONAL, &data, &why);
        jr_string(data, "errorData", "code", JR_OPTIONAL, 64, &code, &why);
        rc = err_set(e, ERR_INVALID_ARGUMENT, "%s%s%s", message ? message : "(no message)",
                     code ? " — " : "", code ? code : "");
        e->data = data ? json_incref((json_t *)data) : NULL;
    } else {
        jr_string(doc, "response", "message", JR_OPTIONAL, SIZE_MAX, &message, &why);
        rc = err_set(e, status == 401 || status == 403 ? ERR_FORBIDDEN : ERR_UNAVAILABLE,
                     "%s answered HTTP %ld: %s", t->url, status, message ? message : body);
    }
    json_decref(doc);
    return rc;
}

int cli_call(const cli_target *t, const char *path, const json_t *args, json_t **result_out,
             err_t *e)
{
    *result_out = NULL;
    CURL *curl = curl_easy_init();
    if (!curl) return err_set(e, ERR_NOMEM, "cannot start libcurl");
    json_t *req = json_pack("{s:s, s:O, s:s}", "path", path, "args", args, "format", "json");
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char url[600], auth_header[LIMIT_ADMIN_KEY_BYTES_MAX + 64];
    snprintf(url, sizeof url, "%s/api/function", t->url);
    snprintf(auth_header, sizeof auth_header, "Authorization: Convex %s", t->admin_key);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (t->admin_key[0]) headers = curl_slist_append(headers, auth_header);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)CLI_HTTP_TIMEOUT_MS);
    long status = 0;
    char *response = NULL;
    int rc = perform(curl, url, &status, &response, e);
    if (rc == ERR_UNAVAILABLE) {
        char msg[ERR_MSG_BYTES_MAX];
        snprintf(msg, sizeof msg, "%s", e->msg);
        err_set(e, ERR_UNAVAILABLE,
                "%s — is the server running? Start it with `dojo dev`, or point at it with "
                "--url / DOJO_URL",
                msg);
    }
    if (rc == 0) rc = parse_udf_response(t, status, response, result_out, e);
    free(response);
    free(body);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return rc;
}

json_t *cli_admin_call(const char *command, const char *url_opt, const char *key_opt,
                       const char *path, json_t *args)
{
    cli_target t;
    err_t e;
    err_init(&e);
    json_t *result = NULL;
    int rc = cli_target_resolve(&t, url_opt, key_opt, true, &e);
    if (rc == 0) rc = cli_call(&t, path, args, &result, &e);
    json_decref(args);
    if (rc) {
        cli_error(command, "%s", e.msg);
        err_clear(&e);
        return NULL;
    }
    return result;
}
