/* tm_internal.h — shared internals of libtidemark.so.
 *
 * Phases (docs/contributing.md): hooks.c is the thin interposition layer; recorder.c
 * owns the event stream (one lock-protected chunk of raw records being
 * filled, a ring of sealed chunks; lock.c is the lock); writer.c encodes
 * (encode.c), compresses and writes sealed chunks from its own thread and
 * samples RSS; unwind.c and stacks.c walk and intern stacks; modules.c
 * describes the module map; lifecycle.c starts, forks and stops it all.
 *
 * Nothing here may call malloc or stdio.  Errors surface as one capped
 * diagnostic line on stderr (tm_diag) and tracing turning itself off; the
 * traced program never sees a difference.
 */
#ifndef TM_INTERNAL_H
#define TM_INTERNAL_H

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tm_format.h"

#define TM_HIDDEN __attribute__((visibility("hidden")))
#define TM_TLS __thread __attribute__((tls_model("initial-exec")))
#define tm_likely(x) __builtin_expect(!!(x), 1)
#define tm_unlikely(x) __builtin_expect(!!(x), 0)

/* A lock for short, rare work off the hot path (the module map, unwind
 * rule misses, spare walk states): a waiter yields the CPU. */
static inline void tm_spin_acquire(int *lock)
{
    while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE))
        sched_yield();
}

static inline void tm_spin_release(int *lock)
{
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

/* Per-thread states handed back by threads that exited, for the next
 * threads (a thread-specific key's destructor puts them back): a program
 * that keeps replacing its threads maps as many as it ever ran at once.
 * A state's first member is its link, `void *next_spare`. */
typedef struct tm_spares {
    void *head;
    int lock;
} tm_spares;

static inline void tm_spares_put(tm_spares *s, void *state)
{
    tm_spin_acquire(&s->lock);
    *(void **)state = s->head;
    s->head = state;
    tm_spin_release(&s->lock);
}

static inline void *tm_spares_take(tm_spares *s)
{
    tm_spin_acquire(&s->lock);
    void *state = s->head;
    if (state)
        s->head = *(void **)state;
    tm_spin_release(&s->lock);
    return state;
}

/* Around fork, when the child goes on tracing (lifecycle.c): held, so that
 * no other thread is half-way through the list when the child is made (the
 * child would wait for ever for a thread it does not have).  Taken after
 * the recorder's lock, since a state may be taken with that held (py.c);
 * nothing is taken while a list is held. */
static inline void tm_spares_hold(tm_spares *s, int hold)
{
    if (hold)
        tm_spin_acquire(&s->lock);
    else
        tm_spin_release(&s->lock);
}

#define TM_MAX_DEPTH 256      /* hard cap on TIDEMARK_STACK_DEPTH */
#define TM_MAX_REGION_DEPTH 64

struct tm_walk; /* tm_unwind.h */

/* --- process-wide state ------------------------------------------------ */

enum tm_state {
    TM_STATE_OFF = 0,      /* not started yet */
    TM_STATE_STARTING = 1, /* one thread is initializing */
    TM_STATE_ON = 2,       /* recording */
    TM_STATE_DONE = 3,     /* finished or disabled: hooks pass through */
};

typedef struct tm_config {
    char output[4096];       /* with %p still in it */
    size_t output_too_long;  /* TIDEMARK_OUTPUT's length when it did not fit, else 0 */
    int stacks;              /* 1 = full native stacks */
    int depth;
    int rss_interval_ms;
    int follow_fork;
    int unwind_careful;      /* TIDEMARK_UNWIND=careful (or libunwind): no fast walker */
    int python_stacks;       /* TIDEMARK_PYTHON_STACKS=1: Python frames too */
    int python_allocator;    /* TIDEMARK_PYTHON_ALLOCATOR: 1 traced (default), 0 off */
    uint64_t stack_memory;   /* TIDEMARK_STACK_MEMORY: cap on the stack tables, 0 = none */
} tm_config;

typedef struct tm_real_fns {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    int (*dlclose)(void *);
    void (*_exit)(int) __attribute__((noreturn));
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execv)(const char *, char *const[]);
    int (*execvp)(const char *, char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*fexecve)(int, char *const[], char *const[]);
} tm_real_fns;

extern TM_HIDDEN tm_real_fns tm_real;
extern TM_HIDDEN int tm_state;  /* enum tm_state, accessed atomically */
extern TM_HIDDEN tm_config tm_cfg;

/* What a thread is doing, for a hook that finds it busy (tm_thread.busy).
 * A hook entered inside a hook (a signal handler that allocates, or the
 * real allocator calling back) is the program's and is recorded (hooks.c,
 * "nested calls"); one entered from the tracer's own work is not. */
enum tm_busy {
    TM_BUSY_NONE = 0,
    TM_BUSY_HOOK = 1,   /* inside a hook (the real call or its record) */
    TM_BUSY_TRACER = 2, /* the tracer's own work: hooks pass through */
    TM_BUSY_NESTED = 3, /* inside a hook entered inside a hook */
    /* A wrapped Python allocator runs (pyalloc.c): the malloc hooks pass
     * through, since the block is the Python domain's (not even as a
     * nested call), but the maps hooks record (pymalloc's arenas are maps). */
    TM_BUSY_PYALLOC = 4,
};

/* Events of a nested call made while its thread was stopped inside the
 * recorder's lock (recorder.c, "nested events"), kept until the hook that
 * holds the lock leaves. */
#define TM_PENDING_MAX 256
typedef struct tm_pending {
    uint32_t op;              /* TM_OP_ALLOC | fn, or a FREE opcode; 0 = not yet filled */
    uintptr_t ptr;
    uint64_t size;
} tm_pending;

/* Per-thread state; zero-initialized for every new thread. */
typedef struct tm_thread {
    int busy;                 /* enum tm_busy: inside a hook or the tracer */
    int resolving;            /* looking up the real allocator (hooks.c) */
    uint32_t tid;             /* cached gettid(), 0 = not yet known */
    int lock_held;            /* how this thread holds the recorder lock (lock.c) */
    struct tm_walk *walk;     /* stack walk state (unwind.c), NULL until needed */
    int region_depth;         /* may exceed TM_MAX_REGION_DEPTH */
    uint32_t region_name[TM_MAX_REGION_DEPTH];
    uint64_t region_inv[TM_MAX_REGION_DEPTH];
    uint32_t npend;           /* pend[0..npend) reserved (atomic against handlers) */
    uint64_t lost;            /* nested events that found pend full, not yet recorded */
    tm_pending pend[TM_PENDING_MAX];
} tm_thread;

extern TM_HIDDEN TM_TLS tm_thread tm_self;

/* Tracer work done from a hook, a constructor or a handler: meanwhile the
 * thread's own allocations pass through the hooks, and afterwards errno
 * is what the program left. */
typedef struct tm_quiet {
    int errno_was, busy_was;
} tm_quiet;

static inline tm_quiet tm_quiet_begin(void)
{
    tm_quiet q = {errno, tm_self.busy};
    tm_self.busy = TM_BUSY_TRACER;
    return q;
}

static inline void tm_quiet_end(tm_quiet q)
{
    tm_self.busy = q.busy_was;
    errno = q.errno_was;
}

/* The same around the tracer's own work on a program thread that may
 * allocate (state.c): a signal handler's allocations meanwhile could not
 * be told from the tracer's, so signals wait until it is done. */
#include <signal.h>
TM_HIDDEN tm_quiet tm_quiet_begin_masked(sigset_t *old);
TM_HIDDEN void tm_quiet_end_masked(tm_quiet q, const sigset_t *old);

/* --- lifecycle.c -------------------------------------------------------- */

/* Makes sure tracing is started; returns 1 when events may be recorded. */
TM_HIDDEN int tm_ensure_started(void);
TM_HIDDEN void tm_resolve_real(void);
/* Finishes the trace: END record, everything buffered written.  1 when
 * this call finished it (it was on). */
TM_HIDDEN int tm_finish(int reason);
TM_HIDDEN int tm_is_traced_process(void);
/* Around an exec (exec.c): tm_exec_begin finishes the trace and says
 * whether it did; tm_exec_failed, given that, goes on in a new trace. */
TM_HIDDEN int tm_exec_begin(void);
TM_HIDDEN void tm_exec_failed(int ended);
TM_HIDDEN uint32_t tm_gettid(void);
/* Ends the trace for a fatal signal whose default action follows (END:
 * signal, everything buffered written); errno kept. */
TM_HIDDEN void tm_signal_end(int sig);
/* Called by tm_gettid when a thread first learns its id (its first
 * record): signals.c gives the thread its hidden alternate signal stack. */
extern TM_HIDDEN void (*tm_thread_hook)(void);

/* --- signals.c ----------------------------------------------------------- */

/* The tracer's handler for the fatal signals, under the program's view of
 * its dispositions (sigaction and friends interposed); this thread's
 * hidden alternate signal stack. */
TM_HIDDEN void tm_signals_install(void);

/* --- config.c ----------------------------------------------------------- */

TM_HIDDEN void tm_config_load(tm_config *cfg);
/* Expands %p in cfg->output into out (pid), appending ".PID" when the
 * pattern has no %p and force_pid is set.  Returns 0 or -ENAMETOOLONG. */
TM_HIDDEN int tm_output_path(const tm_config *cfg, pid_t pid, int force_pid, char *out,
                             size_t len);
/* Removes this library from LD_PRELOAD in the process environment, in
 * place, so exec'd children run untraced. */
TM_HIDDEN void tm_env_drop_preload(void);
/* One diagnostic line on stderr, at most a few per process. */
TM_HIDDEN void tm_diag(const char *a, const char *b, const char *c);
TM_HIDDEN size_t tm_strlen(const char *s);
/* strerror without locale or allocation (safe in the preload). */
TM_HIDDEN const char *tm_strerror(int e);
TM_HIDDEN char *tm_utoa(uint64_t v, char *buf); /* returns end of digits */

/* --- clock.c --------------------------------------------------------------- */

TM_HIDDEN void tm_clock_init(void);

/* --- py.c / recorder.c: Python frames ----------------------------------------- */

/* The calling thread's Python stack as a PY_FRAME node (0 = none), defining
 * new nodes through tm_emit_py_frame_locked.  Lock held. */
TM_HIDDEN uint32_t tm_py_stack_locked(void);
/* Nonzero once a Python frame walker or profile hook is registered: then
 * every allocation goes through tm_py_stack_locked. */
extern TM_HIDDEN int tm_py_on;
/* Holds (1) or releases (0) the spare per-thread states around fork
 * (tm_spares_hold). */
TM_HIDDEN void tm_py_spares_hold(int hold);
TM_HIDDEN void tm_py_foreach(void (*emit)(uint32_t id, uint32_t parent, uint32_t file,
                                         uint32_t func, uint32_t line, uint32_t flags));
TM_HIDDEN void tm_emit_py_frame_locked(uint32_t id, uint32_t parent, uint32_t file,
                                       uint32_t func, uint32_t line, uint32_t flags);
/* A string's id, defined in the stream on first use (takes the lock). */
TM_HIDDEN uint32_t tm_intern_string(const char *s);
TM_HIDDEN uint32_t tm_intern_string_locked(const char *s);
TM_HIDDEN uint64_t tm_ticks(void);
TM_HIDDEN uint64_t tm_mono_ns(void);
TM_HIDDEN int tm_ticks_are_ns(void);
/* A recent tm_ticks() value, refreshed every CLOCK_REFRESH_MS by the writer
 * thread; allocation records read it instead of the clock most of the time. */
extern TM_HIDDEN uint64_t tm_clock_hint;
TM_HIDDEN void tm_clock_refresh(void);

/* --- recorder.c ---------------------------------------------------------- */

/* Writes the file header to fd (tm_sink_attach).  -ENOMEM when the
 * tables cannot be mapped, else what writing the header gave. */
TM_HIDDEN int tm_recorder_init(int fd, pid_t pid);
/* The next allocation or free takes the recorder's full path, which looks
 * at the writer's clock and mail and at Python frames: after either
 * changed.  Any thread, lock or not. */
TM_HIDDEN void tm_recorder_poke(void);
/* Child side of fork with --follow-fork: new file, same tables. */
TM_HIDDEN int tm_recorder_reopen(int fd, pid_t pid);

/* --- lock.c (tm_lock() and tm_unlock() are inline in tm_lock.h) ------------ */

/* Unlocked, biased towards thread `owner` when membarrier is available.
 * Also the fork child's reset. */
TM_HIDDEN void tm_lock_init(uint32_t owner);
/* Bounded attempt for crash paths; returns 1 when the lock is held. */
TM_HIDDEN int tm_trylock_spin(long spins);
/* The calling thread (the writer) takes the lock on a schedule: its
 * revocations of the bias are expected and never drop it. */
TM_HIDDEN void tm_lock_exempt_self(void);

/* tm_record_alloc, tm_record_free: tm_record.h. */
TM_HIDDEN void tm_record_region_begin(const char *name);
TM_HIDDEN void tm_record_region_end(void);
TM_HIDDEN void tm_record_mark(const char *label);
/* An anonymous-map record (maps.c), lock held: opcode TM_OP_MMAP, _MUNMAP
 * or _MREMAP with its raw words (tm_raw.h); with_stack appends the stack
 * interned from walk (0 when walk is NULL). */
TM_HIDDEN void tm_record_map_locked(unsigned op, uint64_t arg, const uint64_t *words,
                                    uint32_t n, struct tm_walk *walk, int keep, int with_stack);
/* The tracer's own pages come from the kernel directly (config.c), never
 * through the interposed mmap. */
TM_HIDDEN void *tm_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
TM_HIDDEN int tm_sys_munmap(void *addr, size_t len);
/* An RSS sample taken by the calling thread (the start and the end of the
 * trace; its THREAD record makes the thread known).  Lock held. */
TM_HIDDEN void tm_record_rss_locked(uint64_t bytes);
/* RSS now, read by the calling thread (writer.c); 0 when unreadable. */
TM_HIDDEN uint64_t tm_rss_once(void);
/* The writer thread's records: 0 when the lock was busy (try later). */
TM_HIDDEN int tm_try_record_rss(uint64_t bytes);
/* The writer's mail (recorder.c): the next thread that records takes it
 * without the writer taking the lock.  tm_post_rss: 0 while the previous
 * sample is still there; tm_take_back_rss: 1 when it was (nobody took it).
 * tm_post_seal(1) asks for the chunk being filled to be sealed, (0)
 * withdraws; tm_sealed_count() moves when a chunk is sealed. */
TM_HIDDEN int tm_post_rss(uint64_t bytes);
TM_HIDDEN int tm_take_back_rss(void);
TM_HIDDEN void tm_post_seal(int ask);
TM_HIDDEN uint32_t tm_sealed_count(void);
/* hwm.c: the HWM record (VmHWM), before END.  Lock held. */
TM_HIDDEN void tm_record_hwm_locked(void);
/* detail: see TM_OP_END (signal number, errno, or 0).  Lock held. */
TM_HIDDEN void tm_record_end(int reason, int detail);
/* Ends the stream with END, this thread's pending nested events and the
 * last RSS sample (rss, when not 0) first, from any thread, including one
 * stopped inside the recorder's lock (a signal handler calling exit or
 * _exit from within a hook): that one never
 * waits for the lock, and drops only the record it was writing.  Returns 1
 * in that case (the lock stays held: the stopped record never resumes). */
TM_HIDDEN int tm_end_stream(int reason, int detail, uint64_t rss);
/* A hook entered inside a hook (hooks.c): records the event now, or, when
 * this thread holds the recorder's lock, keeps it (pend) for
 * tm_flush_pending. */
TM_HIDDEN void tm_record_nested_alloc(int fn, const void *ptr, size_t size);
TM_HIDDEN void tm_record_nested_free(int op, const void *ptr);
/* Records this thread's pending nested events; from a hook leaving. */
TM_HIDDEN void tm_flush_pending(void);

/* A hook leaving: events that came from a signal handler while it held
 * the recorder's lock go in first, then the guard drops. */
static inline void tm_hook_leave(void)
{
    if (tm_unlikely(__atomic_load_n(&tm_self.npend, __ATOMIC_RELAXED)))
        tm_flush_pending();
    tm_self.busy = TM_BUSY_NONE;
}
/* Appends one pre-encoded record (module map); lock held. */
TM_HIDDEN void tm_append_locked(const uint8_t *data, size_t len);
/* Seals the chunk being filled if it holds any event; 0 when the lock was
 * busy (writer thread). */
TM_HIDDEN int tm_try_seal_current(void);
/* Re-emits strings, stack nodes and this thread's open regions into a
 * fresh trace (fork child).  Lock held. */
TM_HIDDEN void tm_reemit_tables_locked(void);

/* --- chunks (recorder.c, used by writer.c) ---------------------------------- */

/* Writes sealed chunks to the file, claiming each exactly once.
 * Returns the number written. */
TM_HIDDEN int tm_write_sealed(void);
/* The same, then waits (bounded) for chunks other threads are writing. */
TM_HIDDEN void tm_write_all_sealed(uint64_t timeout_ns);
TM_HIDDEN int tm_has_sealed(void);

/* --- writer.c --------------------------------------------------------------- */

TM_HIDDEN int tm_writer_start(void);
TM_HIDDEN void tm_writer_stop(void);
TM_HIDDEN void tm_writer_wake(void);
TM_HIDDEN int tm_writer_running(void);
TM_HIDDEN int tm_on_writer_thread(void);
TM_HIDDEN void tm_writer_forget(void); /* fork child: the thread is gone */
/* Allocates the encoding buffer shared by threads other than the writer. */
TM_HIDDEN int tm_writer_init(void);
/* Encodes one chunk of raw records (tm_raw.h) and writes it to the sink as
 * block seq: header, clock record, records; compressed on the writer
 * thread.  Writes once *turn == seq, then sets it to seq + 1. */
TM_HIDDEN int tm_write_chunk(uint32_t seq, const uint64_t *words, uint32_t n,
                             uint64_t start_tick, uint32_t *turn);

/* --- sink.c: the trace file -------------------------------------------------- */

struct iovec;
/* The path the trace file can be opened again by (after the program closed
 * or took over its descriptor); NULL = none. */
TM_HIDDEN void tm_sink_set_path(const char *path);
/* fd is the trace file from now on (its device and inode are what every
 * write checks).  0 or -errno. */
TM_HIDDEN int tm_sink_attach(int fd);
TM_HIDDEN int tm_sink_fd(void);
/* Closes the descriptor if it is still the trace file's. */
TM_HIDDEN void tm_sink_close(void);
/* Tracing could not start: the file just created for it (fd, at the path
 * set) holds no trace and is removed again, the descriptor closed. */
TM_HIDDEN void tm_sink_discard(int fd);
/* The errno that stopped writing, 0 while writing goes on. */
TM_HIDDEN int tm_sink_failed(void);
/* Writes iov whole after checking the descriptor (reopening the file when
 * the program took it).  0 written; 1 dropped, the file is stopped (said
 * once); -errno the write failed, *size = the file's size before it. */
TM_HIDDEN int tm_sink_writev(struct iovec *iov, int cnt, off_t *size);
/* Says the write failed, stops the file, cuts it back to size and writes
 * end_iov (a block with END) there when it fits. */
TM_HIDDEN void tm_sink_fail(int err, off_t size, struct iovec *end_iov, int cnt);

/* --- stacks.c, unwind.c ----------------------------------------------------- */

typedef void (*tm_node_emit_fn)(uint32_t id, uint32_t parent, uint64_t ip);
TM_HIDDEN int tm_stacks_init(void);
/* Interns a stack given as return addresses, innermost first (tests and
 * callers without a walk).  Lock held. */
TM_HIDDEN uint32_t tm_stack_intern(const uintptr_t *ips, int n, tm_node_emit_fn emit);
TM_HIDDEN void tm_stacks_foreach(tm_node_emit_fn emit);
/* Bytes the stack trie holds resident now (its nodes, addresses and
 * indexes), and how many times it was dropped for the cap. */
TM_HIDDEN size_t tm_stacks_bytes(void);
TM_HIDDEN uint32_t tm_stacks_resets(void);
/* The cap (TIDEMARK_STACK_MEMORY) covers the native trie and the Python
 * frame table (py.c) together: the Python table asks the native one to
 * drop itself at its next new node when that one is the larger. */
TM_HIDDEN void tm_stacks_request_reset(void);
TM_HIDDEN size_t tm_py_stack_bytes(void);
/* STACK_RESET: ids of kind 0 (native) or 1 (Python) go on from next. */
TM_HIDDEN void tm_emit_stack_reset_locked(uint32_t next, int kind);
TM_HIDDEN void tm_stacks_set_self_range(uintptr_t start, uintptr_t end);

/* --- modules.c ---------------------------------------------------------------- */

/* Emits MAP_RESET and one MODULE record per loaded object. */
TM_HIDDEN void tm_modules_emit(void);
/* When a walk meets a module for the first time (unwind.c): MODULE records
 * for the objects loaded since the map was last collected, if any (the
 * whole map again when the loader unloaded something since).  One
 * dl_iterate_phdr step when nothing was loaded.  Lock not held. */
TM_HIDDEN void tm_modules_sync(void);
/* Around fork, when the child goes on tracing: prepare collects the map
 * (and holds the module map's lock, before the recorder's); the child
 * appends it to its new trace without asking the loader (modules.c), or
 * with emit_map 0 (no new trace) only releases the lock. */
TM_HIDDEN void tm_modules_fork_prepare(void);
TM_HIDDEN void tm_modules_fork_parent(void);
TM_HIDDEN void tm_modules_fork_child(int emit_map);
/* Address range of libtidemark.so itself. */
TM_HIDDEN void tm_modules_self_range(uintptr_t *start, uintptr_t *end);

/* --- page allocator (no malloc in the tracer) ------------------------------------ */

TM_HIDDEN void *tm_pages(size_t bytes);      /* zeroed, NULL on failure */
TM_HIDDEN void tm_pages_free(void *p, size_t bytes);
/* For the large tables the hot path touches all over (the chunk ring, the
 * stack trie, the unwind rules): whole transparent huge pages where the
 * system allows them, so one page fault maps 2 MiB instead of 4 KiB (a
 * fault costs about 10 us in some virtual machines) and one TLB entry
 * covers it.  The size is rounded up to TM_HUGE_PAGE. */
#define TM_HUGE_PAGE (2u << 20)
TM_HIDDEN void *tm_pages_huge(size_t bytes);
TM_HIDDEN void tm_pages_huge_free(void *p, size_t bytes);

/* --- bootstrap arena (hooks.c) ------------------------------------------------- */

TM_HIDDEN int tm_in_arena(const void *p);

#endif /* TM_INTERNAL_H */
