/* main.c — the `tidemark` command: a table of subcommands. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const tm_command *find(const char *name)
{
    for (const tm_command *c = tm_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static void usage(FILE *out)
{
    fputs("usage: tidemark COMMAND [ARGS...]\n"
          "\n"
          "Traces every malloc and free of a process and reports whether memory\n"
          "comes back.\n"
          "\n"
          "commands:\n",
          out);
    for (const tm_command *c = tm_commands; c->name; c++)
        fprintf(out, "  %-9s %s\n", c->name, c->summary);
    fputs("\noptions:\n"
          "  -h, --help     this list ('tidemark COMMAND --help' describes a command)\n"
          "  --version      the tidemark version and the trace format it writes\n"
          "\nEvery report takes --json.\n"
          "Exit status: 0 ok, 2 bad usage, bad input, a damaged trace or a failed\n"
          "output (one line on stderr says which), 3 leak found (--fail-on-leak) or\n"
          "sweep verdict FAIL; run returns the command's status.\n",
          out);
}

int main(int argc, char **argv)
{
    opterr = 0;     /* the commands say what was wrong, in one line */
    if (argc < 2) {
        usage(stderr);
        return TM_EXIT_BAD_INPUT;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help")) {
        usage(stdout);
        return TM_EXIT_OK;
    }
    if (!strcmp(name, "help")) {
        if (argc > 2 && find(argv[2])) {
            char *args[] = {argv[2], "--help", NULL};
            return find(argv[2])->run(2, args);
        }
        usage(stdout);
        return TM_EXIT_OK;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("tidemark %s (trace format %d)\n", TM_VERSION, TM_FORMAT_VERSION);
        return TM_EXIT_OK;
    }
    const tm_command *c = find(name);
    if (!c) {
        tm_error("unknown command '%s' (see 'tidemark --help')", name);
        return TM_EXIT_BAD_INPUT;
    }
    return c->run(argc - 1, argv + 1);
}
