/*
 * store_pg_url.h — where the PostgreSQL store tests (test_store_pg.c,
 * test_store_notify_pg.c) find their server, and the URL that confines a
 * test to a schema of its own: DOJO_TEST_PG_URL (scripts/pg.sh start prints
 * it; scripts/test.sh sets it), with options=-csearch_path=<schema> added as
 * libpq reads URLs.
 * Thread: the test's main thread.
 */
#ifndef DOJO_TEST_STORE_PG_URL_H
#define DOJO_TEST_STORE_PG_URL_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* DOJO_TEST_PG_URL, or NULL when unset or empty: then the tests skip. */
static const char *base_url(void)
{
    const char *url = getenv("DOJO_TEST_PG_URL");
    return url && url[0] ? url : NULL;
}

/* The base URL with a search_path of schema_name. */
static void schema_url(const char *schema_name, char *out, size_t out_bytes)
{
    const char *base = base_url();
    snprintf(out, out_bytes, "%s%soptions=-csearch_path%%3D%s", base, strchr(base, '?') ? "&" : "?",
             schema_name);
}

#endif
