/*
 * system_tables.h — the tables the engine itself needs in every deployment:
 * `_env` (deployment variables, {name, value}), `_session_requests` (the
 * outcome of each WebSocket mutation by (sessionId, requestId), written in the
 * mutation's own transaction so that a resent mutation is answered from it
 * instead of running twice), `_storage` (the metadata of each stored file,
 * api.md §1 and §9: {sha256, size, contentType?, owner?}, its id a
 * capability of 136 random bits) and `_upload_tokens` (the one-time upload
 * URLs of files:generateUploadUrl: the SHA-256 of the token, its owner and
 * its expiry; the token itself is never stored). The application's schema lists them with
 * SYSTEM_TABLES so that DDL, ids and write sets treat them like any table.
 * Thread: constants, any.
 */
#ifndef DOJO_ENGINE_SYSTEM_TABLES_H
#define DOJO_ENGINE_SYSTEM_TABLES_H

#include "engine/validator.h"
#include "store/schema.h"

#define SYSTEM_TABLE_ENV "_env"
#define SYSTEM_TABLE_SESSION_REQUESTS "_session_requests"
#define SYSTEM_TABLE_NUMBER_ENV 250
#define SYSTEM_TABLE_NUMBER_SESSION_REQUESTS 251
#define SYSTEM_TABLE_STORAGE "_storage"
#define SYSTEM_TABLE_NUMBER_STORAGE 252
#define SYSTEM_TABLE_UPLOAD_TOKENS "_upload_tokens"
#define SYSTEM_TABLE_NUMBER_UPLOAD_TOKENS 253
#define STORAGE_SHA256_HEX_CHARS 64
#define STORAGE_CONTENT_TYPE_CHARS_MAX 255

#define ENV_NAME_BYTES_MAX 128
#define ENV_VALUE_BYTES_MAX (64 * 1024)

extern const validator system_env_doc, system_session_request_doc;
extern const schema_index system_env_indexes[1], system_session_request_indexes[2];
extern const validator system_storage_doc, system_upload_token_doc;
extern const schema_index system_storage_indexes[1], system_upload_token_indexes[2];

#define SYSTEM_TABLES                                                                              \
    {.name = SYSTEM_TABLE_ENV,                                                                     \
     .number = SYSTEM_TABLE_NUMBER_ENV,                                                            \
     .doc = &system_env_doc,                                                                       \
     .indexes = system_env_indexes,                                                                \
     .n_indexes = 1,                                                                               \
     .system = true},                                                                              \
        {.name = SYSTEM_TABLE_SESSION_REQUESTS,                                                    \
         .number = SYSTEM_TABLE_NUMBER_SESSION_REQUESTS,                                           \
         .doc = &system_session_request_doc,                                                       \
         .indexes = system_session_request_indexes,                                                \
         .n_indexes = 2,                                                                           \
         .system = true},                                                                          \
        {.name = SYSTEM_TABLE_STORAGE,                                                             \
         .number = SYSTEM_TABLE_NUMBER_STORAGE,                                                    \
         .doc = &system_storage_doc,                                                               \
         .indexes = system_storage_indexes,                                                        \
         .n_indexes = 1,                                                                           \
         .system = true,                                                                           \
         .random_ids = true},                                                                      \
    {                                                                                              \
        .name = SYSTEM_TABLE_UPLOAD_TOKENS, .number = SYSTEM_TABLE_NUMBER_UPLOAD_TOKENS,           \
        .doc = &system_upload_token_doc, .indexes = system_upload_token_indexes, .n_indexes = 2,   \
        .system = true                                                                             \
    }

#endif
