/*
 * sqlite_checkpoint.h — WAL checkpoints off the storage thread. SQLite
 * normally copies the write-ahead log back into the database (a checkpoint)
 * inside a committing connection once the log passes 1,000 pages (4 MiB of 4 KiB pages); on dojo's
 * single writer that puts all the checkpoint I/O on the storage thread,
 * between commits. Instead the writer connection turns automatic checkpoints
 * off and, from its WAL hook, wakes this checkpointer, which runs PASSIVE
 * checkpoints on a connection and thread of its own, concurrently with new
 * commits (WAL mode allows it).
 * Thread: its own; sqlite_checkpointer_wake may be called from any thread.
 */
#ifndef DOJO_STORE_SQLITE_CHECKPOINT_H
#define DOJO_STORE_SQLITE_CHECKPOINT_H

#include "base/err.h"

#define SQLITE_CHECKPOINT_WAL_BYTES (4 * 1024 * 1024) /* wake the checkpointer past this log */

typedef struct sqlite_checkpointer sqlite_checkpointer;

int sqlite_checkpointer_start(const char *path, sqlite_checkpointer **out, err_t *e);
/* Asks for a checkpoint soon (cheap; called after commits). */
void sqlite_checkpointer_wake(sqlite_checkpointer *cp);
/* Finishes the checkpoint in progress, stops the thread, frees cp. */
void sqlite_checkpointer_stop(sqlite_checkpointer *cp);
/* Checkpoints completed so far (tests). */
unsigned long sqlite_checkpointer_count(sqlite_checkpointer *cp);

#endif
