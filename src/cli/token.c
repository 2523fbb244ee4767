/*
 * token.c — `dojo token --sub ID [--email E] [--name N] [--picture URL]
 * [--ttl SECONDS] [--claim k=v …] [--url ISSUER]`: prints a signed token of
 * the built-in development issuer that `dojo dev --dev-auth` runs, shaped like
 * a Clerk "convex" template token (aud "convex"), so that curl and scripts can
 * call functions as a user without Clerk. The key is ./.dojo/dev_auth_key.pem
 * and the issuer URL ./.dojo/dev_auth_issuer, both written by
 * `dojo dev --dev-auth` in the same folder.
 * Thread: the main thread.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/dev_issuer.h"
#include "base/ids.h"
#include "cli/cli.h"

#define TOKEN_JTI_BYTES 10 /* 20 hex characters, like Clerk's jti */
#define TOKEN_ISSUER_BYTES_MAX 512

static void token_usage(FILE *out)
{
    fprintf(out,
            "Usage: dojo token --sub ID [--email E] [--name N] [--picture URL]\n"
            "                  [--ttl SECONDS] [--claim NAME=VALUE ...] [--url ISSUER]\n\n"
            "Prints a signed token (a JWT) for the built-in issuer of `dojo dev --dev-auth`,\n"
            "like the one Clerk's \"convex\" JWT template gives the web app, e.g.\n"
            "  TOKEN=$(dojo token --sub user_1 --email me@example.com)\n"
            "  curl -s http://127.0.0.1:3210/api/mutation -H \"Authorization: Bearer $TOKEN\" \\\n"
            "    -H 'Content-Type: application/json' -d "
            "'{\"path\":\"users:getOrCreate\",\"args\":{}}'\n\n"
            "  --sub ID          the user id (required); tokenIdentifier is <issuer>|<ID>\n"
            "  --email E         email (and email_verified: true)\n"
            "  --name N          full name\n"
            "  --picture URL     profile picture URL\n"
            "  --ttl SECONDS     lifetime, 1 to %d (default %d)\n"
            "  --claim NAME=VALUE  a custom claim; VALUE is JSON when it parses as JSON\n"
            "                    (42, true, {\"a\":1}), else a string. Repeatable (%d at most).\n"
            "  --url ISSUER      the issuer URL (default: ./" CLI_DEV_AUTH_ISSUER_FILE ", written\n"
            "                    by `dojo dev --dev-auth`)\n\n"
            "Run it in the folder where `dojo dev --dev-auth` runs: the signing key is\n"
            "./" CLI_DEV_AUTH_KEY_FILE ".\n",
            DEV_ISSUER_TTL_S_MAX, DEV_ISSUER_TTL_S_DEFAULT, DEV_ISSUER_CLAIMS_MAX);
}

/* The issuer from --url, else from the file dev wrote. */
static int token_issuer(const char *url_opt, char out[TOKEN_ISSUER_BYTES_MAX], err_t *e)
{
    if (url_opt) {
        snprintf(out, TOKEN_ISSUER_BYTES_MAX, "%s", url_opt);
    } else {
        char *text = cli_read_file(CLI_DEV_AUTH_ISSUER_FILE, NULL);
        if (!text)
            return err_set(e, ERR_NOT_FOUND,
                           "dev auth is not on here (no ./%s): start `dojo dev --dev-auth` first "
                           "in this folder, or pass the issuer with --url",
                           CLI_DEV_AUTH_ISSUER_FILE);
        snprintf(out, TOKEN_ISSUER_BYTES_MAX, "%s", text);
        free(text);
        out[strcspn(out, "\r\n ")] = '\0';
    }
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    return auth_check_issuer_url(out, e);
}

int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"sub", required_argument, NULL, 's'},
        {"email", required_argument, NULL, 'e'},
        {"name", required_argument, NULL, 'n'},
        {"picture", required_argument, NULL, 'p'},
        {"ttl", required_argument, NULL, 't'},
        {"claim", required_argument, NULL, 'c'},
        {"url", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    dev_token_request req = {.ttl_s = DEV_ISSUER_TTL_S_DEFAULT};
    const char *url = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            req.sub = optarg;
            break;
        case 'e':
            req.email = optarg;
            break;
        case 'n':
            req.name = optarg;
            break;
        case 'p':
            req.picture = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 't': {
            char *end;
            long long ttl = strtoll(optarg, &end, 10);
            if (!*optarg || *end || ttl < 1 || ttl > DEV_ISSUER_TTL_S_MAX) {
                cli_error("token", "--ttl must be a number of seconds from 1 to %d, got \"%s\"",
                          DEV_ISSUER_TTL_S_MAX, optarg);
                return 2;
            }
            req.ttl_s = ttl;
            break;
        }
        case 'c':
            if (req.n_claims == DEV_ISSUER_CLAIMS_MAX) {
                cli_error("token", "at most %d --claim options", DEV_ISSUER_CLAIMS_MAX);
                return 2;
            }
            req.claims[req.n_claims++] = optarg;
            break;
        case 'h':
            token_usage(stdout);
            return 0;
        default:
            token_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        cli_error("token", "unexpected argument \"%s\" (options are --sub, --email, …)",
                  argv[optind]);
        return 2;
    }
    if (!req.sub || !*req.sub) {
        cli_error("token", "--sub is required: the user id, e.g. dojo token --sub user_1");
        return 2;
    }
    err_t e;
    err_init(&e);
    char issuer[TOKEN_ISSUER_BYTES_MAX], kid[DEV_ISSUER_KID_BYTES], jti[2 * TOKEN_JTI_BYTES + 1];
    EVP_PKEY *key = NULL;
    json_t *claims = NULL;
    char *token = NULL;
    int rc = token_issuer(url, issuer, &e);
    if (rc == 0) {
        rc = dev_issuer_key_load(CLI_DEV_AUTH_KEY_FILE, false, &key, NULL, &e);
        if (rc == ERR_NOT_FOUND)
            err_set(&e, rc,
                    "no signing key (./%s): start `dojo dev --dev-auth` first, in this folder",
                    CLI_DEV_AUTH_KEY_FILE);
    }
    if (rc == 0) rc = dev_issuer_kid(key, kid, &e);
    if (rc == 0 && id_random_hex(jti, TOKEN_JTI_BYTES) != 0)
        rc = err_set(&e, ERR_INTERNAL, "no randomness for the token id");
    req.issuer = issuer;
    if (rc == 0) rc = dev_issuer_claims(&req, (int64_t)time(NULL), jti, &claims, &e);
    if (rc == 0) rc = dev_issuer_sign(key, kid, claims, &token, &e);
    if (rc == 0)
        printf("%s\n", token);
    else
        cli_error("token", "%s", e.msg);
    free(token);
    json_decref(claims);
    EVP_PKEY_free(key);
    err_clear(&e);
    return rc == 0 ? 0 : 1;
}
