/*
 * files.h — where the bytes of stored files live (api.md §9): one interface,
 * two file stores, chosen with the database.
 *
 *   SQLite (sqlite:DIR/NAME.db): a content-addressed directory beside the
 *   database — DIR/files/ for a database named dojo.db (so .dojo/files/ for
 *   `dojo dev`), DIR/NAME.files/ for any other name, so that two databases
 *   never share one. A file is DIR/files/<first 2 hex>/<sha256 hex>; an
 *   upload is written to DIR/files/tmp/, fsynced, renamed into place and the
 *   directory fsynced, all before its storage id is returned. Documents of
 *   equal content share one file. Downloads send it with sendfile(2).
 *
 *   PostgreSQL (postgres://…): the bytes are rows of the table
 *   _dojo_file_chunks(storage_id, seq, data) of LIMIT_FILE_PG_CHUNK_BYTES
 *   each, in the deployment's own schema, so every node of a multi-node
 *   deployment serves every file with no shared disk. An upload's rows are
 *   written in one transaction on a connection of the file store, which
 *   holds an advisory lock on the storage id until the `_storage` document
 *   is committed or given up.
 *
 * A file's bytes are stored (and durable) before its `_storage` document is
 * committed, and removed only once no document names them; bytes whose
 * document never came (a crash between the two) are orphans, removed by
 * files_sweep at start. The store never removes bytes an upload in progress
 * is about to name (the directory store keeps those digests pending; the
 * PostgreSQL store's advisory lock keeps another node's sweep off them).
 *
 * Every function here blocks on disk or on the database: call them on the
 * thread pool or a command-line tool's own thread, never on the event loop.
 * Thread: any; a files store is shared by every thread, a file_writer is
 * used by one thread at a time.
 */
#ifndef DOJO_STORE_FILES_H
#define DOJO_STORE_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/sha256.h"
#include "store/store.h"

typedef struct files files;
typedef struct file_writer file_writer;

#define FILES_PATH_BYTES_MAX 4096

/* Opens the file store of the database at db_url (the URL store_open was
 * given); st is the opened database (borrowed, must outlive the file store),
 * which the store reads to tell which bytes documents still name. create:
 * make its directory or table when missing (servers, import); a tool that
 * only reads (verify, export) leaves nothing behind. */
int files_open(const char *db_url, store *st, bool create, files **out, err_t *e);
void files_close(files *fs);
/* "directory <path>" or "PostgreSQL table _dojo_file_chunks", for logs. */
const char *files_describe(const files *fs);
/* True for the directory store: files_open_fd works (downloads use
 * sendfile); false: read the bytes with files_read. */
bool files_has_fds(const files *fs);

/* --- writing one file ------------------------------------------------------------ */

/* Starts storing the bytes of the file that will have this storage id. */
int files_write_begin(files *fs, const char *storage_id, file_writer **out, err_t *e);
/* Appends bytes; the SHA-256 is computed on the way. */
int file_writer_write(file_writer *w, const void *data, size_t len, err_t *e);
/* Makes the bytes durable under their digest: *digest_out and *size_out
 * say what was stored. The bytes stay pending (never removed) until
 * file_writer_end. */
int file_writer_seal(file_writer *w, uint8_t digest_out[SHA256_BYTES], uint64_t *size_out,
                     err_t *e);
/* Ends the upload and frees w: keep = the file's document was committed;
 * otherwise its bytes are removed (unless another document names them). A
 * writer that was not sealed is always abandoned: its bytes are removed. */
void file_writer_end(file_writer *w, bool keep);

/* --- reading -------------------------------------------------------------------------- */

/* Directory store: opens the file with this digest for reading; *fd_out is
 * the caller's to close. ERR_NOT_FOUND when the bytes are missing. */
int files_open_fd(files *fs, const char *sha256_hex, int *fd_out, uint64_t *size_out, err_t *e);
/* Reads up to len bytes of a file from offset into buf; *n_out is how many
 * (fewer only at the end). ERR_NOT_FOUND when the bytes are missing. */
int files_read(files *fs, const char *storage_id, const char *sha256_hex, uint64_t offset,
               void *buf, size_t len, size_t *n_out, err_t *e);
/* Hashes the whole file: 0 when it has size bytes hashing to sha256_hex;
 * otherwise ERR_NOT_FOUND (no bytes) or ERR_CONSTRAINT (a message saying
 * what differs). */
int files_check(files *fs, const char *storage_id, const char *sha256_hex, uint64_t size, err_t *e);

/* --- removing ------------------------------------------------------------------------- */

/* The document of this file was deleted: removes its bytes unless another
 * document (or an upload in progress) names them. */
int files_forget(files *fs, const char *storage_id, const char *sha256_hex, err_t *e);
/* Removes every file's bytes whose document is missing: the leftovers of a
 * crash. at_start also empties the directory store's temporary files (no
 * upload can be in progress then). *removed_out counts the files removed. */
int files_sweep(files *fs, bool at_start, int64_t *removed_out, err_t *e);
/* Removes every stored byte (import --replace), inside no transaction. */
int files_remove_all(files *fs, err_t *e);

/* The directory a SQLite database's files live in (see above); -1 when the
 * path does not fit. */
int files_dir_of_sqlite(const char *db_path, char out[FILES_PATH_BYTES_MAX]);

#endif
