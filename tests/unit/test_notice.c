/*
 * test_notice.c — commit notices (engine/notice.h): what one process tells
 * the others about a commit must make them invalidate at least what the
 * commit's own write set would have — precisely while it fits in the bound,
 * by whole tables when it does not — and must never exceed the bound.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/notice.h"
#include "engine/rwset.h"
#include "engine/validator.h"
#include "store/schema.h"
#include "store/store.h"

#define NODE "0123456789abcdef"
#define OTHER_NODE "fedcba9876543210"
#define TS 1717000000123456789ull

static const schema_index users_indexes[] = {
    {.name = "by_token", .fields = {"tokenIdentifier"}, .n_fields = 1, .unique = true},
};
static const schema_index runs_indexes[] = {
    {.name = "by_user", .fields = {"userId", "_creationTime"}, .n_fields = 2},
    {.name = "by_status", .fields = {"status", "_creationTime"}, .n_fields = 2},
};
static const schema_table tables[] = {
    {.name = "users", .number = 1, .doc = &v_any, .indexes = users_indexes, .n_indexes = 1},
    {.name = "runs", .number = 3, .doc = &v_any, .indexes = runs_indexes, .n_indexes = 2},
};
static const schema test_schema = {.version = 1, .tables = tables, .n_tables = 2};
#define USERS (&tables[0])
#define RUNS (&tables[1])

static json_t *run_doc(const char *id, const char *user, const char *status, double ct)
{
    return json_pack("{s:s, s:s, s:s, s:f, s:s}", "_id", id, "userId", user, "status", status,
                     "_creationTime", ct, "prompt", "a long prompt nobody indexes");
}

static json_t *user_doc(const char *id, const char *token, int credits)
{
    return json_pack("{s:s, s:s, s:i, s:f}", "_id", id, "tokenIdentifier", token, "credits",
                     credits, "_creationTime", 5.5);
}

/* A read set of one equality range on ix. */
static void read_eq(read_set *rs, const schema_table *t, const schema_index *ix, const char *v)
{
    json_t *eq = json_pack("[s]", v);
    read_set_add(rs, t, ix, eq, true, eq, true);
    json_decref(eq);
}

/* Encodes ws, checks the bound, decodes it back into out. */
static void round_trip(const write_set *ws, size_t bound, notice *out)
{
    char *payload = notice_encode(NODE, TS, ws, bound);
    assert_non_null(payload);
    assert_true(strlen(payload) <= bound);
    err_t e;
    err_init(&e);
    assert_int_equal(notice_decode(&test_schema, payload, out, &e), 0);
    assert_string_equal(out->node_id, NODE);
    assert_true(out->ts == TS);
    free(payload);
}

static void a_notice_names_its_node_and_timestamp(void **state)
{
    (void)state;
    write_set ws;
    write_set_init(&ws);
    json_t *doc = user_doc("u1", "iss|a", 3);
    write_set_add(&ws, USERS, "u1", NULL, doc);
    notice n;
    round_trip(&ws, STORE_NOTIFY_PAYLOAD_BYTES_MAX, &n);
    assert_int_equal(n.writes.n_recs, 1);
    assert_false(n.writes.everything);
    assert_int_equal(n.writes.n_whole_tables, 0);
    json_decref(doc);
    write_set_free(&n.writes);
    write_set_free(&ws);
}

static void a_decoded_write_carries_index_fields_only(void **state)
{
    (void)state;
    write_set ws;
    write_set_init(&ws);
    json_t *doc = run_doc("r1", "u1", "queued", 10.0);
    write_set_add(&ws, RUNS, "r1", NULL, doc);
    notice n;
    round_trip(&ws, STORE_NOTIFY_PAYLOAD_BYTES_MAX, &n);
    assert_int_equal(n.writes.n_recs, 1);
    const write_rec *w = &n.writes.recs[0];
    assert_ptr_equal(w->table, RUNS);
    assert_string_equal(w->id, "r1");
    assert_null(w->old_doc);
    json_t *want = json_pack("{s:s, s:s, s:s, s:f}", "_id", "r1", "userId", "u1", "status",
                             "queued", "_creationTime", 10.0);
    assert_true(json_equal(w->new_doc, want));
    json_decref(want);
    json_decref(doc);
    write_set_free(&n.writes);
    write_set_free(&ws);
}

/* The decoded write set intersects exactly the read sets the original does. */
static void decoded_writes_intersect_what_the_originals_do(void **state)
{
    (void)state;
    json_t *before = run_doc("r1", "u1", "queued", 10.0);
    json_t *after = run_doc("r1", "u1", "processing", 10.0);
    json_t *user_before = user_doc("u2", "iss|b", 5), *user_after = user_doc("u2", "iss|b", 4);
    write_set ws;
    write_set_init(&ws);
    write_set_add(&ws, RUNS, "r1", before, after);
    write_set_add(&ws, USERS, "u2", user_before, user_after);
    notice n;
    round_trip(&ws, STORE_NOTIFY_PAYLOAD_BYTES_MAX, &n);

    struct {
        const schema_table *t;
        const schema_index *ix; /* NULL: a point read */
        const char *value;
        bool hit;
    } reads[] = {
        {RUNS, &runs_indexes[1], "queued", true},     /* the run left the queue */
        {RUNS, &runs_indexes[1], "processing", true}, /* and entered processing */
        {RUNS, &runs_indexes[1], "completed", false},
        {RUNS, &runs_indexes[0], "u1", true},
        {RUNS, &runs_indexes[0], "u9", false},
        {USERS, &users_indexes[0], "iss|b", true}, /* credits changed, key did not */
        {USERS, &users_indexes[0], "iss|c", false},
        {USERS, NULL, "u2", true},
        {USERS, NULL, "u3", false},
        {RUNS, NULL, "r1", true},
    };
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        read_set rs;
        read_set_init(&rs);
        if (reads[i].ix)
            read_eq(&rs, reads[i].t, reads[i].ix, reads[i].value);
        else
            read_set_add_point(&rs, reads[i].t, reads[i].value);
        assert_int_equal(rwset_intersects(&rs, &ws), reads[i].hit);
        if (rwset_intersects(&rs, &n.writes) != reads[i].hit)
            fail_msg("read %zu (%s %s): the decoded notice disagrees", i, reads[i].t->name,
                     reads[i].value);
        read_set_free(&rs);
    }
    /* A whole-table scan sees every write of its table. */
    read_set rs;
    read_set_init(&rs);
    read_set_add(&rs, RUNS, &schema_by_creation_time, NULL, false, NULL, false);
    assert_true(rwset_intersects(&rs, &n.writes));
    read_set_free(&rs);
    json_decref(before);
    json_decref(after);
    json_decref(user_before);
    json_decref(user_after);
    write_set_free(&n.writes);
    write_set_free(&ws);
}

static void a_document_written_twice_is_one_entry_first_old_last_new(void **state)
{
    (void)state;
    json_t *v1 = run_doc("r1", "u1", "queued", 10.0);
    json_t *v2 = run_doc("r1", "u1", "processing", 10.0);
    json_t *v3 = run_doc("r1", "u1", "completed", 10.0);
    write_set ws;
    write_set_init(&ws);
    /* Two mutations of one group: their records are appended, not folded. */
    write_set m1, m2;
    write_set_init(&m1);
    write_set_init(&m2);
    write_set_add(&m1, RUNS, "r1", v1, v2);
    write_set_add(&m2, RUNS, "r1", v2, v3);
    write_set_append(&ws, &m1);
    write_set_append(&ws, &m2);
    assert_int_equal(ws.n_recs, 2);
    notice n;
    round_trip(&ws, STORE_NOTIFY_PAYLOAD_BYTES_MAX, &n);
    assert_int_equal(n.writes.n_recs, 1);
    assert_string_equal(json_string_value(json_object_get(n.writes.recs[0].old_doc, "status")),
                        "queued");
    assert_string_equal(json_string_value(json_object_get(n.writes.recs[0].new_doc, "status")),
                        "completed");
    json_decref(v1);
    json_decref(v2);
    json_decref(v3);
    write_set_free(&n.writes);
    write_set_free(&ws);
}

static void a_deleted_document_decodes_as_a_delete(void **state)
{
    (void)state;
    json_t *doc = run_doc("r1", "u1", "queued", 10.0);
    write_set ws;
    write_set_init(&ws);
    write_set_add(&ws, RUNS, "r1", doc, NULL);
    notice n;
    round_trip(&ws, STORE_NOTIFY_PAYLOAD_BYTES_MAX, &n);
    assert_int_equal(n.writes.n_recs, 1);
    assert_non_null(n.writes.recs[0].old_doc);
    assert_null(n.writes.recs[0].new_doc);
    json_decref(doc);
    write_set_free(&n.writes);
    write_set_free(&ws);
}

/* Many runs and one user: the runs' listing is the biggest, so runs become
 * table-level while the user stays precise, and the notice fits. */
static void past_the_bound_the_biggest_table_is_summarised(void **state)
{
    (void)state;
    write_set ws;
    write_set_init(&ws);
    for (int i = 0; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%d", i);
        json_t *doc = run_doc(id, "u1", "queued", 10.0 + i);
        write_set_add(&ws, RUNS, id, NULL, doc);
        json_decref(doc);
    }
    json_t *user = user_doc("u1", "iss|a", 1);
    write_set_add(&ws, USERS, "u1", user, user);
    json_decref(user);
    notice n;
    round_trip(&ws, STORE_NOTIFY_PAYLOAD_BYTES_MAX, &n);
    assert_false(n.writes.everything);
    assert_true(write_set_covers_table(&n.writes, RUNS));
    assert_false(write_set_covers_table(&n.writes, USERS));
    assert_int_equal(n.writes.n_recs, 1);
    assert_ptr_equal(n.writes.recs[0].table, USERS);

    read_set rs;
    read_set_init(&rs);
    read_eq(&rs, RUNS, &runs_indexes[0], "someone else"); /* no run of theirs was written… */
    assert_false(rwset_intersects(&rs, &ws));
    assert_true(rwset_intersects(&rs, &n.writes)); /* …but the summary cannot tell */
    read_set_free(&rs);
    read_set_init(&rs);
    read_eq(&rs, USERS, &users_indexes[0], "iss|z");
    assert_false(rwset_intersects(&rs, &n.writes)); /* the users table stayed precise */
    read_set_free(&rs);
    write_set_free(&n.writes);
    write_set_free(&ws);
}

static void every_bound_is_kept_down_to_the_smallest(void **state)
{
    (void)state;
    write_set ws;
    write_set_init(&ws);
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%d", i);
        json_t *doc = run_doc(id, i % 2 ? "u1" : "u2", "queued", 10.0 + i);
        write_set_add(&ws, RUNS, id, NULL, doc);
        json_decref(doc);
        snprintf(id, sizeof id, "u%d", i);
        json_t *user = user_doc(id, id, i);
        write_set_add(&ws, USERS, id, NULL, user);
        json_decref(user);
    }
    for (size_t bound = NOTICE_PAYLOAD_BYTES_MIN; bound <= 8000; bound += 97) {
        notice n;
        round_trip(&ws, bound, &n); /* asserts the bound */
        /* Every write is still there, listed or summarised. */
        for (int i = 0; i < ws.n_recs; i++) {
            read_set rs;
            read_set_init(&rs);
            read_set_add_point(&rs, ws.recs[i].table, ws.recs[i].id);
            assert_true(rwset_intersects(&rs, &n.writes));
            read_set_free(&rs);
        }
        write_set_free(&n.writes);
    }
    write_set_free(&ws);
}

static void a_huge_write_set_still_fits(void **state)
{
    (void)state;
    write_set ws;
    write_set_init(&ws);
    for (int m = 0; m < 10; m++) {
        write_set one;
        write_set_init(&one);
        for (int i = 0; i < 2000; i++) {
            char id[24];
            snprintf(id, sizeof id, "r%d_%d", m, i);
            json_t *doc = run_doc(id, "u1", "queued", (double)i);
            write_set_add(&one, RUNS, id, NULL, doc);
            json_decref(doc);
        }
        write_set_append(&ws, &one);
    }
    notice n;
    round_trip(&ws, STORE_NOTIFY_PAYLOAD_BYTES_MAX, &n);
    assert_true(write_set_covers_table(&n.writes, RUNS));
    assert_int_equal(n.writes.n_recs, 0);
    write_set_free(&n.writes);
    write_set_free(&ws);
}

static void an_incomplete_write_set_says_all(void **state)
{
    (void)state;
    write_set ws;
    write_set_init(&ws);
    ws.everything = true;
    char *payload = notice_encode(NODE, TS, &ws, STORE_NOTIFY_PAYLOAD_BYTES_MAX);
    assert_non_null(strstr(payload, "\"all\":true"));
    notice n;
    err_t e;
    err_init(&e);
    assert_int_equal(notice_decode(&test_schema, payload, &n, &e), 0);
    assert_true(n.writes.everything);
    free(payload);
    write_set_free(&n.writes);
}

static void table_level_writes_survive_a_round_trip(void **state)
{
    (void)state;
    write_set ws;
    write_set_init(&ws);
    write_set_add_table(&ws, USERS);
    notice n;
    round_trip(&ws, STORE_NOTIFY_PAYLOAD_BYTES_MAX, &n);
    assert_true(write_set_covers_table(&n.writes, USERS));
    assert_false(write_set_covers_table(&n.writes, RUNS));
    write_set_free(&n.writes);
    write_set_free(&ws);
}

static void a_payload_without_node_or_ts_is_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "not json",
        "[1,2]",
        "{\"v\":1,\"ts\":\"12\"}",
        "{\"v\":1,\"node\":\"" NODE "\"}",
        "{\"v\":1,\"node\":\"short\",\"ts\":\"12\"}",
        "{\"v\":1,\"node\":\"" NODE "\",\"ts\":\"-12\"}",
        "{\"v\":1,\"node\":\"" NODE "\",\"ts\":12}",
        "{\"v\":1,\"node\":\"" NODE "\",\"ts\":\"99999999999999999999999\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        notice n;
        err_t e;
        err_init(&e);
        if (notice_decode(&test_schema, bad[i], &n, &e) != ERR_INVALID_ARGUMENT)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(n.writes.n_recs, 0);
        err_clear(&e);
    }
}

/* What cannot be read is taken as the widest write it could be. */
static void unreadable_parts_widen_instead_of_dropping(void **state)
{
    (void)state;
    struct {
        const char *body; /* after the header */
        bool everything;
        bool runs_whole;
        int n_recs;
    } cases[] = {
        {",\"v2stuff\":1}", false, false, 0},                        /* extra keys are fine */
        {",\"docs\":[[3,null,{\"_id\":\"r1\"}]]}", false, false, 1}, /* a minimal insert */
        {",\"docs\":[[3,null,null]]}", false, true, 0},              /* no document: table */
        {",\"docs\":[[3,{\"_id\":\"a\"},{\"_id\":\"b\"}]]}", false, true, 0},
        {",\"docs\":[[3,7,null]]}", false, true, 0},
        {",\"docs\":[[\"runs\",null,{\"_id\":\"r1\"}]]}", true, false, 0},
        {",\"docs\":[[200,null,{\"_id\":\"x\"}]]}", false, false, 0}, /* unknown table: skipped */
        {",\"docs\":{}}", true, false, 0},
        {",\"tables\":[3]}", false, true, 0},
        {",\"tables\":[\"runs\"]}", true, false, 0},
        {",\"tables\":[200]}", false, false, 0},
        {",\"all\":1}", true, false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char payload[512];
        snprintf(payload, sizeof payload, "{\"v\":1,\"node\":\"%s\",\"ts\":\"42\"%s", OTHER_NODE,
                 cases[i].body);
        notice n;
        err_t e;
        err_init(&e);
        assert_int_equal(notice_decode(&test_schema, payload, &n, &e), 0);
        if (n.writes.everything != cases[i].everything ||
            write_set_covers_table(&n.writes, RUNS) !=
                (cases[i].everything || cases[i].runs_whole) ||
            n.writes.n_recs != cases[i].n_recs)
            fail_msg("%s: everything %d, runs whole %d, %d records", payload, n.writes.everything,
                     write_set_covers_table(&n.writes, RUNS), n.writes.n_recs);
        write_set_free(&n.writes);
    }
}

static void another_version_touches_everything(void **state)
{
    (void)state;
    notice n;
    err_t e;
    err_init(&e);
    assert_int_equal(notice_decode(&test_schema,
                                   "{\"v\":2,\"node\":\"" OTHER_NODE "\",\"ts\":\"7\",\"docs\":[]}",
                                   &n, &e),
                     0);
    assert_true(n.ts == 7);
    assert_true(n.writes.everything);
    write_set_free(&n.writes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_notice_names_its_node_and_timestamp),
        cmocka_unit_test(a_decoded_write_carries_index_fields_only),
        cmocka_unit_test(decoded_writes_intersect_what_the_originals_do),
        cmocka_unit_test(a_document_written_twice_is_one_entry_first_old_last_new),
        cmocka_unit_test(a_deleted_document_decodes_as_a_delete),
        cmocka_unit_test(past_the_bound_the_biggest_table_is_summarised),
        cmocka_unit_test(every_bound_is_kept_down_to_the_smallest),
        cmocka_unit_test(a_huge_write_set_still_fits),
        cmocka_unit_test(an_incomplete_write_set_says_all),
        cmocka_unit_test(table_level_writes_survive_a_round_trip),
        cmocka_unit_test(a_payload_without_node_or_ts_is_refused),
        cmocka_unit_test(unreadable_parts_widen_instead_of_dropping),
        cmocka_unit_test(another_version_touches_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
