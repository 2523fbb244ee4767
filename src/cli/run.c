/*
 * run.c — `dojo run PATH [JSON]`: calls any function as admin on a running
 * server and prints its result as JSON, e.g.
 *   dojo run admin:grantCredits '{"email":"a@b.co","amount":100}'
 * Thread: the main thread.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

static void run_usage(FILE *out)
{
    fprintf(out, "Usage: dojo run PATH [JSON] [--url URL] [--admin-key KEY]\n\n"
                 "Runs a function as admin and prints the result, e.g.\n"
                 "  dojo run admin:grantCredits '{\"email\":\"a@b.co\",\"amount\":100}'\n"
                 "The server is --url, $DOJO_URL or http://127.0.0.1:3210; the key is\n"
                 "--admin-key, $DOJO_ADMIN_KEY or ./.dojo/admin_key.\n");
}

int cmd_run(int argc, char **argv)
{
    const char *url, *key;
    int early = cli_target_getopt(argc, argv, run_usage, &url, &key);
    if (early >= 0) return early;
    if (optind >= argc || argc - optind > 2) {
        run_usage(stderr);
        return 2;
    }
    const char *path = argv[optind];
    json_error_t jerr;
    json_t *args = optind + 1 < argc ? json_loads(argv[optind + 1], 0, &jerr) : json_object();
    if (!json_is_object(args)) {
        cli_error("run", "the arguments must be a JSON object, e.g. '{\"amount\": 100}'%s%s",
                  args ? "" : ": ", args ? "" : jerr.text);
        json_decref(args);
        return 2;
    }
    json_t *result = cli_admin_call("run", url, key, path, args);
    if (!result) return 1;
    char *text = json_dumps(result, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    printf("%s\n", text ? text : "null");
    free(text);
    json_decref(result);
    return 0;
}
