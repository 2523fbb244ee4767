/*
 * fuzz_import.c — libFuzzer target: the lines of an import file as
 * `dojo import` reads them (cli/export_format.c): the first line as the
 * header, every other line as a document line checked against the app's
 * schema (types, ids of the right table, sizes). Each line is accepted or
 * refused with a reason; nothing crashes or leaks.
 * Thread: the fuzzer's.
 */
#include <stdint.h>
#include <string.h>

#include "app/app.h"
#include "base/invariant.h"
#include "cli/export_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const schema *s = app_schema();
    size_t start = 0;
    bool header = true;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n') continue;
        const char *line = (const char *)data + start;
        size_t len = i - start;
        start = i + 1;
        err_t e;
        err_init(&e);
        if (header) {
            export_header h;
            int rc = export_header_parse(line, len, s, &h, &e);
            ASSERT(rc == 0 || e.msg[0]);
            header = false;
        } else {
            int table = -1;
            json_t *doc = NULL;
            int rc = export_line_parse(line, len, s, &table, &doc, &e);
            ASSERT(rc == 0 ? (doc != NULL && table >= 0 && table < s->n_tables)
                           : (doc == NULL && e.msg[0]));
            json_decref(doc);
        }
        err_clear(&e);
    }
    return 0;
}
