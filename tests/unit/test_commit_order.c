/*
 * test_commit_order.c — the order commits are reported in when several
 * processes share a database (engine/commit_order.h): the database's own
 * commit order, however this process's records and the notifications
 * interleave, so that "processed up to P" never passes a commit not seen.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <jansson.h>
#include <stdio.h>

#include "engine/commit_order.h"
#include "engine/system_tables.h"
#include "engine/validator.h"
#include "store/schema.h"

static const schema_table runs = {.name = "runs", .number = 3, .doc = &v_any};
static const schema_table env = {.name = SYSTEM_TABLE_ENV, .number = 250, .doc = &v_any};

#define REPORTED_MAX 16

/* What was reported, in order. */
typedef struct reported {
    uint64_t ts[REPORTED_MAX];
    bool from_elsewhere[REPORTED_MAX];
    bool everything[REPORTED_MAX];
    int n_recs[REPORTED_MAX];
    int n;
} reported;

/* Pops every ready commit; returns the state the head is left in. */
static commit_order_state drain(commit_order *o, reported *out)
{
    commit_order_state state;
    while ((state = commit_order_head(o)) == COMMIT_ORDER_READY) {
        uint64_t ts;
        write_set ws;
        bool elsewhere;
        commit_order_pop(o, &ts, &ws, &elsewhere);
        assert_true(out->n < REPORTED_MAX);
        out->ts[out->n] = ts;
        out->from_elsewhere[out->n] = elsewhere;
        out->everything[out->n] = ws.everything;
        out->n_recs[out->n] = ws.n_recs;
        out->n++;
        write_set_free(&ws);
    }
    return state;
}

/* A write set of one document of t. */
static write_set one_write(const schema_table *t, const char *id)
{
    write_set ws;
    write_set_init(&ws);
    json_t *doc = json_pack("{s:s, s:f}", "_id", id, "_creationTime", 1.0);
    write_set_add(&ws, t, id, NULL, doc);
    json_decref(doc);
    return ws;
}

static void assert_reported(const reported *r, const uint64_t *want, int n)
{
    if (r->n != n) fail_msg("%d commits reported, %d expected", r->n, n);
    for (int i = 0; i < n; i++)
        if (r->ts[i] != want[i])
            fail_msg("commit %d: ts %llu, %llu expected", i, (unsigned long long)r->ts[i],
                     (unsigned long long)want[i]);
}

static void an_own_commit_waits_for_its_notice(void **state)
{
    (void)state;
    commit_order o;
    commit_order_init(&o, 100);
    reported r = {0};
    write_set ws = one_write(&runs, "r1");
    commit_order_local(&o, 110, &ws);
    assert_int_equal(drain(&o, &r), COMMIT_ORDER_EMPTY);
    assert_int_equal(r.n, 0);
    commit_order_own_notice(&o, 110);
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){110}, 1);
    assert_false(r.from_elsewhere[0]);
    assert_int_equal(r.n_recs[0], 1); /* the exact write set, not a summary */
    commit_order_free(&o);
}

static void a_notice_before_the_local_record_waits_for_it(void **state)
{
    (void)state;
    commit_order o;
    commit_order_init(&o, 100);
    reported r = {0};
    commit_order_own_notice(&o, 110);
    assert_int_equal(drain(&o, &r), COMMIT_ORDER_WAITS);
    write_set remote_ws = one_write(&runs, "x");
    commit_order_remote(&o, 120, &remote_ws); /* queued behind the own commit */
    assert_int_equal(drain(&o, &r), COMMIT_ORDER_WAITS);
    write_set ws = one_write(&runs, "r1");
    commit_order_local(&o, 110, &ws);
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){110, 120}, 2);
    assert_true(r.from_elsewhere[1]);
    commit_order_free(&o);
}

/* The race this module exists for: an own commit at 12 is back from the
 * storage thread while another process's commit at 11 is still on its way;
 * 12 must not be reported before 11. */
static void an_own_commit_never_overtakes_an_earlier_remote_one(void **state)
{
    (void)state;
    commit_order o;
    commit_order_init(&o, 10);
    reported r = {0};
    write_set own = one_write(&runs, "mine");
    commit_order_local(&o, 12, &own);
    drain(&o, &r);
    assert_int_equal(r.n, 0);
    write_set theirs = one_write(&runs, "theirs");
    commit_order_remote(&o, 11, &theirs);
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){11}, 1);
    commit_order_own_notice(&o, 12);
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){11, 12}, 2);
    commit_order_free(&o);
}

static void own_commits_never_notified_are_reported_before_the_next_notice(void **state)
{
    (void)state;
    commit_order o;
    commit_order_init(&o, 10);
    reported r = {0};
    write_set failed = one_write(&runs, "a"); /* its COMMIT failed: no notice ever */
    commit_order_local(&o, 11, &failed);
    write_set next = one_write(&runs, "b");
    commit_order_local(&o, 13, &next);
    write_set theirs = one_write(&runs, "c");
    commit_order_remote(&o, 12, &theirs);
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){11, 12}, 2);
    commit_order_own_notice(&o, 13);
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){11, 12, 13}, 3);
    commit_order_free(&o);
}

static void a_resync_covers_everything_up_to_its_timestamp(void **state)
{
    (void)state;
    commit_order o;
    commit_order_init(&o, 10);
    reported r = {0};
    /* Own commits whose notices were lost with the connection. */
    write_set a = one_write(&runs, "a"), b = one_write(&runs, "b");
    commit_order_local(&o, 11, &a);
    commit_order_local(&o, 14, &b);
    drain(&o, &r);
    assert_int_equal(r.n, 0);
    commit_order_resync(&o, 20);
    /* Anything may have changed, the variables too: they are read first. */
    assert_int_equal(drain(&o, &r), COMMIT_ORDER_NEEDS_READ);
    assert_reported(&r, (uint64_t[]){11, 14}, 2);
    commit_order_head_read(&o, 21);
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){11, 14, 20}, 3);
    assert_true(r.everything[2]);
    assert_true(r.from_elsewhere[2]);
    /* A notice from before the resync that comes late is stale; a record
     * from before it is reported at once. */
    commit_order_own_notice(&o, 18);
    write_set c = one_write(&runs, "c");
    commit_order_local(&o, 19, &c);
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){11, 14, 20, 19}, 4);
    write_set d = one_write(&runs, "d");
    commit_order_local(&o, 25, &d);
    drain(&o, &r);
    assert_int_equal(r.n, 4); /* after the resync: waits for its notice again */
    commit_order_own_notice(&o, 25);
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){11, 14, 20, 19, 25}, 5);
    commit_order_free(&o);
}

static void a_remote_write_to_the_variables_waits_for_them_to_be_read(void **state)
{
    (void)state;
    commit_order o;
    commit_order_init(&o, 10);
    reported r = {0};
    write_set e = one_write(&env, "v");
    commit_order_remote(&o, 11, &e);
    write_set other = one_write(&runs, "x");
    commit_order_remote(&o, 12, &other);
    assert_int_equal(drain(&o, &r), COMMIT_ORDER_NEEDS_READ);
    assert_int_equal(r.n, 0);
    commit_order_head_read(&o, 99); /* a known ts is kept */
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){11, 12}, 2);
    /* An own write to the variables carries them: no reading. */
    write_set mine = one_write(&env, "w");
    commit_order_local(&o, 13, &mine);
    commit_order_own_notice(&o, 13);
    assert_int_equal(drain(&o, &r), COMMIT_ORDER_EMPTY);
    assert_int_equal(r.n, 3);
    commit_order_free(&o);
}

static void a_commit_without_a_notice_gets_its_timestamp_read(void **state)
{
    (void)state;
    commit_order o;
    commit_order_init(&o, 10);
    reported r = {0};
    write_set theirs = one_write(&runs, "x");
    commit_order_remote(&o, 15, &theirs);
    commit_order_unknown(&o, 12);
    assert_int_equal(drain(&o, &r), COMMIT_ORDER_NEEDS_READ);
    commit_order_head_read(&o, 40);
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){15, 40}, 2);
    assert_true(r.everything[1]);
    /* Reading failed: the guess stays, at least the newest queued. */
    write_set more = one_write(&runs, "y");
    commit_order_remote(&o, 50, &more);
    commit_order_unknown(&o, 30);
    drain(&o, &r);
    commit_order_head_read(&o, 0);
    drain(&o, &r);
    assert_reported(&r, (uint64_t[]){15, 40, 50, 50}, 4);
    commit_order_free(&o);
}

static void closing_reports_everything_that_has_a_write_set(void **state)
{
    (void)state;
    commit_order o;
    commit_order_init(&o, 10);
    commit_order_own_notice(&o, 11); /* its record never comes before closing */
    write_set a = one_write(&env, "v");
    commit_order_remote(&o, 12, &a);
    write_set b = one_write(&runs, "b");
    commit_order_local(&o, 13, &b);
    int n = 0;
    uint64_t ts;
    write_set ws;
    bool elsewhere;
    uint64_t want[] = {12, 13};
    while (commit_order_pop_any(&o, &ts, &ws, &elsewhere)) {
        assert_true(n < 2);
        assert_true(ts == want[n]);
        n++;
        write_set_free(&ws);
    }
    assert_int_equal(n, 2);
    assert_int_equal(commit_order_head(&o), COMMIT_ORDER_EMPTY);
    commit_order_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_own_commit_waits_for_its_notice),
        cmocka_unit_test(a_notice_before_the_local_record_waits_for_it),
        cmocka_unit_test(an_own_commit_never_overtakes_an_earlier_remote_one),
        cmocka_unit_test(own_commits_never_notified_are_reported_before_the_next_notice),
        cmocka_unit_test(a_resync_covers_everything_up_to_its_timestamp),
        cmocka_unit_test(a_remote_write_to_the_variables_waits_for_them_to_be_read),
        cmocka_unit_test(a_commit_without_a_notice_gets_its_timestamp_read),
        cmocka_unit_test(closing_reports_everything_that_has_a_write_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
