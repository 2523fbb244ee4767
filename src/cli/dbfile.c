/*
 * dbfile.c — the database as the offline commands (verify, export, import) see it:
 * which database --db / $DOJO_DB / ./.dojo/dojo.db names, the file behind a
 * SQLite URL, and whether another process has that file open.
 *
 * The last one reads SQLite's documented file locks without SQLite: every
 * connection to a database in WAL mode (which is how dojo runs SQLite) holds
 * a shared POSIX lock on the "shared" byte range that starts 2 bytes after
 * the 1 GiB lock-byte offset, for as long as it is open — an idle `dojo
 * serve` included. F_GETLK reports such a lock held by another process
 * (never one of our own), with its pid. It must run before this process
 * opens the database itself: closing any descriptor of a file drops all of
 * this process's POSIX locks on it, SQLite's included.
 * Thread: the main thread of a command-line process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/store.h"

#define SQLITE_PENDING_BYTE_OFFSET 0x40000000LL /* SQLite's lock-byte page offset */
#define SQLITE_SHARED_FIRST_OFFSET (SQLITE_PENDING_BYTE_OFFSET + 2)
#define SQLITE_SHARED_RANGE_BYTES 510

const char *cli_db_resolve(const char *db_opt)
{
    if (db_opt && *db_opt) return db_opt;
    const char *env = getenv("DOJO_DB");
    return env && *env ? env : CLI_DEFAULT_DB;
}

const char *cli_sqlite_path(const char *db_url)
{
    if (strncmp(db_url, "postgres://", 11) == 0 || strncmp(db_url, "postgresql://", 13) == 0)
        return NULL;
    return strncmp(db_url, "sqlite:", 7) == 0 ? db_url + 7 : db_url;
}

bool cli_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

const char *const cli_sqlite_suffixes[CLI_SQLITE_FILES] = {"", "-wal", "-shm", "-journal"};

const char *cli_db_shown(const char *db_url)
{
    static char shown[1024]; /* the command line's one thread */
    store_redact_url(db_url, shown, sizeof shown);
    return shown;
}

bool cli_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

const char *cli_db_existing(const char *command, const char *db_opt)
{
    const char *db = cli_db_resolve(db_opt);
    const char *path = cli_sqlite_path(db);
    if (path && !cli_file_exists(path)) {
        /* Opening would create an empty database: refuse instead. */
        cli_error(command,
                  "there is no database at %s: pass --db sqlite:PATH (`dojo dev` keeps it in "
                  "./.dojo/dojo.db)",
                  path);
        return NULL;
    }
    return db;
}

int cli_sqlite_in_use(const char *path, long *pid_out)
{
    *pid_out = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -1;
    struct flock lk = {.l_type = F_WRLCK,
                       .l_whence = SEEK_SET,
                       .l_start = SQLITE_SHARED_FIRST_OFFSET,
                       .l_len = SQLITE_SHARED_RANGE_BYTES};
    int rc = fcntl(fd, F_GETLK, &lk);
    close(fd);
    if (rc != 0) return -1;
    if (lk.l_type == F_UNLCK) return 0;
    *pid_out = (long)lk.l_pid;
    return 1;
}
