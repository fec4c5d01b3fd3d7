/* cli.h — what the `tidemark` commands share: exit codes, one-line errors,
 * human-readable sizes, and a trace opened for a report (reader, live heap,
 * running summary, symbolizer). */
#ifndef TM_CLI_H
#define TM_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "json.h"
#include "tm_reader.h"

enum {
    TM_EXIT_OK = 0,
    /* The command itself failed (I/O, gnuplot, memory): the documented
     * codes are only 0, 2 and 3, so this is 2 as well; the one stderr line
     * says which failure it was. */
    TM_EXIT_FAIL = 2,
    TM_EXIT_BAD_INPUT = 2,  /* usage error or unreadable/damaged trace */
    TM_EXIT_FOUND = 3,      /* --fail-on-leak found a leak, sweep said FAIL */
};

/* One line on stderr, prefixed "tidemark: ". */
void tm_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage error for COMMAND: prints the line and a hint, returns exit 2. */
int tm_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* After getopt_long returned '?' (opterr is off): names the option that
 * was unknown or lacked its value, returns exit 2. */
int tm_bad_option(const char *command, char **argv);

/* "512 B", "12.1 KiB", "3.40 MiB", "1.25 GiB". */
const char *tm_human_bytes(uint64_t bytes, char buf[32]);
/* Parses a non-negative integer option value; -1 when invalid. */
long long tm_parse_count(const char *s);

typedef struct tm_summary {
    uint64_t alloc_calls, free_calls;
    uint64_t bytes_allocated;
    uint64_t peak_bytes, peak_blocks, peak_time_ns;
    uint64_t rss_peak_bytes;
    uint64_t last_time_ns;
    int end_reason;             /* enum tm_end_reason, -1 = no END */
    int end_detail;             /* signal number or errno, see TM_OP_END */
    uint64_t lost_events;       /* events the tracer counted but could not record */
    /* Anonymous maps (tm_maps): calls recorded, peak mapped bytes. */
    uint64_t mmap_calls, munmap_calls, mremap_calls;
    uint64_t maps_peak_bytes, maps_peak_time_ns;
    uint32_t stack_table_rebuilds; /* STACK_RESET records (TIDEMARK_STACK_MEMORY) */
} tm_summary;

typedef struct tm_trace {
    const char *path;
    tm_reader *reader;
    tm_heap *heap;
    tm_maps *maps;              /* anonymous maps, beside the heap */
    tm_symbolizer *sym;
    tm_summary sum;
} tm_trace;

/* Called for every event after the heap and the summary took it into
 * account; `freed` is the released block for a matched FREE, else NULL.
 * A non-zero return stops the scan. */
typedef int (*tm_trace_hook)(tm_trace *t, const tm_event *ev, const tm_block *freed,
                             void *arg);

/* Opens a trace; on failure prints the one-line reason and returns 2. */
int tm_trace_open(tm_trace *t, const char *path);
/* Reads every event.  Returns 0, or 1 when memory ran out (reported). */
int tm_trace_scan(tm_trace *t, tm_trace_hook hook, void *arg);
/* Closes the trace.  Returns 2 after printing one line when the trace was
 * truncated or damaged (the report already printed is then partial),
 * else 0. */
int tm_trace_close(tm_trace *t);
/* Creates directory `dir` and its missing parents (like mkdir -p); 0, or
 * a negative errno (the directory that failed is left in errno's message
 * to the caller).  An existing directory is success. */
int tm_mkdirs(const char *dir);
/* Creates the missing parent directories of file `path`; 0 or -errno. */
int tm_mkdirs_for(const char *path);
/* Copies name into out (size len); a name that does not fit is cut at a
 * character boundary and ends in "...", never cut silently. */
const char *tm_fit_name(const char *name, char *out, size_t len);
/* Closes the trace without a word: for a first pass whose problems the
 * second pass over the same file reports. */
void tm_trace_discard(tm_trace *t);

/* A Python process traced with its small objects (pymalloc) unseen
 * (tm_reader_python_allocator "off"): the one line that says so and how to
 * see them, else NULL.  After the scan. */
const char *tm_python_allocator_note(const tm_trace *t);

tm_symbolizer *tm_trace_symbolizer(tm_trace *t);
const char *tm_end_reason_name(int reason);
double tm_seconds(uint64_t ns);

/* True when a block's region (string id) is named `name`. */
bool tm_trace_region_is(tm_trace *t, uint32_t region, const char *name);
/* True when some region of the trace is named `name`. */
bool tm_trace_has_region(tm_trace *t, const char *name);

/* A stack as reports group by it: the native stack node in the low half,
 * the Python stack node (--python-stacks traces) in the high half. */
typedef uint64_t tm_stack_key;

static inline tm_stack_key tm_key(uint32_t native, uint32_t python)
{
    return (uint64_t)python << 32 | native;
}

/* Which frames stacks show: merged (Python frames in place of the
 * interpreter-loop frames that ran them), native only, Python only. */
enum { TM_VIEW_MERGED, TM_VIEW_NATIVE, TM_VIEW_PYTHON };
extern int tm_stack_view;

/* The options every stack report takes: --limit N (groups shown), --depth N
 * (frames per stack), --native-only, --python-only.  Put TM_STACK_OPTIONS in
 * the getopt_long table and "n:d:" in the short options, and pass every
 * getopt_long result through tm_stack_option first. */
#define TM_STACK_OPTIONS                                             \
    {"limit", required_argument, NULL, 'n'},                         \
    {"depth", required_argument, NULL, 'd'},                         \
    {"native-only", no_argument, &tm_stack_view, TM_VIEW_NATIVE},    \
    {"python-only", no_argument, &tm_stack_view, TM_VIEW_PYTHON}

typedef struct tm_stack_opts {
    long long limit, depth; /* -1 = the report's default */
} tm_stack_opts;

/* 1 when getopt_long's result C was one of TM_STACK_OPTIONS (and taken into
 * O), 0 when it is not, -1 after a one-line usage error for COMMAND. */
int tm_stack_option(const char *command, int c, tm_stack_opts *o);

/* How many groups a report shows (default: all in JSON, 10 in text) and how
 * many frames per stack (default: all in JSON, 12 in text; 0 = all). */
static inline size_t tm_stack_opts_shown(const tm_stack_opts *o, int json)
{
    return o->limit >= 0 ? (size_t)o->limit : json ? SIZE_MAX : 10;
}
static inline int tm_stack_opts_depth(const tm_stack_opts *o, int json)
{
    return o->depth > 0 ? (int)o->depth : json ? 0 : 12;
}

/* The key reports group by under the current view: with --python-only,
 * allocations with the same Python stack group together whatever their
 * native stack, and the other way round. */
static inline tm_stack_key tm_view_key(uint32_t native, uint32_t python)
{
    return tm_key(tm_stack_view == TM_VIEW_PYTHON ? 0 : native,
                  tm_stack_view == TM_VIEW_NATIVE ? 0 : python);
}

typedef struct tm_frame {
    const char *kind;           /* "native" or "python" */
    const char *function, *file, *module;
    int line;
    uint64_t address, offset;   /* native frames */
} tm_frame;

#define TM_MAX_FRAMES 512

/* Frames of a stack, innermost first, tracer frames dropped; the count. */
int tm_stack_frames(tm_trace *t, tm_stack_key key, tm_frame *out, int max);
/* Stacks for reports.  `max` bounds the frames shown (0 = all). */
void tm_stack_json(tm_json *j, tm_trace *t, tm_stack_key key, int max);
void tm_stack_print(FILE *out, tm_trace *t, tm_stack_key key, int max, const char *indent);
/* The innermost frame's function, "??" when unknown. */
const char *tm_stack_top_function(tm_trace *t, tm_stack_key key);

/* Commands: argc/argv start at the command name. */
int tm_cmd_run(int argc, char **argv);
int tm_cmd_pytest(int argc, char **argv);
int tm_cmd_summary(int argc, char **argv);
int tm_cmd_leaks(int argc, char **argv);
int tm_cmd_peak(int argc, char **argv);
int tm_cmd_top(int argc, char **argv);
int tm_cmd_diff(int argc, char **argv);

#endif /* TM_CLI_H */
