/*
 * codegen.c — codegen_write (see codegen.h): renders the files of
 * convex/_generated/ and puts each one in place atomically, leaving a file
 * untouched when its content is already right.
 * Called by `dojo codegen` (cli/codegen.c) and `dojo dev` at start.
 * Thread: the main thread of a command-line process.
 */
#include "codegen/codegen.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/codegen_impl.h"

#define CODEGEN_PATH_BYTES_MAX PATH_MAX
#define CODEGEN_FILES_COUNT 4

void codegen_render_readme(codegen_buf *b)
{
    codegen_buf_puts(
        b, "# convex/_generated\n\n" CODEGEN_HEADER_LINE "\n\n"
           "These files are written by `dojo codegen` (and by `dojo dev` at start) from\n"
           "dojo's schema and function registry (`src/app/schema.c` and `src/app/*.c` in\n"
           "the dojo repository). Any edit here is overwritten the next time they run;\n"
           "change the declarations in dojo instead.\n\n"
           "- `api.d.ts`, `api.js`: `api` (the public functions) and `internal` (the\n"
           "  admin-only ones) for `useQuery`, `useMutation`, `usePaginatedQuery` and\n"
           "  `ConvexHttpClient`, e.g. `useQuery(api.users.me)`.\n"
           "- `dataModel.d.ts`: `Doc<\"table\">`, `Id<\"table\">`, `TableNames` and\n"
           "  `DataModel`.\n");
}

/* Creates dir and its missing parents, like `mkdir -p`. */
static int codegen_mkdirs(const char *dir, err_t *e)
{
    char path[CODEGEN_PATH_BYTES_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path)
        return err_set(e, ERR_INVALID_ARGUMENT, "output folder \"%s\" is empty or too long", dir);
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return err_set(e, ERR_IO, "cannot create folder %s: %s", path, strerror(errno));
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(e, ERR_IO, "%s is not a folder", dir);
    return 0;
}

/* True when the file at path holds exactly text (len_bytes). */
static bool codegen_same_content(const char *path, const char *text, size_t len_bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    bool same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len_bytes;
    char chunk[8192];
    size_t done_bytes = 0;
    while (same && done_bytes < len_bytes) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || (size_t)n > len_bytes - done_bytes ||
            memcmp(chunk, text + done_bytes, (size_t)n) != 0)
            same = false;
        else
            done_bytes += (size_t)n;
    }
    close(fd);
    return same;
}

static int codegen_write_all(int fd, const char *text, size_t len_bytes)
{
    size_t done_bytes = 0;
    while (done_bytes < len_bytes) {
        ssize_t n = write(fd, text + done_bytes, len_bytes - done_bytes);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        done_bytes += (size_t)n;
    }
    return 0;
}

/* Puts text in dir/name through a temporary file renamed over it, unless the
 * file already holds it. *written_out tells which. */
static int codegen_put_file(const char *dir, const char *name, const codegen_buf *b,
                            bool *written_out, err_t *e)
{
    char path[CODEGEN_PATH_BYTES_MAX], tmp[CODEGEN_PATH_BYTES_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    int m = snprintf(tmp, sizeof tmp, "%s/.%s.tmp-%ld", dir, name, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof path || m < 0 || (size_t)m >= sizeof tmp)
        return err_set(e, ERR_INVALID_ARGUMENT, "output folder \"%s\" is too long", dir);
    *written_out = false;
    if (codegen_same_content(path, b->data, b->len_bytes)) return 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return err_set(e, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    int rc = codegen_write_all(fd, b->data, b->len_bytes);
    if (rc == 0) rc = fsync(fd);
    int saved_errno = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        saved_errno = errno;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -1;
        saved_errno = errno;
    }
    if (rc != 0) {
        unlink(tmp);
        return err_set(e, ERR_IO, "cannot write %s: %s", path, strerror(saved_errno));
    }
    *written_out = true;
    return 0;
}

static void codegen_report(char *report, size_t report_bytes, const char *dir,
                           const char *const *written, int n_written, const schema *s,
                           const registry *r)
{
    if (!report || report_bytes == 0) return;
    int n_tables = 0, n_public = 0, n_internal = 0;
    for (int i = 0; i < s->n_tables; i++)
        n_tables += !s->tables[i].system;
    for (int i = 0; i < r->n_fns; i++) {
        n_public += r->fns[i]->visibility == FN_PUBLIC;
        n_internal += r->fns[i]->visibility == FN_INTERNAL;
    }
    char files[256] = "";
    size_t used_bytes = 0;
    for (int i = 0; i < n_written; i++) {
        int n = snprintf(files + used_bytes, sizeof files - used_bytes, "%s%s", i ? ", " : "",
                         written[i]);
        if (n < 0 || (size_t)n >= sizeof files - used_bytes) break;
        used_bytes += (size_t)n;
    }
    char what[320];
    if (n_written == 0)
        snprintf(what, sizeof what, "up to date");
    else if (n_written == CODEGEN_FILES_COUNT)
        snprintf(what, sizeof what, "wrote %s", files);
    else
        snprintf(what, sizeof what, "wrote %s (%d unchanged)", files,
                 CODEGEN_FILES_COUNT - n_written);
    snprintf(report, report_bytes, "%s: %s; %d tables, %d public and %d internal functions", dir,
             what, n_tables, n_public, n_internal);
}

int codegen_write(const schema *s, const registry *r, const char *dir, char *report,
                  size_t report_bytes, err_t *e)
{
    static const char *const names[CODEGEN_FILES_COUNT] = {"dataModel.d.ts", "api.d.ts", "api.js",
                                                           "README.md"};
    codegen_buf bufs[CODEGEN_FILES_COUNT];
    for (int i = 0; i < CODEGEN_FILES_COUNT; i++)
        codegen_buf_init(&bufs[i]);
    codegen_render_data_model(&bufs[0], s);
    codegen_render_api_dts(&bufs[1], s, r);
    codegen_render_api_js(&bufs[2]);
    codegen_render_readme(&bufs[3]);

    /* Render everything before touching the folder: a declaration that cannot
     * be written leaves the previous bindings whole. */
    int rc = 0;
    for (int i = 0; i < CODEGEN_FILES_COUNT && rc == 0; i++)
        if (bufs[i].err)
            rc = err_set(e, bufs[i].err, "cannot generate %s: %s", names[i], bufs[i].err_msg);
    if (rc == 0) rc = codegen_mkdirs(dir, e);
    const char *written[CODEGEN_FILES_COUNT];
    int n_written = 0;
    for (int i = 0; i < CODEGEN_FILES_COUNT && rc == 0; i++) {
        bool was_written;
        rc = codegen_put_file(dir, names[i], &bufs[i], &was_written, e);
        if (rc == 0 && was_written) written[n_written++] = names[i];
    }
    for (int i = 0; i < CODEGEN_FILES_COUNT; i++)
        codegen_buf_free(&bufs[i]);
    if (rc == 0) codegen_report(report, report_bytes, dir, written, n_written, s, r);
    return rc;
}
