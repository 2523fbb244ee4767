/*
 * test_token_cache.c — the verified-token cache: a verified token is served
 * from it until it expires (within the skew), never after, and never after
 * the cache was cleared (issuer, audience or keys changed).
 * Thread: the test's main thread.
 */
#include "support.h"

#include "auth/token_cache.h"

static void verified_token_is_served_until_it_expires(void **state)
{
    (void)state;
    token_cache *tc = token_cache_new();
    unsigned char key[32];
    token_cache_key("aaa.bbb.ccc", key);
    json_t *identity = json_pack("{s:s}", "tokenIdentifier", "https://i|u1");
    token_cache_put(tc, key, identity, 1000);
    int64_t exp = 0;
    json_t *hit = token_cache_get(tc, key, 990, 60, &exp);
    assert_non_null(hit);
    assert_true(exp == 1000);
    assert_true(json_equal(hit, identity));
    json_decref(hit);
    assert_non_null(hit = token_cache_get(tc, key, 1060, 60, &exp)); /* within the skew */
    json_decref(hit);
    assert_null(token_cache_get(tc, key, 1061, 60, &exp)); /* expired: full check says so */
    json_decref(identity);
    token_cache_free(tc);
}

static void another_token_is_not_served(void **state)
{
    (void)state;
    token_cache *tc = token_cache_new();
    unsigned char a[32], b[32];
    token_cache_key("aaa.bbb.ccc", a);
    token_cache_key("aaa.bbb.ccd", b);
    json_t *identity = json_object();
    token_cache_put(tc, a, identity, 1000);
    int64_t exp;
    assert_null(token_cache_get(tc, b, 0, 60, &exp));
    json_decref(identity);
    token_cache_free(tc);
}

static void clearing_forgets_everything(void **state)
{
    (void)state;
    token_cache *tc = token_cache_new();
    unsigned char key[32];
    token_cache_key("aaa.bbb.ccc", key);
    json_t *identity = json_object();
    token_cache_put(tc, key, identity, 1000);
    token_cache_clear(tc);
    int64_t exp;
    assert_null(token_cache_get(tc, key, 0, 60, &exp));
    json_decref(identity);
    token_cache_free(tc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verified_token_is_served_until_it_expires),
        cmocka_unit_test(another_token_is_not_served),
        cmocka_unit_test(clearing_forgets_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
