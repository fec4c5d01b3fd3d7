/* state.c — process-wide and per-thread state, apart from lifecycle.c so
 * the recorder can be unit-tested without the preload's constructor. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tm_internal.h"

TM_HIDDEN int tm_state = TM_STATE_OFF;
TM_HIDDEN tm_config tm_cfg;
TM_HIDDEN TM_TLS tm_thread tm_self;
TM_HIDDEN void (*tm_thread_hook)(void);

/* A thread's first call: out of line, so that tm_gettid stays two loads. */
static __attribute__((noinline, cold)) uint32_t first_gettid(void)
{
    tm_self.tid = (uint32_t)syscall(SYS_gettid);
    void (*hook)(void) = __atomic_load_n(&tm_thread_hook, __ATOMIC_ACQUIRE);
    if (hook)
        hook();
    return tm_self.tid;
}

TM_HIDDEN uint32_t tm_gettid(void)
{
    if (tm_unlikely(!tm_self.tid))
        return first_gettid();
    return tm_self.tid;
}

/* A signal handler's allocation during the tracer's own work would pass
 * through the hooks like the tracer's: the signals wait instead (those a
 * fault raises excepted: they cannot wait). */
TM_HIDDEN tm_quiet tm_quiet_begin_masked(sigset_t *old)
{
    tm_quiet q = tm_quiet_begin();
    sigset_t all;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGTRAP);
    pthread_sigmask(SIG_BLOCK, &all, old);
    return q;
}

/* The thread's state first: a signal that waited comes as soon as the
 * mask is back (pthread_sigmask leaves errno alone). */
TM_HIDDEN void tm_quiet_end_masked(tm_quiet q, const sigset_t *old)
{
    tm_quiet_end(q);
    pthread_sigmask(SIG_SETMASK, old, NULL);
}
