/* commands.c — the subcommands, in the order `tidemark --help` lists them. */
#include "cli.h"
#include "commands.h"
#include "regions.h"
#include "timeline.h"

const tm_command tm_commands[] = {
    {"run", "run a command with the tracer preloaded", tm_cmd_run},
    {"summary", "totals: calls, bytes, peak, leaked, threads, RSS", tm_cmd_summary},
    {"leaks", "blocks never freed, grouped by stack", tm_cmd_leaks},
    {"regions", "per region: invocations, allocations and net bytes per invocation", tm_cmd_regions},
    {"timeline", "plot heap and RSS over time with region bands and marks", tm_cmd_timeline},
    {"sweep", "memory against resolution over several traces, and the verdict", tm_cmd_sweep},
    {0},
};
