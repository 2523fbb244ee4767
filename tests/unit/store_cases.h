/*
 * store_cases.h — the store's contract (store.h, schema.h) as both engines
 * must keep it: schema reports, versions and repair, document round trips,
 * the guards the database enforces (also against raw SQL), savepoints,
 * injected faults, reader snapshots, truncation, and index scans checked
 * against schema.c's key order.
 *
 * Included once by test_store.c (SQLite) and by test_store_pg.c
 * (PostgreSQL). Each opens its engine in its own setup (store_fixture.h),
 * describes what differs (store_engine: the engine's wording of a refusal,
 * its raw SQL and how to run it) and lists STORE_SHARED_CASES in its main,
 * next to the cases only its engine has.
 * Thread: the test's main thread.
 */
#ifndef DOJO_TEST_STORE_CASES_H
#define DOJO_TEST_STORE_CASES_H

#include "store_fixture.h"

/* sql, run outside the store, succeeds. */
/* The key bytes of v (NULL: missing) as a literal of the engine's SQL. */
static void key_literal(fixture *f, const json_t *v, char *out, size_t out_bytes)
{
    key_buf k;
    assert_int_equal(key_encode(v, &k), 0);
    int n = snprintf(out, out_bytes, "%s", f->eng->bytes_open);
    for (size_t i = 0; i < k.len; i++)
        n += snprintf(out + n, out_bytes - (size_t)n, "%02x", k.bytes[i]);
    snprintf(out + n, out_bytes - (size_t)n, "%s", f->eng->bytes_close);
    key_buf_free(&k);
}

static void exec_raw_ok(fixture *f, const char *sql)
{
    char code[RAW_CODE_BYTES_MAX], msg[RAW_MSG_BYTES_MAX];
    f->eng->exec_raw(f, sql, code, msg);
    if (code[0]) fail_msg("%s: %s (%s)", sql, code, msg);
}

/* sql, run outside the store, is refused by the CHECK of a nonnegative
 * field. */
static void assert_raw_check_refuses(fixture *f, const char *sql)
{
    char code[RAW_CODE_BYTES_MAX], msg[RAW_MSG_BYTES_MAX];
    f->eng->exec_raw(f, sql, code, msg);
    if (strcmp(code, f->eng->check_code) != 0)
        fail_msg("%s: %s (%s), wanted %s", sql, code[0] ? code : "ran", msg, f->eng->check_code);
}

/* --- schema ------------------------------------------------------------------------------ */

static void reopen_reports_schema_up_to_date(void **state)
{
    fixture *f = *state;
    reopen(f, &schema_v1);
    assert_string_equal(f->report, "schema up to date (version 1)");
}

static void newer_schema_version_is_refused(void **state)
{
    fixture *f = *state;
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_meta_set(f->w, "schema_version", "7", &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    store *st = NULL;
    int rc = store_open(f->url, &schema_v1, &st, f->report, &f->e);
    assert_int_equal(rc, ERR_STORAGE);
    assert_null(st);
    assert_string_equal(f->e.msg,
                        "database schema version 7 is newer than this dojo (1); upgrade dojo");
}

static void migration_adds_changes_and_drops_keeping_rows(void **state)
{
    fixture *f = *state;
    json_t *u = user_doc(1, 5);
    json_t *run = run_doc(id_of(u), 2000, json_string("queued"));
    json_object_set_new(run, "workflowId", json_string("wf1"));
    insert_all(f, "users", json_pack("[O]", u));
    insert_all(f, "runs", json_pack("[O]", run));
    json_t *ledger = ledger_doc(id_of(u), 2001, 5);
    insert_all(f, "transactions", json_pack("[O]", ledger));

    reopen(f, &schema_v2);
    assert_string_equal(f->report, f->eng->migrated_report);
    assert_int_equal(count_rows(f, f->w, "runs"), 1);
    assert_int_equal(count_rows(f, f->w, "transactions"), 1);

    /* The new index answers, the new guard refuses, the old guard still holds. */
    const schema_table *runs = schema_table_by_name(&schema_v2, "runs");
    json_t *eq = json_pack("[s]", "wf1");
    store_range r = {.table = runs,
                     .index = schema_index_by_name(runs, "by_workflow"),
                     .lo = eq,
                     .hi = eq,
                     .lo_inclusive = true,
                     .hi_inclusive = true,
                     .limit = 10};
    json_t *rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 1);
    assert_string_equal(id_of(json_array_get(rows, 0)), id_of(run));
    json_decref(rows);
    json_decref(eq);
    json_object_set_new(run, "cost", json_integer(-1));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_int_equal(store_replace(f->w, runs, run, &f->e), ERR_CONSTRAINT);
    assert_non_null(strstr(f->e.msg, "runs_cost_nonnegative"));
    store_savepoint_rollback(f->w);
    assert_int_equal(
        store_delete(f->w, schema_table_by_name(&schema_v2, "transactions"), id_of(ledger), &f->e),
        ERR_CONSTRAINT);
    store_rollback(f->w);

    reopen(f, &schema_v2);
    assert_string_equal(f->report, "schema up to date (version 2)");
    store *st = NULL;
    assert_int_equal(store_open(f->url, &schema_v1, &st, f->report, &f->e), ERR_STORAGE);
    assert_string_equal(f->e.msg,
                        "database schema version 2 is newer than this dojo (1); upgrade dojo");
    json_decref(u);
    json_decref(run);
    json_decref(ledger);
}

static void missing_and_changed_objects_are_repaired(void **state)
{
    fixture *f = *state;
    exec_raw_ok(f, "DROP INDEX runs_by_status");
    exec_raw_ok(f, "CREATE INDEX runs_stray ON runs (creation_time)");
    for (const char *const *sql = f->eng->damage_sql; *sql; sql++)
        exec_raw_ok(f, *sql);
    reopen(f, &schema_v1);
    assert_string_equal(f->report, "repaired schema (version 1): created 2 indexes, 1 trigger; "
                                   "dropped 2 indexes");
    reopen(f, &schema_v1);
    assert_string_equal(f->report, "schema up to date (version 1)");
}

static void engine_is_named_and_answers_ping(void **state)
{
    fixture *f = *state;
    assert_string_equal(store_engine_name(f->st), f->eng->name);
    assert_ptr_equal(store_schema(f->st), &schema_v1);
    assert_ok(f, store_ping(f->w, &f->e));
}

/* --- documents ------------------------------------------------------------------------------ */

static void insert_get_replace_delete_round_trip(void **state)
{
    fixture *f = *state;
    const schema_table *users = table("users");
    json_t *u = user_doc(1, 10);
    json_object_set_new(u, "_creationTime", json_real(1712345678901.2346));
    json_object_set_new(u, "ratio", json_real(0.1));
    json_object_set_new(u, "whole", json_real(5.0));
    json_object_set_new(u, "big", json_integer(9007199254740993LL));
    json_object_set_new(u, "name", json_string("Zoë \"quoted\" \\ \t 日本"));
    json_object_set_new(u, "identity", json_pack("{s:[i,b,n], s:{}}", "nested", 1, 1, "empty"));
    insert_all(f, "users", json_pack("[O]", u));

    json_t *got = NULL;
    assert_ok(f, store_get(f->w, users, id_of(u), &got, &f->e));
    assert_true(json_equal(got, u));
    assert_true(json_is_integer(json_object_get(got, "big")));
    assert_true(json_is_integer(json_object_get(got, "credits")));
    assert_true(json_is_real(json_object_get(got, "whole")));
    assert_true(json_real_value(json_object_get(got, "_creationTime")) == 1712345678901.2346);
    json_decref(got);
    /* The column holds the same time. */
    char *ct = f->eng->query_raw(f, f->eng->creation_time_sql);
    assert_string_equal(ct, "1712345678901.2346");
    free(ct);

    json_object_set_new(u, "credits", json_integer(3));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_replace(f->w, users, u, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    assert_ok(f, store_get(f->w, users, id_of(u), &got, &f->e));
    assert_int_equal(json_integer_value(json_object_get(got, "credits")), 3);
    json_decref(got);

    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_delete(f->w, users, id_of(u), &f->e));
    assert_int_equal(store_delete(f->w, users, id_of(u), &f->e), ERR_NOT_FOUND);
    assert_int_equal(store_replace(f->w, users, u, &f->e), ERR_NOT_FOUND);
    assert_ok(f, store_commit(f->w, &f->e));
    got = json_true();
    assert_ok(f, store_get(f->w, users, id_of(u), &got, &f->e));
    assert_null(got);
    assert_int_equal(count_rows(f, f->w, "users"), 0);
    json_decref(u);
}

/* Reals come back as reals however they are printed (jsonb prints 1e300 as
 * 301 digits). */
/* Documents are bytes on every engine (doc_codec.h): a string with U+0000,
 * in a field or an indexed field, comes back as it was — PostgreSQL
 * no longer refuses what jsonb could not hold. */
static void a_string_with_a_nul_character_round_trips(void **state)
{
    fixture *f = *state;
    json_t *u = user_doc(1, 0);
    json_object_set_new(u, "name", json_stringn("a\0b", 3));
    json_object_set_new(u, "tokenIdentifier", json_stringn("issuer|\0x", 9));
    insert_all(f, "users", json_pack("[O]", u));
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(u), &got, &f->e));
    assert_true(json_equal(got, u));
    json_decref(got);
    json_t *eq = json_pack("[s#]", "issuer|\0x", (size_t)9);
    store_range r = range_of("users", "by_token", eq, true, eq, true, false, 10);
    json_t *rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 1);
    assert_true(json_equal(json_array_get(rows, 0), u));
    json_decref(rows);
    json_decref(eq);
    json_decref(u);
}

static void huge_reals_come_back_as_reals(void **state)
{
    fixture *f = *state;
    json_t *u = user_doc(1, 0);
    json_object_set_new(u, "huge", json_real(1e300));
    json_object_set_new(u, "negative", json_real(-2.5e40));
    json_object_set_new(u, "tiny", json_real(5e-324));
    json_object_set_new(u, "text", json_string("100000000000000000000000 stays text"));
    json_object_set_new(u, "list", json_pack("[f, I]", 1e20, (json_int_t)-9223372036854775807LL));
    insert_all(f, "users", json_pack("[O]", u));
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(u), &got, &f->e));
    assert_non_null(got);
    assert_true(json_real_value(json_object_get(got, "huge")) == 1e300);
    assert_true(json_real_value(json_object_get(got, "negative")) == -2.5e40);
    assert_true(json_real_value(json_object_get(got, "tiny")) == 5e-324);
    assert_string_equal(json_string_value(json_object_get(got, "text")),
                        "100000000000000000000000 stays text");
    json_t *list = json_object_get(got, "list");
    assert_true(json_real_value(json_array_get(list, 0)) == 1e20);
    assert_true(json_integer_value(json_array_get(list, 1)) == -9223372036854775807LL);
    json_decref(got);
    json_decref(u);
}

static void metadata_is_read_and_overwritten(void **state)
{
    fixture *f = *state;
    char *v = (char *)"unset";
    assert_ok(f, store_meta_get(f->w, "ts", &v, &f->e));
    assert_null(v);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_meta_set(f->w, "ts", "41", &f->e));
    assert_ok(f, store_meta_set(f->w, "ts", "42", &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    assert_ok(f, store_meta_get(f->w, "ts", &v, &f->e));
    assert_string_equal(v, "42");
    free(v);
}

static void reader_connection_cannot_write(void **state)
{
    fixture *f = *state;
    store_conn *r;
    assert_ok(f, store_connect(f->st, false, &r, &f->e));
    json_t *u = user_doc(1, 1);
    assert_int_equal(store_insert(r, table("users"), u, &f->e), ERR_STORAGE);
    assert_non_null(strstr(f->e.msg, "insert into users"));
    assert_non_null(strstr(f->e.msg, f->eng->read_only_refusal));
    assert_ok(f, store_begin(r, false, &f->e));
    assert_int_equal(store_insert(r, table("users"), u, &f->e), ERR_STORAGE);
    store_rollback(r);
    json_decref(u);
    store_disconnect(r);
    assert_int_equal(count_rows(f, f->w, "users"), 0);
}

/* --- guards ------------------------------------------------------------------------------ */

static void unique_index_refuses_a_duplicate(void **state)
{
    fixture *f = *state;
    json_t *a = user_doc(1, 0), *b = user_doc(2, 0);
    json_object_set_new(b, "tokenIdentifier", json_string("issuer|user1"));
    insert_all(f, "users", json_pack("[O]", a));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_int_equal(store_insert(f->w, table("users"), b, &f->e), ERR_CONSTRAINT);
    assert_non_null(strstr(f->e.msg, f->eng->unique_refusal));
    assert_non_null(strstr(f->e.msg, "users_by_token_unique"));
    store_savepoint_rollback(f->w);
    /* Documents without the field, or with null, do not collide. */
    json_object_del(b, "tokenIdentifier");
    json_t *c = user_doc(3, 0), *d = user_doc(4, 0), *g = user_doc(5, 0);
    json_object_del(c, "tokenIdentifier");
    json_object_set_new(d, "tokenIdentifier", json_null());
    json_object_set_new(g, "tokenIdentifier", json_null());
    assert_ok(f, store_insert(f->w, table("users"), b, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), c, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), d, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), g, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    assert_int_equal(count_rows(f, f->w, "users"), 5);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
    json_decref(g);
}

static void append_only_table_refuses_update_and_delete(void **state)
{
    fixture *f = *state;
    json_t *t = ledger_doc("u", 1, 5);
    insert_all(f, "transactions", json_pack("[O]", t));
    json_object_set_new(t, "amount", json_integer(500));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_int_equal(store_replace(f->w, table("transactions"), t, &f->e), ERR_CONSTRAINT);
    assert_string_equal(f->e.msg, "replace in transactions: transactions is append-only: rows are "
                                  "never updated or deleted");
    store_savepoint_rollback(f->w);
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_int_equal(store_delete(f->w, table("transactions"), id_of(t), &f->e), ERR_CONSTRAINT);
    assert_non_null(strstr(f->e.msg, "append-only"));
    store_savepoint_rollback(f->w);
    assert_ok(f, store_commit(f->w, &f->e));
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("transactions"), id_of(t), &got, &f->e));
    assert_int_equal(json_integer_value(json_object_get(got, "amount")), 5);
    json_decref(got);
    json_decref(t);
}

/* sql, run outside the store, is refused by an append-only guard. */
static void assert_raw_guard_refuses(fixture *f, const char *sql)
{
    char code[RAW_CODE_BYTES_MAX], msg[RAW_MSG_BYTES_MAX];
    f->eng->exec_raw(f, sql, code, msg);
    if (strcmp(code, f->eng->guard_code) != 0)
        fail_msg("%s: %s (%s), wanted %s", sql, code[0] ? code : "ran", msg, f->eng->guard_code);
    assert_string_equal(msg, "transactions is append-only: rows are never updated or deleted");
}

static void append_only_table_refuses_raw_sql(void **state)
{
    fixture *f = *state;
    insert_all(f, "transactions", json_pack("[o]", ledger_doc("u", 1, 5)));
    assert_raw_guard_refuses(f, "UPDATE transactions SET creation_time = 2");
    assert_raw_guard_refuses(f, "DELETE FROM transactions");
    for (const char *const *sql = f->eng->more_guarded_writes; *sql; sql++)
        assert_raw_guard_refuses(f, *sql);
    assert_int_equal(count_rows(f, f->w, "transactions"), 1);
}

static void negative_credits_are_refused_by_the_database(void **state)
{
    fixture *f = *state;
    json_t *neg = user_doc(1, -1);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_int_equal(store_insert(f->w, table("users"), neg, &f->e), ERR_CONSTRAINT);
    assert_string_equal(f->e.msg, f->eng->check_refusal);
    store_rollback(f->w);
    json_t *ok = user_doc(2, 0);
    insert_all(f, "users", json_pack("[O]", ok));

    /* The column the guard checks holds the field's key bytes (key_codec.h). */
    char sql[512], none[64], bytes[64];
    key_literal(f, NULL, none, sizeof none);
    json_t *negatives = json_pack("[i,f]", -5, -0.5);
    for (size_t i = 0; i < json_array_size(negatives); i++) {
        key_literal(f, json_array_get(negatives, i), bytes, sizeof bytes);
        snprintf(sql, sizeof sql, "UPDATE users SET k_credits = %s", bytes);
        assert_raw_check_refuses(f, sql);
    }
    json_decref(negatives);
    json_t *minus_one = json_integer(-1), *text = json_string("-1");
    key_literal(f, minus_one, bytes, sizeof bytes);
    snprintf(sql, sizeof sql, "INSERT INTO users VALUES ('x', 1, %s, %s, %s, %s)", none, none,
             bytes, none);
    assert_raw_check_refuses(f, sql);
    /* Not a number, or missing: not the guard's business. */
    key_literal(f, text, bytes, sizeof bytes);
    snprintf(sql, sizeof sql, "INSERT INTO users VALUES ('y', 1, %s, %s, %s, %s)", none, none,
             bytes, none);
    exec_raw_ok(f, sql);
    snprintf(sql, sizeof sql, "INSERT INTO users VALUES ('z', 1, %s, %s, %s, %s)", none, none, none,
             none);
    exec_raw_ok(f, sql);
    json_decref(minus_one);
    json_decref(text);
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(ok), &got, &f->e));
    assert_int_equal(json_integer_value(json_object_get(got, "credits")), 0);
    json_decref(got);
    json_decref(neg);
    json_decref(ok);
}

/* --- transactions ------------------------------------------------------------------------- */

static void savepoint_rollback_undoes_only_that_mutation(void **state)
{
    fixture *f = *state;
    json_t *a = user_doc(1, 0), *b = user_doc(2, 0), *c = user_doc(3, 0);
    const schema_table *users = table("users");
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_ok(f, store_insert(f->w, users, a, &f->e));
    assert_ok(f, store_savepoint_release(f->w, &f->e));
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_ok(f, store_insert(f->w, users, b, &f->e));
    store_savepoint_rollback(f->w);
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_ok(f, store_insert(f->w, users, c, &f->e));
    assert_ok(f, store_savepoint_release(f->w, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));

    json_t *got;
    assert_ok(f, store_get(f->w, users, id_of(a), &got, &f->e));
    assert_non_null(got);
    json_decref(got);
    assert_ok(f, store_get(f->w, users, id_of(b), &got, &f->e));
    assert_null(got);
    assert_ok(f, store_get(f->w, users, id_of(c), &got, &f->e));
    assert_non_null(got);
    json_decref(got);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void injected_fault_mid_transaction_writes_nothing(void **state)
{
    fixture *f = *state;
    const schema_table *users = table("users"), *ledger = table("transactions");
    assert_ok(f, store_begin(f->w, true, &f->e));
    for (int i = 0; i < 3; i++) {
        json_t *u = user_doc(i, 10);
        assert_ok(f, store_insert(f->w, users, u, &f->e));
        json_t *t = ledger_doc(id_of(u), 1, 10);
        assert_ok(f, store_insert(f->w, ledger, t, &f->e));
        json_decref(u);
        json_decref(t);
    }
    store_inject_fault_after(2);
    json_t *u = user_doc(7, 1), *v = user_doc(8, 1);
    assert_ok(f, store_insert(f->w, users, u, &f->e));
    assert_int_equal(store_insert(f->w, users, v, &f->e), ERR_STORAGE);
    assert_string_equal(f->e.msg, "insert into users: injected fault");
    store_rollback(f->w);
    json_decref(u);
    json_decref(v);

    assert_int_equal(count_rows(f, f->w, "users"), 0);
    assert_int_equal(count_rows(f, f->w, "transactions"), 0);
    assert_int_equal(
        raw_long(f, "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM transactions)"),
        0);
}

static void injected_fault_at_commit_writes_nothing(void **state)
{
    fixture *f = *state;
    json_t *u = user_doc(1, 10);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), u, &f->e));
    store_inject_fault_after(1);
    assert_int_equal(store_commit(f->w, &f->e), ERR_STORAGE);
    store_rollback(f->w);
    store_rollback(f->w); /* safe twice */
    assert_int_equal(count_rows(f, f->w, "users"), 0);
    json_decref(u);
}

static void injected_fault_strikes_the_nth_statement_once(void **state)
{
    fixture *f = *state;
    store_inject_fault_after(3);
    assert_ok(f, store_ping(f->w, &f->e));
    assert_ok(f, store_ping(f->w, &f->e));
    assert_int_equal(store_ping(f->w, &f->e), ERR_STORAGE);
    assert_string_equal(f->e.msg, "ping: injected fault");
    assert_ok(f, store_ping(f->w, &f->e));
    /* At begin too: no transaction is left open. */
    store_inject_fault_after(1);
    assert_int_equal(store_begin(f->w, true, &f->e), ERR_STORAGE);
    assert_ok(f, store_begin(f->w, true, &f->e));
    store_rollback(f->w);
}

static void reader_snapshot_ignores_later_commits_until_it_ends(void **state)
{
    fixture *f = *state;
    const schema_table *users = table("users");
    store_conn *r;
    assert_ok(f, store_connect(f->st, false, &r, &f->e));
    insert_all(f, "users", json_pack("[o]", user_doc(1, 1)));

    assert_ok(f, store_begin(r, false, &f->e));
    int64_t n;
    assert_ok(f, store_count(r, users, &n, &f->e));
    assert_int_equal(n, 1);
    json_t *later = user_doc(2, 2);
    insert_all(f, "users", json_pack("[O]", later)); /* the writer is not blocked */
    assert_ok(f, store_count(r, users, &n, &f->e));
    assert_int_equal(n, 1);
    json_t *got = json_true();
    assert_ok(f, store_get(r, users, id_of(later), &got, &f->e));
    assert_null(got);
    char *ts = NULL;
    assert_ok(f, store_meta_get(r, "ts", &ts, &f->e)); /* reading meta is not blocked either */
    assert_ok(f, store_commit(r, &f->e));

    assert_ok(f, store_begin(r, false, &f->e));
    assert_ok(f, store_count(r, users, &n, &f->e));
    assert_int_equal(n, 2);
    store_rollback(r);
    store_disconnect(r);
    json_decref(later);
}

static void truncate_all_empties_tables_and_keeps_guards(void **state)
{
    fixture *f = *state;
    insert_all(f, "users", json_pack("[o]", user_doc(1, 1)));
    json_t *t = ledger_doc("u", 1, 5);
    insert_all(f, "transactions", json_pack("[O]", t));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_meta_set(f->w, "ts", "9", &f->e));
    assert_ok(f, store_truncate_all(f->w, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    assert_int_equal(count_rows(f, f->w, "users"), 0);
    assert_int_equal(count_rows(f, f->w, "transactions"), 0);
    char *ts = NULL;
    assert_ok(f, store_meta_get(f->w, "ts", &ts, &f->e));
    assert_string_equal(ts, "9");
    free(ts);

    insert_all(f, "transactions", json_pack("[O]", t));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_int_equal(store_delete(f->w, table("transactions"), id_of(t), &f->e), ERR_CONSTRAINT);
    store_rollback(f->w);
    /* A truncation that is rolled back keeps rows and guards. */
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_truncate_all(f->w, &f->e));
    store_rollback(f->w);
    assert_int_equal(count_rows(f, f->w, "transactions"), 1);
    assert_raw_guard_refuses(f, "DELETE FROM transactions");
    json_decref(t);
}

/* --- scans --------------------------------------------------------------------------------- */

static void scan_with_prefix_equality_returns_that_prefix_ascending(void **state)
{
    fixture *f = *state;
    json_t *mine = insert_runs(f, "alice", 7);
    json_t *eq = json_pack("[s]", "alice");
    store_range r = range_of("runs", "by_user", eq, true, eq, true, false, 100);
    json_t *rows = scan(f, &r);
    json_t *want = sorted_by_key(mine, r.index, false);
    assert_same_ids(rows, want);
    json_decref(rows);
    json_decref(want);
    json_decref(eq);
    json_decref(mine);
}

static void scan_descending_stops_at_an_exclusive_cursor(void **state)
{
    fixture *f = *state;
    json_t *mine = insert_runs(f, "alice", 9);
    json_t *want_all = sorted_by_key(mine, schema_index_by_name(table("runs"), "by_user"), true);
    json_t *cursor =
        schema_key_of(schema_index_by_name(table("runs"), "by_user"), json_array_get(want_all, 3));
    json_t *lo = json_pack("[s]", "alice");
    store_range r = range_of("runs", "by_user", lo, true, cursor, false, true, 100);
    json_t *rows = scan(f, &r);
    json_t *want = json_array();
    for (size_t i = 4; i < json_array_size(want_all); i++)
        json_array_append(want, json_array_get(want_all, i));
    assert_same_ids(rows, want);
    json_decref(rows);
    json_decref(want);
    json_decref(want_all);
    json_decref(cursor);
    json_decref(lo);
    json_decref(mine);
}

static void scan_ascending_starts_after_an_exclusive_cursor(void **state)
{
    fixture *f = *state;
    json_t *mine = insert_runs(f, "alice", 9);
    const schema_index *ix = schema_index_by_name(table("runs"), "by_user");
    json_t *want_all = sorted_by_key(mine, ix, false);
    json_t *cursor = schema_key_of(ix, json_array_get(want_all, 4));
    json_t *hi = json_pack("[s]", "alice");
    store_range r = range_of("runs", "by_user", cursor, false, hi, true, false, 100);
    json_t *rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 4);
    assert_string_equal(id_of(json_array_get(rows, 0)), id_of(json_array_get(want_all, 5)));
    /* Inclusive, the cursor row comes back first. */
    r.lo_inclusive = true;
    json_decref(rows);
    rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 5);
    assert_string_equal(id_of(json_array_get(rows, 0)), id_of(json_array_get(want_all, 4)));
    json_decref(rows);
    json_decref(want_all);
    json_decref(cursor);
    json_decref(hi);
    json_decref(mine);
}

static void scan_returns_at_most_limit_rows(void **state)
{
    fixture *f = *state;
    json_decref(insert_runs(f, "alice", 6));
    store_range r = range_of("runs", "by_creation_time", NULL, false, NULL, false, false, 4);
    json_t *rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 4);
    json_decref(rows);
    r.limit = 1000;
    rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 12);
    json_decref(rows);
}

static void scan_of_an_exclusive_equal_bound_is_empty(void **state)
{
    fixture *f = *state;
    json_decref(insert_runs(f, "alice", 3));
    json_t *eq = json_pack("[s]", "alice");
    store_range r = range_of("runs", "by_user", eq, false, eq, true, false, 100);
    json_t *rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 0);
    json_decref(rows);
    json_decref(eq);
}

static void paging_two_at_a_time_yields_each_row_once_in_order(void **state)
{
    fixture *f = *state;
    json_t *mine = insert_runs(f, "alice", 25);
    const schema_index *ix = schema_index_by_name(table("runs"), "by_user");
    for (int descending = 0; descending < 2; descending++) {
        json_t *seen = page_through(f, "by_user", "alice", descending);
        json_t *want = sorted_by_key(mine, ix, descending);
        assert_int_equal(json_array_size(seen), 25);
        assert_same_ids(seen, want);
        json_decref(seen);
        json_decref(want);
    }
    json_decref(mine);
}

static void scan_order_and_bounds_agree_with_schema_key_order(void **state)
{
    fixture *f = *state;
    json_t *docs = insert_mixed_statuses(f);
    json_t *all_bounds[] = {
        NULL,
        json_pack("[s]", "a"),
        json_pack("[f]", 2.5),
        json_pack("[i]", 3),
        json_pack("[n]"),
        json_pack("[i,f]", 3, 6999.0),
        json_pack("[s,f,s]", "a", 6999.0, "zzzz"),
        json_pack("[I]", (json_int_t)9007199254740993LL),
        json_pack("[f]", 9007199254740992.0),
        json_pack("[b]", 0),
        json_pack("[s]", ""),
    };
    enum { N_BOUNDS = sizeof all_bounds / sizeof all_bounds[0] };
    json_t *bounds[N_BOUNDS];
    size_t n_bounds = 0;
    for (size_t i = 0; i < N_BOUNDS; i++)
        if (f->eng->booleans_in_keys || !all_bounds[i] ||
            !json_is_boolean(json_array_get(all_bounds[i], 0)))
            bounds[n_bounds++] = all_bounds[i];
    for (size_t lo = 0; lo < n_bounds; lo++)
        for (size_t hi = 0; hi < n_bounds; hi++)
            for (int flags = 0; flags < 8; flags++) {
                store_range r = range_of("runs", "by_status", bounds[lo], flags & 1, bounds[hi],
                                         flags & 2, flags & 4, 1000);
                check_scan_against_schema_order(f, docs, r);
            }
    for (size_t i = 0; i < N_BOUNDS; i++)
        json_decref(all_bounds[i]);
    json_decref(docs);
}

/* A property: for random documents and random bounds, every scan returns
 * exactly the documents schema_key_cmp_prefix puts inside, in its order. */
static void random_ranges_agree_with_schema_key_order(void **state)
{
    fixture *f = *state;
    bool booleans = f->eng->booleans_in_keys;
    unsigned seed = 20240611;
    json_t *docs = json_array();
    for (int i = 0; i < 150; i++) {
        json_t *d = run_doc("u", 8000 + rand_r(&seed) % 5, random_value(&seed, booleans));
        json_array_append_new(docs, d);
    }
    json_t *copy = json_copy(docs);
    insert_all(f, "runs", copy);
    const schema_index *ix = schema_index_by_name(table("runs"), "by_status");
    for (int round = 0; round < 300; round++) {
        json_t *b[2] = {NULL, NULL};
        for (int k = 0; k < 2; k++) {
            int shape = rand_r(&seed) % 4;
            if (shape == 0) continue; /* unbounded */
            const json_t *doc = json_array_get(docs, (size_t)rand_r(&seed) % json_array_size(docs));
            json_t *key = schema_key_of(ix, doc);
            if (json_is_null(json_array_get(key, 0)) || rand_r(&seed) % 3 == 0) {
                json_t *v = random_value(&seed, booleans);
                json_array_set_new(key, 0, v && !json_is_null(v) ? v : json_string("m"));
            }
            size_t len = (size_t)shape; /* 1..3 values */
            while (json_array_size(key) > len)
                json_array_remove(key, json_array_size(key) - 1);
            b[k] = key;
        }
        store_range r = {.table = table("runs"),
                         .index = ix,
                         .lo = b[0],
                         .hi = b[1],
                         .lo_inclusive = rand_r(&seed) % 2,
                         .hi_inclusive = rand_r(&seed) % 2,
                         .descending = rand_r(&seed) % 2,
                         .limit = 1000};
        check_scan_against_schema_order(f, docs, r);
        json_decref(b[0]);
        json_decref(b[1]);
    }
    json_decref(docs);
}

/* A bound holding U+0000 (which jsonb cannot store) still cuts in the right
 * place. */
static void a_bound_with_a_nul_character_cuts_in_the_right_place(void **state)
{
    fixture *f = *state;
    json_t *docs = json_array();
    const char *statuses[] = {"a", "a\x01", "ab", "b", ""};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        json_array_append_new(docs, run_doc("u", 9000 + (double)i, json_string(statuses[i])));
    insert_all(f, "runs", json_copy(docs));
    json_t *nul = json_pack("[s%]", "a\0z", (size_t)3);
    json_t *nul_key = json_pack("[s%,f,s]", "a\0z", (size_t)3, 1.0, "id");
    for (int flags = 0; flags < 8; flags++) {
        json_t *lo = flags & 4 ? nul_key : nul;
        store_range r = range_of("runs", "by_status", lo, flags & 1, NULL, false, flags & 2, 100);
        check_scan_against_schema_order(f, docs, r);
        r = range_of("runs", "by_status", NULL, false, lo, flags & 1, flags & 2, 100);
        check_scan_against_schema_order(f, docs, r);
        r = range_of("runs", "by_status", nul, true, nul, true, flags & 2, 100);
        check_scan_against_schema_order(f, docs, r);
    }
    json_decref(nul);
    json_decref(nul_key);
    json_decref(docs);
}

static void hot_statements_are_prepared_once(void **state)
{
    fixture *f = *state;
    json_t *mine = insert_runs(f, "alice", 4);
    json_t *eq = json_pack("[s]", "alice");
    store_range r = range_of("runs", "by_user", eq, true, eq, true, true, 2);
    uint64_t before = 0;
    for (int round = 0; round < 3; round++) {
        if (round == 1) before = f->eng->prepare_count(f->w);
        json_t *rows = scan(f, &r);
        json_decref(rows);
        json_t *got;
        assert_ok(f, store_get(f->w, table("runs"), id_of(json_array_get(mine, 0)), &got, &f->e));
        json_decref(got);
        insert_all(f, "users", json_pack("[o]", user_doc(round, 1)));
    }
    assert_int_equal(f->eng->prepare_count(f->w), before);
    json_decref(eq);
    json_decref(mine);
}

/* Ranges read ahead (store_prefetch: the callers of a commit group) give
 * what the same scans give: found, absent, and within the range's limit;
 * only PostgreSQL, where a read costs a round trip, reads ahead. */
static void prefetched_ranges_give_what_their_scans_give(void **state)
{
    fixture *f = *state;
    json_t *u1 = user_doc(1, 0);
    insert_all(f, "users", json_pack("[O]", u1));
    json_t *found = json_pack("[s]", "issuer|user1"), *absent = json_pack("[s]", "issuer|nobody");
    store_range r[] = {
        range_of("users", "by_token", found, true, found, true, false, 1),
        range_of("users", "by_token", absent, true, absent, true, false, 1),
    };
    assert_int_equal(store_prefetches(f->st), strcmp(f->eng->name, "postgres") == 0);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_prefetch(f->w, r, 2, &f->e));
    json_t *rows = NULL;
    assert_ok(f, store_scan(f->w, &r[0], &rows, &f->e));
    assert_int_equal(json_array_size(rows), 1);
    assert_string_equal(id_of(json_array_get(rows, 0)), id_of(u1));
    json_decref(rows);
    assert_ok(f, store_scan(f->w, &r[1], &rows, &f->e));
    assert_int_equal(json_array_size(rows), 0);
    json_decref(rows);
    assert_ok(f, store_commit(f->w, &f->e));
    json_decref(found);
    json_decref(absent);
    json_decref(u1);
}

/* Every shared case, for an engine file's list of tests; T wraps one in
 * that file's setup and teardown. */
#define STORE_SHARED_CASES(T)                                                                      \
    T(reopen_reports_schema_up_to_date), T(newer_schema_version_is_refused),                       \
        T(migration_adds_changes_and_drops_keeping_rows),                                          \
        T(missing_and_changed_objects_are_repaired), T(engine_is_named_and_answers_ping),          \
        T(insert_get_replace_delete_round_trip), T(huge_reals_come_back_as_reals),                 \
        T(a_string_with_a_nul_character_round_trips), T(metadata_is_read_and_overwritten),         \
        T(reader_connection_cannot_write), T(unique_index_refuses_a_duplicate),                    \
        T(append_only_table_refuses_update_and_delete), T(append_only_table_refuses_raw_sql),      \
        T(negative_credits_are_refused_by_the_database),                                           \
        T(savepoint_rollback_undoes_only_that_mutation),                                           \
        T(injected_fault_mid_transaction_writes_nothing),                                          \
        T(injected_fault_at_commit_writes_nothing),                                                \
        T(injected_fault_strikes_the_nth_statement_once),                                          \
        T(reader_snapshot_ignores_later_commits_until_it_ends),                                    \
        T(truncate_all_empties_tables_and_keeps_guards),                                           \
        T(scan_with_prefix_equality_returns_that_prefix_ascending),                                \
        T(scan_descending_stops_at_an_exclusive_cursor),                                           \
        T(scan_ascending_starts_after_an_exclusive_cursor), T(scan_returns_at_most_limit_rows),    \
        T(scan_of_an_exclusive_equal_bound_is_empty),                                              \
        T(paging_two_at_a_time_yields_each_row_once_in_order),                                     \
        T(scan_order_and_bounds_agree_with_schema_key_order),                                      \
        T(random_ranges_agree_with_schema_key_order),                                              \
        T(a_bound_with_a_nul_character_cuts_in_the_right_place),                                   \
        T(hot_statements_are_prepared_once), T(prefetched_ranges_give_what_their_scans_give)

#endif
