/* cmd_summary.c — `tidemark summary TRACE [--json]`: the totals of a trace. */
#define _GNU_SOURCE     /* sigabbrev_np */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* "SIGSEGV" for 11: the name a user looks up, beside strsignal's words. */
static const char *signal_name(int sig)
{
    static char buf[16];
    const char *abbrev = sig > 0 ? sigabbrev_np(sig) : NULL;
    if (!abbrev)
        return "unknown signal";
    snprintf(buf, sizeof buf, "SIG%s", abbrev);
    return buf;
}

static const char summary_help[] =
    "usage: tidemark summary TRACE [--json]\n"
    "\n"
    "Totals of a trace: duration, allocation and free calls, bytes allocated,\n"
    "the heap peak and when it happened, what was still allocated at exit\n"
    "(leaked), anonymous memory maps (mapped at the end, peak), threads seen\n"
    "and the peak resident set size.\n"
    "\n"
    "  --json    machine-readable output; keys: duration (s), alloc_calls,\n"
    "            free_calls, bytes_allocated, peak_bytes, peak_time (s),\n"
    "            leaked_bytes, leaked_blocks, threads, rss_peak_bytes, pid, end\n"
    "            (exit, _exit, signal, exec, write_failed, truncated),\n"
    "            end_signal and end_signal_name (\"SIGSEGV\") when a signal\n"
    "            ended the process, write_error, lost_events,\n"
    "            stack_table_rebuilds (times the traced process dropped its\n"
    "            stack tables at --stack-memory), unmatched_frees,\n"
    "            python_stacks (walker, hook or off), python_allocator\n"
    "            (traced, malloc: PYTHONMALLOC=malloc, off: small objects unseen,\n"
    "            none: not a Python process); anonymous maps\n"
    "            (mmap/mremap of MAP_ANONYMOUS memory, a domain beside the heap):\n"
    "            maps_bytes (mapped at the end), maps_peak_bytes, maps_peak_time,\n"
    "            maps_count (ranges mapped at the end), mmap_calls,\n"
    "            munmap_calls, mremap_calls\n"
    "\n"
    "Exit status: 0, or 2 when the trace is unreadable, truncated or damaged\n"
    "(the totals then cover what could be read).\n";

/* How Python frames were recorded: the preload interns a marker string
 * "tidemark:python_stacks=walker|hook" (docs/trace-format.md). */
static const char *python_stacks_mode(const tm_reader *r)
{
    static const char prefix[] = "tidemark:python_stacks=";
    for (uint32_t id = 1; id < tm_reader_string_bound(r); id++) {
        const char *str = tm_reader_string(r, id);
        if (str && !strncmp(str, prefix, sizeof prefix - 1))
            return str + sizeof prefix - 1;
    }
    return "off";
}

int tm_cmd_summary(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(summary_help, stdout); return TM_EXIT_OK;
        default: return tm_bad_option("summary", argv);
        }
    }
    if (argc - optind != 1)
        return tm_usage_error("summary", "expected one TRACE");

    tm_trace t;
    int rc = tm_trace_open(&t, argv[optind]);
    if (rc)
        return rc;
    if (tm_trace_scan(&t, NULL, NULL)) {
        tm_trace_close(&t);
        return TM_EXIT_FAIL;
    }
    const tm_summary *s = &t.sum;
    uint64_t leaked_bytes = tm_heap_live_bytes(t.heap);
    uint64_t leaked_blocks = tm_heap_live_blocks(t.heap);
    uint32_t threads = tm_reader_thread_count(t.reader);

    if (json) {
        tm_json j;
        tm_json_report(&j, stdout);
        tm_json_kdouble(&j, "duration", tm_seconds(s->last_time_ns));
        tm_json_ku64(&j, "alloc_calls", s->alloc_calls);
        tm_json_ku64(&j, "free_calls", s->free_calls);
        tm_json_ku64(&j, "bytes_allocated", s->bytes_allocated);
        tm_json_ku64(&j, "peak_bytes", s->peak_bytes);
        tm_json_kdouble(&j, "peak_time", tm_seconds(s->peak_time_ns));
        tm_json_ku64(&j, "leaked_bytes", leaked_bytes);
        tm_json_ku64(&j, "leaked_blocks", leaked_blocks);
        tm_json_ku64(&j, "threads", threads);
        tm_json_ku64(&j, "rss_peak_bytes", s->rss_peak_bytes);
        tm_json_ku64(&j, "pid", tm_reader_header(t.reader)->pid);
        tm_json_kstr(&j, "end", tm_end_reason_name(s->end_reason));
        if (s->end_reason == TM_END_SIGNAL) {
            tm_json_ku64(&j, "end_signal", (uint64_t)s->end_detail);
            tm_json_kstr(&j, "end_signal_name", signal_name(s->end_detail));
        }
        if (s->end_reason == TM_END_WRITE_FAILED)
            tm_json_kstr(&j, "write_error", strerror(s->end_detail));
        tm_json_ku64(&j, "lost_events", s->lost_events);
        tm_json_ku64(&j, "stack_table_rebuilds", s->stack_table_rebuilds);
        tm_json_ku64(&j, "unmatched_frees", tm_heap_unmatched_frees(t.heap));
        tm_json_kstr(&j, "python_stacks", python_stacks_mode(t.reader));
        tm_json_kstr(&j, "python_allocator", tm_reader_python_allocator(t.reader));
        tm_json_ku64(&j, "maps_bytes", tm_maps_bytes(t.maps));
        tm_json_ku64(&j, "maps_peak_bytes", s->maps_peak_bytes);
        tm_json_kdouble(&j, "maps_peak_time", tm_seconds(s->maps_peak_time_ns));
        tm_json_ku64(&j, "maps_count", tm_maps_count(t.maps));
        tm_json_ku64(&j, "mmap_calls", s->mmap_calls);
        tm_json_ku64(&j, "munmap_calls", s->munmap_calls);
        tm_json_ku64(&j, "mremap_calls", s->mremap_calls);
        tm_json_object_end(&j);
        tm_json_end(&j);
    } else {
        char a[32], b[32];
        char how[128];
        if (s->end_reason == TM_END_SIGNAL && s->end_detail > 0)
            snprintf(how, sizeof how, "signal %d (%s, %s)", s->end_detail,
                     signal_name(s->end_detail), strsignal(s->end_detail));
        else
            snprintf(how, sizeof how, "%s", tm_end_reason_name(s->end_reason));
        printf("trace            %s (pid %u, ended by %s)\n", t.path,
               tm_reader_header(t.reader)->pid, how);
        printf("duration         %.3f s\n", tm_seconds(s->last_time_ns));
        /* Threads are known from their records: a run that allocated
         * nothing has none, which is not "no thread ran". */
        if (threads)
            printf("threads          %u\n", threads);
        else
            printf("threads          none recorded an event\n");
        printf("allocations      %" PRIu64 " calls, %s\n", s->alloc_calls,
               tm_human_bytes(s->bytes_allocated, a));
        printf("frees            %" PRIu64 " calls\n", s->free_calls);
        printf("heap peak        %s in %" PRIu64 " blocks at %.3f s\n",
               tm_human_bytes(s->peak_bytes, a), s->peak_blocks,
               tm_seconds(s->peak_time_ns));
        printf("leaked           %s in %" PRIu64 " blocks%s\n",
               tm_human_bytes(leaked_bytes, b), leaked_blocks,
               leaked_blocks ? "  (tidemark leaks for where)" : "");
        /* Anonymous maps are not heap blocks: beside the heap, so heap,
         * maps and RSS can be told apart. */
        if (s->mmap_calls || s->mremap_calls)
            printf("anonymous maps   %s mapped at the end in %" PRIu64 " range%s, peak %s at "
                   "%.3f s (%" PRIu64 " mmap, %" PRIu64 " munmap, %" PRIu64 " mremap)\n",
                   tm_human_bytes(tm_maps_bytes(t.maps), a), tm_maps_count(t.maps),
                   tm_maps_count(t.maps) == 1 ? "" : "s",
                   tm_human_bytes(s->maps_peak_bytes, b), tm_seconds(s->maps_peak_time_ns),
                   s->mmap_calls, s->munmap_calls, s->mremap_calls);
        else
            printf("anonymous maps   none recorded\n");
        if (s->lost_events)
            printf("lost             %" PRIu64 " events (seen but not recorded)\n",
                   s->lost_events);
        if (s->stack_table_rebuilds)
            printf("stack tables     rebuilt %u times (at the --stack-memory cap)\n",
                   s->stack_table_rebuilds);
        if (s->rss_peak_bytes)
            printf("RSS peak         %s\n", tm_human_bytes(s->rss_peak_bytes, a));
        else
            printf("RSS peak         not sampled (sampling was off, or the process ended "
                   "before a sample was recorded)\n");
        const char *mode = tm_reader_python_allocator(t.reader);
        if (strcmp(mode, "none") != 0)
            printf("Python allocator %s\n", strcmp(mode, "traced") == 0
                                               ? "traced (every object allocation is an event)"
                                           : strcmp(mode, "malloc") == 0
                                               ? "malloc (PYTHONMALLOC=malloc)"
                                               : "off (small objects unseen)");
        const char *note = tm_python_allocator_note(&t);
        if (note)
            printf("%s\n", note);
    }
    return tm_trace_close(&t);
}
