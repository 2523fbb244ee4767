/*
 * fuzz_backup.c — libFuzzer target: arbitrary bytes as a backup archive
 * that `dojo restore` is given (backup/backup.c backup_extract over
 * backup/archive.c): ustar headers, sizes, names, the manifest and its
 * checksum. Every input is unpacked into a scratch directory or refused with
 * a message; nothing crashes, leaks or reads past the file, and a refusal
 * leaves nothing unpacked behind it.
 * Thread: the fuzzer's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backup.h"
#include "base/invariant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/dojo-fuzz-backup.XXXXXX");
        ASSERT(mkdtemp(dir) != NULL);
    }
    char path[128], db[128], files[128];
    snprintf(path, sizeof path, "%s/in.tar", dir);
    snprintf(db, sizeof db, "%s/out.db", dir);
    snprintf(files, sizeof files, "%s/files", dir);
    FILE *f = fopen(path, "wb");
    ASSERT(f && fwrite(data, 1, size, f) == size && fclose(f) == 0);
    backup_contents info;
    err_t e;
    err_init(&e);
    int rc = backup_extract(path, db, files, &info, &e);
    struct stat sb;
    if (rc != 0) {
        ASSERT(e.msg[0]);
        ASSERT(stat(db, &sb) != 0 && stat(files, &sb) != 0); /* nothing left behind */
    } else {
        ASSERT(stat(db, &sb) == 0);
    }
    unlink(db);
    backup_remove_tree(files);
    unlink(path);
    err_clear(&e);
    return 0;
}
