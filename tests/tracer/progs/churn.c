/* churn.c — thread after thread, one at a time, as a server or a thread
 * pool that keeps replacing its workers does.
 *
 * THREADS threads run one after another; each allocates and frees PAIRS
 * blocks and leaks one 24-byte block.  The tracer's per-thread state must
 * go back for reuse when a thread exits: the address space the process
 * maps while the last CHECKED threads run may not grow by more than
 * GROWTH_MAX bytes (without reuse it grows by the per-thread state, some
 * hundreds of KB, times CHECKED).  Exit 91 when it grows more.
 * Expected, in region "churn": THREADS invocations of PAIRS + 1
 * allocations and PAIRS frees each, THREADS leaked blocks of 24 bytes.
 */
#include <fcntl.h>
#include <pthread.h>

#include "prog_util.h"
#include "tidemark.h"

#define THREADS 600
#define CHECKED 500
#define PAIRS 10
#define GROWTH_MAX (64L << 20)

static void *volatile leaked[THREADS];

static void *run(void *arg)
{
    long id = (long)arg;
    tidemark_region_begin("churn");
    for (int i = 0; i < PAIRS; i++) {
        sink = malloc(32 + (size_t)i);
        free(sink);
    }
    leaked[id] = malloc(24);
    tidemark_region_end();
    return NULL;
}

/* VmSize from /proc/self/statm, in bytes; no stdio. */
static long mapped_bytes(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    CHECK(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    CHECK(n > 0);
    buf[n] = 0;
    return atol(buf) * sysconf(_SC_PAGESIZE);
}

int main(void)
{
    long before = 0;
    for (long i = 0; i < THREADS; i++) {
        if (i == THREADS - CHECKED)
            before = mapped_bytes();
        pthread_t t;
        CHECK(pthread_create(&t, NULL, run, (void *)i) == 0);
        CHECK(pthread_join(t, NULL) == 0);
    }
    if (mapped_bytes() - before > GROWTH_MAX) {
        say("churn: per-thread state is not reused\n");
        return 91;
    }
    return 0;
}
