/* commands.c — the subcommands, in the order `tidemark --help` lists them. */
#include "cli.h"
#include "commands.h"
#include "regions.h"
#include "report_data.h"
#include "timeline.h"

const tm_command tm_commands[] = {
    {"run", "run a command with the tracer preloaded", tm_cmd_run},
    {"pytest", "pytest under the tracer with per-test memory limits (tidemark.pytest_plugin)",
     tm_cmd_pytest},
    {"summary", "totals: calls, bytes, peak, leaked, threads, RSS", tm_cmd_summary},
    {"leaks", "blocks never freed, grouped by stack", tm_cmd_leaks},
    {"peak", "the stacks holding memory at the heap peak", tm_cmd_peak},
    {"top", "the most allocating stacks (--by bytes|count)", tm_cmd_top},
    {"regions", "per region: invocations, allocations and net bytes per invocation", tm_cmd_regions},
    {"kept", "memory a region's invocations kept past their end, by site", tm_cmd_kept},
    {"diff", "two traces compared by stack: leaks, peak, allocations", tm_cmd_diff},
    {"timeline", "plot heap and RSS over time with region bands and marks", tm_cmd_timeline},
    {"sweep", "memory against resolution over several traces, and the verdict", tm_cmd_sweep},
    {"report", "one self-contained HTML file: flame graphs, timeline, regions, sweep", tm_cmd_report},
    {0},
};
