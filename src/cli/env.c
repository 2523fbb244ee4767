/*
 * env.c — `dojo env set|get|list|remove`: deployment variables (api.md §6),
 * stored in the database through the running server, effective without a
 * restart. CLERK_ISSUER_URL is checked against the issuer URL rule before it
 * is sent.
 * Thread: the main thread.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/jread.h"
#include "cli/cli.h"

#define ENV_CLI_NAME_BYTES_MAX 256

static void env_usage(FILE *out)
{
    fprintf(out, "Usage: dojo env set NAME VALUE | set NAME=VALUE | get NAME | list | remove NAME\n"
                 "       [--url URL] [--admin-key KEY]\n\n"
                 "Deployment variables: CLERK_ISSUER_URL, AUTH_APPLICATION_ID, SIGNUP_CREDITS,\n"
                 "PRICING, MAX_ATTEMPTS, or your own. A stored value wins over the server's\n"
                 "process environment and takes effect at once. Removing one that is not set\n"
                 "succeeds. A value starting with '-' goes after `--`:\n"
                 "  dojo env set -- SIGNUP_CREDITS -1\n");
}

int cmd_env(int argc, char **argv)
{
    const char *url, *key;
    int early = cli_target_getopt(argc, argv, env_usage, &url, &key);
    if (early >= 0) return early;
    int n = argc - optind;
    const char *verb = n > 0 ? argv[optind] : "";
    const char *path = NULL;
    json_t *args = NULL;
    /* "set NAME VALUE", or "set NAME=VALUE" like `npx convex env set`. */
    char name[ENV_CLI_NAME_BYTES_MAX] = "";
    const char *value = NULL;
    if (strcmp(verb, "set") == 0 && n == 3) {
        snprintf(name, sizeof name, "%s", argv[optind + 1]);
        value = argv[optind + 2];
    } else if (strcmp(verb, "set") == 0 && n == 2 && strchr(argv[optind + 1], '=')) {
        const char *eq = strchr(argv[optind + 1], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - argv[optind + 1]), argv[optind + 1]);
        value = eq + 1;
    }
    if (value) {
        path = "_system:envSet";
        args = json_pack("{s:s, s:s}", "name", name, "value", value);
        if (strcmp(name, "CLERK_ISSUER_URL") == 0) {
            err_t e;
            err_init(&e);
            if (auth_check_issuer_url(value, &e) != 0) {
                cli_error("env", "%s", e.msg);
                json_decref(args);
                return 1;
            }
        }
    } else if (strcmp(verb, "get") == 0 && n == 2) {
        path = "_system:envGet";
        args = json_pack("{s:s}", "name", argv[optind + 1]);
    } else if (strcmp(verb, "remove") == 0 && n == 2) {
        path = "_system:envRemove";
        args = json_pack("{s:s}", "name", argv[optind + 1]);
    } else if (strcmp(verb, "list") == 0 && n == 1) {
        path = "_system:envList";
        args = json_object();
    } else {
        env_usage(stderr);
        return 2;
    }
    json_t *result = cli_admin_call("env", url, key, path, args);
    if (!result) return 1;
    int status = 0;
    if (strcmp(verb, "get") == 0) {
        if (json_is_null(result)) {
            fprintf(stderr,
                    "dojo env: %s is not set in the deployment (a server falls back to its own "
                    "process environment)\n",
                    argv[optind + 1]);
            status = 1;
        } else {
            printf("%s\n", jr_string_or(result, "value", ""));
        }
    } else if (strcmp(verb, "list") == 0) {
        size_t i;
        json_t *row;
        json_array_foreach(result, i, row)
        {
            printf("%s=%s\n", jr_string_or(row, "name", "?"), jr_string_or(row, "value", ""));
        }
    } else {
        printf("%s %s\n", strcmp(verb, "set") == 0 ? "set" : "removed",
               strcmp(verb, "set") == 0 ? name : argv[optind + 1]);
    }
    json_decref(result);
    return status;
}
