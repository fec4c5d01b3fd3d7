/* state.c — process-wide and per-thread state, apart from lifecycle.c so
 * the recorder can be unit-tested without the preload's constructor. */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

#include "tm_internal.h"

TM_HIDDEN int tm_state = TM_STATE_OFF;
TM_HIDDEN tm_config tm_cfg;
TM_HIDDEN TM_TLS tm_thread tm_self;
TM_HIDDEN void (*tm_thread_hook)(void);

TM_HIDDEN uint32_t tm_gettid(void)
{
    if (tm_unlikely(!tm_self.tid)) {
        tm_self.tid = (uint32_t)syscall(SYS_gettid);
        void (*hook)(void) = __atomic_load_n(&tm_thread_hook, __ATOMIC_ACQUIRE);
        if (hook)
            hook();
    }
    return tm_self.tid;
}
