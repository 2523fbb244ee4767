/*
 * system_tables.h — the tables the engine itself needs in every deployment:
 * `_env` (deployment variables, {name, value}) and `_session_requests` (the
 * outcome of each WebSocket mutation by (sessionId, requestId), written in the
 * mutation's own transaction so that a resent mutation is answered from it
 * instead of running twice). The application's schema lists them with
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

#define ENV_NAME_BYTES_MAX 128
#define ENV_VALUE_BYTES_MAX (64 * 1024)

extern const validator system_env_doc, system_session_request_doc;
extern const schema_index system_env_indexes[1], system_session_request_indexes[2];

#define SYSTEM_TABLES                                                                              \
    {.name = SYSTEM_TABLE_ENV,                                                                     \
     .number = SYSTEM_TABLE_NUMBER_ENV,                                                            \
     .doc = &system_env_doc,                                                                       \
     .indexes = system_env_indexes,                                                                \
     .n_indexes = 1,                                                                               \
     .system = true},                                                                              \
    {                                                                                              \
        .name = SYSTEM_TABLE_SESSION_REQUESTS, .number = SYSTEM_TABLE_NUMBER_SESSION_REQUESTS,     \
        .doc = &system_session_request_doc, .indexes = system_session_request_indexes,             \
        .n_indexes = 2, .system = true                                                             \
    }

#endif
