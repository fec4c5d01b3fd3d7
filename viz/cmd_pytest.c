/* cmd_pytest.c — `tidemark pytest [--python PATH] [-o FILE] [PYTEST ARGS...]`:
 * pytest under the tracer with the tidemark.pytest_plugin, as `tidemark run
 * --python-stacks` would run it, with the preload's in-process snapshots on
 * (TIDEMARK_SNAPSHOT=1).  The trace is kept. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char pytest_help[] =
    "usage: tidemark pytest [--python PATH] [-o FILE] [PYTEST ARGS...]\n"
    "\n"
    "Runs PATH -m pytest -p tidemark.pytest_plugin PYTEST ARGS under the tracer\n"
    "(as tidemark run --python-stacks does) and exits with pytest's status.\n"
    "Every test is a region test:<nodeid>; the plugin checks the markers\n"
    "limit_leaks(SIZE, warmup=0), limit_memory(SIZE) and\n"
    "no_kept_memory(region=NAME, warmup=N, limit=SIZE) from the preload's own\n"
    "counters, and the options --tidemark-limit-leaks SIZE,\n"
    "--tidemark-limit-memory SIZE, --tidemark-baseline FILE and\n"
    "--tidemark-fail-on-increase PCT (see pytest --help under tidemark pytest).\n"
    "\n"
    "  --python PATH   the interpreter (default /usr/bin/python3)\n"
    "  -o, --output FILE\n"
    "                  the trace, kept for the reports (%p = pid); default\n"
    "                  .tidemark/pytest.<pid>.trace in the current directory\n"
    "\n"
    "Python runs with its own allocator; its small objects count in the\n"
    "figures, since Python's allocator domains are traced.  Options of\n"
    "tidemark pytest come first; everything from the first other argument (or\n"
    "after --) goes to pytest.\n";

int tm_cmd_pytest(int argc, char **argv)
{
    const char *python = "/usr/bin/python3", *output = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "--help") == 0 && i == 1) {
            fputs(pytest_help, stdout);
            return TM_EXIT_OK;
        }
        if (strcmp(a, "--python") == 0 || strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (i + 1 >= argc)
                return tm_usage_error("pytest", "%s needs a value", a);
            if (strcmp(a, "--python") == 0)
                python = argv[++i];
            else
                output = argv[++i];
            continue;
        }
        if (strncmp(a, "--python=", 9) == 0) {
            python = a + 9;
            continue;
        }
        if (strncmp(a, "--output=", 9) == 0) {
            output = a + 9;
            continue;
        }
        break; /* the first of pytest's arguments */
    }
    if (!output) {
        if (mkdir(".tidemark", 0777) < 0 && errno != EEXIST) {
            tm_error("cannot create .tidemark: %s", strerror(errno));
            return TM_EXIT_FAIL;
        }
        output = ".tidemark/pytest.%p.trace";
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        tm_error("cannot find the tidemark binary: %s", strerror(errno));
        return TM_EXIT_FAIL;
    }
    exe[n] = '\0';
    if (setenv("TIDEMARK_SNAPSHOT", "1", 1) < 0 || setenv("TIDEMARK_BIN", exe, 1) < 0) {
        tm_error("cannot set the environment: %s", strerror(errno));
        return TM_EXIT_FAIL;
    }

    /* tidemark run --python-stacks -o OUTPUT -- PYTHON -m pytest -p PLUGIN ARGS */
    const char *head[] = {"run", "--python-stacks", "-o", output, "--",
                          python, "-m", "pytest", "-p", "tidemark.pytest_plugin"};
    size_t nhead = sizeof head / sizeof *head, nrest = (size_t)(argc - i);
    char **args = calloc(nhead + nrest + 1, sizeof *args);
    if (!args) {
        tm_error("out of memory");
        return TM_EXIT_FAIL;
    }
    for (size_t k = 0; k < nhead; k++)
        args[k] = (char *)head[k];
    for (size_t k = 0; k < nrest; k++)
        args[nhead + k] = argv[i + (int)k];
    /* The plugin finds the trace from its pattern (%p is its own pid). */
    char pattern[PATH_MAX];
    if (output[0] == '/' || !getcwd(pattern, sizeof pattern))
        snprintf(pattern, sizeof pattern, "%s", output);
    else {
        size_t len = strlen(pattern);
        snprintf(pattern + len, sizeof pattern - len, "/%s", output);
    }
    if (setenv("TIDEMARK_PYTEST_TRACE", pattern, 1) < 0) {
        tm_error("cannot set the environment: %s", strerror(errno));
        free(args);
        return TM_EXIT_FAIL;
    }
    int rc = tm_cmd_run((int)(nhead + nrest), args);
    free(args);
    return rc;
}
