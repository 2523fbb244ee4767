/*
 * fuzz_wire.c — libFuzzer target: arbitrary bytes as a request body through
 * JSON parsing, Convex wire decoding (wire_args) and argument validation,
 * the path every function call's arguments take. Nothing may crash, leak or
 * read out of bounds; a refusal must be INVALID_ARGUMENT with a message.
 * Thread: the fuzzer's.
 */
#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "app/app.h"
#include "engine/registry.h"
#include "engine/validator.h"
#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static registry reg;
    static int ready;
    if (!ready) {
        registry_init(&reg);
        app_register(&reg);
        ready = 1;
    }
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    if (!body) return 0;
    err_t e;
    err_init(&e);
    json_t *args = wire_args(json_object_get(body, "args"), &e);
    if (!args) {
        assert(e.code == ERR_INVALID_ARGUMENT && e.msg[0]);
    } else {
        /* Every function's validator must accept or refuse it cleanly. */
        for (int i = 0; i < reg.n_fns; i++) {
            err_t v;
            err_init(&v);
            int rc = validate(reg.fns[i]->args, args, "argument", app_schema(), &v);
            assert(rc == 0 || (rc == ERR_INVALID_ARGUMENT && v.msg[0]));
            err_clear(&v);
        }
        char *text = wire_dumps(args, WIRE_ENCODED);
        assert(text);
        free(text);
        json_decref(args);
    }
    err_clear(&e);
    json_decref(body);
    return 0;
}
