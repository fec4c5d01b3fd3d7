/* fuzz_reports.c — runs every report of the `tidemark` command table (all
 * but `run`) in this one process over each trace named in a list file, and
 * fails when a report returns anything but 0 or 2.  In-process, a case costs
 * microseconds instead of a process start, so thousands of truncations and
 * mutations fit the suite's time budget; a crash or a hang fails the test
 * (ctest's TIMEOUT), and the last case started is named on stderr.
 *
 *     fuzz_reports LIST OUTDIR
 *
 * LIST holds one trace path a line; OUTDIR receives plots (timeline, sweep).
 * stdout and the reports' stderr go to /dev/null: the exit codes are what
 * is checked here, the messages by bad_input.py and crafted.py.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"

static FILE *report_to;     /* the real stderr */

/* The argument vector of one report over `trace`. */
static int report_args(const char *cmd, const char *trace, const char *outdir, int json,
                       char **argv, char *buf, size_t len)
{
    int n = 0;
    argv[n++] = (char *)cmd;
    if (!strcmp(cmd, "diff")) {
        argv[n++] = (char *)trace;
        argv[n++] = (char *)trace;
    } else if (!strcmp(cmd, "sweep")) {
        for (int i = 0; i < 3; i++)
            argv[n++] = (char *)trace;
        argv[n++] = "-o";
        argv[n++] = (char *)outdir;
    } else if (!strcmp(cmd, "timeline")) {
        snprintf(buf, len, "%s/timeline.svg", outdir);
        argv[n++] = (char *)trace;
        argv[n++] = "-o";
        argv[n++] = buf;
    } else if (!strcmp(cmd, "report")) {
        snprintf(buf, len, "%s/report.html", outdir);
        argv[n++] = (char *)trace;
        argv[n++] = "-o";
        argv[n++] = buf;
        argv[n] = NULL;         /* no --json: the page is the output */
        return n;
    } else if (!strcmp(cmd, "kept")) {
        argv[n++] = (char *)trace;
        argv[n++] = "--region";
        argv[n++] = "cb";
    } else {
        argv[n++] = (char *)trace;
    }
    if (json)
        argv[n++] = "--json";
    argv[n] = NULL;
    return n;
}

static int run_case(const char *trace, const char *outdir, long index)
{
    int bad = 0;
    for (const tm_command *c = tm_commands; c->name; c++) {
        if (!strcmp(c->name, "run") || !strcmp(c->name, "pytest"))
            continue; /* they run programs, not reports */
        /* The plots read the trace alike with or without --json, and each
         * run forks gnuplot: once is enough for them. */
        int plots = !strcmp(c->name, "timeline") || !strcmp(c->name, "sweep") ||
                    !strcmp(c->name, "report");
        for (int json = 0; json < (plots ? 1 : 2); json++) {
            char *argv[16], buf[4096];
            int argc = report_args(c->name, trace, outdir, json, argv, buf, sizeof buf);
            fprintf(report_to, "case %ld %s%s\r", index, c->name, json ? " --json" : "");
            optind = 0;     /* full getopt reset between calls */
            tm_stack_view = TM_VIEW_MERGED;
            int rc = c->run(argc, argv);
            fflush(stdout);
            fflush(stderr);
            if (rc != TM_EXIT_OK && rc != TM_EXIT_BAD_INPUT) {
                fprintf(report_to, "\n%s: %s%s exited %d\n", trace, c->name,
                        json ? " --json" : "", rc);
                bad = 1;
            }
        }
    }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_reports LIST OUTDIR\n");
        return 2;
    }
    FILE *list = fopen(argv[1], "r");
    if (!list) {
        perror(argv[1]);
        return 2;
    }
    report_to = fdopen(dup(2), "w");
    setvbuf(report_to, NULL, _IONBF, 0);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    opterr = 0;
    char line[4096];
    long n = 0, failed = 0;
    while (fgets(line, sizeof line, list)) {
        line[strcspn(line, "\n")] = '\0';
        if (!line[0])
            continue;
        failed += run_case(line, argv[2], n++);
    }
    fclose(list);
    fprintf(report_to, "\n%ld cases, %ld with a report exiting other than 0 or 2\n", n, failed);
    return failed ? 1 : 0;
}
