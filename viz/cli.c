/* cli.c — shared pieces of the commands: errors, sizes, the trace scan that
 * keeps the live heap and the summary counters, and stack rendering. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

void tm_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tidemark: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int tm_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tidemark %s: ", command);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'tidemark %s --help')\n", command);
    va_end(ap);
    return TM_EXIT_BAD_INPUT;
}

int tm_bad_option(const char *command, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    if (optopt && !(arg[0] == '-' && arg[1] == '-'))
        return tm_usage_error(command, "option '-%c' is unknown or needs a value", optopt);
    return tm_usage_error(command, "option '%s' is unknown or needs a value", arg);
}

const char *tm_human_bytes(uint64_t bytes, char buf[32])
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, 32, "%" PRIu64 " B", bytes);
        return buf;
    }
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, 32, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

long long tm_parse_count(const char *s)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0)
        return -1;
    return v;
}

double tm_seconds(uint64_t ns)
{
    return (double)ns / 1e9;
}

const char *tm_end_reason_name(int reason)
{
    switch (reason) {
    case TM_END_EXIT: return "exit";
    case TM_END__EXIT: return "_exit";
    case TM_END_SIGNAL: return "signal";
    case TM_END_EXEC: return "exec";
    case TM_END_WRITE_FAILED: return "write_failed";
    default: return "truncated";
    }
}

const char *tm_fit_name(const char *name, char *out, size_t len)
{
    size_t n = strlen(name);
    if (n < len || len < 4) {
        snprintf(out, len, "%s", name);
        return out;
    }
    size_t keep = len - 4;
    while (keep > 0 && ((unsigned char)name[keep] & 0xc0) == 0x80)
        keep--;             /* not inside a UTF-8 sequence */
    memcpy(out, name, keep);
    memcpy(out + keep, "...", 4);
    return out;
}

/* --- output folders ------------------------------------------------------------ */

static int mkdir_one(const char *dir)
{
    if (mkdir(dir, 0777) == 0)
        return 0;
    int e = errno;
    struct stat st;
    if (e == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    return e == EEXIST ? -ENOTDIR : -e;
}

int tm_mkdirs(const char *dir)
{
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0)
        return 0;
    if (len >= sizeof path)
        return -ENAMETOOLONG;
    memcpy(path, dir, len + 1);
    /* Each prefix ending before a '/', then the whole path. */
    for (char *p = path + 1; *p; p++) {
        if (*p != '/' || p[-1] == '/')
            continue;
        *p = '\0';
        int rc = mkdir_one(path);
        *p = '/';
        if (rc < 0)
            return rc;
    }
    return mkdir_one(path);
}

int tm_mkdirs_for(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;
    char dir[4096];
    size_t len = (size_t)(slash - path);
    if (len >= sizeof dir)
        return -ENAMETOOLONG;
    memcpy(dir, path, len);
    dir[len] = '\0';
    return tm_mkdirs(dir);
}

const char *tm_python_allocator_note(const tm_trace *t)
{
    if (strcmp(tm_reader_python_allocator(t->reader), "off") != 0)
        return NULL;
    return "note: Python's small objects (pymalloc) were not traced, so leaks of them are "
           "invisible here; trace with tidemark run (--python-allocator traced, the default) "
           "or PYTHONMALLOC=malloc to see them";
}

/* --- the trace scan ------------------------------------------------------------ */

int tm_trace_open(tm_trace *t, const char *path)
{
    char err[512];
    memset(t, 0, sizeof *t);
    t->path = path;
    t->sum.end_reason = -1;
    if (tm_reader_open(path, &t->reader, err, sizeof err) < 0) {
        tm_error("%s", err);
        return TM_EXIT_BAD_INPUT;
    }
    t->heap = tm_heap_new();
    t->maps = tm_maps_new(tm_reader_header(t->reader)->page_size);
    if (!t->heap || !t->maps) {
        tm_error("%s: out of memory", path);
        tm_heap_free(t->heap);
        tm_maps_free(t->maps);
        tm_reader_close(t->reader);
        return TM_EXIT_FAIL;
    }
    return TM_EXIT_OK;
}

int tm_trace_scan(tm_trace *t, tm_trace_hook hook, void *arg)
{
    tm_event ev;
    tm_block freed;
    tm_summary *s = &t->sum;
    while (tm_reader_next(t->reader, &ev) > 0) {
        int matched = tm_heap_apply(t->heap, &ev, &freed);
        if (matched < 0) {
            tm_error("%s: out of memory after %" PRIu64 " live blocks", t->path,
                     tm_heap_live_blocks(t->heap));
            return 1;
        }
        if (ev.time_ns > s->last_time_ns)
            s->last_time_ns = ev.time_ns;
        switch (ev.kind) {
        case TM_EV_ALLOC:
            s->alloc_calls++;
            s->bytes_allocated += ev.size;
            if (tm_heap_live_bytes(t->heap) > s->peak_bytes) {
                s->peak_bytes = tm_heap_live_bytes(t->heap);
                s->peak_blocks = tm_heap_live_blocks(t->heap);
                s->peak_time_ns = ev.time_ns;
            }
            break;
        case TM_EV_FREE:
            s->free_calls++;
            break;
        case TM_EV_REALLOC_FAIL:
            /* The release recorded before the failed realloc did not happen. */
            if (s->free_calls)
                s->free_calls--;
            break;
        case TM_EV_RSS:
            if (ev.size > s->rss_peak_bytes)
                s->rss_peak_bytes = ev.size;
            break;
        case TM_EV_END:
            s->end_reason = (int)ev.size;
            s->end_detail = (int)ev.addr;
            break;
        case TM_EV_LOST:
            s->lost_events += ev.size;
            break;
        case TM_EV_MMAP:
        case TM_EV_MUNMAP:
        case TM_EV_MREMAP:
            if (tm_maps_apply(t->maps, &ev) < 0) {
                tm_error("%s: out of memory after %" PRIu64 " maps", t->path,
                         tm_maps_count(t->maps));
                return 1;
            }
            s->mmap_calls += ev.kind == TM_EV_MMAP;
            s->munmap_calls += ev.kind == TM_EV_MUNMAP;
            s->mremap_calls += ev.kind == TM_EV_MREMAP;
            if (tm_maps_bytes(t->maps) > s->maps_peak_bytes) {
                s->maps_peak_bytes = tm_maps_bytes(t->maps);
                s->maps_peak_time_ns = ev.time_ns;
            }
            break;
        }
        if (hook && hook(t, &ev, matched == 1 ? &freed : NULL, arg))
            break;
    }
    /* The samples can miss the peak; the kernel's high-water mark cannot. */
    if (tm_reader_hwm_bytes(t->reader) > s->rss_peak_bytes)
        s->rss_peak_bytes = tm_reader_hwm_bytes(t->reader);
    s->stack_table_rebuilds = tm_reader_stack_resets(t->reader);
    return 0;
}

int tm_trace_close(tm_trace *t)
{
    int rc = TM_EXIT_OK;
    if (t->reader && tm_reader_state(t->reader) != TM_READ_COMPLETE) {
        fflush(stdout);
        tm_error("%s: %s; the report covers what could be read", t->path,
                 tm_reader_error(t->reader));
        rc = TM_EXIT_BAD_INPUT;
    } else if (t->sum.end_reason == TM_END_WRITE_FAILED) {
        fflush(stdout);
        tm_error("%s: writing the trace failed: %s; the report covers what was written",
                 t->path, strerror(t->sum.end_detail));
        rc = TM_EXIT_BAD_INPUT;
    } else if (t->sym && tm_symbolizer_warning(t->sym)[0]) {
        fflush(stdout);
        tm_error("warning: %s", tm_symbolizer_warning(t->sym));
    }
    tm_symbolizer_free(t->sym);
    tm_heap_free(t->heap);
    tm_maps_free(t->maps);
    tm_reader_close(t->reader);
    memset(t, 0, sizeof *t);
    return rc;
}

void tm_trace_discard(tm_trace *t)
{
    tm_symbolizer_free(t->sym);
    tm_heap_free(t->heap);
    tm_maps_free(t->maps);
    tm_reader_close(t->reader);
    memset(t, 0, sizeof *t);
}

tm_symbolizer *tm_trace_symbolizer(tm_trace *t)
{
    if (!t->sym)
        t->sym = tm_symbolizer_new(t->reader);
    return t->sym;
}

bool tm_trace_region_is(tm_trace *t, uint32_t region, const char *name)
{
    const char *s = region ? tm_reader_string(t->reader, region) : NULL;
    return s && strcmp(s, name) == 0;
}

bool tm_trace_has_region(tm_trace *t, const char *name)
{
    uint32_t n = tm_reader_string_bound(t->reader);
    for (uint32_t id = 1; id < n; id++) {
        const char *s = tm_reader_string(t->reader, id);
        if (s && strcmp(s, name) == 0)
            return true;
    }
    return false;
}

/* --- stacks ---------------------------------------------------------------------- */

int tm_stack_view = TM_VIEW_MERGED;

int tm_stack_option(const char *command, int c, tm_stack_opts *o)
{
    long long *v = c == 'n' ? &o->limit : c == 'd' ? &o->depth : NULL;
    if (c == 0) /* --native-only, --python-only: getopt set tm_stack_view */
        return 1;
    if (!v)
        return 0;
    if ((*v = tm_parse_count(optarg)) < 0) {
        tm_usage_error(command, "--%s wants a number, got '%s'", c == 'n' ? "limit" : "depth",
                       optarg);
        return -1;
    }
    return 1;
}

static void native_frame(tm_frame *f, const tm_symbol *s)
{
    *f = (tm_frame){.kind = "native", .function = s->function, .file = s->file,
                    .module = s->module, .line = s->line, .address = s->address,
                    .offset = s->offset};
}

static int python_frames(tm_trace *t, uint32_t node, tm_pyframe *out, int max)
{
    int n = 0;
    tm_pyframe f;
    while (node && n < max && tm_reader_pyframe(t->reader, node, &f) == 0) {
        out[n++] = f;
        node = f.parent;
    }
    return n;
}

static void py_frame(tm_frame *f, const tm_pyframe *p)
{
    *f = (tm_frame){.kind = "python", .function = p->function, .file = p->file,
                    .module = "python", .line = (int)p->line};
}

int tm_stack_frames(tm_trace *t, tm_stack_key key, tm_frame *out, int max)
{
    static tm_symbol nat[TM_MAX_FRAMES];
    static tm_pyframe py[TM_MAX_FRAMES];
    tm_symbolizer *sym = tm_trace_symbolizer(t);
    int nn = 0, np = 0, k = 0;
    if (tm_stack_view != TM_VIEW_PYTHON && sym)
        nn = tm_symbolize_stack(sym, (uint32_t)key, nat, TM_MAX_FRAMES);
    if (tm_stack_view != TM_VIEW_NATIVE)
        np = python_frames(t, (uint32_t)(key >> 32), py, TM_MAX_FRAMES);
    int p = 0;
    for (int i = 0; i < nn && k < max; i++) {
        /* One run of the interpreter loop: the Python frames it executed,
         * innermost first, up to and including its entry frame. */
        if (p < np && strcmp(nat[i].function, "_PyEval_EvalFrameDefault") == 0) {
            do
                py_frame(&out[k++], &py[p]);
            while (!py[p++].entry && p < np && k < max);
            continue;
        }
        native_frame(&out[k++], &nat[i]);
    }
    /* Python frames left over (no native stacks, or fewer loop frames than
     * entries seen): outermost, after the native ones. */
    while (p < np && k < max)
        py_frame(&out[k++], &py[p++]);
    return k;
}

void tm_stack_json(tm_json *j, tm_trace *t, tm_stack_key key, int max)
{
    static tm_frame frames[TM_MAX_FRAMES];
    int n = tm_stack_frames(t, key, frames, TM_MAX_FRAMES);
    if (max > 0 && n > max)
        n = max;
    tm_json_array(j);
    for (int i = 0; i < n; i++) {
        tm_json_object(j);
        tm_json_kstr(j, "function", frames[i].function);
        tm_json_kstr(j, "file", frames[i].file);
        tm_json_ki64(j, "line", frames[i].line);
        tm_json_kstr(j, "module", frames[i].module);
        tm_json_key(j, "address");
        if (frames[i].address)
            tm_json_hex(j, frames[i].address);
        else
            tm_json_null(j);
        tm_json_kstr(j, "kind", frames[i].kind);
        tm_json_object_end(j);
    }
    tm_json_array_end(j);
}

void tm_stack_print(FILE *out, tm_trace *t, tm_stack_key key, int max, const char *indent)
{
    static tm_frame frames[TM_MAX_FRAMES];
    int n = tm_stack_frames(t, key, frames, TM_MAX_FRAMES);
    if (n == 0) {
        fprintf(out, "%s(no stack recorded)\n", indent);
        return;
    }
    int shown = max > 0 && n > max ? max : n;
    for (int i = 0; i < shown; i++) {
        const tm_frame *f = &frames[i];
        fprintf(out, "%s#%-2d %s", indent, i, f->function);
        if (f->file) {
            const char *base = strrchr(f->file, '/');
            fprintf(out, " at %s:%d", base ? base + 1 : f->file, f->line);
        }
        if (!strcmp(f->kind, "python"))
            fprintf(out, " [python]\n");
        else if (strcmp(f->module, "??") == 0)
            fprintf(out, " (0x%" PRIx64 ")\n", f->address);
        else
            fprintf(out, " (%s+0x%" PRIx64 ")\n", f->module, f->offset);
    }
    if (shown < n)
        fprintf(out, "%s... %d more frames\n", indent, n - shown);
}

const char *tm_stack_top_function(tm_trace *t, tm_stack_key key)
{
    static tm_frame frames[TM_MAX_FRAMES];
    int n = tm_stack_frames(t, key, frames, TM_MAX_FRAMES);
    return n > 0 ? frames[0].function : "??";
}
