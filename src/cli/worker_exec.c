/*
 * worker_exec.c — one run's command for `dojo worker` (see worker.h and
 * api.md §10): `/bin/sh -c CMD` in a fresh temporary directory and in a
 * process group of its own (a new session), with the run's input as JSON
 * on stdin and DOJO_RUN_ID, DOJO_MODEL, DOJO_PROMPT and DOJO_OUTPUT in its
 * environment. Only the tails of its stdout and stderr are kept (the last
 * line of each is what counts). At the timeout the whole process group is
 * killed. On exit 0 the file at $DOJO_OUTPUT is uploaded (on the thread
 * pool, with libcurl: streamed from the file, its content type from its
 * first bytes), or else the last line of stdout is taken when it is an
 * https:// URL. The directory is removed at the end.
 * Thread: the worker's event loop; the upload and the cleanup on the pool.
 */
#define _XOPEN_SOURCE 700
#include "base/jread.h"
#include "cli/worker.h"

#include <curl/curl.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"

#define WEXEC_STDERR_TAIL_BYTES (4u * LIMIT_WORKER_STDERR_LINE_BYTES_MAX)
#define WEXEC_READ_BYTES (64u * 1024)
#define WEXEC_UPLOAD_TIMEOUT_S 600
#define WEXEC_SNIFF_BYTES 16
#define WEXEC_ENV_MAX 4096 /* variables passed on */

extern char **environ;

struct wexec {
    wexec_config cfg;
    char *command, *upload_url, *key;
    char run_id[64];
    char dir[512];
    char output[600];
    char *env[WEXEC_ENV_MAX + 5];
    char *own_env[4]; /* the DOJO_* variables, malloc'd */
    uv_process_t proc;
    uv_pipe_t in, out, err;
    uv_timer_t timer;
    uv_write_t in_write;
    char *input;
    int handles_open;
    char stdout_tail[LIMIT_WORKER_STDOUT_BYTES_MAX];
    size_t stdout_len;
    char stderr_tail[WEXEC_STDERR_TAIL_BYTES];
    size_t stderr_len;
    char read_buf[WEXEC_READ_BYTES];
    bool exited, killed, started;
    int64_t exit_status;
    int term_signal;
    char kill_reason[256];
    uv_work_t work;
    wexec_result result;
};

/* --- tails ----------------------------------------------------------------------------------- */

static void tail_append(char *tail, size_t cap, size_t *len, const char *data, size_t n)
{
    if (n >= cap) {
        memcpy(tail, data + n - cap, cap);
        *len = cap;
        return;
    }
    if (*len + n > cap) {
        size_t drop = *len + n - cap;
        memmove(tail, tail + drop, *len - drop);
        *len -= drop;
    }
    memcpy(tail + *len, data, n);
    *len += n;
}

/* The last non-empty line of a tail, trimmed, cut to max bytes. */
static void last_line(const char *tail, size_t len, char *out, size_t max)
{
    size_t end = len;
    while (end > 0 && (tail[end - 1] == '\n' || tail[end - 1] == '\r' || tail[end - 1] == ' '))
        end--;
    size_t start = end;
    while (start > 0 && tail[start - 1] != '\n')
        start--;
    while (start < end && (tail[start] == ' ' || tail[start] == '\t' || tail[start] == '\r'))
        start++;
    size_t n = end - start;
    if (n >= max) n = max - 1;
    memcpy(out, tail + start, n);
    out[n] = '\0';
}

const char *wexec_sniff_type(const unsigned char *h, size_t n)
{
    if (n >= 8 && memcmp(h, "\x89PNG\r\n\x1a\n", 8) == 0) return "image/png";
    if (n >= 3 && h[0] == 0xff && h[1] == 0xd8 && h[2] == 0xff) return "image/jpeg";
    if (n >= 12 && memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "WEBP", 4) == 0) return "image/webp";
    if (n >= 6 && (memcmp(h, "GIF87a", 6) == 0 || memcmp(h, "GIF89a", 6) == 0)) return "image/gif";
    if (n >= 8 && memcmp(h + 4, "ftyp", 4) == 0) return "video/mp4";
    if (n >= 4 && memcmp(h, "\x1a\x45\xdf\xa3", 4) == 0) return "video/webm";
    return "application/octet-stream";
}

/* --- the end ------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

typedef struct upload_body {
    FILE *f;
} upload_body;

static size_t on_upload_read(char *buf, size_t size, size_t n, void *data)
{
    upload_body *b = data;
    return fread(buf, size, n, b->f);
}

static size_t on_upload_answer(char *ptr, size_t size, size_t n, void *data)
{
    wexec *x = data;
    size_t len = size * n;
    tail_append(x->result.url, sizeof x->result.url - 1, &x->stdout_len, ptr, len);
    return len;
}

/* Thread pool: uploads $DOJO_OUTPUT (when the run made one), then removes
 * the run's directory. */
static void finish_work(uv_work_t *w)
{
    wexec *x = w->data;
    if (x->result.outcome == WEXEC_FILE) {
        FILE *f = fopen(x->output, "rb");
        struct stat st;
        unsigned char head[WEXEC_SNIFF_BYTES];
        size_t head_n = f ? fread(head, 1, sizeof head, f) : 0;
        if (!f || fstat(fileno(f), &st) != 0) {
            x->result.outcome = WEXEC_FAILED;
            snprintf(x->result.error, sizeof x->result.error, "The output file could not be read");
        } else {
            rewind(f);
            char type[96], auth[LIMIT_ADMIN_KEY_BYTES_MAX + 40];
            snprintf(type, sizeof type, "Content-Type: %s", wexec_sniff_type(head, head_n));
            snprintf(auth, sizeof auth, "Authorization: Convex %s", x->key);
            struct curl_slist *headers = curl_slist_append(NULL, type);
            headers = curl_slist_append(headers, auth);
            headers = curl_slist_append(headers, "Expect:");
            CURL *h = curl_easy_init();
            upload_body body = {.f = f};
            x->stdout_len = 0; /* the answer is collected in result.url, then parsed */
            x->result.url[0] = '\0';
            curl_easy_setopt(h, CURLOPT_URL, x->upload_url);
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload_read);
            curl_easy_setopt(h, CURLOPT_READDATA, &body);
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_upload_answer);
            curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
            curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)WEXEC_UPLOAD_TIMEOUT_S);
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
            CURLcode rc = curl_easy_perform(h);
            long status = 0;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            x->result.url[x->stdout_len < sizeof x->result.url ? x->stdout_len
                                                               : sizeof x->result.url - 1] = '\0';
            json_t *answer = json_loads(x->result.url, 0, NULL);
            const char *id = jr_string_or(answer, "storageId", NULL);
            if (rc == CURLE_OK && status == 200 && id) {
                snprintf(x->result.storage_id, sizeof x->result.storage_id, "%s", id);
            } else {
                x->result.outcome = WEXEC_FAILED;
                const char *msg = jr_string_or(answer, "message", NULL);
                snprintf(x->result.error, sizeof x->result.error,
                         "The output (%lld bytes) could not be uploaded: %s", (long long)st.st_size,
                         rc != CURLE_OK ? curl_easy_strerror(rc)
                         : msg          ? msg
                                        : "no storageId");
            }
            x->result.url[0] = '\0';
            json_decref(answer);
            curl_easy_cleanup(h);
            curl_slist_free_all(headers);
        }
        if (f) fclose(f);
    }
    nftw(x->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void free_exec(wexec *x)
{
    for (int i = 0; i < 4; i++)
        free(x->own_env[i]);
    free(x->input);
    free(x->command);
    free(x->upload_url);
    free(x->key);
    free(x);
}

static void finish_done(uv_work_t *w, int status)
{
    (void)status;
    wexec *x = w->data;
    x->cfg.done(x->cfg.data, &x->result);
    free_exec(x);
}

/* Everything of the process is closed: decide the outcome. */
static void settle(wexec *x)
{
    char err_line[LIMIT_WORKER_STDERR_LINE_BYTES_MAX];
    last_line(x->stderr_tail, x->stderr_len, err_line, sizeof err_line);
    const char *sep = err_line[0] ? ": " : "";
    wexec_result *r = &x->result;
    r->outcome = WEXEC_FAILED;
    struct stat st;
    if (x->killed) {
        snprintf(r->error, sizeof r->error, "%s%s%s", x->kill_reason, sep, err_line);
    } else if (x->term_signal) {
        snprintf(r->error, sizeof r->error, "The command was killed by signal %d%s%s",
                 x->term_signal, sep, err_line);
    } else if (x->exit_status != 0) {
        snprintf(r->error, sizeof r->error, "The command exited with status %lld%s%s",
                 (long long)x->exit_status, sep, err_line);
    } else if (stat(x->output, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        r->outcome = WEXEC_FILE;
    } else {
        char line[sizeof r->url];
        last_line(x->stdout_tail, x->stdout_len, line, sizeof line);
        if (strncmp(line, "https://", 8) == 0 && !strpbrk(line, " \t")) {
            r->outcome = WEXEC_URL;
            snprintf(r->url, sizeof r->url, "%s", line);
        } else {
            snprintf(r->error, sizeof r->error,
                     "The command exited 0 but wrote no file to $DOJO_OUTPUT and printed no "
                     "https:// URL as its last line%s%s",
                     sep, err_line);
        }
    }
    x->work.data = x;
    if (uv_queue_work(x->cfg.loop, &x->work, finish_work, finish_done) != 0) {
        if (r->outcome == WEXEC_FILE) {
            r->outcome = WEXEC_FAILED;
            snprintf(r->error, sizeof r->error, "The output could not be uploaded");
        }
        finish_done(&x->work, 0);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    wexec *x = h->data;
    if (--x->handles_open == 0) settle(x);
}

static void close_handle(wexec *x, uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, on_handle_closed);
    (void)x;
}

/* --- the process ------------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    wexec *x = h->data;
    *buf = uv_buf_init(x->read_buf, sizeof x->read_buf);
}

static void on_stdout(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    wexec *x = s->data;
    if (n > 0)
        tail_append(x->stdout_tail, sizeof x->stdout_tail, &x->stdout_len, buf->base, (size_t)n);
    else if (n < 0)
        close_handle(x, (uv_handle_t *)s);
}

static void on_stderr(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    wexec *x = s->data;
    if (n > 0)
        tail_append(x->stderr_tail, sizeof x->stderr_tail, &x->stderr_len, buf->base, (size_t)n);
    else if (n < 0)
        close_handle(x, (uv_handle_t *)s);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int signal)
{
    wexec *x = p->data;
    x->exited = true;
    x->exit_status = status;
    x->term_signal = signal;
    uv_timer_stop(&x->timer);
    close_handle(x, (uv_handle_t *)&x->timer);
    close_handle(x, (uv_handle_t *)p);
    /* The pipes close at their EOF: a background child of the command may
     * keep them open; its group is killed so that they do close. */
    kill(-p->pid, SIGKILL);
}

static void kill_group(wexec *x, const char *reason)
{
    if (x->exited || x->killed) return;
    x->killed = true;
    snprintf(x->kill_reason, sizeof x->kill_reason, "%s", reason);
    kill(-x->proc.pid, SIGKILL);
}

static void on_timeout(uv_timer_t *t)
{
    wexec *x = t->data;
    char reason[128];
    snprintf(reason, sizeof reason,
             "Timed out after %llu s (the command's process group was killed)",
             (unsigned long long)(x->cfg.timeout_ms / 1000));
    kill_group(x, reason);
}

void wexec_kill(wexec *x, const char *reason)
{
    kill_group(x, reason);
}

static void on_input_written(uv_write_t *w, int status)
{
    (void)status; /* a command that does not read its input: fine */
    wexec *x = w->data;
    close_handle(x, (uv_handle_t *)&x->in);
}

static int set_env(wexec *x, int *n, int slot, const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value ? value : "") + 2;
    char *var = malloc(len);
    if (!var) return -1;
    snprintf(var, len, "%s=%s", name, value ? value : "");
    x->own_env[slot] = var;
    x->env[(*n)++] = var;
    return 0;
}

/* The worker's environment, less DOJO_* (never the keys), plus the run's. */
static int build_env(wexec *x, const json_t *input)
{
    int n = 0;
    for (char **e = environ; *e && n < WEXEC_ENV_MAX; e++)
        if (strncmp(*e, "DOJO_", 5) != 0) x->env[n++] = *e;
    const char *model = jr_string_or(input, "model", "");
    const char *prompt = jr_string_or(input, "prompt", "");
    if (set_env(x, &n, 0, "DOJO_RUN_ID", x->run_id) || set_env(x, &n, 1, "DOJO_MODEL", model) ||
        set_env(x, &n, 2, "DOJO_PROMPT", prompt) || set_env(x, &n, 3, "DOJO_OUTPUT", x->output))
        return -1;
    x->env[n] = NULL;
    return 0;
}

int wexec_start(const wexec_config *cfg, wexec **out, err_t *e)
{
    *out = NULL;
    wexec *x = calloc(1, sizeof *x);
    if (!x) return err_set(e, ERR_NOMEM, "out of memory");
    x->cfg = *cfg;
    x->command = strdup(cfg->command);
    x->upload_url = strdup(cfg->upload_url);
    x->key = strdup(cfg->key);
    const json_t *input = jr_field(cfg->run, "input");
    snprintf(x->run_id, sizeof x->run_id, "%s", jr_string_or(cfg->run, "_id", ""));
    x->input = json_dumps(input, JSON_COMPACT | JSON_REAL_PRECISION(17));
    const char *tmp = getenv("TMPDIR");
    snprintf(x->dir, sizeof x->dir, "%s/dojo-run-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!x->command || !x->upload_url || !x->key || !x->input) {
        free_exec(x);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    if (!mkdtemp(x->dir)) {
        int rc = err_set(e, ERR_IO, "cannot make a directory for the run in %s: %s",
                         tmp && *tmp ? tmp : "/tmp", strerror(errno));
        free_exec(x);
        return rc;
    }
    snprintf(x->output, sizeof x->output, "%s/output", x->dir);
    if (build_env(x, input) != 0) {
        nftw(x->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free_exec(x);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    uv_loop_t *loop = cfg->loop;
    uv_pipe_init(loop, &x->in, 0);
    uv_pipe_init(loop, &x->out, 0);
    uv_pipe_init(loop, &x->err, 0);
    uv_timer_init(loop, &x->timer);
    x->in.data = x->out.data = x->err.data = x->timer.data = x->proc.data = x;
    x->handles_open = 5; /* 3 pipes, the timer, the process */
    char *args[] = {"/bin/sh", "-c", x->command, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&x->in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&x->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&x->err},
    };
    uv_process_options_t opts = {
        .exit_cb = on_exit_cb,
        .file = "/bin/sh",
        .args = args,
        .env = x->env,
        .cwd = x->dir,
        .flags = UV_PROCESS_DETACHED, /* setsid: a process group of its own, to kill whole */
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(loop, &x->proc, &opts);
    if (rc != 0) {
        /* Every handle closes; settle() then reports the failure. */
        snprintf(x->kill_reason, sizeof x->kill_reason, "The command could not be started: %s",
                 uv_strerror(rc));
        x->killed = true;
        close_handle(x, (uv_handle_t *)&x->proc);
        close_handle(x, (uv_handle_t *)&x->in);
        close_handle(x, (uv_handle_t *)&x->out);
        close_handle(x, (uv_handle_t *)&x->err);
        close_handle(x, (uv_handle_t *)&x->timer);
        *out = x;
        return 0;
    }
    x->started = true;
    uv_read_start((uv_stream_t *)&x->out, on_alloc, on_stdout);
    uv_read_start((uv_stream_t *)&x->err, on_alloc, on_stderr);
    uv_buf_t buf = uv_buf_init(x->input, (unsigned)strlen(x->input));
    x->in_write.data = x;
    if (uv_write(&x->in_write, (uv_stream_t *)&x->in, &buf, 1, on_input_written) != 0)
        close_handle(x, (uv_handle_t *)&x->in);
    uv_timer_start(&x->timer, on_timeout, cfg->timeout_ms, 0);
    *out = x;
    return 0;
}
