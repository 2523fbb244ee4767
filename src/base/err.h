/*
 * err.h — the one error convention of dojo.
 *
 * Every fallible function returns an int: 0 (ERR_OK) on success or one of the
 * negative ERR_* codes below. When the caller needs to tell a person what went
 * wrong it passes an err_t, which carries the code, a message a person can act
 * on, and, for application errors, the error data sent to the client
 * ({code, ...}). err_name() names a code the way the contract spells it.
 *
 * Thread: any. An err_t belongs to one thread at a time.
 */
#ifndef DOJO_BASE_ERR_H
#define DOJO_BASE_ERR_H

#include <jansson.h>
#include <stddef.h>

enum {
    ERR_OK = 0,
    /* Application errors (api.md §4): reported to the client as function errors. */
    ERR_UNAUTHENTICATED = -1,
    ERR_FORBIDDEN = -2,
    ERR_NOT_FOUND = -3,
    ERR_INVALID_ARGUMENT = -4,
    ERR_INSUFFICIENT_CREDITS = -5,
    ERR_UNKNOWN_MODEL = -6,
    ERR_INVALID_TRANSITION = -7,
    /* Authentication refusals: a token that fails verification (401). */
    ERR_AUTH = -20,
    /* Operating errors: reported without internal detail, logged in full. */
    ERR_INTERNAL = -40,
    ERR_NOMEM = -41,
    ERR_STORAGE = -42,
    ERR_IO = -43,
    ERR_CONSTRAINT = -44,  /* the store refused a write (ledger guard, unique index) */
    ERR_BUSY = -45,        /* overloaded: a bounded queue is full */
    ERR_LIMIT = -46,       /* a size or count bound was exceeded */
    ERR_UNAVAILABLE = -47, /* a remote service (issuer, server) did not answer */
};

#define ERR_MSG_BYTES_MAX 512

typedef struct err_t {
    int code;
    char msg[ERR_MSG_BYTES_MAX];
    json_t *data; /* owned; application error data, NULL when none */
} err_t;

/* The contract's name for a code, e.g. "NOT_FOUND". Never NULL. */
const char *err_name(int code);

/* True for the codes of api.md §4 that are reported as function errors. */
int err_is_application(int code);

void err_init(err_t *e);
void err_clear(err_t *e);

/* Sets code and message; returns code so callers can `return err_set(...)`. */
int err_set(err_t *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Like err_set, and also sets data = {code: err_name(code)} plus the fields of
 * extra (which may be NULL; a reference is stolen). */
int err_app(err_t *e, int code, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Moves src into dst (dst is cleared first). */
void err_move(err_t *dst, err_t *src);

#endif
