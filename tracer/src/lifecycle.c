/* lifecycle.c — start, fork, exit and fatal signals.
 *
 * Tracing starts at the first hooked call or at load time, whichever comes
 * first (libc may allocate before our constructor runs).  The writer thread
 * starts from the constructor, once the process is far enough along to
 * create threads.  At exit, _exit and fatal signals, everything buffered is
 * written and an END record closes the trace.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tm_internal.h"
#include "tm_snapshot.h"
#include "tm_lock.h"
#include "tm_unwind.h"

static int trace_fd = -1;
static pid_t trace_pid; /* the process the trace is of */
static int constructed;

/* Opens a new trace file: never clobbers an existing file or follows a
 * symlink, and keeps away from the low descriptor numbers programs expect
 * to get.  In a traced process tree (--follow-fork), and after an exec
 * that failed once the trace had ended, a path already taken is the trace
 * of this pid's image before the exec (or the parent's, when the pattern
 * has no %p): the pid is added, then a number, up to PATH_TRIES. */
#define PATH_TRIES 100

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_APPEND, 0600);
}

static int open_trace(pid_t pid, int force_pid)
{
    char path[4096], num[24];
    if (tm_cfg.output_too_long) {
        tm_utoa(tm_cfg.output_too_long, num);
        tm_diag("TIDEMARK_OUTPUT is too long (", num,
                " characters, at most 4095): not tracing");
        return -1;
    }
    if (tm_output_path(&tm_cfg, pid, force_pid, path, sizeof path) < 0) {
        tm_diag("TIDEMARK_OUTPUT is too long (over 4095 characters once %p is expanded): "
                "not tracing", NULL, NULL);
        return -1;
    }
    int fd = open_path(path);
    char base[4096];
    size_t len;
    if (fd < 0 && errno == EEXIST && (tm_cfg.follow_fork || force_pid) &&
        tm_output_path(&tm_cfg, pid, 1, base, sizeof base) == 0 &&
        (len = tm_strlen(base)) + 4 < sizeof base) {
        /* BASE (when not the path just tried), then BASE.2, BASE.3, ... */
        int n = tm_strlen(path) == len && memcmp(base, path, len) == 0 ? 2 : 1;
        for (; fd < 0 && errno == EEXIST && n < PATH_TRIES; n++) {
            memcpy(path, base, len + 1);
            if (n > 1) {
                path[len] = '.';
                *tm_utoa((uint64_t)n, path + len + 1) = 0;
            }
            fd = open_path(path);
        }
    }
    if (fd < 0) {
        /* ": <reason>; not tracing" */
        char why[160] = ": ";
        size_t n = 2;
        for (const char *r = tm_strerror(errno); *r && n < sizeof why - 16; r++)
            why[n++] = *r;
        memcpy(why + n, "; not tracing", 14);
        tm_diag("cannot create trace ", path, why);
        return -1;
    }
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    tm_sink_set_path(path);
    return fd;
}

/* Another allocator preloaded before us (LD_PRELOAD=libjemalloc.so:...)
 * takes every call to malloc before it reaches our hooks: nothing can be
 * recorded, and the user is told why, once.  (After us it is fine: our
 * hooks record and hand over to it.) */
static void check_allocator_order(uintptr_t self_lo, uintptr_t self_hi)
{
    uintptr_t first = (uintptr_t)dlsym(RTLD_DEFAULT, "malloc");
    if (!first || (first >= self_lo && first < self_hi))
        return;
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    /* A program built without -fPIE (Debian's python3) has no malloc of its
     * own: the address is its PLT entry, malloc's canonical address there,
     * an undefined symbol with a value.  Its calls still reach our hooks. */
    if (dladdr1((void *)first, &info, (void **)&sym, RTLD_DL_SYMENT) && sym &&
        sym->st_shndx == SHN_UNDEF)
        return;
    const char *who = dladdr((void *)first, &info) && info.dli_fname && *info.dli_fname
                          ? info.dli_fname
                          : "a library";
    tm_diag("malloc comes from ", who,
            ", loaded before the tracer: no allocation is recorded (put libtidemark.so first in "
            "LD_PRELOAD, as tidemark run does)");
}

static void install_signal_handlers(void);
static void register_last_exit(void);
static void atfork_prepare(void);
static void atfork_parent(void);
static void atfork_child(void);

static int start(void)
{
    tm_clock_init();
    tm_config_load(&tm_cfg);
    tm_snap_init();
    if (!tm_cfg.follow_fork)
        tm_env_drop_preload();
    trace_pid = getpid();
    trace_fd = open_trace(trace_pid, 0);
    if (trace_fd < 0)
        return -1;
    int rc = tm_recorder_init(trace_fd, trace_pid);
    if (rc == 0 && tm_stacks_init() < 0)
        rc = -ENOMEM;
    if (rc < 0) {
        if (rc == -ENOMEM)
            tm_diag("cannot set up the recorder (out of memory): not tracing", NULL, NULL);
        else
            tm_diag("cannot write the trace header: ", tm_strerror(-rc), "; not tracing");
        tm_sink_discard(trace_fd);
        trace_fd = -1;
        return -1;
    }
    uintptr_t lo, hi;
    tm_modules_self_range(&lo, &hi);
    tm_stacks_set_self_range(lo, hi);
    check_allocator_order(lo, hi);
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    install_signal_handlers();
    return 0;
}

TM_HIDDEN int tm_ensure_started(void)
{
    int s = __atomic_load_n(&tm_state, __ATOMIC_ACQUIRE);
    if (s == TM_STATE_ON)
        return 1;
    if (s != TM_STATE_OFF)
        return 0; /* starting in another thread, or finished */
    int expected = TM_STATE_OFF;
    if (!__atomic_compare_exchange_n(&tm_state, &expected, TM_STATE_STARTING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return expected == TM_STATE_ON;
    tm_quiet q = tm_quiet_begin();
    int ok = start() == 0;
    __atomic_store_n(&tm_state, ok ? TM_STATE_ON : TM_STATE_DONE, __ATOMIC_RELEASE);
    if (ok) {
        /* The module map goes in once recording is on. */
        tm_modules_emit();
        /* RSS at the start (and at the end, tm_finish): a run shorter than
         * one sampling interval has its RSS and its thread too. */
        if (tm_cfg.rss_interval_ms > 0) {
            uint64_t rss = tm_rss_once();
            tm_lock();
            tm_record_rss_locked(rss);
            tm_unlock();
        }
        if (constructed)
            tm_writer_start();
    }
    tm_quiet_end(q);
    return ok;
}

__attribute__((constructor)) static void tm_constructor(void)
{
    if (!tm_real.free)
        tm_resolve_real();
    constructed = 1;
    register_last_exit();
    if (__atomic_load_n(&tm_state, __ATOMIC_ACQUIRE) == TM_STATE_OFF) {
        tm_ensure_started(); /* starts the writer too */
        return;
    }
    if (__atomic_load_n(&tm_state, __ATOMIC_ACQUIRE) == TM_STATE_ON && !tm_writer_running()) {
        int was = tm_self.busy;
        tm_self.busy = TM_BUSY_TRACER;
        tm_writer_start();
        tm_self.busy = was;
    }
}

/* Is this the process the trace is of?  Not in the child of a vfork (or
 * of a clone that shares memory), which runs on the parent's memory, its
 * thread state included, until it execs or _exits: it must leave the
 * parent's trace as it is.  A system call, not a cached pid. */
TM_HIDDEN int tm_is_traced_process(void)
{
    return (pid_t)syscall(SYS_getpid) == trace_pid;
}

/* The trace was ended by a thread stopped inside the recorder: the stopped
 * record holds the lock for good, so no new trace may follow (a failed exec
 * from a signal handler). */
static int ended_inside;

TM_HIDDEN int tm_finish(int reason)
{
    if (!tm_is_traced_process())
        return 0;
    int expected = TM_STATE_ON;
    if (!__atomic_compare_exchange_n(&tm_state, &expected, TM_STATE_DONE, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return 0;
    tm_quiet q = tm_quiet_begin();
    /* The last RSS sample, then END.  From a signal handler that stopped
     * this thread inside the recorder, the stream ends where it stands (the
     * lock is never waited for). */
    uint64_t rss = tm_cfg.rss_interval_ms > 0 ? tm_rss_once() : 0;
    if (tm_end_stream(reason, 0, rss))
        __atomic_store_n(&ended_inside, 1, __ATOMIC_RELAXED);
    tm_writer_stop();
    tm_write_sealed();
    tm_quiet_end(q);
    return 1;
}

/* The trace ends when the process really ends: after every atexit handler
 * and every ELF destructor, which may still free (a library's destructor
 * freeing what its constructor allocated).  exit() runs its handlers
 * last-registered first, and __libc_start_main registers the dynamic
 * linker's destructor pass only after the preloaded libraries'
 * constructors have run: a handler registered from our constructor runs
 * after all of them.  It is registered for no DSO (a NULL handle), since
 * our own destructor would otherwise run it through __cxa_finalize.  The
 * destructor below is the fallback for a process that never got there. */
extern int __cxa_atexit(void (*fn)(void *), void *arg, void *dso);
static int finish_at_last_exit;

static void at_last_exit(void *unused)
{
    (void)unused;
    tm_finish(TM_END_EXIT);
}

static void register_last_exit(void)
{
    tm_quiet q = tm_quiet_begin();
    finish_at_last_exit = __cxa_atexit(at_last_exit, NULL, NULL) == 0;
    tm_quiet_end(q);
}

__attribute__((destructor)) static void tm_destructor(void)
{
    if (!finish_at_last_exit)
        tm_finish(TM_END_EXIT);
}

/* --- fork ----------------------------------------------------------------- */

static int fork_was_busy;
static int fork_held; /* the recorder's lock (and with --follow-fork the rule-miss
                       * lock, the module map's and the spare states') */
static void continue_in_new_trace(void);

/* The spare per-thread states: after the recorder's lock (tm_spares_hold). */
static void hold_spares(int hold)
{
    tm_unwind_spares_hold(hold);
    tm_py_spares_hold(hold);
}

static void atfork_prepare(void)
{
    fork_was_busy = tm_self.busy;
    tm_self.busy = TM_BUSY_TRACER; /* fork itself may allocate; it must not wait on us */
    fork_held = __atomic_load_n(&tm_state, __ATOMIC_ACQUIRE) == TM_STATE_ON;
    if (fork_held) {
        if (tm_cfg.follow_fork) {
            tm_unwind_fork_prepare();
            tm_modules_fork_prepare();
        }
        tm_lock();
        if (tm_cfg.follow_fork)
            hold_spares(1);
    }
}

static void atfork_parent(void)
{
    if (fork_held) {
        if (tm_cfg.follow_fork)
            hold_spares(0);
        tm_unlock();
        if (tm_cfg.follow_fork) {
            tm_modules_fork_parent();
            tm_unwind_fork_done();
        }
    }
    tm_self.busy = fork_was_busy;
}

static void atfork_child(void)
{
    tm_self.tid = 0; /* a new thread id */
    tm_writer_forget();
    if (!fork_held) {
        tm_self.busy = fork_was_busy;
        return;
    }
    /* The parent's buffered chunks belong to the parent's trace. */
    if (trace_fd >= 0)
        tm_sink_close(); /* unless the program took its number */
    trace_fd = -1;
    if (tm_cfg.follow_fork) {
        hold_spares(0); /* the child has no other thread */
        tm_unwind_fork_done();
        continue_in_new_trace();
    } else
        __atomic_store_n(&tm_state, TM_STATE_DONE, __ATOMIC_RELEASE);
    tm_unlock();
    tm_self.busy = fork_was_busy;
}

/* This process goes on in a trace of its own, with what the old one had
 * defined (strings, stacks, open regions); the writer thread starts anew.
 * Lock held (a fresh ring takes it over). */
static void continue_in_new_trace(void)
{
    trace_pid = getpid();
    trace_fd = open_trace(trace_pid, 1);
    if (trace_fd < 0 || tm_recorder_reopen(trace_fd, trace_pid) < 0) {
        __atomic_store_n(&tm_state, TM_STATE_DONE, __ATOMIC_RELEASE);
        tm_modules_fork_child(0);
        return;
    }
    __atomic_store_n(&tm_state, TM_STATE_ON, __ATOMIC_RELEASE);
    tm_unlock();
    tm_modules_fork_child(1); /* the map collected before the fork */
    tm_lock();
    tm_reemit_tables_locked();
    tm_unlock();
    tm_writer_start();
    tm_lock();
}

/* --- exec -----------------------------------------------------------------------
 *
 * An exec replaces the image without exit handlers: the trace is finished
 * first (END: exec), so nothing buffered is lost.  The new image, still
 * preloaded with --follow-fork, writes a trace of its own (open_trace).
 * When the real call returns it failed, and the process goes on in a new
 * trace.  exec.c calls these only for an exec whose file can be run, so
 * a PATH search that tries one directory after another does not end a
 * trace at every miss; a child of vfork (or of posix_spawn, whose exec
 * does not come here) leaves the parent's trace alone and, preloaded,
 * writes its own from its new image. */

TM_HIDDEN int tm_exec_begin(void)
{
    /* A vfork child (Python's subprocess uses vfork) shares the parent's
     * memory: the trace is the parent's and stays as it is. */
    if (getpid() != trace_pid)
        return 0;
    return tm_finish(TM_END_EXEC);
}

TM_HIDDEN void tm_exec_failed(int ended)
{
    if (!ended || __atomic_load_n(&ended_inside, __ATOMIC_RELAXED))
        return;
    tm_quiet q = tm_quiet_begin();
    int expected = TM_STATE_DONE;
    if (__atomic_compare_exchange_n(&tm_state, &expected, TM_STATE_STARTING, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        tm_sink_close();
        tm_lock();
        continue_in_new_trace();
        tm_unlock();
    }
    tm_quiet_end(q);
}

/* --- fatal signals -----------------------------------------------------------
 *
 * signals.c keeps the tracer's handler under the program's view of its
 * dispositions; when a fatal signal's default action is due it calls this
 * first, then dies of the signal. */

TM_HIDDEN void tm_signal_end(int sig)
{
    int saved = errno;
    int expected = TM_STATE_ON;
    /* (Not in a vfork child: the trace is its parent's.) */
    if (tm_is_traced_process() &&
        __atomic_compare_exchange_n(&tm_state, &expected, TM_STATE_DONE, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        tm_self.busy = TM_BUSY_TRACER;
        /* Another thread may hold the lock mid-record; give it a moment.
         * If this thread itself crashed inside the recorder, seal anyway. */
        int locked = tm_trylock_spin(20000000);
        tm_record_end(TM_END_SIGNAL, sig);
        if (locked)
            tm_unlock();
        tm_write_all_sealed(2000000000ull);
    }
    errno = saved;
}

static void install_signal_handlers(void)
{
    tm_signals_install();
}
