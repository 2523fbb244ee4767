/*
 * sqlite_checkpoint.h — WAL checkpoints off the storage thread. SQLite
 * normally copies the write-ahead log back into the database (a checkpoint)
 * inside a committing connection once the log passes 1,000 pages; on dojo's
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

/* Wake the checkpointer past this much new log. A checkpoint copies each
 * page the log holds once, however many commits changed it: rarer ones copy
 * less (bench/storebench.c, runs:create: 27 KiB written per mutation in all
 * waking every 4 MiB, 21 every 16, 18 every 64). */
#define SQLITE_CHECKPOINT_WAL_BYTES (64 * 1024 * 1024)
/* The log never grows past this: the writer then checkpoints it all itself
 * and starts it again (sqlite.c, on_wal_commit). */
#define SQLITE_WAL_BYTES_MAX (256 * 1024 * 1024)

typedef struct sqlite_checkpointer sqlite_checkpointer;

int sqlite_checkpointer_start(const char *path, sqlite_checkpointer **out, err_t *e);
/* Asks for a checkpoint soon (cheap; called after commits). */
void sqlite_checkpointer_wake(sqlite_checkpointer *cp);
/* Finishes the checkpoint in progress, stops the thread, frees cp. */
void sqlite_checkpointer_stop(sqlite_checkpointer *cp);
/* Checkpoints that copied frames back so far, and the frames (tests). */
unsigned long sqlite_checkpointer_count(sqlite_checkpointer *cp);
unsigned long sqlite_checkpointer_frames(sqlite_checkpointer *cp);

#endif
