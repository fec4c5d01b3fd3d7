/* signals.c — the program's view of its signal dispositions, and the
 * tracer's handler underneath.
 *
 * To end a trace with the signal that kills the process (END: signal N,
 * everything buffered written), the tracer keeps its own handler installed
 * for the fatal signals (tracked[] below).  The program must not see it:
 * sigaction, signal and the older calls (bsd_signal, ssignal, sysv_signal,
 * sigset, sigignore, siginterrupt) are interposed, and for a tracked signal
 * they read and set the program's view: what the kernel would hold
 * untraced (handler, flags as the kernel reports them, mask, restorer).
 * The kernel holds:
 *   - view SIG_IGN: SIG_IGN itself (the kernel discards the signal, and an
 *     exec'd program inherits it, as untraced);
 *   - view SIG_DFL: on_signal, which ends the trace and then takes the
 *     default action (SIG_DFL and the signal again), on an alternate stack;
 *   - view a handler: on_signal with the program's mask and flags (but
 *     SA_RESETHAND, done here, and SA_SIGINFO, always), which calls the
 *     program's handler as the kernel would have.
 * Untracked signals go straight to libc.  A process where tracing never
 * started sees libc only.
 *
 * Stack overflow: the SIGSEGV can only be handled on another stack.  Each
 * thread gets a hidden alternate signal stack (ALT_SIZE, mmap'd, a guard
 * page below) when it first records (tm_thread_hook), unless it has one of
 * its own.  sigaltstack is interposed too: the program sees its own stack,
 * or none; when it sets its own, the kernel uses that (the tracer's handler
 * runs on it), and when it disables it the hidden one comes back.  A
 * thread's hidden stack goes to the next thread when it exits.
 *
 * Everything here is async-signal-safe: system calls, atomics and a try
 * lock; updates of the view run with every signal blocked.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tm_internal.h"

#define EXPORT __attribute__((visibility("default")))

/* libc's sigaction under its other name: not interposed. */
extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);

static const int tracked_list[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP,
                                   SIGSYS, SIGTERM, SIGQUIT, SIGHUP, SIGXCPU, SIGXFSZ};

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000 /* libc sets it on every action (x86-64) */
#endif
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1u << 31)
#endif

#define KSET_BYTES 8 /* the kernel's sigset (64 signals) */
#define MAX_SIG 64

/* What sigaction(sig, NULL, &old) returns untraced. */
typedef struct view {
    void *handler; /* atomic: SIG_DFL, SIG_IGN or the program's function */
    int flags;     /* atomic */
    uint64_t mask;
    void (*restorer)(void);
} view;

static struct {
    int on;            /* the tracked signals are managed */
    pid_t pid;         /* the process the views are of (not a vfork child) */
    int lock;          /* updates (signals blocked meanwhile) */
    uint64_t tracked;  /* bit sig-1 */
    uint64_t intr;     /* siginterrupt(sig, 1) was called (signal() then omits SA_RESTART) */
    view v[MAX_SIG + 1];
} sg;

static int is_tracked(int sig)
{
    return sig >= 1 && sig <= MAX_SIG && __atomic_load_n(&sg.on, __ATOMIC_ACQUIRE) &&
           (sg.tracked >> (sig - 1) & 1);
}

static void on_signal(int sig, siginfo_t *si, void *uc);

/* --- the kernel's side -------------------------------------------------------- */

static int kernel_flags(const view *v, int prog_flags)
{
    int onstack = v->handler == SIG_DFL || (prog_flags & SA_ONSTACK);
    return (prog_flags & ~SA_RESETHAND) | SA_SIGINFO | (onstack ? SA_ONSTACK : 0);
}

/* Puts on_signal (or SIG_IGN) in the kernel for view v, whose flags and mask
 * are the program's as given (prog_flags, mask); fills in the view's flags,
 * mask and restorer as the kernel reports them.  0 or -errno. */
static int install(int sig, view *v, int prog_flags, const sigset_t *mask)
{
    struct sigaction k, rb;
    memset(&k, 0, sizeof k);
    if (v->handler == SIG_IGN) {
        k.sa_handler = SIG_IGN;
        k.sa_flags = prog_flags;
    } else {
        k.sa_sigaction = on_signal;
        k.sa_flags = kernel_flags(v, prog_flags);
    }
    if (mask)
        k.sa_mask = *mask;
    else
        sigemptyset(&k.sa_mask);
    if (__sigaction(sig, &k, NULL) != 0)
        return -errno;
    if (__sigaction(sig, NULL, &rb) != 0)
        return -errno;
    int added = v->handler == SIG_IGN ? 0 : (k.sa_flags & ~prog_flags);
    __atomic_store_n(&v->flags, (rb.sa_flags & ~added) | (prog_flags & SA_RESETHAND),
                     __ATOMIC_RELEASE);
    memcpy(&v->mask, &rb.sa_mask, KSET_BYTES);
    v->restorer = rb.sa_restorer;
    return 0;
}

/* Every signal blocked while the views change: a handler that calls
 * sigaction on this thread never waits for the interrupted update. */
static void update_begin(sigset_t *was)
{
    sigset_t all;
    sigfillset(&all);
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, was, KSET_BYTES);
    tm_spin_acquire(&sg.lock);
}

static void update_end(const sigset_t *was)
{
    tm_spin_release(&sg.lock);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, was, NULL, KSET_BYTES);
}

static void report(const view *v, struct sigaction *old)
{
    old->sa_handler = (void (*)(int))__atomic_load_n(&v->handler, __ATOMIC_ACQUIRE);
    memset(&old->sa_mask, 0, sizeof old->sa_mask); /* as libc: the kernel's 64 signals */
    memcpy(&old->sa_mask, &v->mask, KSET_BYTES);
    old->sa_flags = __atomic_load_n(&v->flags, __ATOMIC_ACQUIRE);
    old->sa_restorer = v->restorer;
}

/* sigaction for a tracked signal. */
static int view_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if ((pid_t)syscall(SYS_getpid) != sg.pid) {
        /* A vfork child: its dispositions are its own, the views (in the
         * memory it shares) the parent's.  The kernel decides; a handler
         * that is still ours reads as the view. */
        struct sigaction k;
        int rc = __sigaction(sig, act, &k);
        if (rc == 0 && old) {
            if (k.sa_sigaction == on_signal)
                report(&sg.v[sig], old);
            else
                *old = k;
        }
        return rc;
    }
    sigset_t was;
    int e = 0;
    update_begin(&was);
    view *v = &sg.v[sig];
    struct sigaction prev;
    if (old)
        report(v, &prev);
    if (act) {
        view next = *v;
        next.handler = (void *)act->sa_handler; /* sa_sigaction: the same member */
        int rc = install(sig, &next, act->sa_flags, &act->sa_mask);
        if (rc < 0) {
            e = -rc; /* the kernel kept the previous action */
        } else {
            __atomic_store_n(&v->handler, next.handler, __ATOMIC_RELEASE);
            __atomic_store_n(&v->flags, next.flags, __ATOMIC_RELEASE);
            v->mask = next.mask;
            v->restorer = next.restorer;
        }
    }
    update_end(&was);
    if (e) {
        errno = e;
        return -1;
    }
    if (old) {
        *old = prev;
    }
    return 0;
}

/* --- the handler ------------------------------------------------------------------ */

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    view *v = &sg.v[sig];
    void *h = __atomic_load_n(&v->handler, __ATOMIC_ACQUIRE);
    int flags = __atomic_load_n(&v->flags, __ATOMIC_ACQUIRE);
    if (h != (void *)SIG_DFL && h != (void *)SIG_IGN) {
        if (flags & SA_RESETHAND) {
            /* One-shot, as the kernel does it: the handler becomes SIG_DFL
             * (flags and mask stay), and the tracer's default comes back. */
            int saved = errno;
            __atomic_store_n(&v->handler, (void *)SIG_DFL, __ATOMIC_RELEASE);
            struct sigaction k;
            memset(&k, 0, sizeof k);
            k.sa_sigaction = on_signal;
            k.sa_flags = kernel_flags(v, flags & ~SA_RESTORER);
            memcpy(&k.sa_mask, &v->mask, KSET_BYTES);
            __sigaction(sig, &k, NULL);
            errno = saved;
        }
        if (flags & SA_SIGINFO)
            ((void (*)(int, siginfo_t *, void *))h)(sig, si, uc);
        else
            ((void (*)(int))h)(sig);
        return;
    }
    if (h == (void *)SIG_IGN)
        return; /* changed to SIG_IGN as the signal came */
    int saved = errno;
    tm_signal_end(sig);
    /* The default action, as untraced: die of the same signal (a fault
     * comes again when the handler returns; a sent signal is pending). */
    struct sigaction d;
    memset(&d, 0, sizeof d);
    d.sa_handler = SIG_DFL;
    sigemptyset(&d.sa_mask);
    __sigaction(sig, &d, NULL);
    errno = saved;
    raise(sig);
}

/* --- alternate signal stacks ------------------------------------------------------ */

#define ALT_SIZE (64u << 10)
#define ALT_GUARD 4096u

static TM_TLS void *alt_base;  /* this thread's hidden stack (guard page first) */
static TM_TLS int alt_retired; /* the thread is exiting: no new stack */
static pthread_key_t alt_key;
static int alt_key_made;

static struct {
    void *head; /* linked through each stack's first word */
    int lock;   /* try only: never waited for */
} alt_spares;

static int raw_sigaltstack(const stack_t *ss, stack_t *old)
{
    return (int)syscall(SYS_sigaltstack, ss, old);
}

static void *alt_take(void)
{
    void *m = NULL;
    if (!__atomic_exchange_n(&alt_spares.lock, 1, __ATOMIC_ACQUIRE)) {
        m = alt_spares.head;
        if (m)
            alt_spares.head = *(void **)((char *)m + ALT_GUARD);
        __atomic_store_n(&alt_spares.lock, 0, __ATOMIC_RELEASE);
    }
    if (m)
        return m;
    m = mmap(NULL, ALT_GUARD + ALT_SIZE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (mprotect(m, ALT_GUARD, PROT_NONE) != 0) {
        munmap(m, ALT_GUARD + ALT_SIZE);
        return NULL;
    }
    return m;
}

static void alt_put(void *m)
{
    if (__atomic_exchange_n(&alt_spares.lock, 1, __ATOMIC_ACQUIRE)) {
        munmap(m, ALT_GUARD + ALT_SIZE);
        return;
    }
    *(void **)((char *)m + ALT_GUARD) = alt_spares.head;
    alt_spares.head = m;
    __atomic_store_n(&alt_spares.lock, 0, __ATOMIC_RELEASE);
}

static int alt_is_mine(const stack_t *cur)
{
    return alt_base && !(cur->ss_flags & SS_DISABLE) &&
           cur->ss_sp == (char *)alt_base + ALT_GUARD && cur->ss_size == ALT_SIZE;
}

static void alt_set_mine(void)
{
    stack_t s = {.ss_sp = (char *)alt_base + ALT_GUARD, .ss_flags = 0, .ss_size = ALT_SIZE};
    raw_sigaltstack(&s, NULL);
}

/* The thread's first record (tm_gettid): a hidden stack, unless the thread
 * has one of its own. */
static void thread_start(void)
{
    if (alt_base || alt_retired)
        return;
    int saved = errno;
    stack_t cur;
    if (raw_sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_DISABLE)) {
        void *m = alt_take();
        if (m) {
            alt_base = m;
            alt_set_mine();
            if (alt_key_made)
                pthread_setspecific(alt_key, m);
        }
    }
    errno = saved;
}

/* Thread exit: the stack leaves the kernel and goes to the next thread. */
static void alt_release(void *m)
{
    stack_t cur;
    if (!m || m != alt_base || raw_sigaltstack(NULL, &cur) != 0 || (cur.ss_flags & SS_ONSTACK))
        return;
    if (alt_is_mine(&cur)) {
        stack_t off = {.ss_flags = SS_DISABLE};
        if (raw_sigaltstack(&off, NULL) != 0)
            return;
    }
    alt_base = NULL;
    alt_retired = 1;
    alt_put(m);
}

EXPORT int sigaltstack(const stack_t *ss, stack_t *old)
{
    stack_t cur;
    if (!alt_base || raw_sigaltstack(NULL, &cur) != 0 || !alt_is_mine(&cur)) {
        /* No hidden stack here, or the program's own is set: the kernel's
         * answer is the program's.  When it disables its own, the hidden
         * one comes back. */
        int rc = raw_sigaltstack(ss, old);
        if (rc == 0 && ss && (ss->ss_flags & SS_DISABLE) && !alt_retired) {
            if (alt_base)
                alt_set_mine();
            else if (tm_self.tid && __atomic_load_n(&sg.on, __ATOMIC_ACQUIRE))
                thread_start(); /* it had its own when it first recorded */
        }
        return rc;
    }
    /* The hidden stack is set: the program has none. */
    if (ss && !(ss->ss_flags & SS_DISABLE)) {
        if (raw_sigaltstack(ss, NULL) != 0)
            return -1;
    } else if (ss && (ss->ss_flags & ~(SS_DISABLE | SS_AUTODISARM))) {
        errno = EINVAL;
        return -1;
    }
    if (old)
        *old = (stack_t){.ss_sp = NULL, .ss_flags = SS_DISABLE, .ss_size = 0};
    return 0;
}

/* --- setup --------------------------------------------------------------------- */

static void atfork_child(void)
{
    sg.pid = (pid_t)syscall(SYS_getpid);
    /* (held by a thread the child does not have) */
    __atomic_store_n(&sg.lock, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&alt_spares.lock, 0, __ATOMIC_RELEASE);
}

TM_HIDDEN void tm_signals_install(void)
{
    uint64_t tracked = 0;
    sg.pid = (pid_t)syscall(SYS_getpid);
    for (size_t i = 0; i < sizeof tracked_list / sizeof tracked_list[0]; i++) {
        int sig = tracked_list[i];
        struct sigaction old;
        if (__sigaction(sig, NULL, &old) != 0)
            continue;
        view *v = &sg.v[sig];
        v->handler = (void *)old.sa_handler;
        v->flags = old.sa_flags;
        memcpy(&v->mask, &old.sa_mask, KSET_BYTES);
        v->restorer = old.sa_restorer;
        if (old.sa_handler != SIG_IGN) {
            view probe = *v;
            if (install(sig, &probe, old.sa_flags & ~SA_RESTORER, &old.sa_mask) != 0)
                continue; /* left as it was: not tracked */
        }
        tracked |= 1ull << (sig - 1);
    }
    sg.tracked = tracked;
    __atomic_store_n(&sg.on, 1, __ATOMIC_RELEASE);
    if (pthread_key_create(&alt_key, alt_release) == 0)
        alt_key_made = 1;
    pthread_atfork(NULL, NULL, atfork_child);
    __atomic_store_n(&tm_thread_hook, thread_start, __ATOMIC_RELEASE);
    thread_start();
}

/* --- the interposed calls ----------------------------------------------------------- */

typedef void (*handler_t)(int);

static void *real_fn(void **slot, const char *name)
{
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f) {
        tm_quiet q = tm_quiet_begin();
        f = dlsym(RTLD_NEXT, name);
        tm_quiet_end(q);
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}

typedef handler_t (*signal_fn)(int, handler_t);
typedef int (*int_fn)(int);
typedef int (*int2_fn)(int, int);

#define REAL(name, type)                                                                     \
    static void *real_##name;                                                                \
    type r_##name = (type)real_fn(&real_##name, #name)

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (!is_tracked(sig))
        return __sigaction(sig, act, old);
    return view_sigaction(sig, act, old);
}

/* BSD semantics, as glibc's signal(): the signal blocked in its handler,
 * system calls restarted unless siginterrupt said otherwise. */
static handler_t bsd(int sig, handler_t h)
{
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = h;
    sigemptyset(&act.sa_mask);
    sigaddset(&act.sa_mask, sig);
    act.sa_flags = (__atomic_load_n(&sg.intr, __ATOMIC_RELAXED) >> (sig - 1) & 1) ? 0 : SA_RESTART;
    if (h == SIG_ERR) {
        errno = EINVAL;
        return SIG_ERR;
    }
    if (view_sigaction(sig, &act, &old) < 0)
        return SIG_ERR;
    return old.sa_handler;
}

EXPORT handler_t signal(int sig, handler_t h)
{
    if (!is_tracked(sig)) {
        REAL(signal, signal_fn);
        return r_signal(sig, h);
    }
    return bsd(sig, h);
}

EXPORT handler_t bsd_signal(int sig, handler_t h)
{
    return signal(sig, h);
}

EXPORT handler_t ssignal(int sig, handler_t h)
{
    return signal(sig, h);
}

/* System V semantics: one-shot, not blocked in its handler, no restart. */
static handler_t sysv(int sig, handler_t h, void **slot, const char *name)
{
    if (!is_tracked(sig)) {
        signal_fn r = (signal_fn)real_fn(slot, name);
        return r(sig, h);
    }
    if (h == SIG_ERR) {
        errno = EINVAL;
        return SIG_ERR;
    }
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = h;
    sigemptyset(&act.sa_mask);
    act.sa_flags = (SA_RESETHAND | SA_NODEFER | SA_INTERRUPT) & ~SA_RESTART;
    if (view_sigaction(sig, &act, &old) < 0)
        return SIG_ERR;
    return old.sa_handler;
}

static void *real_sysv_signal, *real___sysv_signal;

EXPORT handler_t sysv_signal(int sig, handler_t h)
{
    return sysv(sig, h, &real_sysv_signal, "sysv_signal");
}

EXPORT handler_t __sysv_signal(int sig, handler_t h)
{
    return sysv(sig, h, &real___sysv_signal, "__sysv_signal");
}

EXPORT handler_t sigset(int sig, handler_t disp)
{
    if (!is_tracked(sig)) {
        REAL(sigset, signal_fn);
        return r_sigset(sig, disp);
    }
    sigset_t set, oset;
    struct sigaction act, old;
    sigemptyset(&set);
    sigaddset(&set, sig);
    if (disp == SIG_HOLD) {
        if (sigprocmask(SIG_BLOCK, &set, &oset) < 0)
            return SIG_ERR;
        if (sigismember(&oset, sig))
            return SIG_HOLD;
        if (view_sigaction(sig, NULL, &old) < 0)
            return SIG_ERR;
        return old.sa_handler;
    }
    memset(&act, 0, sizeof act);
    act.sa_handler = disp;
    sigemptyset(&act.sa_mask);
    if (view_sigaction(sig, &act, &old) < 0)
        return SIG_ERR;
    if (sigprocmask(SIG_UNBLOCK, &set, &oset) < 0)
        return SIG_ERR;
    return sigismember(&oset, sig) ? SIG_HOLD : old.sa_handler;
}

EXPORT int sigignore(int sig)
{
    if (!is_tracked(sig)) {
        REAL(sigignore, int_fn);
        return r_sigignore(sig);
    }
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = SIG_IGN;
    sigemptyset(&act.sa_mask);
    return view_sigaction(sig, &act, NULL);
}

EXPORT int siginterrupt(int sig, int interrupt)
{
    if (!is_tracked(sig)) {
        REAL(siginterrupt, int2_fn);
        return r_siginterrupt(sig, interrupt);
    }
    struct sigaction act;
    if (view_sigaction(sig, NULL, &act) < 0)
        return -1;
    if (interrupt) {
        __atomic_or_fetch(&sg.intr, 1ull << (sig - 1), __ATOMIC_RELAXED);
        act.sa_flags &= ~SA_RESTART;
    } else {
        __atomic_and_fetch(&sg.intr, ~(1ull << (sig - 1)), __ATOMIC_RELAXED);
        act.sa_flags |= SA_RESTART;
    }
    return view_sigaction(sig, &act, NULL);
}
