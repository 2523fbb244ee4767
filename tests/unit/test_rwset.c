/*
 * test_rwset.c — read-set / write-set intersection: a write can change a
 * query exactly when its old or new document lies in a range the query read.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rwset.h"
#include "engine/validator.h"
#include "store/schema.h"

static const schema_index runs_indexes[] = {
    {.name = "by_user", .fields = {"userId", "_creationTime"}, .n_fields = 2},
    {.name = "by_status", .fields = {"status", "_creationTime"}, .n_fields = 2},
};
static const schema_table runs = {
    .name = "runs", .number = 3, .doc = &v_any, .indexes = runs_indexes, .n_indexes = 2};
static const schema_table users = {.name = "users", .number = 1, .doc = &v_any};

static json_t *run_doc(const char *id, const char *user, const char *status, double ct)
{
    return json_pack("{s:s, s:s, s:s, s:f}", "_id", id, "userId", user, "status", status,
                     "_creationTime", ct);
}

static void write_touching_a_users_range_intersects(void **state)
{
    (void)state;
    read_set rs;
    read_set_init(&rs);
    json_t *eq = json_pack("[s]", "user_a");
    read_set_add(&rs, &runs, &runs_indexes[0], eq, true, eq, true);
    write_set ws;
    write_set_init(&ws);
    json_t *doc = run_doc("r1", "user_a", "queued", 10.0);
    write_set_add(&ws, &runs, "r1", NULL, doc);
    assert_true(rwset_intersects(&rs, &ws));
    json_decref(doc);
    json_decref(eq);
    write_set_free(&ws);
    read_set_free(&rs);
}

static void write_for_another_user_does_not_intersect(void **state)
{
    (void)state;
    read_set rs;
    read_set_init(&rs);
    json_t *eq = json_pack("[s]", "user_a");
    read_set_add(&rs, &runs, &runs_indexes[0], eq, true, eq, true);
    write_set ws;
    write_set_init(&ws);
    json_t *doc = run_doc("r2", "user_b", "queued", 10.0);
    write_set_add(&ws, &runs, "r2", NULL, doc);
    assert_false(rwset_intersects(&rs, &ws));
    json_decref(doc);
    json_decref(eq);
    write_set_free(&ws);
    read_set_free(&rs);
}

static void update_moving_a_row_out_of_a_range_intersects(void **state)
{
    (void)state;
    /* A query over queued runs must hear that a run left the queue. */
    read_set rs;
    read_set_init(&rs);
    json_t *eq = json_pack("[s]", "queued");
    read_set_add(&rs, &runs, &runs_indexes[1], eq, true, eq, true);
    json_t *before = run_doc("r1", "user_a", "queued", 10.0);
    json_t *after = run_doc("r1", "user_a", "processing", 10.0);
    write_set ws;
    write_set_init(&ws);
    write_set_add(&ws, &runs, "r1", before, after);
    assert_true(rwset_intersects(&rs, &ws));
    json_decref(before);
    json_decref(after);
    json_decref(eq);
    write_set_free(&ws);
    read_set_free(&rs);
}

static void page_range_ends_at_its_last_row(void **state)
{
    (void)state;
    /* A page read newest-first down to (user_a, 50): a newer row is inside,
     * an older one (next page) is not. */
    read_set rs;
    read_set_init(&rs);
    json_t *hi = json_pack("[s]", "user_a");
    json_t *lo = json_pack("[s, f, s]", "user_a", 50.0, "r50");
    read_set_add(&rs, &runs, &runs_indexes[0], lo, true, hi, true);
    json_t *newer = run_doc("r60", "user_a", "queued", 60.0);
    json_t *older = run_doc("r40", "user_a", "queued", 40.0);
    write_set a, b;
    write_set_init(&a);
    write_set_init(&b);
    write_set_add(&a, &runs, "r60", NULL, newer);
    write_set_add(&b, &runs, "r40", NULL, older);
    assert_true(rwset_intersects(&rs, &a));
    assert_false(rwset_intersects(&rs, &b));
    json_decref(newer);
    json_decref(older);
    json_decref(lo);
    json_decref(hi);
    write_set_free(&a);
    write_set_free(&b);
    read_set_free(&rs);
}

static void exclusive_bound_excludes_the_cursor_row(void **state)
{
    (void)state;
    read_range r = {.table = &runs, .index = &runs_indexes[0]};
    r.lo = json_pack("[s, f, s]", "user_a", 50.0, "r50");
    r.lo_inclusive = false;
    json_t *at = json_pack("[s, f, s]", "user_a", 50.0, "r50");
    json_t *above = json_pack("[s, f, s]", "user_a", 50.0, "r51");
    assert_false(read_range_contains(&r, at));
    assert_true(read_range_contains(&r, above));
    json_decref(at);
    json_decref(above);
    json_decref(r.lo);
}

static void point_read_intersects_only_its_document(void **state)
{
    (void)state;
    read_set rs;
    read_set_init(&rs);
    read_set_add_point(&rs, &users, "u1");
    json_t *u1 = json_pack("{s:s, s:f}", "_id", "u1", "_creationTime", 1.0);
    json_t *u2 = json_pack("{s:s, s:f}", "_id", "u2", "_creationTime", 2.0);
    write_set a, b;
    write_set_init(&a);
    write_set_init(&b);
    write_set_add(&a, &users, "u1", u1, NULL);
    write_set_add(&b, &users, "u2", NULL, u2);
    assert_true(rwset_intersects(&rs, &a));
    assert_false(rwset_intersects(&rs, &b));
    json_decref(u1);
    json_decref(u2);
    write_set_free(&a);
    write_set_free(&b);
    read_set_free(&rs);
}

static void other_table_never_intersects(void **state)
{
    (void)state;
    read_set rs;
    read_set_init(&rs);
    read_set_add(&rs, &users, &schema_by_creation_time, NULL, false, NULL, false);
    json_t *doc = run_doc("r1", "user_a", "queued", 1.0);
    write_set ws;
    write_set_init(&ws);
    write_set_add(&ws, &runs, "r1", NULL, doc);
    assert_false(rwset_intersects(&rs, &ws));
    json_decref(doc);
    write_set_free(&ws);
    read_set_free(&rs);
}

static void too_many_ranges_fall_back_to_everything(void **state)
{
    (void)state;
    read_set rs;
    read_set_init(&rs);
    for (int i = 0; i <= READ_SET_RANGES_MAX; i++)
        read_set_add_point(&rs, &users, "u");
    assert_true(rs.whole_database);
    json_t *doc = run_doc("r1", "x", "queued", 1.0);
    write_set ws;
    write_set_init(&ws);
    write_set_add(&ws, &runs, "r1", NULL, doc);
    assert_true(rwset_intersects(&rs, &ws));
    json_decref(doc);
    write_set_free(&ws);
    read_set_free(&rs);
}

static void repeated_writes_fold_into_first_old_and_last_new(void **state)
{
    (void)state;
    write_set ws;
    write_set_init(&ws);
    json_t *v1 = run_doc("r1", "a", "queued", 1.0), *v2 = run_doc("r1", "a", "processing", 1.0),
           *v3 = run_doc("r1", "a", "completed", 1.0);
    write_set_add(&ws, &runs, "r1", v1, v2);
    write_set_add(&ws, &runs, "r1", v2, v3);
    assert_int_equal(ws.n_recs, 1);
    assert_ptr_equal(ws.recs[0].old_doc, v1);
    assert_ptr_equal(ws.recs[0].new_doc, v3);
    json_decref(v1);
    json_decref(v2);
    json_decref(v3);
    write_set_free(&ws);
}

/* A write summarised by table (another process's commit too big to list):
 * every read of that table may have changed, no read of another table. */
static void a_whole_table_write_intersects_every_read_of_that_table_only(void **state)
{
    (void)state;
    write_set ws;
    write_set_init(&ws);
    assert_int_equal(write_set_add_table(&ws, &runs), 0);
    assert_int_equal(write_set_add_table(&ws, &runs), 0); /* once is enough */
    assert_int_equal(ws.n_whole_tables, 1);
    json_t *eq = json_pack("[s]", "user_a");
    read_set by_user, point, scan, other;
    read_set_init(&by_user);
    read_set_init(&point);
    read_set_init(&scan);
    read_set_init(&other);
    read_set_add(&by_user, &runs, &runs_indexes[0], eq, true, eq, true);
    read_set_add_point(&point, &runs, "r1");
    read_set_add(&scan, &runs, &schema_by_creation_time, NULL, false, NULL, false);
    read_set_add_point(&other, &users, "u1");
    assert_true(rwset_intersects(&by_user, &ws));
    assert_true(rwset_intersects(&point, &ws));
    assert_true(rwset_intersects(&scan, &ws));
    assert_false(rwset_intersects(&other, &ws));
    assert_true(write_set_touches_table(&ws, "runs"));
    assert_false(write_set_touches_table(&ws, "users"));
    assert_true(write_set_covers_table(&ws, &runs));
    assert_false(write_set_covers_table(&ws, &users));
    json_decref(eq);
    read_set_free(&by_user);
    read_set_free(&point);
    read_set_free(&scan);
    read_set_free(&other);
    write_set_free(&ws);
}

static void whole_tables_are_kept_by_copy_and_append(void **state)
{
    (void)state;
    write_set src, copy, appended;
    write_set_init(&src);
    write_set_init(&copy);
    write_set_init(&appended);
    write_set_add_table(&src, &users);
    json_t *doc = run_doc("r1", "user_a", "queued", 1.0);
    write_set_add(&src, &runs, "r1", NULL, doc);
    write_set_copy(&copy, &src);
    write_set_append(&appended, &src);
    assert_int_equal(src.n_recs + src.n_whole_tables, 0);
    for (int i = 0; i < 2; i++) {
        const write_set *ws = i ? &copy : &appended;
        assert_true(write_set_covers_table(ws, &users));
        assert_false(write_set_covers_table(ws, &runs)); /* runs stays precise */
        assert_int_equal(ws->n_recs, 1);
    }
    json_decref(doc);
    write_set_free(&src);
    write_set_free(&copy);
    write_set_free(&appended);
}

/* Cut down to their index keys, the documents of a write set intersect the
 * same reads as before, and hold far fewer bytes. */
static void keys_only_write_sets_intersect_exactly_as_whole_documents(void **state)
{
    (void)state;
    json_t *big = json_pack("{s:s, s:s, s:s, s:f, s:s}", "_id", "r1", "userId", "user_a", "status",
                            "queued", "_creationTime", 10.0, "input", "");
    char *padding = calloc(1, 100000);
    memset(padding, 'p', 99999);
    json_object_set_new(big, "input", json_string(padding));
    free(padding);
    json_t *moved = json_deep_copy(big);
    json_object_set_new(moved, "status", json_string("processing"));
    write_set whole, keys;
    write_set_init(&whole);
    write_set_init(&keys);
    write_set_add(&whole, &runs, "r1", big, moved);
    write_set_copy(&keys, &whole);
    write_set_keep_keys(&keys, NULL);
    assert_false(keys.everything);
    assert_null(json_object_get(keys.recs[0].new_doc, "input"));
    assert_string_equal(json_string_value(json_object_get(keys.recs[0].new_doc, "status")),
                        "processing");
    assert_true(write_set_bytes(&keys) * 50 < write_set_bytes(&whole));
    const char *users_read[] = {"user_a", "user_b"},
               *statuses_read[] = {"queued", "processing", "failed"};
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 3; j++) {
            read_set rs;
            read_set_init(&rs);
            json_t *u = json_pack("[s]", users_read[i]), *st = json_pack("[s]", statuses_read[j]);
            read_set_add(&rs, &runs, &runs_indexes[0], u, true, u, true);
            read_set_add(&rs, &runs, &runs_indexes[1], st, true, st, true);
            assert_int_equal(rwset_intersects(&rs, &whole), rwset_intersects(&rs, &keys));
            read_set_free(&rs);
            read_set_init(&rs);
            read_set_add_point(&rs, &runs, i ? "r2" : "r1");
            assert_int_equal(rwset_intersects(&rs, &whole), rwset_intersects(&rs, &keys));
            read_set_free(&rs);
            json_decref(u);
            json_decref(st);
        }
    }
    json_decref(big);
    json_decref(moved);
    write_set_free(&whole);
    write_set_free(&keys);
}

/* Widened, a write set touches everything and keeps only the table asked. */
static void widening_keeps_only_the_named_table(void **state)
{
    (void)state;
    write_set ws;
    write_set_init(&ws);
    json_t *r = run_doc("r1", "user_a", "queued", 1.0), *u = json_pack("{s:s}", "_id", "u1");
    write_set_add(&ws, &runs, "r1", NULL, r);
    write_set_add(&ws, &users, "u1", NULL, u);
    write_set_add_table(&ws, &runs);
    write_set_widen(&ws, "users");
    assert_true(ws.everything);
    assert_int_equal(ws.n_recs, 1);
    assert_ptr_equal(ws.recs[0].table, &users);
    read_set rs;
    read_set_init(&rs);
    read_set_add_point(&rs, &runs, "other");
    assert_true(rwset_intersects(&rs, &ws));
    read_set_free(&rs);
    json_decref(r);
    json_decref(u);
    write_set_free(&ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(write_touching_a_users_range_intersects),
        cmocka_unit_test(write_for_another_user_does_not_intersect),
        cmocka_unit_test(update_moving_a_row_out_of_a_range_intersects),
        cmocka_unit_test(page_range_ends_at_its_last_row),
        cmocka_unit_test(exclusive_bound_excludes_the_cursor_row),
        cmocka_unit_test(point_read_intersects_only_its_document),
        cmocka_unit_test(other_table_never_intersects),
        cmocka_unit_test(too_many_ranges_fall_back_to_everything),
        cmocka_unit_test(repeated_writes_fold_into_first_old_and_last_new),
        cmocka_unit_test(a_whole_table_write_intersects_every_read_of_that_table_only),
        cmocka_unit_test(whole_tables_are_kept_by_copy_and_append),
        cmocka_unit_test(keys_only_write_sets_intersect_exactly_as_whole_documents),
        cmocka_unit_test(widening_keeps_only_the_named_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
