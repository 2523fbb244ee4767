/*
 * backup.c — taking a backup of a SQLite deployment and checking and
 * unpacking one (see backup.h for the format).
 *
 * Taking: the database is copied first (sqlite_snapshot_copy, into a
 * temporary file beside the output), then streamed into the archive; the
 * files directory is walked (regular files only, names that start with a
 * dot or end in ".partial"/".tmp" — uploads in flight — skipped, at most
 * LIMIT_BACKUP_FILES_DEPTH_MAX levels and LIMIT_BACKUP_FILES_MAX files);
 * each member's line of the manifest is written to a temporary file as the
 * member is added, so memory stays bounded however many files there are.
 *
 * Unpacking: members must come in the order backup.h gives, with names of
 * that shape only (no "..", no absolute path, nothing outside files/). The
 * digest of each member is computed while it is written out and noted in a
 * temporary list; at the end the manifest's own digest is checked against
 * MANIFEST.sha256, then every line of the manifest against that list.
 * Thread: any thread; nothing here is shared.
 */
#include "backup/backup.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/archive.h"
#include "base/clock.h"
#include "base/jread.h"
#include "base/limits.h"
#include "store/sqlite_snapshot.h"

#define MANIFEST_SUM_BYTES_MAX 256 /* "<64 hex>  MANIFEST.jsonl\n" */
#define MANIFEST_DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)

/* The same rule as the directory file store (api.md §9): DIR/files/ beside
 * DIR/dojo.db, DIR/<stem>.files/ beside any other DIR/<stem>.<ext>, so two
 * databases in one directory never share their files. */
void backup_files_dir(const char *db_path, char *out, size_t out_bytes)
{
    char copy[BACKUP_PATH_BYTES_MAX];
    snprintf(copy, sizeof copy, "%s", db_path);
    const char *dir = dirname(copy);
    const char *name = strrchr(db_path, '/');
    name = name ? name + 1 : db_path;
    const char *dot = strrchr(name, '.');
    int stem = dot && dot != name ? (int)(dot - name) : (int)strlen(name);
    if (strcmp(name, "dojo.db") == 0)
        snprintf(out, out_bytes, "%s/%s", dir, BACKUP_FILES_DIR_NAME);
    else
        snprintf(out, out_bytes, "%s/%.*s.%s", dir, stem, name, BACKUP_FILES_DIR_NAME);
}

int backup_sync_parent(const char *path, err_t *e)
{
    char copy[BACKUP_PATH_BYTES_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return err_set(e, ERR_IO, "cannot open %s: %s", dir, strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : err_set(e, ERR_IO, "cannot sync %s: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

/* A name the files directory may hold and the archive may carry: letters,
 * digits, '.', '_', '-'; not starting with a dot. */
static bool safe_component(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.') return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

/* "files/a/b" with safe components, at most LIMIT_BACKUP_FILES_DEPTH_MAX
 * directories deep. */
static bool safe_files_member(const char *name)
{
    size_t plen = strlen(BACKUP_FILES_PREFIX);
    if (strncmp(name, BACKUP_FILES_PREFIX, plen) != 0) return false;
    const char *p = name + plen;
    int depth = 0;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (!safe_component(p, len)) return false;
        if (!slash) return true;
        if (++depth > LIMIT_BACKUP_FILES_DEPTH_MAX) return false;
        p = slash + 1;
    }
}

/* Not part of the stored files: uploads being written (the store's tmp/
 * at the top, dot files, ".partial"/".tmp" names). */
static bool skipped_name(const char *name, int depth)
{
    size_t len = strlen(name);
    if (name[0] == '.') return true;
    if (depth == 0 && strcmp(name, BACKUP_FILES_TMP_DIR) == 0) return true;
    if (len >= 8 && strcmp(name + len - 8, ".partial") == 0) return true;
    return len >= 4 && strcmp(name + len - 4, ".tmp") == 0;
}

/* --- taking ------------------------------------------------------------------- */

typedef struct take_state {
    archive_writer *w;
    FILE *manifest; /* member lines, in order */
    const atomic_int *cancel;
    int64_t members, files;
    int64_t now_s;
} take_state;

static int note_member(take_state *t, const char *name, uint64_t size, const char *sha, err_t *e)
{
    json_t *line =
        json_pack("{s:s, s:I, s:s}", "name", name, "size", (json_int_t)size, "sha256", sha);
    char *text = line ? json_dumps(line, MANIFEST_DUMP_FLAGS) : NULL;
    json_decref(line);
    int rc = 0;
    if (!text)
        rc = err_set(e, ERR_NOMEM, "out of memory");
    else if (fprintf(t->manifest, "%s\n", text) < 0)
        rc = err_set(e, ERR_IO, "cannot write the manifest: %s", strerror(errno));
    free(text);
    t->members++;
    return rc;
}

static int add_file(take_state *t, const char *path, const char *member, err_t *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        /* Removed since it was listed: it is no longer part of the deployment. */
        if (errno == ENOENT) return 0;
        return err_set(e, ERR_IO, "cannot read %s: %s", path, strerror(errno));
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) rc = err_set(e, ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    char sha[ARCHIVE_SHA256_HEX_BYTES];
    if (rc == 0 && S_ISREG(st.st_mode)) {
        rc = archive_add_fd(t->w, member, fd, (uint64_t)st.st_size, (int64_t)st.st_mtime, t->cancel,
                            sha, e);
        if (rc == 0) rc = note_member(t, member, (uint64_t)st.st_size, sha, e);
        if (rc == 0) t->files++;
    }
    close(fd);
    return rc;
}

/* Adds every file under dir (relative name rel, "" at the top). */
static int add_tree(take_state *t, const char *dir, const char *rel, int depth, err_t *e)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT && depth > 0) return 0;
        return err_set(e, ERR_IO, "cannot read the files directory %s: %s", dir, strerror(errno));
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (skipped_name(de->d_name, depth)) continue;
        if (!safe_component(de->d_name, strlen(de->d_name))) {
            rc = err_set(e, ERR_INVALID_ARGUMENT,
                         "the files directory holds %s/%s, a name dojo does not write "
                         "(letters, digits, '.', '_' and '-' only): move it away",
                         dir, de->d_name);
            break;
        }
        char path[BACKUP_PATH_BYTES_MAX], member[ARCHIVE_NAME_BYTES + 1];
        int n1 = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        int n2 = snprintf(member, sizeof member, "%s%s%s%s", BACKUP_FILES_PREFIX, rel,
                          rel[0] ? "/" : "", de->d_name);
        if (n1 >= (int)sizeof path || n2 > LIMIT_BACKUP_NAME_BYTES_MAX) {
            rc = err_set(e, ERR_LIMIT, "the file name %s is too long for a backup (%d bytes)", path,
                         LIMIT_BACKUP_NAME_BYTES_MAX);
            break;
        }
        struct stat st;
        if (lstat(path, &st) != 0) continue; /* removed meanwhile */
        if (S_ISDIR(st.st_mode)) {
            if (depth + 1 > LIMIT_BACKUP_FILES_DEPTH_MAX) {
                rc = err_set(e, ERR_LIMIT,
                             "%s is more than LIMIT_BACKUP_FILES_DEPTH_MAX (%d) directories deep",
                             path, LIMIT_BACKUP_FILES_DEPTH_MAX);
                break;
            }
            rc = add_tree(t, path, member + strlen(BACKUP_FILES_PREFIX), depth + 1, e);
        } else if (S_ISREG(st.st_mode)) {
            if (t->files >= LIMIT_BACKUP_FILES_MAX) {
                rc = err_set(e, ERR_LIMIT,
                             "the files directory holds more than LIMIT_BACKUP_FILES_MAX (%d) "
                             "files",
                             LIMIT_BACKUP_FILES_MAX);
                break;
            }
            rc = add_file(t, path, member, e);
        }
    }
    closedir(d);
    return rc;
}

static int add_database(take_state *t, const char *db_copy, err_t *e)
{
    int fd = open(db_copy, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(e, ERR_IO, "cannot read %s: %s", db_copy, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : err_set(e, ERR_IO, "cannot stat %s", db_copy);
    char sha[ARCHIVE_SHA256_HEX_BYTES];
    if (rc == 0)
        rc = archive_add_fd(t->w, BACKUP_DB_MEMBER, fd, (uint64_t)st.st_size, t->now_s, t->cancel,
                            sha, e);
    if (rc == 0) rc = note_member(t, BACKUP_DB_MEMBER, (uint64_t)st.st_size, sha, e);
    close(fd);
    return rc;
}

static void iso_time(int64_t ms, char *out, size_t out_bytes)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, out_bytes, "%s.%03dZ", base, (int)(ms % 1000));
}

/* The manifest: the header line, then the member lines noted so far; then
 * its digest. */
static int add_manifest(take_state *t, const sqlite_snapshot_info *snap, err_t *e)
{
    char created[40];
    iso_time((int64_t)clock_now_ms(), created, sizeof created);
    json_t *header = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "format",
                               BACKUP_FORMAT_NAME, "version", BACKUP_FORMAT_VERSION, "createdAt",
                               created, "dojoVersion", DOJO_VERSION, "engine", "sqlite",
                               "schemaVersion", snap->schema_version, "commitTs", snap->commit_ts,
                               "files", (json_int_t)t->files, "members", (json_int_t)t->members);
    char *text = header ? json_dumps(header, MANIFEST_DUMP_FLAGS) : NULL;
    json_decref(header);
    if (!text) return err_set(e, ERR_NOMEM, "out of memory");
    /* The header goes first: copy the member lines after it. */
    FILE *whole = tmpfile();
    int rc = whole ? 0 : err_set(e, ERR_IO, "cannot create a temporary file: %s", strerror(errno));
    if (rc == 0 && fprintf(whole, "%s\n", text) < 0)
        rc = err_set(e, ERR_IO, "cannot write the manifest");
    free(text);
    if (rc == 0 && (fflush(t->manifest) != 0 || fseek(t->manifest, 0, SEEK_SET) != 0))
        rc = err_set(e, ERR_IO, "cannot read the manifest back");
    char buf[8192];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, t->manifest)) > 0)
        if (fwrite(buf, 1, n, whole) != n) rc = err_set(e, ERR_IO, "cannot write the manifest");
    long size = rc == 0 && fflush(whole) == 0 ? ftell(whole) : -1;
    if (rc == 0 && (size < 0 || lseek(fileno(whole), 0, SEEK_SET) != 0))
        rc = err_set(e, ERR_IO, "cannot read the manifest back");
    char sha[ARCHIVE_SHA256_HEX_BYTES];
    if (rc == 0)
        rc = archive_add_fd(t->w, BACKUP_MANIFEST_MEMBER, fileno(whole), (uint64_t)size, t->now_s,
                            NULL, sha, e);
    if (whole) fclose(whole);
    if (rc) return rc;
    char sum[MANIFEST_SUM_BYTES_MAX];
    int len = snprintf(sum, sizeof sum, "%s  %s\n", sha, BACKUP_MANIFEST_MEMBER);
    return archive_add_bytes(t->w, BACKUP_MANIFEST_SUM_MEMBER, sum, (size_t)len, t->now_s, sha, e);
}

int backup_take(const char *db_path, const char *files_dir, const char *out_path,
                const atomic_int *cancel, backup_result *res, err_t *e)
{
    memset(res, 0, sizeof *res);
    uint64_t started = clock_mono_ms();
    char db_copy[BACKUP_PATH_BYTES_MAX], dir[BACKUP_PATH_BYTES_MAX];
    if (snprintf(db_copy, sizeof db_copy, "%s.db%s", out_path, BACKUP_PARTIAL_SUFFIX) >=
        (int)sizeof db_copy)
        return err_set(e, ERR_INVALID_ARGUMENT, "the path %s is too long", out_path);
    if (access(out_path, F_OK) == 0)
        return err_set(e, ERR_INVALID_ARGUMENT, "%s exists already: choose a new file", out_path);
    if (!files_dir) {
        backup_files_dir(db_path, dir, sizeof dir);
        files_dir = dir;
    }
    /* Left by a backup that was killed: never part of a finished backup. */
    unlink(db_copy);
    take_state t = {.cancel = cancel, .now_s = (int64_t)(clock_now_ms() / 1000)};
    sqlite_snapshot_info snap;
    int rc = sqlite_snapshot_copy(db_path, db_copy, cancel, &snap, e);
    if (rc == 0) rc = archive_create(out_path, &t.w, e);
    if (rc == 0 && !(t.manifest = tmpfile()))
        rc = err_set(e, ERR_IO, "cannot create a temporary file: %s", strerror(errno));
    if (rc == 0) rc = add_database(&t, db_copy, e);
    unlink(db_copy);
    struct stat st;
    if (rc == 0 && stat(files_dir, &st) == 0 && S_ISDIR(st.st_mode))
        rc = add_tree(&t, files_dir, "", 0, e);
    if (rc == 0) rc = add_manifest(&t, &snap, e);
    if (t.manifest) fclose(t.manifest);
    uint64_t bytes = t.w ? archive_written(t.w) + 2 * ARCHIVE_BLOCK_BYTES : 0;
    if (rc == 0) {
        rc = archive_finish(t.w, e);
        t.w = NULL;
    }
    if (rc == 0) rc = backup_sync_parent(out_path, e);
    if (rc) {
        archive_abort(t.w);
        unlink(db_copy);
        return rc;
    }
    res->bytes = bytes;
    res->files = t.files;
    res->duration_ms = clock_mono_ms() - started;
    snprintf(res->commit_ts, sizeof res->commit_ts, "%s", snap.commit_ts);
    return 0;
}

/* --- unpacking ---------------------------------------------------------------- */

void backup_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char path[BACKUP_PATH_BYTES_MAX];
            if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
            struct stat st;
            if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
                backup_remove_tree(path);
            else
                unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

typedef struct extract_state {
    archive_reader *r;
    const char *path; /* the archive */
    const char *files_out;
    FILE *computed; /* "sha size name" per member, in order */
    int64_t members, files;
    char manifest_tmp[BACKUP_PATH_BYTES_MAX];
    char manifest_sha[ARCHIVE_SHA256_HEX_BYTES];
    uint64_t db_bytes;
} extract_state;

static int damaged(err_t *e, const char *fmt, const char *a, const char *b)
{
    return err_set(e, ERR_IO, fmt, a, b);
}

/* Creates the directories of files_out/<rel>'s parent. */
static int make_parents(const char *files_out, const char *rel, err_t *e)
{
    char path[BACKUP_PATH_BYTES_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", files_out, rel);
    if (n >= (int)sizeof path) return err_set(e, ERR_LIMIT, "the path %s is too long", path);
    for (char *p = path + strlen(files_out) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return err_set(e, ERR_IO, "cannot create %s: %s", path, strerror(errno));
        *p = '/';
    }
    return 0;
}

/* Writes the current member to out_path (NULL: hash only) and notes it. */
static int take_member(extract_state *x, const char *name, uint64_t size, const char *out_path,
                       char sha[ARCHIVE_SHA256_HEX_BYTES], err_t *e)
{
    int fd = -1;
    if (out_path) {
        fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == EEXIST && strcmp(name, BACKUP_DB_MEMBER) != 0)
                return damaged(e, "the backup is damaged: %s appears twice%s", name, "");
            return err_set(e, ERR_IO, "cannot create %s: %s", out_path, strerror(errno));
        }
    }
    int rc = archive_read_data(x->r, fd, sha, e);
    if (fd >= 0) {
        if (rc == 0 && fsync(fd) != 0)
            rc = err_set(e, ERR_IO, "cannot sync %s: %s", out_path, strerror(errno));
        close(fd);
    }
    if (rc == 0 && fprintf(x->computed, "%s %llu %s\n", sha, (unsigned long long)size, name) < 0)
        rc = err_set(e, ERR_IO, "cannot write a temporary file");
    x->members++;
    return rc;
}

/* Compares MANIFEST.jsonl (in x->manifest_tmp) with what was read. */
static int check_manifest(extract_state *x, backup_contents *info, err_t *e)
{
    FILE *m = fopen(x->manifest_tmp, "r");
    if (!m) return err_set(e, ERR_IO, "cannot read the manifest back: %s", strerror(errno));
    if (fflush(x->computed) != 0 || fseek(x->computed, 0, SEEK_SET) != 0) {
        fclose(m);
        return err_set(e, ERR_IO, "cannot read a temporary file back");
    }
    char line[LIMIT_BACKUP_MANIFEST_LINE_BYTES_MAX + 2];
    char seen[LIMIT_BACKUP_NAME_BYTES_MAX + 128];
    int rc = 0;
    int64_t lines = 0, members = -1;
    static_assert(LIMIT_BACKUP_FILES_MAX < INT32_MAX, "member counts fit");
    while (rc == 0 && fgets(line, sizeof line, m)) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') {
            rc = err_set(e, ERR_IO,
                         "the backup is damaged: a manifest line is longer than "
                         "LIMIT_BACKUP_MANIFEST_LINE_BYTES_MAX (%d) or unterminated",
                         LIMIT_BACKUP_MANIFEST_LINE_BYTES_MAX);
            break;
        }
        json_error_t jerr;
        json_t *obj = json_loadb(line, len, 0, &jerr);
        if (!json_is_object(obj)) {
            json_decref(obj);
            rc = err_set(e, ERR_IO, "the backup is damaged: manifest line %lld is not JSON",
                         (long long)lines + 1);
            break;
        }
        if (lines == 0) {
            int64_t version = 0;
            err_t why;
            err_init(&why);
            if (!jr_string_is(obj, "format", BACKUP_FORMAT_NAME) ||
                jr_int(obj, "the manifest", "version", 0, 0, INT32_MAX, &version, &why) != 0 ||
                jr_int(obj, "the manifest", "members", 0, 0, LIMIT_BACKUP_FILES_MAX + 1, &members,
                       &why) != 0)
                rc = err_set(e, ERR_IO, "%s is not a dojo backup (its manifest has no header%s%s)",
                             x->path, why.msg[0] ? ": " : "", why.msg);
            else if (version != BACKUP_FORMAT_VERSION)
                rc = err_set(e, ERR_INVALID_ARGUMENT,
                             "%s is a backup of format version %lld; this dojo reads version %d",
                             x->path, (long long)version, BACKUP_FORMAT_VERSION);
            err_clear(&why);
            if (rc) members = -1;
            const char *fields[] = {"createdAt", "dojoVersion", "schemaVersion", "commitTs"};
            char *outs[] = {info->created_at, info->dojo_version, info->schema_version,
                            info->commit_ts};
            size_t sizes[] = {sizeof info->created_at, sizeof info->dojo_version,
                              sizeof info->schema_version, sizeof info->commit_ts};
            for (int i = 0; i < 4; i++)
                snprintf(outs[i], sizes[i], "%s", jr_string_or(obj, fields[i], ""));
        } else {
            const char *name = jr_string_or(obj, "name", "");
            const char *sha = jr_string_or(obj, "sha256", "");
            int64_t size = -1;
            err_t why;
            err_init(&why);
            if (jr_int(obj, "a manifest line", "size", 0, 0, (int64_t)LIMIT_BACKUP_MEMBER_BYTES_MAX,
                       &size, &why) != 0)
                size = -1;
            err_clear(&why);
            char want[sizeof seen];
            snprintf(want, sizeof want, "%s %lld %s\n", sha, (long long)size, name);
            if (!fgets(seen, sizeof seen, x->computed))
                rc = err_set(e, ERR_IO,
                             "the backup is damaged: the manifest lists %s, which the archive "
                             "does not hold",
                             name[0] ? name : "a member");
            else if (strcmp(want, seen) != 0)
                rc = err_set(e, ERR_IO,
                             "the backup is damaged: %s does not match its checksum in the "
                             "manifest (manifest: %.*s; archive: %.*s)",
                             name[0] ? name : "a member", (int)strlen(want) - 1, want,
                             (int)strlen(seen) - 1, seen);
        }
        json_decref(obj);
        lines++;
    }
    if (rc == 0 && lines == 0)
        rc = err_set(e, ERR_IO, "the backup is damaged: its manifest is empty");
    if (rc == 0 && (members != lines - 1 || members != x->members))
        rc = err_set(e, ERR_IO,
                     "the backup is damaged: the manifest announces %lld members and lists %lld; "
                     "the archive holds %lld",
                     (long long)members, (long long)(lines - 1), (long long)x->members);
    fclose(m);
    return rc;
}

/* Reads MANIFEST.sha256 and compares it with the manifest's digest. */
static int check_manifest_sum(extract_state *x, uint64_t size, err_t *e)
{
    if (size > MANIFEST_SUM_BYTES_MAX)
        return err_set(e, ERR_IO, "the backup is damaged: %s is %llu bytes",
                       BACKUP_MANIFEST_SUM_MEMBER, (unsigned long long)size);
    FILE *tmp = tmpfile();
    if (!tmp) return err_set(e, ERR_IO, "cannot create a temporary file: %s", strerror(errno));
    char sha[ARCHIVE_SHA256_HEX_BYTES], text[MANIFEST_SUM_BYTES_MAX + 1] = "";
    int rc = archive_read_data(x->r, fileno(tmp), sha, e);
    if (rc == 0) {
        lseek(fileno(tmp), 0, SEEK_SET);
        ssize_t n = read(fileno(tmp), text, (size_t)size);
        text[n > 0 ? n : 0] = '\0';
    }
    fclose(tmp);
    if (rc) return rc;
    char want[MANIFEST_SUM_BYTES_MAX];
    snprintf(want, sizeof want, "%s  %s\n", x->manifest_sha, BACKUP_MANIFEST_MEMBER);
    if (strcmp(want, text) != 0)
        return err_set(e, ERR_IO, "the backup is damaged: %s does not match its checksum in %s",
                       BACKUP_MANIFEST_MEMBER, BACKUP_MANIFEST_SUM_MEMBER);
    return 0;
}

static int extract_members(extract_state *x, const char *db_out, err_t *e)
{
    enum { WANT_DB, IN_FILES, WANT_SUM, WANT_END } stage = WANT_DB;
    char name[ARCHIVE_NAME_BYTES];
    uint64_t size;
    int rc;
    while ((rc = archive_next(x->r, name, &size, e)) == 1) {
        char sha[ARCHIVE_SHA256_HEX_BYTES];
        if (stage == WANT_DB) {
            if (strcmp(name, BACKUP_DB_MEMBER) != 0)
                return err_set(e, ERR_IO,
                               "%s is not a dojo backup (its first member is %s, not %s)", x->path,
                               name, BACKUP_DB_MEMBER);
            rc = take_member(x, name, size, db_out, sha, e);
            x->db_bytes = size;
            stage = IN_FILES;
        } else if (stage == IN_FILES && safe_files_member(name)) {
            if (x->files >= LIMIT_BACKUP_FILES_MAX)
                return err_set(e, ERR_LIMIT,
                               "the backup holds more than LIMIT_BACKUP_FILES_MAX (%d) files",
                               LIMIT_BACKUP_FILES_MAX);
            const char *rel = name + strlen(BACKUP_FILES_PREFIX);
            char out[BACKUP_PATH_BYTES_MAX];
            if (x->files_out) {
                rc = make_parents(x->files_out, rel, e);
                if (rc) return rc;
                snprintf(out, sizeof out, "%s/%s", x->files_out, rel);
            }
            rc = take_member(x, name, size, x->files_out ? out : NULL, sha, e);
            x->files++;
        } else if (stage == IN_FILES && strcmp(name, BACKUP_MANIFEST_MEMBER) == 0) {
            if (size >
                (uint64_t)(LIMIT_BACKUP_FILES_MAX + 2) * LIMIT_BACKUP_MANIFEST_LINE_BYTES_MAX)
                return err_set(e, ERR_IO, "the backup is damaged: its manifest is %llu bytes",
                               (unsigned long long)size);
            rc = take_member(x, name, size, x->manifest_tmp, x->manifest_sha, e);
            x->members--; /* the manifest does not list itself */
            stage = WANT_SUM;
        } else if (stage == WANT_SUM && strcmp(name, BACKUP_MANIFEST_SUM_MEMBER) == 0) {
            rc = check_manifest_sum(x, size, e);
            stage = WANT_END;
        } else {
            return err_set(e, ERR_IO, "the backup is damaged: an unexpected member %s", name);
        }
        if (rc) return rc;
    }
    if (rc < 0) return rc;
    if (stage != WANT_END)
        return err_set(e, ERR_IO,
                       "the backup is truncated: it ends before its %s (was it copied whole?)",
                       stage == WANT_SUM ? BACKUP_MANIFEST_SUM_MEMBER : BACKUP_MANIFEST_MEMBER);
    return 0;
}

int backup_extract(const char *path, const char *db_out, const char *files_out,
                   backup_contents *info, err_t *e)
{
    memset(info, 0, sizeof *info);
    extract_state x = {.path = path, .files_out = files_out};
    if (snprintf(x.manifest_tmp, sizeof x.manifest_tmp, "%s.manifest%s", db_out,
                 BACKUP_PARTIAL_SUFFIX) >= (int)sizeof x.manifest_tmp)
        return err_set(e, ERR_INVALID_ARGUMENT, "the path %s is too long", db_out);
    unlink(x.manifest_tmp);
    int rc = archive_open(path, &x.r, e);
    if (rc == 0 && !(x.computed = tmpfile()))
        rc = err_set(e, ERR_IO, "cannot create a temporary file: %s", strerror(errno));
    if (rc == 0 && files_out && mkdir(files_out, 0700) != 0)
        rc = err_set(e, ERR_IO, "cannot create %s: %s", files_out, strerror(errno));
    bool made_files = rc == 0 && files_out;
    if (rc == 0) rc = extract_members(&x, db_out, e);
    if (rc == 0) rc = check_manifest(&x, info, e);
    if (x.computed) fclose(x.computed);
    archive_close(x.r);
    unlink(x.manifest_tmp);
    if (rc) {
        unlink(db_out);
        if (made_files) backup_remove_tree(files_out);
        return rc;
    }
    info->files = x.files;
    info->db_bytes = x.db_bytes;
    return 0;
}
