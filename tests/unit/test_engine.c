/*
 * test_engine.c — the engine against a real SQLite file: mutations commit in
 * groups with a savepoint each (a failing one writes nothing, the others
 * commit), a storage fault rolls the group back and the innocent mutations
 * run again, exactly-once records answer a resent mutation without running
 * it, commit timestamps strictly increase also across a restart, documents
 * are validated and bounded before they are written, and queries read a
 * committed snapshot whose timestamp they report. Subscriptions whose run
 * failed are run again: when what they read changes, or after an overload
 * or a storage fault; a page pinned to an end cursor never comes back
 * shortened by the row budget: it asks to be split.
 * Thread: the test's main thread runs the loop; the engine its own threads.
 */
#include "support.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/limits.h"
#include "engine/ctx.h"
#include "engine/engine.h"
#include "engine/engine_impl.h" /* ENGINE_READERS_MAX */
#include "engine/subs.h"
#include "engine/system_tables.h"

/* --- a small app ------------------------------------------------------------------ */

static const validator name_text = V_STRING_LEN_INIT(1, 100);
static const validator blob_text = V_STRING_INIT;
static const v_field note_fields[] = {
    {"name", &name_text, false},
    {"blob", &blob_text, true},
};
static const validator note_doc = V_OBJECT_INIT(note_fields);
static const schema_index note_indexes[] = {
    {.name = "by_name", .fields = {"name"}, .n_fields = 1},
};
static const schema_table tables[] = {
    {.name = "notes", .number = 1, .doc = &note_doc, .indexes = note_indexes, .n_indexes = 1},
    SYSTEM_TABLES,
};
static const schema test_schema = {.version = 1, .tables = tables, .n_tables = V_COUNT(tables)};

/* Set while a notes:add {hold: true} keeps the storage thread; clear it to
 * let it go. */
static atomic_bool writer_held, hold_released;

/* add {name, blob?, fail?, fault?, slow?, hold?}: inserts a note, then fails
 * when asked; with fault the store fails its next statement (the insert), as
 * a disk error would; slow keeps the writer busy for 300 ms first, hold until
 * the test releases it (release_hold). */
static int add_note(ctx *c, const json_t *args, json_t **result)
{
    if (json_is_true(json_object_get(args, "slow"))) usleep(300 * 1000);
    if (json_is_true(json_object_get(args, "hold"))) {
        atomic_store(&writer_held, true);
        for (int i = 0; i < 3000 && !atomic_load(&hold_released); i++)
            usleep(10 * 1000);
        atomic_store(&writer_held, false);
    }
    if (json_is_true(json_object_get(args, "fault"))) store_inject_fault_after(1);
    json_t *doc = json_pack("{s:O}", "name", json_object_get(args, "name"));
    if (json_object_get(args, "blob")) json_object_set(doc, "blob", json_object_get(args, "blob"));
    char id[ID_BYTES_MAX];
    int rc = db_insert(c, "notes", doc, id);
    json_decref(doc);
    if (rc) return rc;
    if (json_is_true(json_object_get(args, "fail")))
        return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL, "asked to fail");
    *result = ctx_own(c, json_string(id));
    return 0;
}

static int count_notes(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    db_query q = {.table = "notes"};
    json_t *rows = NULL;
    int rc = db_query_rows(c, &q, &rows);
    if (rc == 0) *result = ctx_own(c, json_integer((json_int_t)json_array_size(rows)));
    return rc;
}

/* Fails NOT_FOUND until a note named "x" exists: an error that depends on
 * the data. */
static int need_x(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    json_t *eq = json_pack("[s]", "x");
    db_query q = {.table = "notes", .index = "by_name", .eq = eq};
    json_t *row = NULL;
    int rc = db_query_first(c, &q, &row);
    json_decref(eq);
    if (rc) return rc;
    if (!row) return ctx_fail(c, ERR_NOT_FOUND, NULL, "no note x yet");
    *result = json_true();
    return 0;
}

/* Holds a reader for `ms` milliseconds. */
static int sleep_query(ctx *c, const json_t *args, json_t **result)
{
    (void)c;
    usleep((useconds_t)json_integer_value(json_object_get(args, "ms")) * 1000);
    *result = json_null();
    return 0;
}

static int get_note(ctx *c, const json_t *args, json_t **result)
{
    json_t *doc = NULL;
    int rc = db_get(c, "notes", json_string_value(json_object_get(args, "id")), &doc);
    if (rc == 0) *result = doc ? doc : json_null();
    return rc;
}

static const v_field add_fields[] = {
    {"name", &name_text, false}, {"blob", &blob_text, true}, {"fail", &v_boolean, true},
    {"fault", &v_boolean, true}, {"slow", &v_boolean, true}, {"hold", &v_boolean, true},
};
static const validator add_args = V_OBJECT_INIT(add_fields);
static const validator ms_number = V_INTEGER_RANGE_INIT(0, 10000);
static const v_field sleep_fields[] = {{"ms", &ms_number, false}};
static const validator sleep_args = V_OBJECT_INIT(sleep_fields);
static const v_field get_fields[] = {{"id", &v_string, false}};
static const validator get_args = V_OBJECT_INIT(get_fields);
static const fn_def fns[] = {
    {.path = "notes:add", .kind = FN_MUTATION, .args = &add_args, .impl = add_note},
    {.path = "notes:count", .kind = FN_QUERY, .args = &v_no_args, .impl = count_notes},
    {.path = "notes:needX", .kind = FN_QUERY, .args = &v_no_args, .impl = need_x},
    {.path = "notes:sleep", .kind = FN_QUERY, .args = &sleep_args, .impl = sleep_query},
    {.path = "notes:get", .kind = FN_QUERY, .args = &get_args, .impl = get_note},
};

/* --- harness ------------------------------------------------------------------------ */

typedef struct fixture {
    char *dir;
    char url[600];
    uv_loop_t loop;
    registry reg;
    engine *en;
    subs *subs;  /* NULL unless a test subscribes */
    int results; /* subscription results delivered */
    int pending;
    int commits;
    uint64_t last_commit_ts;
    bool ts_increasing;
} fixture;

static void on_commit(void *data, uint64_t ts, const write_set *writes)
{
    fixture *f = data;
    (void)writes;
    if (ts <= f->last_commit_ts) f->ts_increasing = false;
    f->last_commit_ts = ts;
    f->commits++;
}

static void open_engine(fixture *f)
{
    engine_config cfg = {
        .loop = &f->loop, .db_url = f->url, .schema = &test_schema, .registry = &f->reg};
    char report[STORE_REPORT_BYTES_MAX];
    err_t e;
    err_init(&e);
    int rc = engine_open(&cfg, &f->en, report, &e);
    if (rc) fail_msg("engine_open: %s", e.msg);
    engine_on_commit(f->en, on_commit, f);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = test_mkdtemp();
    snprintf(f->url, sizeof f->url, "sqlite:%s/engine.db", f->dir);
    uv_loop_init(&f->loop);
    registry_init(&f->reg);
    registry_add(&f->reg, fns, V_COUNT(fns));
    f->ts_increasing = true;
    open_engine(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->en) engine_close(f->en);
    if (f->subs) subs_free(f->subs);
    store_inject_fault_after(0);
    uv_loop_close(&f->loop);
    test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void on_done(call *c)
{
    fixture *f = *(fixture **)c->data;
    f->pending--;
}

typedef struct slot {
    fixture *f; /* must be first: on_done reads it */
    call *c;
} slot;

static call *submit(fixture *f, slot *s, const char *path, json_t *args, const char *session,
                    int64_t request_id)
{
    call *c = call_new();
    c->fn = registry_find(&f->reg, path);
    c->args = args;
    c->admin = true;
    c->done = on_done;
    s->f = f;
    s->c = c;
    c->data = s;
    if (session) {
        c->session_id = strdup(session);
        c->request_id = request_id;
    }
    int rc = engine_submit(f->en, c);
    if (rc == 0) f->pending++;
    return c;
}

static void wait_all(fixture *f)
{
    while (f->pending > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static int64_t count(fixture *f)
{
    slot s;
    call *c = submit(f, &s, "notes:count", json_object(), NULL, -1);
    wait_all(f);
    assert_int_equal(c->rc, 0);
    int64_t n = json_integer_value(c->result);
    call_free(c);
    return n;
}

static void on_result(void *listener, sub_query *q, bool changed)
{
    (void)q;
    (void)changed;
    ((fixture *)listener)->results++;
}

/* Subscribes the fixture to a query without arguments; commits reach it. */
static sub_query *subscribe(fixture *f, const char *path)
{
    if (!f->subs) {
        f->subs = subs_new(f->en);
        engine_on_commit(f->en, subs_commit, f->subs);
    }
    json_t *args = json_object();
    sub_query *q =
        subs_subscribe(f->subs, registry_find(&f->reg, path), args, NULL, true, NULL, on_result, f);
    json_decref(args);
    assert_non_null(q);
    return q;
}

/* Runs the loop for about ms milliseconds. */
static void spin(fixture *f, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(10 * 1000);
    }
}

static void add(fixture *f, const char *name)
{
    slot s;
    call *c = submit(f, &s, "notes:add", json_pack("{s:s}", "name", name), NULL, -1);
    wait_all(f);
    assert_int_equal(c->rc, 0);
    call_free(c);
}

/* --- tests ---------------------------------------------------------------------------- */

static void failing_mutation_rolls_back_alone(void **state)
{
    fixture *f = *state;
    slot s[3];
    call *a = submit(f, &s[0], "notes:add", json_pack("{s:s}", "name", "a"), NULL, -1);
    call *b =
        submit(f, &s[1], "notes:add", json_pack("{s:s, s:b}", "name", "b", "fail", 1), NULL, -1);
    call *c = submit(f, &s[2], "notes:add", json_pack("{s:s}", "name", "c"), NULL, -1);
    wait_all(f);
    assert_int_equal(a->rc, 0);
    assert_int_equal(b->rc, ERR_INVALID_ARGUMENT);
    assert_string_equal(b->err.msg, "asked to fail");
    assert_int_equal(c->rc, 0);
    assert_int_equal(count(f), 2);
    call_free(a);
    call_free(b);
    call_free(c);
}

static void many_mutations_all_commit_with_increasing_timestamps(void **state)
{
    fixture *f = *state;
    enum { N = 200 };
    slot s[N];
    call *calls[N];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        calls[i] = submit(f, &s[i], "notes:add", json_pack("{s:s}", "name", name), NULL, -1);
    }
    wait_all(f);
    uint64_t prev = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(calls[i]->rc, 0);
        assert_true(calls[i]->ts >= prev); /* answered in order, same or later commit */
        prev = calls[i]->ts;
        call_free(calls[i]);
    }
    assert_int_equal(count(f), N);
    assert_true(f->commits >= 1 && f->commits <= N);
    assert_true(f->ts_increasing);
}

/* Keeps the storage thread in a mutation (notes:add {hold}) until
 * release_hold: what is submitted meanwhile waits in the queue. */
static call *hold_writer(fixture *f, slot *s)
{
    atomic_store(&hold_released, false);
    call *c =
        submit(f, s, "notes:add", json_pack("{s:s, s:b}", "name", "hold", "hold", 1), NULL, -1);
    for (int i = 0; i < 1000 && !atomic_load(&writer_held); i++)
        spin(f, 10);
    assert_true(atomic_load(&writer_held));
    return c;
}

static void release_hold(void)
{
    atomic_store(&hold_released, true);
}

/* A group stops at LIMIT_COMMIT_GROUP_BYTES_MAX of written documents and
 * commits; the calls after it make the next group. Every one commits once. */
static void a_commit_group_is_bounded_by_bytes(void **state)
{
    fixture *f = *state;
    enum { N = 48 };
    size_t blob_bytes = 1000 * 1000; /* 48 MB in all: more than one group's bound */
    char *blob = malloc(blob_bytes + 1);
    memset(blob, 'b', blob_bytes);
    blob[blob_bytes] = '\0';
    slot s[N + 1];
    call *hold = hold_writer(f, &s[N]);
    call *calls[N];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "big%d", i);
        calls[i] = submit(f, &s[i], "notes:add",
                          json_pack("{s:s, s:s}", "name", name, "blob", blob), NULL, -1);
    }
    int before = f->commits;
    release_hold();
    wait_all(f);
    for (int i = 0; i < N; i++) {
        if (calls[i]->rc) fail_msg("call %d: %s", i, calls[i]->err.msg);
        call_free(calls[i]);
    }
    assert_int_equal(hold->rc, 0);
    call_free(hold);
    /* The held call's group, then two groups at least for the 48 MB queued
     * behind it (one group would have taken them all: they are fewer than
     * LIMIT_COMMIT_GROUP_MAX). */
    assert_true(f->commits - before >= 3);
    assert_int_equal(count(f), N + 1);
    free(blob);
}

/* Calls waiting for the storage thread are bounded by bytes too: past
 * LIMIT_WRITE_QUEUE_BYTES_MAX of queued arguments a call is refused as busy,
 * before it runs. */
static void the_write_queue_is_bounded_by_bytes(void **state)
{
    fixture *f = *state;
    size_t blob_bytes = 15 * 1000 * 1000;
    char *blob = malloc(blob_bytes + 1);
    memset(blob, 'q', blob_bytes);
    blob[blob_bytes] = '\0';
    enum { N = 6 }; /* 90 MB of arguments */
    slot s[N + 1];
    call *hold = hold_writer(f, &s[N]);
    call *calls[N];
    for (int i = 0; i < N; i++)
        calls[i] = submit(f, &s[i], "notes:add", json_pack("{s:s, s:s}", "name", "q", "blob", blob),
                          NULL, -1);
    /* 4 × 15 MB fit in 64 MiB, the 5th and 6th do not. */
    for (int i = 4; i < N; i++) {
        assert_int_equal(calls[i]->rc, ERR_BUSY);
        assert_non_null(strstr(calls[i]->err.msg, "MiB of mutation calls are already waiting"));
    }
    release_hold();
    wait_all(f);
    for (int i = 0; i < 4; i++) /* ran: refused only for their size, as documents */
        assert_int_equal(calls[i]->rc, ERR_INVALID_ARGUMENT);
    for (int i = 0; i < N; i++)
        call_free(calls[i]);
    assert_int_equal(hold->rc, 0);
    call_free(hold);
    assert_int_equal(count(f), 1);
    free(blob);
}

static void storage_fault_writes_nothing_and_others_run_again(void **state)
{
    fixture *f = *state;
    /* The first mutation of the group hits a storage fault after the others
     * were queued with it: the group rolls back, the faulty one fails, the
     * innocent ones run again and commit. */
    slot s[3];
    call *calls[3];
    calls[0] =
        submit(f, &s[0], "notes:add", json_pack("{s:s, s:b}", "name", "x", "fault", 1), NULL, -1);
    for (int i = 1; i < 3; i++)
        calls[i] = submit(f, &s[i], "notes:add", json_pack("{s:s}", "name", "y"), NULL, -1);
    wait_all(f);
    store_inject_fault_after(0);
    assert_int_equal(calls[0]->rc, ERR_STORAGE);
    for (int i = 0; i < 3; i++) {
        if (i > 0) assert_int_equal(calls[i]->rc, 0);
        call_free(calls[i]);
    }
    assert_int_equal(count(f), 2);
}

static void resent_mutation_is_answered_from_its_record(void **state)
{
    fixture *f = *state;
    slot s1, s2;
    call *first = submit(f, &s1, "notes:add", json_pack("{s:s}", "name", "once"), "session-1", 7);
    wait_all(f);
    call *again = submit(f, &s2, "notes:add", json_pack("{s:s}", "name", "once"), "session-1", 7);
    wait_all(f);
    assert_int_equal(first->rc, 0);
    assert_int_equal(again->rc, 0);
    assert_true(again->replayed);
    assert_true(json_equal(first->result, again->result));
    assert_true(first->ts == again->ts);
    assert_int_equal(count(f), 1);
    call_free(first);
    call_free(again);
}

static void failed_mutation_is_not_recorded(void **state)
{
    fixture *f = *state;
    slot s1, s2;
    call *first = submit(f, &s1, "notes:add", json_pack("{s:s, s:b}", "name", "x", "fail", 1),
                         "session-2", 1);
    wait_all(f);
    call *again = submit(f, &s2, "notes:add", json_pack("{s:s}", "name", "x"), "session-2", 1);
    wait_all(f);
    assert_int_equal(first->rc, ERR_INVALID_ARGUMENT);
    assert_int_equal(again->rc, 0);
    assert_false(again->replayed);
    call_free(first);
    call_free(again);
}

static void timestamps_keep_increasing_across_a_restart(void **state)
{
    fixture *f = *state;
    slot s;
    call *a = submit(f, &s, "notes:add", json_pack("{s:s}", "name", "a"), NULL, -1);
    wait_all(f);
    uint64_t before = a->ts;
    call_free(a);
    engine_close(f->en);
    f->en = NULL;
    open_engine(f);
    assert_true(engine_last_ts(f->en) == before);
    engine_bump_ts(f->en, before + 1000000000000ull); /* a client saw a far later ts */
    call *b = submit(f, &s, "notes:add", json_pack("{s:s}", "name", "b"), NULL, -1);
    wait_all(f);
    assert_true(b->ts > before + 1000000000000ull);
    call_free(b);
}

static void query_reports_the_snapshot_of_the_last_commit(void **state)
{
    fixture *f = *state;
    slot s;
    call *a = submit(f, &s, "notes:add", json_pack("{s:s}", "name", "a"), NULL, -1);
    wait_all(f);
    call *q = submit(f, &s, "notes:count", json_object(), NULL, -1);
    wait_all(f);
    assert_true(q->ts == a->ts);
    assert_int_equal(json_integer_value(q->result), 1);
    call_free(a);
    call_free(q);
}

static void arguments_are_checked_before_running(void **state)
{
    fixture *f = *state;
    slot s;
    call *c =
        submit(f, &s, "notes:add", json_pack("{s:s, s:i}", "name", "a", "color", 3), NULL, -1);
    assert_int_equal(c->rc, ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(c->err.msg, "`color`"));
    assert_non_null(c->err.data);
    call_free(c);
    c = submit(f, &s, "notes:add", json_pack("{s:i}", "name", 5), NULL, -1);
    assert_int_equal(c->rc, ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(c->err.msg, "`name`"));
    call_free(c);
    assert_int_equal(count(f), 0);
}

static void document_over_one_mebibyte_is_refused_and_nothing_written(void **state)
{
    fixture *f = *state;
    size_t n = LIMIT_DOC_BYTES_MAX + 10;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    slot s;
    call *c =
        submit(f, &s, "notes:add", json_pack("{s:s, s:s}", "name", "big", "blob", big), NULL, -1);
    free(big);
    wait_all(f);
    assert_int_equal(c->rc, ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(c->err.msg, "1 MiB"));
    call_free(c);
    assert_int_equal(count(f), 0);
}

static void internal_function_needs_the_admin_key(void **state)
{
    fixture *f = *state;
    static const fn_def internal = {.path = "notes:secret",
                                    .kind = FN_QUERY,
                                    .visibility = FN_INTERNAL,
                                    .args = &v_no_args,
                                    .impl = count_notes};
    call *c = call_new();
    c->fn = &internal;
    c->done = on_done;
    assert_int_equal(engine_submit(f->en, c), ERR_FORBIDDEN);
    assert_string_equal(json_string_value(json_object_get(c->err.data, "code")), "FORBIDDEN");
    call_free(c);
}

static void failed_subscription_runs_again_when_its_data_changes(void **state)
{
    fixture *f = *state;
    sub_query *q = subscribe(f, "notes:needX");
    while (!q->has_result)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(q->rc, ERR_NOT_FOUND);
    add(f, "x");
    for (int i = 0; i < 100 && q->rc != 0; i++)
        spin(f, 20);
    assert_int_equal(q->rc, 0);
    subs_unsubscribe(f->subs, q, f);
}

static void subscription_refused_for_overload_is_tried_again(void **state)
{
    fixture *f = *state;
    /* Hold every reader, then fill the read queue until it refuses. */
    slot held[ENGINE_READERS_MAX];
    call *holding[ENGINE_READERS_MAX];
    for (int i = 0; i < ENGINE_READERS_MAX; i++)
        holding[i] = submit(f, &held[i], "notes:sleep", json_pack("{s:i}", "ms", 300), NULL, -1);
    usleep(100 * 1000);
    slot *fill_slots = calloc(LIMIT_READ_QUEUE_MAX + ENGINE_READERS_MAX + 1, sizeof *fill_slots);
    call **fill = calloc(LIMIT_READ_QUEUE_MAX + ENGINE_READERS_MAX + 1, sizeof *fill);
    int n = 0;
    for (;;) {
        fill[n] = submit(f, &fill_slots[n], "notes:sleep", json_pack("{s:i}", "ms", 0), NULL, -1);
        if (fill[n++]->rc == ERR_BUSY) break;
        assert_true(n <= LIMIT_READ_QUEUE_MAX + ENGINE_READERS_MAX);
    }
    sub_query *q = subscribe(f, "notes:needX");
    /* Refused for overload: no result (its sessions wait), never "busy" as
     * the query's error. */
    assert_false(q->has_result);
    assert_true(q->retry);
    wait_all(f);
    assert_int_equal(f->results, 0);
    /* The queue drained; the next retry (a finishing run, or the sync tick)
     * gives the real answer. */
    spin(f, 50);
    subs_retry_due(f->subs);
    for (int i = 0; i < 100 && !q->has_result; i++)
        spin(f, 20);
    assert_true(q->has_result);
    assert_int_equal(q->rc, ERR_NOT_FOUND);
    assert_int_equal(f->results, 1);
    for (int i = 0; i < n; i++)
        call_free(fill[i]);
    for (int i = 0; i < ENGINE_READERS_MAX; i++)
        call_free(holding[i]);
    free(fill);
    free(fill_slots);
    subs_unsubscribe(f->subs, q, f);
}

static void subscription_that_hit_a_storage_fault_is_tried_again(void **state)
{
    fixture *f = *state;
    add(f, "x");
    store_inject_fault_after(1); /* the subscription's first statement fails */
    sub_query *q = subscribe(f, "notes:needX");
    while (q->running)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(q->has_result); /* the storage error is not the query's answer */
    assert_true(q->retry);
    spin(f, 50); /* the first retry waits 20 ms */
    subs_retry_due(f->subs);
    for (int i = 0; i < 100 && !q->has_result; i++)
        spin(f, 20);
    assert_true(q->has_result);
    assert_int_equal(q->rc, 0);
    subs_unsubscribe(f->subs, q, f);
}

static void lasting_storage_failure_becomes_the_answer_and_recovery_follows(void **state)
{
    fixture *f = *state;
    add(f, "x");
    /* Every try fails (a fault on each run's first statement) until the
     * backoff reaches its maximum: then the error is the answer. */
    store_inject_fault_after(1);
    sub_query *q = subscribe(f, "notes:needX");
    int tries = 1;
    while (!q->has_result && tries < 20) {
        while (q->running)
            uv_run(&f->loop, UV_RUN_ONCE);
        if (q->has_result) break;
        assert_true(q->retry);
        spin(f, (int)q->retry_delay_ms + 20);
        store_inject_fault_after(1);
        subs_retry_due(f->subs);
        tries++;
    }
    while (q->running)
        uv_run(&f->loop, UV_RUN_ONCE);
    store_inject_fault_after(0);
    assert_true(q->has_result);
    assert_int_equal(q->rc, ERR_STORAGE);
    assert_true(tries >= 6); /* not before the backoff ran its course */
    assert_int_equal(f->results, 1);
    /* The retries go on: the database answers again, so does the query. */
    assert_true(q->retry);
    spin(f, (int)q->retry_delay_ms + 20);
    subs_retry_due(f->subs);
    for (int i = 0; i < 100 && q->rc != 0; i++)
        spin(f, 20);
    assert_int_equal(q->rc, 0);
    assert_int_equal(f->results, 2);
    subs_unsubscribe(f->subs, q, f);
}

static void history_cannot_vouch_for_commits_before_it_started(void **state)
{
    fixture *f = *state;
    add(f, "a"); /* a commit before the subscription manager exists */
    subs *sm = subs_new(f->en);
    read_set none;
    read_set_init(&none);
    uint64_t now = subs_processed_ts(sm);
    assert_true(now > 0);
    assert_false(subs_unchanged_between(sm, 0, now, &none));
    assert_true(subs_unchanged_between(sm, now, now, &none));
    read_set_free(&none);
    subs_free(sm);
}

static void resend_answered_from_a_record_of_its_own_rolled_back_group_is_retried(void **state)
{
    fixture *f = *state;
    /* While the writer is busy, a mutation and its resend (same session and
     * request id) queue up with one that hits a storage fault: one group.
     * The resend is answered from the record the first wrote — which the
     * rollback takes away, so it must not be reported as done from it. */
    slot s[5];
    call *slow =
        submit(f, &s[0], "notes:add", json_pack("{s:s, s:b}", "name", "s", "slow", 1), NULL, -1);
    usleep(100 * 1000);
    call *first = submit(f, &s[1], "notes:add", json_pack("{s:s}", "name", "a"), "sess", 1);
    call *again = submit(f, &s[2], "notes:add", json_pack("{s:s}", "name", "a"), "sess", 1);
    call *bad =
        submit(f, &s[3], "notes:add", json_pack("{s:s, s:b}", "name", "c", "fault", 1), NULL, -1);
    wait_all(f);
    store_inject_fault_after(0);
    assert_int_equal(bad->rc, ERR_STORAGE);
    assert_int_equal(first->rc, 0);
    assert_int_equal(again->rc, 0);
    assert_true(json_equal(first->result, again->result));
    assert_true(first->ts == again->ts);
    call *got = submit(f, &s[4], "notes:get",
                       json_pack("{s:s}", "id", json_string_value(again->result)), NULL, -1);
    wait_all(f);
    assert_false(json_is_null(got->result)); /* the id the resend was told exists */
    assert_int_equal(count(f), 2);           /* "s" and "a", once */
    call_free(got);
    call_free(slow);
    call_free(first);
    call_free(again);
    call_free(bad);
}

static void pinned_page_over_the_row_budget_asks_to_be_split(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 10; i++)
        add(f, "n");
    engine_close(f->en);
    f->en = NULL;
    store *st;
    store_conn *conn;
    err_t e;
    err_init(&e);
    char report[STORE_REPORT_BYTES_MAX];
    assert_int_equal(store_open(f->url, &test_schema, &st, report, &e), 0);
    assert_int_equal(store_connect(st, false, &conn, &e), 0);
    assert_int_equal(store_begin(conn, false, &e), 0);
    db_query q = {.table = "notes"};
    ctx x;
    ctx_init(&x, conn, &test_schema, false);
    json_t *opts = json_pack("{s:i, s:n}", "numItems", 8, "cursor");
    json_t *page = NULL;
    assert_int_equal(db_paginate(&x, &q, opts, &page), 0);
    json_incref(page); /* kept past its transaction */
    ctx_release(&x);
    json_t *pinned_opts = json_pack("{s:i, s:n, s:O}", "numItems", 8, "cursor", "endCursor",
                                    json_object_get(page, "continueCursor"));
    /* Within the budget: all 8 rows. */
    ctx_init(&x, conn, &test_schema, false);
    json_t *pinned = NULL;
    assert_int_equal(db_paginate(&x, &q, pinned_opts, &pinned), 0);
    assert_int_equal(json_array_size(json_object_get(pinned, "page")), 8);
    assert_true(json_is_null(json_object_get(pinned, "splitCursor")));
    ctx_release(&x);
    /* A pinned page that grew past twice its numItems is recommended a split
     * at its middle. */
    json_t *small = json_pack("{s:i, s:n, s:O}", "numItems", 2, "cursor", "endCursor",
                              json_object_get(page, "continueCursor"));
    ctx_init(&x, conn, &test_schema, false);
    assert_int_equal(db_paginate(&x, &q, small, &pinned), 0);
    assert_int_equal(json_array_size(json_object_get(pinned, "page")), 8);
    assert_string_equal(json_string_value(json_object_get(pinned, "pageStatus")),
                        "SplitRecommended");
    json_t *half = json_pack("{s:i, s:n, s:O}", "numItems", 2, "cursor", "endCursor",
                             json_object_get(pinned, "splitCursor"));
    ctx_release(&x);
    ctx_init(&x, conn, &test_schema, false);
    assert_int_equal(db_paginate(&x, &q, half, &pinned), 0);
    assert_int_equal(json_array_size(json_object_get(pinned, "page")), 4);
    json_decref(half);
    json_decref(small);
    ctx_release(&x);
    /* Over it (5 stands for LIMIT_QUERY_ROWS_MAX): never 5 rows that claim
     * to reach the end cursor, but a page cut at the budget that asks to be
     * split ("SplitRequired"); splitting as the client does, again while
     * asked, yields every row once, in order. */
    json_t *got = json_array();
    json_t *todo = json_array(); /* [cursor|null, endCursor] pairs still to read */
    json_array_append_new(todo, json_pack("[n, O]", json_object_get(page, "continueCursor")));
    int reads = 0;
    while (json_array_size(todo) > 0 && reads++ < 20) {
        json_t *pair = json_incref(json_array_get(todo, 0));
        json_array_remove(todo, 0);
        json_t *o = json_pack("{s:i, s:O, s:O}", "numItems", 8, "cursor", json_array_get(pair, 0),
                              "endCursor", json_array_get(pair, 1));
        ctx_init(&x, conn, &test_schema, false);
        x.rows_max = 5;
        json_t *part = NULL;
        assert_int_equal(db_paginate(&x, &q, o, &part), 0);
        const char *status = json_string_value(json_object_get(part, "pageStatus"));
        if (status && strcmp(status, "SplitRequired") == 0) {
            assert_false(json_is_true(json_object_get(part, "isDone")));
            json_t *split = json_object_get(part, "splitCursor");
            assert_true(json_is_string(split));
            /* Both halves, in order, before anything else still to read. */
            json_array_insert_new(todo, 0, json_pack("[O, O]", split, json_array_get(pair, 1)));
            json_array_insert_new(todo, 0, json_pack("[O, O]", json_array_get(pair, 0), split));
        } else {
            assert_true(json_array_size(json_object_get(part, "page")) <= 5);
            json_array_extend(got, json_object_get(part, "page"));
        }
        json_decref(o);
        json_decref(pair);
        ctx_release(&x);
    }
    assert_int_equal(json_array_size(todo), 0);
    assert_int_equal(json_array_size(got), 8);
    for (size_t i = 0; i < 8; i++)
        assert_true(
            json_equal(json_array_get(got, i), json_array_get(json_object_get(page, "page"), i)));
    json_decref(got);
    json_decref(todo);
    /* An unbounded read over the budget fails the same way. */
    ctx_init(&x, conn, &test_schema, false);
    x.rows_max = 5;
    json_t *rows = NULL;
    assert_int_equal(db_query_rows(&x, &q, &rows), ERR_INVALID_ARGUMENT);
    ctx_release(&x);
    store_rollback(conn);
    json_decref(page);
    json_decref(opts);
    json_decref(pinned_opts);
    store_disconnect(conn);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(failing_mutation_rolls_back_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(a_commit_group_is_bounded_by_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(the_write_queue_is_bounded_by_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(many_mutations_all_commit_with_increasing_timestamps, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(storage_fault_writes_nothing_and_others_run_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(resent_mutation_is_answered_from_its_record, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(failed_mutation_is_not_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(timestamps_keep_increasing_across_a_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(query_reports_the_snapshot_of_the_last_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(arguments_are_checked_before_running, setup, teardown),
        cmocka_unit_test_setup_teardown(document_over_one_mebibyte_is_refused_and_nothing_written,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(internal_function_needs_the_admin_key, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_subscription_runs_again_when_its_data_changes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(subscription_refused_for_overload_is_tried_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(subscription_that_hit_a_storage_fault_is_tried_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            lasting_storage_failure_becomes_the_answer_and_recovery_follows, setup, teardown),
        cmocka_unit_test_setup_teardown(history_cannot_vouch_for_commits_before_it_started, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            resend_answered_from_a_record_of_its_own_rolled_back_group_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(pinned_page_over_the_row_budget_asks_to_be_split, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
