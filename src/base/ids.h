/*
 * ids.h — document ids. An id is opaque to clients but names its table: it is
 * the lowercase base32 spelling of [table number (1 byte) | 14 bytes |
 * Fletcher-16 of those 15 bytes (2 bytes)], 28 characters. Ids of different
 * tables never collide, and an id of one table is recognised as such where
 * another table's id is expected. The 14 bytes are the creation time in
 * milliseconds (6 bytes, big-endian) then 8 random bytes: ids of one table
 * sort roughly by creation, so the primary-key B-tree grows at its end
 * instead of taking random page writes (64 random bits per millisecond keep
 * them unguessable and unique).
 *
 * Ids of a table declared with random ids (the files of `_storage`, whose
 * URL is a capability: api.md §9) are longer: [table number | 17 random
 * bytes | Fletcher-16], 20 bytes, 32 characters — 136 random bits, so that
 * whoever does not hold one cannot guess one.
 * Thread: any (randomness from OpenSSL's thread-safe RAND_bytes).
 */
#ifndef DOJO_BASE_IDS_H
#define DOJO_BASE_IDS_H

#include <stdbool.h>

#define ID_CHARS 28
#define ID_RANDOM_CHARS 32
#define ID_BYTES_MAX (ID_RANDOM_CHARS + 1)

/* Writes a new id for the table with this number (1..255) into out. */
int id_new(int table_number, char out[ID_BYTES_MAX]);
/* The same for a table with random ids: 136 random bits, no time. */
int id_new_random(int table_number, char out[ID_BYTES_MAX]);

/* Returns the table number encoded in id, or -1 when id is not a well-formed
 * dojo id (wrong length, alphabet or checksum). */
int id_table_number(const char *id);

/* Fills out with n random bytes; returns 0 or -1. */
int id_random_bytes(void *out, int n);

/* Writes a random lowercase hex string of 2*n_bytes characters plus NUL. */
int id_random_hex(char *out, int n_bytes);

#endif
