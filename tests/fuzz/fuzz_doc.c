/*
 * fuzz_doc.c — libFuzzer target: arbitrary bytes as a stored document
 * (store/doc_codec.h) and the index keys of what decodes (store/key_codec.h).
 * The store reads these bytes from a database file that may be damaged or
 * written by hand: decoding must refuse them with ERR_STORAGE and a message,
 * never crash, leak or read past them; what decodes must encode again to
 * bytes that decode to the same document (the same bytes once more), and
 * every value in it must have a key that sorts equal to itself.
 * Thread: the fuzzer's.
 */
#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/doc_codec.h"
#include "store/key_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_keys(const json_t *doc)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)doc, k, v)
    {
        key_buf a, b;
        assert(key_encode(v, &a) == 0);
        assert(key_encode(v, &b) == 0);
        assert(a.len > 0 && key_bytes_cmp(a.bytes, a.len, b.bytes, b.len) == 0);
        key_buf_free(&a);
        key_buf_free(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    err_t e;
    err_init(&e);
    json_t *doc = NULL;
    int rc = doc_decode(data, size, "fuzzid", 1.5, &doc, "fuzz", &e);
    if (rc != 0) {
        assert(rc == ERR_STORAGE && e.msg[0] && !doc);
        err_clear(&e);
        return 0;
    }
    assert(json_is_object(doc));
    check_keys(doc);
    uint8_t *again = NULL;
    size_t len = 0;
    assert(doc_encode(doc, &again, &len) == 0);
    json_t *back = NULL;
    assert(doc_decode(again, len, "fuzzid", 1.5, &back, "fuzz", &e) == 0);
    /* Compared as their encodings: json_equal looks keys up as C strings,
     * and a field name may hold U+0000. */
    uint8_t *third = NULL;
    size_t third_len = 0;
    assert(doc_encode(back, &third, &third_len) == 0);
    assert(third_len == len && memcmp(third, again, len) == 0);
    free(third);
    free(again);
    json_decref(back);
    json_decref(doc);
    err_clear(&e);
    return 0;
}
