/* cmd_run.c — `tidemark run [options] -- CMD...`: runs CMD with the tracer
 * preloaded, waits for it and returns its exit status. */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "locate.h"
#include "tm_size.h"

static const char run_help[] =
    "usage: tidemark run [-o FILE] [--stacks full|none] [--depth N]\n"
    "                    [--rss-interval MS] [--follow-fork] [--python-stacks]\n"
    "                    [--python-allocator traced|off] [--stack-memory SIZE]\n"
    "                    -- CMD [ARGS...]\n"
    "\n"
    "Runs CMD with libtidemark.so preloaded, waits for it and exits with its\n"
    "status (128+N when a signal N ended it).  Prints where the trace went.\n"
    "\n"
    "  -o, --output FILE    trace file (%p = pid); default\n"
    "                       tidemark.<cmd>.<pid>.trace in the current directory;\n"
    "                       an existing file is never overwritten\n"
    "  --stacks full|none   record native stacks (default full)\n"
    "  --depth N            frames per stack, 1..256 (default 64)\n"
    "  --rss-interval MS    RSS sampling period, 0 = off (default 10)\n"
    "  --stack-memory SIZE  cap on the stack tables in the traced process, like\n"
    "                       \"64 MiB\" (default 256 MiB, at least 1 MiB); when\n"
    "                       they reach it they are rebuilt, the trace stays exact\n"
    "  --follow-fork        forked children and the programs they exec write\n"
    "                       their own traces (FILE.<pid>, or FILE with %p\n"
    "                       expanded; FILE.<pid>.N after an exec); all are\n"
    "                       listed at the end\n"
    "  --python-stacks      for Python programs: record the Python call stack\n"
    "                       with every allocation (file, function, line);\n"
    "                       reports show it merged with the native stack\n"
    "  --python-allocator traced|off\n"
    "                       for Python programs: trace Python's own allocators,\n"
    "                       so that every object allocation (pymalloc's small\n"
    "                       objects too) is an event (default traced; also\n"
    "                       TIDEMARK_PYTHON_ALLOCATOR); off sees only what\n"
    "                       reaches malloc\n"
    "\n"
    "The preload and the Python package are the ones installed (or built)\n"
    "with this tidemark binary, found relative to it; TIDEMARK_LIB and\n"
    "TIDEMARK_PYTHONPATH (the directory holding the package) override them.\n";

/* out = a/b; -1 when it does not fit. */
static int join(char *out, size_t len, const char *a, const char *b)
{
    int n = snprintf(out, len, "%s/%s", a, b);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Replaces the first %p of pattern with pid. */
static void expand_pid(const char *pattern, pid_t pid, char *out, size_t len)
{
    const char *p = strstr(pattern, "%p");
    if (!p) {
        snprintf(out, len, "%s", pattern);
        return;
    }
    snprintf(out, len, "%.*s%d%s", (int)(p - pattern), pattern, (int)pid, p + 2);
}

static int set_env(const char *name, const char *value);

/* Does name (a file in the pattern's directory) look like the trace of
 * another process of the run: base with %p as digits (or base.DIGITS when
 * base has no %p), then optionally .N? */
static int other_trace(const char *base, const char *name)
{
    const char *p = strstr(base, "%p");
    size_t pre = p ? (size_t)(p - base) : strlen(base);
    if (strncmp(name, base, pre) != 0)
        return 0;
    name += pre;
    if (!p && *name++ != '.')
        return 0;
    if (*name < '0' || *name > '9')
        return 0;
    while (*name >= '0' && *name <= '9')
        name++;
    if (p) {
        size_t post = strlen(p + 2);
        if (strncmp(name, p + 2, post) != 0)
            return 0;
        name += post;
    }
    if (*name == '\0')
        return 1;
    if (*name++ != '.' || *name < '1' || *name > '9')
        return 0;
    while (*name >= '0' && *name <= '9')
        name++;
    return *name == '\0';
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* --follow-fork: lists the traces of the run's other processes (forked
 * children, programs they exec'd): files in the pattern's directory of
 * the pattern's form, written since the run began, LIST_MAX of them. */
#define LIST_MAX 32

static void list_other_traces(const char *pattern, const char *main_trace, time_t since)
{
    char dir[PATH_MAX] = ".";
    const char *base = pattern, *slash = strrchr(pattern, '/');
    if (slash) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - pattern), pattern);
        base = slash + 1;
    }
    const char *main_name = strrchr(main_trace, '/');
    main_name = main_name ? main_name + 1 : main_trace;
    DIR *d = opendir(dir[0] ? dir : "/");
    if (!d)
        return;
    char *found[LIST_MAX];
    int n = 0, more = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        if (!other_trace(base, e->d_name) || strcmp(e->d_name, main_name) == 0 ||
            (slash ? join(path, sizeof path, dir, e->d_name)
                   : snprintf(path, sizeof path, "%s", e->d_name)) < 0 ||
            stat(path, &st) != 0 || st.st_mtime < since)
            continue;
        if (n < LIST_MAX && (found[n] = strdup(path)) != NULL)
            n++;
        else
            more++;
    }
    closedir(d);
    qsort(found, (size_t)n, sizeof *found, by_name);
    for (int i = 0; i < n; i++) {
        fprintf(stderr, "%s%s\n", i ? "           " : "tidemark: other processes' traces: ",
                found[i]);
        free(found[i]);
    }
    if (more)
        fprintf(stderr, "           and %d more\n", more);
}

/* The package's _autostart directory goes first on PYTHONPATH, for
 * --python-stacks and for Python's allocators (traced unless off): its
 * sitecustomize imports the package from beside itself, so nothing else in
 * the package's directory (all of dist-packages once installed) comes
 * before the program's own path.  Without the package, only
 * --python-stacks is an error: the command may not be Python at all. */
static int add_python_path(int stacks)
{
    char pkg[PATH_MAX], start[PATH_MAX], path[2 * PATH_MAX];
    if (tm_locate_python(pkg, sizeof pkg) < 0 ||
        join(start, sizeof start, pkg, "tidemark/_autostart") < 0 || access(start, R_OK) != 0) {
        if (!stacks)
            return 0;
        tm_error("--python-stacks: no tidemark Python package at %s (set TIDEMARK_PYTHONPATH)",
                 pkg);
        return -1;
    }
    const char *old = getenv("PYTHONPATH");
    snprintf(path, sizeof path, "%s%s%s", start, old && *old ? ":" : "", old ? old : "");
    return set_env("PYTHONPATH", path) || (stacks && set_env("TIDEMARK_PYTHON_STACKS", "1"))
               ? -1
               : 0;
}

/* The trace's directory must exist and take new files: otherwise the
 * tracer could only say it cannot create the trace, and CMD would run
 * untraced.  Refused before CMD runs, in one line. */
static int check_output_dir(const char *pattern, const char *shown)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(pattern, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == pattern)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - pattern), pattern);
    struct stat st;
    const char *why = NULL;
    if (stat(dir, &st) != 0)
        why = strerror(errno);
    else if (!S_ISDIR(st.st_mode))
        why = strerror(ENOTDIR);
    else if (access(dir, W_OK | X_OK) != 0)
        why = strerror(errno);
    if (!why)
        return 0;
    tm_error("cannot write the trace %s: %s: %s", shown, dir, why);
    return -1;
}

/* Where execvp would find cmd (out), or -1. */
static int find_command(const char *cmd, char *out, size_t len)
{
    if (strchr(cmd, '/'))
        return snprintf(out, len, "%s", cmd) < (int)len ? 0 : -1;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        int w = snprintf(out, len, "%.*s%s%s", (int)n, p, n ? "/" : "", cmd);
        struct stat st;
        if (w > 0 && (size_t)w < len && stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
            access(out, X_OK) == 0)
            return 0;
        if (!end)
            return -1;
        p = end;
    }
}

/* Why the loader would not preload the tracer into cmd: "setuid",
 * "static" (an ELF program without an interpreter), or NULL. */
static const char *cannot_preload(const char *cmd)
{
    char exe[PATH_MAX];
    struct stat st;
    if (find_command(cmd, exe, sizeof exe) < 0 || stat(exe, &st) != 0)
        return NULL;
    if (st.st_mode & (S_ISUID | S_ISGID))
        return "setuid";
    int fd = open(exe, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    Elf64_Ehdr eh;
    const char *why = NULL;
    if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
        eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr)) {
        why = "static";
        for (int i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) !=
                (ssize_t)sizeof ph) {
                why = NULL;
                break;
            }
            if (ph.p_type == PT_INTERP) {
                why = NULL;
                break;
            }
        }
    }
    close(fd);
    return why;
}

/* Without --follow-fork the traced process is the only one writing: after
 * an exec that failed once its trace had ended, it went on in a trace of
 * its own, named as the tracer does (lifecycle.c, open_trace): the path
 * with %p expanded, or the path.PID, then .2, .3, ...  Each one is named. */
static void list_continued(const char *pattern, const char *main_trace, pid_t pid)
{
    char base[PATH_MAX], path[PATH_MAX + 16];
    if (strstr(pattern, "%p"))
        snprintf(base, sizeof base, "%s", main_trace);
    else if (snprintf(base, sizeof base, "%s.%d", main_trace, (int)pid) >= (int)sizeof base)
        return;
    struct stat st;
    if (strcmp(base, main_trace) != 0 && stat(base, &st) == 0)
        fprintf(stderr, "tidemark: after a failed exec the trace went on in %s\n", base);
    for (int n = 2; n < 100; n++) {
        snprintf(path, sizeof path, "%s.%d", base, n);
        if (stat(path, &st) != 0)
            break;
        fprintf(stderr, "tidemark: after a failed exec the trace went on in %s\n", path);
    }
}

static int set_env(const char *name, const char *value)
{
    if (setenv(name, value, 1) < 0) {
        tm_error("cannot set %s: %s", name, strerror(errno));
        return -1;
    }
    return 0;
}

int tm_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"stacks", required_argument, NULL, 's'},
        {"depth", required_argument, NULL, 'd'},
        {"rss-interval", required_argument, NULL, 'r'},
        {"follow-fork", no_argument, NULL, 'f'},
        {"python-stacks", no_argument, NULL, 'p'},
        {"python-allocator", required_argument, NULL, 'a'},
        {"stack-memory", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *output = NULL, *stacks = NULL, *depth = NULL, *rss = NULL, *pyalloc = NULL,
               *stack_mem = NULL;
    int follow = 0, python = 0, c;
    optind = 1;
    /* '+': options end at the first non-option, the command. */
    while ((c = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 's':
            if (strcmp(optarg, "full") && strcmp(optarg, "none"))
                return tm_usage_error("run", "--stacks must be full or none, got '%s'", optarg);
            stacks = optarg;
            break;
        case 'd': {
            long long v = tm_parse_count(optarg);
            if (v < 1 || v > 256)
                return tm_usage_error("run", "--depth must be 1..256, got '%s'", optarg);
            depth = optarg;
            break;
        }
        case 'r': {
            long long v = tm_parse_count(optarg);
            if (v < 0 || v > 3600000)
                return tm_usage_error("run", "--rss-interval must be 0..3600000 ms, got '%s'",
                                      optarg);
            rss = optarg;
            break;
        }
        case 'f': follow = 1; break;
        case 'p': python = 1; break;
        case 'a':
            if (strcmp(optarg, "traced") && strcmp(optarg, "off"))
                return tm_usage_error("run", "--python-allocator must be traced or off, got '%s'",
                                      optarg);
            pyalloc = optarg;
            break;
        case 'm': {
            uint64_t v;
            if (tm_parse_size(optarg, &v) < 0 || v < TM_STACK_MEMORY_MIN)
                return tm_usage_error("run", "--stack-memory must be a size of at least 1 MiB "
                                      "(like 64 MiB), got '%s'", optarg);
            stack_mem = optarg;
            break;
        }
        case 'h': fputs(run_help, stdout); return TM_EXIT_OK;
        default: return tm_bad_option("run", argv);
        }
    }
    if (optind >= argc)
        return tm_usage_error("run", "no command to run");
    if (!pyalloc) {
        const char *env = getenv("TIDEMARK_PYTHON_ALLOCATOR");
        if (env && *env && strcmp(env, "traced") && strcmp(env, "off"))
            return tm_usage_error("run", "TIDEMARK_PYTHON_ALLOCATOR must be traced or off, "
                                  "got '%s'", env);
        pyalloc = env && *env ? env : "traced";
    }
    char **cmd = argv + optind;

    char lib[PATH_MAX];
    if (tm_locate_preload(lib, sizeof lib) < 0) {
        tm_error("cannot find the preload library (%s); build it or set TIDEMARK_LIB", lib);
        return TM_EXIT_FAIL;
    }

    /* An absolute output path, so CMD changing directory does not move it. */
    char pattern[PATH_MAX];
    if (output) {
        if (output[0] == '/') {
            snprintf(pattern, sizeof pattern, "%s", output);
        } else {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd)) {
                tm_error("cannot get the working directory: %s", strerror(errno));
                return TM_EXIT_FAIL;
            }
            if (join(pattern, sizeof pattern, cwd, output) < 0) {
                tm_error("output path too long: %s", output);
                return TM_EXIT_BAD_INPUT;
            }
        }
        struct stat st;
        if (!strstr(pattern, "%p") && lstat(pattern, &st) == 0) {
            tm_error("%s exists; tidemark never overwrites a trace (remove it or choose "
                     "another -o)", output);
            return TM_EXIT_BAD_INPUT;
        }
    } else {
        const char *base = strrchr(cmd[0], '/');
        snprintf(pattern, sizeof pattern, "tidemark.%s.%%p.trace", base ? base + 1 : cmd[0]);
    }
    if (check_output_dir(pattern, output ? output : "in the working directory") < 0)
        return TM_EXIT_BAD_INPUT;

    char preload[PATH_MAX * 2];
    const char *old = getenv("LD_PRELOAD");
    snprintf(preload, sizeof preload, "%s%s%s", lib, old && *old ? ":" : "", old ? old : "");
    if (set_env("LD_PRELOAD", preload) || set_env("TIDEMARK_OUTPUT", pattern) ||
        (stacks && set_env("TIDEMARK_STACKS", stacks)) ||
        (depth && set_env("TIDEMARK_STACK_DEPTH", depth)) ||
        (rss && set_env("TIDEMARK_RSS_INTERVAL_MS", rss)) ||
        (stack_mem && set_env("TIDEMARK_STACK_MEMORY", stack_mem)) ||
        (follow && set_env("TIDEMARK_FOLLOW_FORK", "1")) ||
        set_env("TIDEMARK_PYTHON_ALLOCATOR", pyalloc))
        return TM_EXIT_FAIL;
    if (!follow)
        unsetenv("TIDEMARK_FOLLOW_FORK");
    int traced_alloc = strcmp(pyalloc, "traced") == 0;
    if ((python || traced_alloc) && add_python_path(python) < 0)
        return TM_EXIT_FAIL;

    fflush(NULL);
    time_t started = time(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        tm_error("fork: %s", strerror(errno));
        return TM_EXIT_FAIL;
    }
    if (pid == 0) {
        execvp(cmd[0], cmd);
        int e = errno;
        tm_error("%s: %s", cmd[0], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    /* Like a shell: the terminal's ^C and ^\ are for the traced command. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            tm_error("waitpid: %s", strerror(errno));
            return TM_EXIT_FAIL;
        }
    }
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

    char path[PATH_MAX];
    expand_pid(pattern, pid, path, sizeof path);
    int have = access(path, F_OK) == 0;
    if (have)
        fprintf(stderr, "tidemark: trace written to %s\n", path);
    if (follow)
        list_other_traces(pattern, path, started);
    else
        list_continued(pattern, path, pid);
    /* No trace: the tracer says why when it cannot write one; the loader
     * says nothing when it does not preload it at all. */
    const char *why = have || (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                          ? NULL
                          : cannot_preload(cmd[0]);
    if (why)
        tm_error("no trace at %s: %s is %s, the loader does not preload the tracer into it",
                 path, cmd[0], strcmp(why, "static") == 0 ? "statically linked" : "setuid or setgid");
    return rc;
}
