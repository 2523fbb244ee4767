/*
 * test_faults.c — fault injection swept SQLite-style over every mutation of
 * the contract, on the real app and a real store (SQLite, and PostgreSQL
 * when DOJO_TEST_PG_URL is set): the store fails the 1st statement of the
 * mutation, then the 2nd, … until one past the last, the commit included;
 * with SQLite, an fsync fails as well (a VFS shim around the default one).
 * After every fault: the caller got an error and nothing the mutation did
 * is in the database, or (the storage thread retries a group a storage
 * fault broke) it succeeded exactly once; every invariant of api.md §1
 * holds (app_verify, what `dojo verify` runs); and the engine goes on
 * serving the next call.
 * Thread: the test's main thread runs the loop; the engine its threads.
 */
#include "support.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "app/verify.h"
#include "base/log.h"
#include "engine/ctx.h"
#include "engine/engine.h"
#include "store/store.h"
#include "store_pg_url.h"

#define SWEEP_STATEMENTS_MAX 200 /* a mutation of the contract runs far fewer */

/* --- an fsync that fails on demand (SQLite) ------------------------------------------ */

static atomic_int fsync_failures_armed; /* the next n xSync calls fail */
static atomic_int fsync_failures_struck;
static sqlite3_vfs faulty_vfs;
static sqlite3_vfs *real_vfs;

typedef struct faulty_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
} faulty_file;

static sqlite3_io_methods faulty_io;

static int faulty_close(sqlite3_file *f)
{
    faulty_file *ff = (faulty_file *)f;
    return ff->real->pMethods ? ff->real->pMethods->xClose(ff->real) : SQLITE_OK;
}
#define FORWARD(name, proto, args)                                                                 \
    static int faulty_##name proto                                                                 \
    {                                                                                              \
        faulty_file *ff = (faulty_file *)f;                                                        \
        return ff->real->pMethods->x##name args;                                                   \
    }
FORWARD(Read, (sqlite3_file * f, void *b, int n, sqlite3_int64 o), (ff->real, b, n, o))
FORWARD(Write, (sqlite3_file * f, const void *b, int n, sqlite3_int64 o), (ff->real, b, n, o))
FORWARD(Truncate, (sqlite3_file * f, sqlite3_int64 n), (ff->real, n))
FORWARD(FileSize, (sqlite3_file * f, sqlite3_int64 *n), (ff->real, n))
FORWARD(Lock, (sqlite3_file * f, int l), (ff->real, l))
FORWARD(Unlock, (sqlite3_file * f, int l), (ff->real, l))
FORWARD(CheckReservedLock, (sqlite3_file * f, int *r), (ff->real, r))
FORWARD(FileControl, (sqlite3_file * f, int op, void *a), (ff->real, op, a))
FORWARD(SectorSize, (sqlite3_file * f), (ff->real))
FORWARD(DeviceCharacteristics, (sqlite3_file * f), (ff->real))
FORWARD(ShmMap, (sqlite3_file * f, int i, int s, int w, void volatile **p), (ff->real, i, s, w, p))
FORWARD(ShmLock, (sqlite3_file * f, int o, int n, int fl), (ff->real, o, n, fl))
FORWARD(ShmUnmap, (sqlite3_file * f, int d), (ff->real, d))
FORWARD(Fetch, (sqlite3_file * f, sqlite3_int64 o, int n, void **p), (ff->real, o, n, p))
FORWARD(Unfetch, (sqlite3_file * f, sqlite3_int64 o, void *p), (ff->real, o, p))

static void faulty_ShmBarrier(sqlite3_file *f)
{
    faulty_file *ff = (faulty_file *)f;
    ff->real->pMethods->xShmBarrier(ff->real);
}

static int faulty_Sync(sqlite3_file *f, int flags)
{
    int n = atomic_load(&fsync_failures_armed);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&fsync_failures_armed, &n, n - 1)) {
            atomic_fetch_add(&fsync_failures_struck, 1);
            return SQLITE_IOERR_FSYNC;
        }
    }
    faulty_file *ff = (faulty_file *)f;
    return ff->real->pMethods->xSync(ff->real, flags);
}

static int faulty_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs;
    faulty_file *ff = (faulty_file *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
    ff->base.pMethods = rc == SQLITE_OK ? &faulty_io : NULL;
    return rc;
}

/* Makes every SQLite file of the process go through faulty_Sync. */
static void install_faulty_vfs(void)
{
    if (real_vfs) return;
    real_vfs = sqlite3_vfs_find(NULL);
    faulty_vfs = *real_vfs;
    faulty_vfs.zName = "dojo-faulty";
    faulty_vfs.szOsFile = (int)sizeof(faulty_file) + real_vfs->szOsFile;
    faulty_vfs.xOpen = faulty_open;
    faulty_io = (sqlite3_io_methods){.iVersion = 3,
                                     .xClose = faulty_close,
                                     .xRead = faulty_Read,
                                     .xWrite = faulty_Write,
                                     .xTruncate = faulty_Truncate,
                                     .xSync = faulty_Sync,
                                     .xFileSize = faulty_FileSize,
                                     .xLock = faulty_Lock,
                                     .xUnlock = faulty_Unlock,
                                     .xCheckReservedLock = faulty_CheckReservedLock,
                                     .xFileControl = faulty_FileControl,
                                     .xSectorSize = faulty_SectorSize,
                                     .xDeviceCharacteristics = faulty_DeviceCharacteristics,
                                     .xShmMap = faulty_ShmMap,
                                     .xShmLock = faulty_ShmLock,
                                     .xShmBarrier = faulty_ShmBarrier,
                                     .xShmUnmap = faulty_ShmUnmap,
                                     .xFetch = faulty_Fetch,
                                     .xUnfetch = faulty_Unfetch};
    assert_int_equal(sqlite3_vfs_register(&faulty_vfs, 1), SQLITE_OK);
}

/* --- the engine with the app ------------------------------------------------------------ */

typedef struct fixture {
    char *dir;
    char url[700];
    bool postgres;
    uv_loop_t loop;
    registry reg;
    engine *en;
    int pending;
} fixture;

/* test:digest — every document of every table, as one string: what a
 * failed mutation must leave exactly as it was. */
static int digest(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    json_t *all = json_object();
    const schema *s = app_schema();
    for (int i = 0; i < s->n_tables; i++) {
        db_query q = {.table = s->tables[i].name};
        json_t *rows = NULL;
        int rc = db_query_rows(c, &q, &rows);
        if (rc) {
            json_decref(all);
            return rc;
        }
        json_object_set(all, s->tables[i].name, rows); /* rows are the ctx's */
    }
    char *text = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(all);
    *result = ctx_own(c, json_string(text));
    free(text);
    return 0;
}

/* test:verify — the invariants of api.md §1 (what `dojo verify` checks). */
static int verify(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    verify_report report = {0};
    int rc = app_verify(c, true, &report);
    if (rc) return rc;
    *result = ctx_own(c, json_pack("{s:I, s:O}", "count", (json_int_t)report.violation_count,
                                   "violations", report.violations));
    verify_report_free(&report);
    return 0;
}

/* test:sleep — holds the storage thread 300 ms, so that the calls submitted
 * meanwhile make one group. */
static int sleep_a_while(ctx *c, const json_t *args, json_t **result)
{
    (void)c;
    (void)args;
    usleep(300 * 1000);
    *result = json_null();
    return 0;
}

/* test:insertUser {tokenIdentifier} — a user inserted as it is, around the
 * app: a second one with the same token breaks the unique index in the
 * database, not before. */
static int insert_user(ctx *c, const json_t *args, json_t **result)
{
    json_t *doc = json_pack("{s:s, s:s, s:s, s:i, s:O, s:{}}", "name", "Dup", "email",
                            "dup@example.com", "pictureUrl", "", "credits", 0, "tokenIdentifier",
                            json_object_get(args, "tokenIdentifier"), "identity");
    char id[ID_BYTES_MAX];
    int rc = db_insert(c, "users", doc, id);
    json_decref(doc);
    if (rc == 0) *result = ctx_own(c, json_string(id));
    return rc;
}

static const v_field insert_user_fields[] = {{"tokenIdentifier", &v_string, false}};
static const validator insert_user_args = V_OBJECT_INIT(insert_user_fields);

static const fn_def test_fns[] = {
    {.path = "test:sleep",
     .kind = FN_MUTATION,
     .visibility = FN_SYSTEM,
     .args = &v_no_args,
     .impl = sleep_a_while},
    {.path = "test:insertUser",
     .kind = FN_MUTATION,
     .visibility = FN_SYSTEM,
     .args = &insert_user_args,
     .impl = insert_user},
    {.path = "test:digest",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &v_no_args,
     .impl = digest},
    {.path = "test:verify",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &v_no_args,
     .impl = verify},
};

static void on_done(call *c)
{
    (*(int *)c->data)--;
}

/* Submits one call as identity (a tokenIdentifier; NULL = admin); wait()
 * waits for every submitted call. */
static call *submit(fixture *f, const char *path, json_t *args, const char *who)
{
    call *c = call_new();
    c->fn = registry_find(&f->reg, path);
    if (!c->fn) fail_msg("no function %s", path);
    c->args = args;
    if (who)
        c->identity = json_pack("{s:s, s:s, s:s, s:s}", "tokenIdentifier", who, "subject", who,
                                "issuer", "http://x", "email", who);
    else
        c->admin = true;
    c->done = on_done;
    c->data = &f->pending;
    if (engine_submit(f->en, c) == 0) f->pending++;
    return c;
}

static void wait_all(fixture *f)
{
    while (f->pending > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Runs one call as identity (a tokenIdentifier; NULL = admin) and waits. */
static call *run(fixture *f, const char *path, json_t *args, const char *who)
{
    call *c = call_new();
    c->fn = registry_find(&f->reg, path);
    if (!c->fn) fail_msg("no function %s", path);
    c->args = args;
    if (who)
        c->identity = json_pack("{s:s, s:s, s:s, s:s}", "tokenIdentifier", who, "subject", who,
                                "issuer", "http://x", "email", who);
    else
        c->admin = true;
    c->done = on_done;
    c->data = &f->pending;
    if (engine_submit(f->en, c) == 0) f->pending++;
    while (f->pending > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    return c;
}

/* Runs a call that must succeed; returns its result (a new reference). */
static json_t *ok(fixture *f, const char *path, json_t *args, const char *who)
{
    call *c = run(f, path, args, who);
    if (c->rc) fail_msg("%s: %s", path, c->err.msg);
    json_t *result = json_incref(c->result);
    call_free(c);
    return result;
}

static char *state_digest(fixture *f)
{
    json_t *d = ok(f, "test:digest", json_object(), NULL);
    char *text = strdup(json_string_value(d));
    json_decref(d);
    return text;
}

static void assert_invariants(fixture *f, const char *after)
{
    json_t *v = ok(f, "test:verify", json_object(), NULL);
    if (json_integer_value(json_object_get(v, "count")) != 0) {
        char *text = json_dumps(v, JSON_COMPACT);
        fail_msg("after %s, invariants broken: %s", after, text);
    }
    json_decref(v);
}

static int setup_store(void **state, bool postgres)
{
    *state = NULL;
    if (postgres && !base_url()) return 0; /* the test skips */
    fixture *f = calloc(1, sizeof *f);
    f->postgres = postgres;
    f->dir = test_mkdtemp();
    if (postgres) {
        char schema_name[64];
        snprintf(schema_name, sizeof schema_name, "faults_%d", (int)getpid());
        char create[700];
        snprintf(create, sizeof create,
                 "psql '%s' -qAtc 'DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s'", base_url(),
                 schema_name, schema_name);
        if (system(create) != 0) fail_msg("cannot create schema %s", schema_name);
        schema_url(schema_name, f->url, sizeof f->url);
    } else {
        install_faulty_vfs();
        snprintf(f->url, sizeof f->url, "sqlite:%s/faults.db", f->dir);
    }
    uv_loop_init(&f->loop);
    registry_init(&f->reg);
    app_register(&f->reg);
    registry_add(&f->reg, test_fns, sizeof test_fns / sizeof test_fns[0]);
    engine_config cfg = {
        .loop = &f->loop, .db_url = f->url, .schema = app_schema(), .registry = &f->reg};
    char report[STORE_REPORT_BYTES_MAX];
    err_t e;
    err_init(&e);
    if (engine_open(&cfg, &f->en, report, &e) != 0) fail_msg("engine_open: %s", e.msg);
    *state = f;
    return 0;
}

static int setup_sqlite(void **state)
{
    return setup_store(state, false);
}

static int setup_pg(void **state)
{
    return setup_store(state, true);
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (!f) return 0;
    store_inject_fault_after(0);
    atomic_store(&fsync_failures_armed, 0);
    engine_close(f->en);
    uv_loop_close(&f->loop);
    test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* --- the mutations of the contract ------------------------------------------------------- */

#define ALICE "http://x|alice"

/* One mutation to sweep: prepare (without faults) what it needs, then its
 * call. */
typedef struct mutation_case {
    const char *path;
    const char *who; /* NULL = admin */
    json_t *(*prepare)(fixture *f);
} mutation_case;

static json_t *no_args(fixture *f)
{
    (void)f;
    return json_object();
}

static json_t *a_workflow(fixture *f)
{
    return ok(f, "workflows:create", json_pack("{s:s}", "title", "w"), ALICE);
}

static json_t *create_workflow_args(fixture *f)
{
    (void)f;
    return json_pack("{s:s, s:[i], s:[]}", "title", "new", "nodes", 1, "edges");
}

static json_t *update_workflow_args(fixture *f)
{
    json_t *id = a_workflow(f);
    json_t *args = json_pack("{s:O, s:s, s:[s]}", "id", id, "title", "renamed", "nodes", "n");
    json_decref(id);
    return args;
}

static json_t *remove_workflow_args(fixture *f)
{
    json_t *id = a_workflow(f);
    json_t *args = json_pack("{s:O}", "id", id);
    json_decref(id);
    return args;
}

static json_t *create_run_args(fixture *f)
{
    json_t *wf = a_workflow(f);
    json_t *args =
        json_pack("{s:{s:s, s:s}, s:O}", "input", "model", "m", "prompt", "p", "workflowId", wf);
    json_decref(wf);
    return args;
}

static json_t *a_run(fixture *f)
{
    return ok(f, "runs:create", json_pack("{s:{s:s, s:s}}", "input", "model", "m", "prompt", "p"),
              ALICE);
}

static json_t *cancel_args(fixture *f)
{
    json_t *id = a_run(f);
    json_t *args = json_pack("{s:O}", "id", id);
    json_decref(id);
    return args;
}

static json_t *claim_args(fixture *f)
{
    json_decref(a_run(f));
    return json_pack("{s:s}", "workerId", "w1");
}

/* A run held by worker w1 (claims until it gets this one). */
static json_t *a_held_run(fixture *f)
{
    json_t *id = a_run(f);
    for (;;) {
        json_t *claimed = ok(f, "runs:claim", json_pack("{s:s}", "workerId", "w1"), NULL);
        assert_true(json_is_object(claimed));
        bool mine = json_equal(json_object_get(claimed, "_id"), id);
        json_decref(claimed);
        if (mine) return id;
    }
}

static json_t *heartbeat_args(fixture *f)
{
    json_t *id = a_held_run(f);
    json_t *args = json_pack("{s:O, s:s, s:i}", "id", id, "workerId", "w1", "leaseSeconds", 60);
    json_decref(id);
    return args;
}

static json_t *complete_args(fixture *f)
{
    json_t *id = a_held_run(f);
    json_t *args = json_pack("{s:O, s:s, s:s}", "id", id, "workerId", "w1", "output",
                             "https://example.com/out.png");
    json_decref(id);
    return args;
}

static json_t *fail_args(fixture *f)
{
    json_t *id = a_held_run(f);
    json_t *args = json_pack("{s:O, s:s, s:s}", "id", id, "workerId", "w1", "error", "boom");
    json_decref(id);
    return args;
}

static json_t *grant_args(fixture *f)
{
    (void)f;
    return json_pack("{s:s, s:i, s:s}", "tokenIdentifier", ALICE, "amount", 7, "note", "sweep");
}

static const mutation_case cases[] = {
    {"users:getOrCreate", ALICE, no_args},
    {"users:getOrCreate", "http://x|newcomer", no_args},
    {"workflows:create", ALICE, create_workflow_args},
    {"workflows:update", ALICE, update_workflow_args},
    {"workflows:remove", ALICE, remove_workflow_args},
    {"runs:create", ALICE, create_run_args},
    {"runs:cancel", ALICE, cancel_args},
    {"runs:claim", NULL, claim_args},
    {"runs:heartbeat", NULL, heartbeat_args},
    {"runs:complete", NULL, complete_args},
    {"runs:fail", NULL, fail_args},
    {"admin:grantCredits", NULL, grant_args},
};

/* Alice exists with credits enough for every run the sweep creates. */
static void starting_state(fixture *f)
{
    json_decref(ok(f, "users:getOrCreate", json_object(), ALICE));
    json_decref(ok(f, "admin:grantCredits",
                   json_pack("{s:s, s:i}", "tokenIdentifier", ALICE, "amount", 100000), NULL));
}

/* Arms the fault, runs the call, disarms; says whether the fault struck. */
typedef enum { FAULT_STATEMENT, FAULT_FSYNC } fault_kind;

static call *run_with_fault(fixture *f, const mutation_case *mc, json_t *args, fault_kind kind,
                            int n, bool *struck)
{
    if (kind == FAULT_STATEMENT) {
        store_inject_fault_after(n);
    } else {
        atomic_store(&fsync_failures_struck, 0);
        atomic_store(&fsync_failures_armed, n);
    }
    call *c = run(f, mc->path, args, mc->who);
    if (kind == FAULT_STATEMENT) {
        /* Not consumed: the mutation ran fewer statements than n. */
        *struck = store_fault_pending() == 0;
        store_inject_fault_after(0);
    } else {
        *struck = atomic_load(&fsync_failures_struck) > 0;
        atomic_store(&fsync_failures_armed, 0);
    }
    return c;
}

static void sweep(fixture *f, fault_kind kind)
{
    starting_state(f);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mutation_case *mc = &cases[i];
        int n;
        for (n = 1; n <= SWEEP_STATEMENTS_MAX; n++) {
            json_t *args = mc->prepare(f);
            char *before = state_digest(f);
            bool struck = false;
            call *c = run_with_fault(f, mc, args, kind, n, &struck);
            char *after = state_digest(f);
            char what[160];
            snprintf(what, sizeof what, "%s with %s %d failing", mc->path,
                     kind == FAULT_STATEMENT ? "statement" : "fsync", n);
            if (c->rc != 0) {
                /* An error, only ever from the fault: nothing it did is there. */
                if (!struck) fail_msg("%s: failed without a fault: %s", what, c->err.msg);
                if (strcmp(before, after) != 0)
                    fail_msg("%s: failed (%s) but changed the database", what, c->err.msg);
            }
            assert_invariants(f, what);
            free(before);
            free(after);
            call_free(c);
            /* The engine goes on serving. */
            json_decref(ok(f, "users:me", json_object(), ALICE));
            if (!struck) break;                       /* past the mutation's last statement */
            if (kind == FAULT_FSYNC && n >= 3) break; /* its syncs: the commit's, a checkpoint's */
        }
        if (kind == FAULT_STATEMENT && n < 2)
            fail_msg("%s: the sweep never struck a statement", mc->path);
        printf("  %-20s %s: %d %s failed in turn, each left the database whole\n", mc->path,
               mc->who ? mc->who : "admin", n - 1,
               kind == FAULT_STATEMENT ? "statements" : "fsyncs");
    }
}

static void every_mutation_survives_a_failed_statement(void **state)
{
    sweep(*state, FAULT_STATEMENT);
}

static void every_mutation_survives_a_failed_fsync(void **state)
{
    sweep(*state, FAULT_FSYNC);
}

/* PostgreSQL syncs on its own side: statements and commits only. */
static void on_postgres_every_mutation_survives_a_failed_statement(void **state)
{
    if (!*state) skip(); /* no DOJO_TEST_PG_URL */
    sweep(*state, FAULT_STATEMENT);
}

/* A write the database refuses only when its answer arrives (a deferred
 * write, in the same flight as the reads of the mutations after it) fails
 * its group; the storage thread runs the group again without deferring: the
 * failing mutation gets its own error, the others happen once. */
static void on_postgres_a_refused_deferred_write_spares_its_group(void **state)
{
    fixture *f = *state;
    if (!f) skip(); /* no DOJO_TEST_PG_URL */
    starting_state(f);
    json_decref(ok(f, "users:getOrCreate", json_object(), "http://x|bob"));
    call *slow = submit(f, "test:sleep", json_object(), NULL);
    call *grants[2], *dup;
    grants[0] = submit(f, "admin:grantCredits",
                       json_pack("{s:s, s:i}", "tokenIdentifier", ALICE, "amount", 1), NULL);
    dup = submit(f, "test:insertUser", json_pack("{s:s}", "tokenIdentifier", ALICE), NULL);
    grants[1] =
        submit(f, "admin:grantCredits",
               json_pack("{s:s, s:i}", "tokenIdentifier", "http://x|bob", "amount", 1), NULL);
    wait_all(f);
    assert_int_equal(slow->rc, 0);
    for (int i = 0; i < 2; i++)
        if (grants[i]->rc) fail_msg("grant %d: %s", i, grants[i]->err.msg);
    assert_int_equal(dup->rc, ERR_CONSTRAINT);
    assert_non_null(strstr(dup->err.msg, "users_by_token_unique"));
    /* Each grant happened once. */
    json_t *alice = ok(f, "users:me", json_object(), ALICE);
    json_t *bob = ok(f, "users:me", json_object(), "http://x|bob");
    assert_int_equal(json_integer_value(json_object_get(alice, "credits")), 100001);
    assert_int_equal(json_integer_value(json_object_get(bob, "credits")), 1);
    json_decref(alice);
    json_decref(bob);
    assert_invariants(f, "a refused deferred write");
    call_free(slow);
    call_free(grants[0]);
    call_free(grants[1]);
    call_free(dup);
}

int main(void)
{
    log_init(LOG_OFF); /* the storage errors are the point */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_mutation_survives_a_failed_statement, setup_sqlite,
                                        teardown),
        cmocka_unit_test_setup_teardown(every_mutation_survives_a_failed_fsync, setup_sqlite,
                                        teardown),
        cmocka_unit_test_setup_teardown(on_postgres_every_mutation_survives_a_failed_statement,
                                        setup_pg, teardown),
        cmocka_unit_test_setup_teardown(on_postgres_a_refused_deferred_write_spares_its_group,
                                        setup_pg, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
