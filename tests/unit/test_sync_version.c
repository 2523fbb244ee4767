/*
 * test_sync_version.c — the Transition version rules of
 * convex-protocol.md §2.5 (proto/sync_version.c).
 * Thread: the test's main thread.
 */
#include "support.h"

#include "proto/sync_version.h"

static void first_transition_starts_at_zero(void **state)
{
    (void)state;
    sync_versions v = {.qs_received = 1, .identity_received = 1};
    state_version start, end;
    assert_int_equal(sync_versions_next(&v, 500, true, true, &start, &end), SYNC_SEND);
    assert_int_equal(start.query_set, 0);
    assert_int_equal(start.identity, 0);
    assert_true(start.ts == 0);
    assert_int_equal(end.query_set, 1);
    assert_int_equal(end.identity, 1);
    assert_true(end.ts == 500);
}

static void each_start_is_the_previous_end(void **state)
{
    (void)state;
    sync_versions v = {.qs_received = 1};
    state_version start, end, prev_end;
    assert_int_equal(sync_versions_next(&v, 100, true, true, &start, &prev_end), SYNC_SEND);
    for (uint32_t i = 2; i < 10; i++) {
        v.qs_received = i;
        assert_int_equal(sync_versions_next(&v, 100 + i, true, false, &start, &end), SYNC_SEND);
        assert_int_equal(start.query_set, prev_end.query_set);
        assert_int_equal(start.identity, prev_end.identity);
        assert_true(start.ts == prev_end.ts);
        prev_end = end;
    }
}

static void timestamp_never_goes_backwards(void **state)
{
    (void)state;
    sync_versions v = {.qs_received = 1};
    state_version start, end;
    sync_versions_next(&v, 900, true, true, &start, &end);
    v.qs_received = 2;
    assert_int_equal(sync_versions_next(&v, 800, true, false, &start, &end), SYNC_SEND);
    assert_true(end.ts == 900);
}

static void accepted_authenticate_is_confirmed_without_changes(void **state)
{
    (void)state;
    sync_versions v = {.qs_received = 1, .identity_received = 1};
    state_version start, end;
    sync_versions_next(&v, 100, true, true, &start, &end);
    v.identity_received = 2;
    assert_int_equal(sync_versions_next(&v, 100, true, false, &start, &end), SYNC_SEND);
    assert_int_equal(end.identity, 2);
}

static void nothing_new_sends_nothing(void **state)
{
    (void)state;
    sync_versions v = {.qs_received = 1};
    state_version start, end;
    sync_versions_next(&v, 100, true, true, &start, &end);
    assert_int_equal(sync_versions_next(&v, 200, true, false, &start, &end), SYNC_NOTHING);
}

static void stale_queries_make_it_wait(void **state)
{
    (void)state;
    sync_versions v = {.qs_received = 1};
    state_version start, end;
    assert_int_equal(sync_versions_next(&v, 100, false, true, &start, &end), SYNC_WAIT);
    assert_int_equal(v.sent.query_set, 0); /* nothing recorded as sent */
}

static void answered_mutation_waits_until_its_commit_is_processed(void **state)
{
    (void)state;
    sync_versions v = {.qs_received = 1};
    state_version start, end;
    sync_versions_next(&v, 100, true, true, &start, &end);
    v.need_ts = 150;
    assert_int_equal(sync_versions_next(&v, 120, true, false, &start, &end), SYNC_WAIT);
    assert_int_equal(sync_versions_next(&v, 150, true, false, &start, &end), SYNC_SEND);
    assert_true(end.ts >= 150);
    assert_int_equal(sync_versions_next(&v, 150, true, false, &start, &end), SYNC_NOTHING);
}

static void replayed_mutation_still_gets_a_following_transition(void **state)
{
    (void)state;
    /* A resent mutation is answered with its original, already covered ts;
     * the client resolves it only on a later Transition. */
    sync_versions v = {.qs_received = 1};
    state_version start, end;
    sync_versions_next(&v, 500, true, true, &start, &end);
    v.need_ts = 300;
    v.owe_transition = true;
    assert_int_equal(sync_versions_next(&v, 500, true, false, &start, &end), SYNC_SEND);
    assert_true(end.ts >= 300);
    assert_false(v.owe_transition);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_transition_starts_at_zero),
        cmocka_unit_test(each_start_is_the_previous_end),
        cmocka_unit_test(timestamp_never_goes_backwards),
        cmocka_unit_test(accepted_authenticate_is_confirmed_without_changes),
        cmocka_unit_test(nothing_new_sends_nothing),
        cmocka_unit_test(stale_queries_make_it_wait),
        cmocka_unit_test(answered_mutation_waits_until_its_commit_is_processed),
        cmocka_unit_test(replayed_mutation_still_gets_a_following_transition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
