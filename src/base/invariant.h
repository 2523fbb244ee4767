/*
 * invariant.h — dojo's assertion, kept in every build (release included).
 *
 * ASSERT(cond) states something the code relies on and that no input can
 * make false: a commit group has one outcome, commit timestamps never go
 * backwards, the sync version rules hold, a ledger movement keeps the
 * balance equal to the sum. When one is false the program is wrong, and
 * going on would turn the bug into lost or corrupt data, so the process
 * logs what failed and where, and aborts (the crash is then a test
 * failure, or a core dump for the operator). Operating errors — bad input,
 * a full disk, a dropped connection — are never asserted: they are
 * returned as errors (base/err.h).
 *
 * Cheap expressions only: these run in production.
 * Thread: any.
 */
#ifndef DOJO_BASE_INVARIANT_H
#define DOJO_BASE_INVARIANT_H

__attribute__((noreturn, cold)) void invariant_failed(const char *expr, const char *file, int line,
                                                      const char *func);

#define ASSERT(cond)                                                                               \
    ((__builtin_expect(!!(cond), 1)) ? (void)0                                                     \
                                     : invariant_failed(#cond, __FILE__, __LINE__, __func__))

#endif
