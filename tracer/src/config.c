/* config.c — environment settings, the output path, capped diagnostics and
 * the few libc-free helpers the tracer needs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tm_internal.h"
#include "tm_size.h"

extern char **environ;

TM_HIDDEN size_t tm_strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

TM_HIDDEN char *tm_utoa(uint64_t v, char *buf)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *buf++ = tmp[--n];
    *buf = 0;
    return buf;
}

/* System calls, not libc's mmap: that is interposed (maps.c), and the
 * tracer's own pages are no map of the program's. */
TM_HIDDEN void *tm_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

TM_HIDDEN int tm_sys_munmap(void *addr, size_t len)
{
    return (int)syscall(SYS_munmap, addr, len);
}

TM_HIDDEN void *tm_pages(size_t bytes)
{
    void *p = tm_sys_mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

TM_HIDDEN void tm_pages_free(void *p, size_t bytes)
{
    tm_sys_munmap(p, bytes);
}

static size_t huge_round(size_t bytes)
{
    return (bytes + TM_HUGE_PAGE - 1) & ~(size_t)(TM_HUGE_PAGE - 1);
}

TM_HIDDEN void *tm_pages_huge(size_t bytes)
{
    size_t size = huge_round(bytes);
    uint8_t *p = tm_sys_mmap(NULL, size + TM_HUGE_PAGE, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *a = (uint8_t *)(((uintptr_t)p + TM_HUGE_PAGE - 1) & ~(uintptr_t)(TM_HUGE_PAGE - 1));
    if (a > p)
        tm_sys_munmap(p, (size_t)(a - p));
    tm_sys_munmap(a + size, (size_t)(p + TM_HUGE_PAGE - a));
    /* Advice only: without transparent huge pages this is ordinary memory. */
    madvise(a, size, MADV_HUGEPAGE);
    return a;
}

TM_HIDDEN void tm_pages_huge_free(void *p, size_t bytes)
{
    tm_sys_munmap(p, huge_round(bytes));
}

TM_HIDDEN const char *tm_strerror(int e)
{
    const char *s = strerrordesc_np(e); /* English, and allocates nothing */
    return s ? s : "unknown error";
}

/* At most this many lines per process: the tracer never floods stderr. */
#define DIAG_MAX 5
static int diag_count;

TM_HIDDEN void tm_diag(const char *a, const char *b, const char *c)
{
    if (__atomic_fetch_add(&diag_count, 1, __ATOMIC_RELAXED) >= DIAG_MAX)
        return;
    char line[1024];
    size_t n = 0;
    const char *parts[] = {"tidemark: ", a, b, c, "\n"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        for (const char *s = parts[i]; s && *s && n < sizeof line - 2; s++)
            line[n++] = *s;
    }
    if (line[n - 1] != '\n')
        line[n++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, n);
    (void)rc;
}

static int parse_int(const char *name, const char *v, int lo, int hi, int dflt)
{
    if (!v || !*v)
        return dflt;
    long x = 0;
    const char *p = v;
    while (*p >= '0' && *p <= '9' && x <= hi)
        x = x * 10 + (*p++ - '0');
    if (*p || x < lo || x > hi) {
        tm_diag(name, " has an invalid value, using the default: ", v);
        return dflt;
    }
    return (int)x;
}

TM_HIDDEN void tm_config_load(tm_config *cfg)
{
    const char *out = getenv("TIDEMARK_OUTPUT");
    cfg->output_too_long = 0;
    if (out && *out && tm_strlen(out) >= sizeof cfg->output) {
        /* Refused (open_trace says so), not replaced by the default: the
         * user asked for another place. */
        cfg->output_too_long = tm_strlen(out);
        cfg->output[0] = 0;
    } else if (out && *out) {
        memcpy(cfg->output, out, tm_strlen(out) + 1);
    } else {
        /* tidemark.<exe>.%p.trace in the working directory */
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        const char *base = exe;
        for (const char *p = exe; *p; p++)
            if (*p == '/')
                base = p + 1;
        if (!*base)
            base = "process";
        char *o = cfg->output;
        const char *parts[] = {"tidemark.", base, ".%p.trace"};
        for (size_t i = 0; i < 3; i++)
            for (const char *s = parts[i]; *s && o < cfg->output + sizeof cfg->output - 1; s++)
                *o++ = *s;
        *o = 0;
    }

    const char *stacks = getenv("TIDEMARK_STACKS");
    cfg->stacks = 1;
    if (stacks && *stacks) {
        if (strcmp(stacks, "none") == 0)
            cfg->stacks = 0;
        else if (strcmp(stacks, "full") != 0)
            tm_diag("TIDEMARK_STACKS must be full or none, using full: ", stacks, NULL);
    }
    cfg->depth = parse_int("TIDEMARK_STACK_DEPTH", getenv("TIDEMARK_STACK_DEPTH"), 1, TM_MAX_DEPTH,
                           64);
    cfg->rss_interval_ms =
        parse_int("TIDEMARK_RSS_INTERVAL_MS", getenv("TIDEMARK_RSS_INTERVAL_MS"), 0, 3600000, 10);
    const char *uw = getenv("TIDEMARK_UNWIND");
    /* "libunwind" is the old name of the careful walk, which once was libunwind's. */
    cfg->unwind_careful = uw && (strcmp(uw, "careful") == 0 || strcmp(uw, "libunwind") == 0);
    const char *py = getenv("TIDEMARK_PYTHON_STACKS");
    cfg->python_stacks = py && *py && strcmp(py, "0") != 0;
    const char *pa = getenv("TIDEMARK_PYTHON_ALLOCATOR");
    cfg->python_allocator = 1;
    if (pa && *pa) {
        if (strcmp(pa, "off") == 0)
            cfg->python_allocator = 0;
        else if (strcmp(pa, "traced") != 0)
            tm_diag("TIDEMARK_PYTHON_ALLOCATOR must be traced or off, using traced: ", pa, NULL);
    }
    const char *ff = getenv("TIDEMARK_FOLLOW_FORK");
    cfg->follow_fork = ff && *ff && strcmp(ff, "0") != 0;
    const char *sm = getenv("TIDEMARK_STACK_MEMORY");
    cfg->stack_memory = TM_STACK_MEMORY_DEFAULT;
    if (sm && *sm && (tm_parse_size(sm, &cfg->stack_memory) < 0 ||
                      cfg->stack_memory < TM_STACK_MEMORY_MIN)) {
        tm_diag("TIDEMARK_STACK_MEMORY must be a size of at least 1 MiB (like 64 MiB), "
                "using 256 MiB: ", sm, NULL);
        cfg->stack_memory = TM_STACK_MEMORY_DEFAULT;
    }
}

TM_HIDDEN int tm_output_path(const tm_config *cfg, pid_t pid, int force_pid, char *out, size_t len)
{
    char digits[24];
    tm_utoa((uint64_t)pid, digits);
    size_t n = 0;
    int had_pid = 0;
    for (const char *s = cfg->output; *s; s++) {
        const char *piece = NULL;
        char one[2] = {*s, 0};
        if (s[0] == '%' && s[1] == 'p') {
            piece = digits;
            had_pid = 1;
            s++;
        } else {
            piece = one;
        }
        for (; *piece; piece++) {
            if (n + 1 >= len)
                return -ENAMETOOLONG;
            out[n++] = *piece;
        }
    }
    if (force_pid && !had_pid) {
        if (n + 1 + tm_strlen(digits) + 1 > len)
            return -ENAMETOOLONG;
        out[n++] = '.';
        for (const char *d = digits; *d; d++)
            out[n++] = *d;
    }
    out[n] = 0;
    return 0;
}

/* Is this LD_PRELOAD entry our library?  Matched by file name. */
static int is_self(const char *entry, size_t n)
{
    static const char name[] = "libtidemark.so";
    size_t k = sizeof name - 1;
    if (n < k)
        return 0;
    return memcmp(entry + n - k, name, k) == 0 && (n == k || entry[n - k - 1] == '/');
}

TM_HIDDEN void tm_env_drop_preload(void)
{
    static const char key[] = "LD_PRELOAD=";
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, key, sizeof key - 1) != 0)
            continue;
        /* Rewrite the value in place without our entry (entries are
         * separated by ':' or spaces). */
        char *v = *e + sizeof key - 1, *w = v;
        const char *r = v;
        while (*r) {
            while (*r == ':' || *r == ' ')
                r++;
            const char *start = r;
            while (*r && *r != ':' && *r != ' ')
                r++;
            size_t n = (size_t)(r - start);
            if (n == 0 || is_self(start, n))
                continue;
            if (w != v)
                *w++ = ':';
            memmove(w, start, n);
            w += n;
        }
        *w = 0;
        if (w == v) {
            /* Nothing left: drop the variable itself. */
            char **d = e;
            do
                d[0] = d[1];
            while (*d++);
        }
        return;
    }
}
