/*
 * users.c — users:getOrCreate and users:me (api.md §3 "users"). A user is
 * found by the tokenIdentifier of the caller's verified identity; the first
 * call creates it with SIGNUP_CREDITS credits (and a "signup" ledger row when
 * that is not zero); later calls refresh the profile fields from the token.
 * Concurrent first calls create one user: mutations are serialized by the
 * storage thread, and the unique by_token index backs that up.
 * Thread: the storage thread (getOrCreate) or a reader thread (me).
 */
#include <string.h>

#include "app/app.h"
#include "app/model.h"

static const char *const profile_fields[][2] = {
    /* user field, identity field */
    {"name", "name"},
    {"email", "email"},
    {"pictureUrl", "pictureUrl"},
};

/* The profile fields and identity as they should be stored now: a field the
 * token no longer carries is removed (null in a patch). */
static json_t *profile_from_identity(const json_t *identity, bool for_patch)
{
    json_t *p = json_object();
    for (size_t i = 0; i < sizeof profile_fields / sizeof profile_fields[0]; i++) {
        json_t *v = json_object_get(identity, profile_fields[i][1]);
        if (json_is_string(v))
            json_object_set(p, profile_fields[i][0], v);
        else if (for_patch)
            json_object_set_new(p, profile_fields[i][0], json_null());
    }
    json_object_set(p, "identity", (json_t *)identity);
    return p;
}

/* True when applying patch would change nothing (so no write, no push). */
static bool patch_is_noop(const json_t *doc, const json_t *patch)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)patch, key, value)
    {
        json_t *cur = json_object_get(doc, key);
        if (json_is_null(value) ? cur != NULL : !json_equal(cur, value)) return false;
    }
    return true;
}

static int create_user(ctx *c, const json_t *identity, json_t **user_out)
{
    int64_t signup;
    int rc = app_env_int(c, "SIGNUP_CREDITS", 0, 0, APP_CREDITS_MAX, &signup);
    if (rc) return rc;
    json_t *fields = ctx_own(c, profile_from_identity(identity, false));
    json_object_set_new(fields, "credits", json_integer(0));
    json_object_set(fields, "tokenIdentifier", json_object_get(identity, "tokenIdentifier"));
    char id[ID_BYTES_MAX];
    rc = db_insert(c, "users", fields, id);
    if (rc) return rc;
    json_t *user = NULL;
    rc = db_get(c, "users", id, &user);
    if (rc == 0 && signup > 0) {
        rc = app_ledger_move(c, user, signup, "signup", NULL, NULL, "system", NULL);
        if (rc == 0) rc = db_get(c, "users", id, &user);
    }
    *user_out = user;
    return rc;
}

static int get_or_create(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    json_t *user;
    int rc = app_find_user(c, &user);
    if (rc) return rc;
    const json_t *identity = ctx_identity(c);
    if (!user) {
        rc = create_user(c, identity, result);
        return rc;
    }
    json_t *patch = ctx_own(c, profile_from_identity(identity, true));
    if (!patch_is_noop(user, patch)) {
        const char *id = app_str(user, "_id"); /* the old document stays the ctx's */
        rc = db_patch(c, "users", id, patch);
        if (rc == 0) rc = db_get(c, "users", id, &user);
    }
    *result = user;
    return rc;
}

static int me(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    if (!ctx_token_identifier(c)) {
        *result = json_null();
        return 0;
    }
    json_t *user;
    int rc = app_find_user(c, &user);
    if (rc) return rc;
    *result = user ? user : json_null();
    return 0;
}

static const validator user_or_null = {.kind = V_ANY, .ts_type = "Doc<\"users\"> | null"};
static const validator user_doc_ref = {.kind = V_ANY, .ts_type = "Doc<\"users\">"};

static const fn_def user_fns[] = {
    {.path = "users:getOrCreate",
     .kind = FN_MUTATION,
     .visibility = FN_PUBLIC,
     .args = &v_no_args,
     .returns = &user_doc_ref,
     .impl = get_or_create,
     .doc = "The caller's user document, created on first call."},
    {.path = "users:me",
     .kind = FN_QUERY,
     .visibility = FN_PUBLIC,
     .args = &v_no_args,
     .returns = &user_or_null,
     .impl = me,
     .doc = "The caller's user document, or null."},
};

void users_register(registry *r)
{
    registry_add(r, user_fns, V_COUNT(user_fns));
}
