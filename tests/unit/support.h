/*
 * support.h — small helpers shared by the cmocka unit tests.
 * Thread: the test's main thread.
 */
#ifndef DOJO_TEST_SUPPORT_H
#define DOJO_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* A fresh empty directory under $TMPDIR (or /tmp), removed by test_rmtree. */
char *test_mkdtemp(void);
void test_rmtree(const char *path);
/* Reads a whole file; NULL when it cannot. */
char *test_read_file(const char *path, size_t *len_out);

#endif
