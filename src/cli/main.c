/*
 * main.c — the `dojo` binary: dispatches to a command (api.md §7).
 * Thread: the main thread.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"dev", cmd_dev, "set up ./.dojo and serve a local deployment on http://127.0.0.1:3210"},
    {"serve", cmd_serve, "production server (--db, --listen, DOJO_ADMIN_KEY)"},
    {"run", cmd_run, "run a function as admin: dojo run PATH [JSON]"},
    {"env", cmd_env, "deployment variables: dojo env set|get|list|remove"},
    {"verify", cmd_verify, "check every invariant of the data and report each violation"},
    {"codegen", cmd_codegen, "write the TypeScript bindings to ./convex/_generated"},
    {"token", cmd_token, "print a token of `dojo dev --dev-auth`'s issuer: dojo token --sub ID"},
    {"doctor", cmd_doctor, "check the server and the auth setup, and a token with --token"},
    {"export", cmd_export, "write a consistent snapshot of every table to a file"},
    {"import", cmd_import, "restore a snapshot into an empty (or --replace'd) database"},
    {"backup", cmd_backup, "an online backup of a SQLite deployment, with its files"},
    {"restore", cmd_restore, "check a backup and put it in place (--check: only check it)"},
    {"worker", cmd_worker, "turn queued runs into outputs: dojo worker --exec CMD"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "dojo %s — the realtime backend of Karate AI\n\nUsage: dojo <command> [options]\n\n"
            "Commands:\n",
            DOJO_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun `dojo <command> --help` for a command's options.\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* banner lines interleave with the log in order */
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("dojo %s\n", DOJO_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "dojo: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
