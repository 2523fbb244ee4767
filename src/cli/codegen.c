/*
 * codegen.c — `dojo codegen [--out DIR]`: writes the TypeScript bindings
 * (api.d.ts, api.js, dataModel.d.ts, README.md) of the app's schema and
 * functions to ./convex/_generated, or DIR. Needs no database and no server.
 * Thread: the main thread.
 */
#include <getopt.h>
#include <stdio.h>

#include "app/app.h"
#include "cli/cli.h"
#include "codegen/codegen.h"

static void codegen_usage(FILE *out)
{
    fprintf(out, "Usage: dojo codegen [--out DIR]\n\n"
                 "Writes the TypeScript bindings of dojo's functions and tables, like the\n"
                 "original `npx convex dev` did, so the web app can write\n"
                 "`useQuery(api.users.me)` with typed arguments and results:\n"
                 "  api.d.ts, api.js   `api` (public) and `internal` (admin-only) functions\n"
                 "  dataModel.d.ts     Doc<\"table\">, Id<\"table\">, TableNames, DataModel\n"
                 "Files whose content did not change are left untouched.\n\n"
                 "Options:\n"
                 "  --out DIR   the folder to write (default ./" CODEGEN_DEFAULT_DIR ",\n"
                 "              created with its parents when missing)\n");
}

int cmd_codegen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = CODEGEN_DEFAULT_DIR;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'h':
            codegen_usage(stdout);
            return 0;
        default:
            codegen_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        cli_error("codegen", "unexpected argument \"%s\" (did you mean --out %s?)", argv[optind],
                  argv[optind]);
        return 2;
    }
    registry r;
    registry_init(&r);
    app_register(&r);
    err_t e;
    err_init(&e);
    char report[CODEGEN_REPORT_BYTES_MAX];
    if (codegen_write(app_schema(), &r, out, report, sizeof report, &e) != 0) {
        cli_error("codegen", "%s", e.msg);
        err_clear(&e);
        return 1;
    }
    printf("%s\n", report);
    return 0;
}
