/* many_stacks — about as many distinct stacks as allocations (issue 32).
 *
 *     many_stacks ITERATIONS [LEAK_EVERY [fork]]
 *     many_stacks ITERATIONS --count
 *
 * Each iteration allocates one block through a path of DEPTH nested calls,
 * each to one of four functions chosen by a fixed xorshift, and frees it
 * (free(go(DEPTH))): at 2 M iterations nearly every stack is new.  With
 * LEAK_EVERY > 0 every LEAK_EVERY-th block is kept (a leak at that
 * iteration's stack); at the end planted_leak() keeps one block of 777
 * bytes; with `fork`, a forked child does that (and the loop's last path
 * again, leaking it) and the parent waits for it.  --count prints the number of distinct paths the iterations take
 * and allocates nothing.  Built -O1 -g (tests/perf/CMakeLists.txt). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { DEPTH = 12 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static volatile uintptr_t sink;

static unsigned next_way(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 32) & 3;
}

static void *go(int depth);

/* Four functions with one call site each: the return addresses of a stack
 * name the path.  The store after the call keeps it from being a tail
 * call. */
#define WAY(name)                                                                  \
    static __attribute__((noinline)) void *name(int depth)                        \
    {                                                                              \
        void *p = go(depth - 1);                                                   \
        sink += (uintptr_t)p;                                                      \
        return p;                                                                  \
    }
WAY(way0)
WAY(way1)
WAY(way2)
WAY(way3)

static __attribute__((noinline)) void *go(int depth)
{
    if (depth == 0) {
        void *p = malloc(32);
        sink += (uintptr_t)p;
        return p;
    }
    switch (next_way()) {
    case 0: return way0(depth);
    case 1: return way1(depth);
    case 2: return way2(depth);
    default: return way3(depth);
    }
}

static __attribute__((noinline)) void *planted_leak(void)
{
    void *p = malloc(777);
    if (p)
        memset(p, 1, 777);
    sink += (uintptr_t)p;
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: many_stacks ITERATIONS [LEAK_EVERY | --count]\n");
        return 2;
    }
    long iterations = atol(argv[1]);
    if (argc > 2 && strcmp(argv[2], "--count") == 0) {
        /* A path is DEPTH two-bit choices: a bitmap of 4^DEPTH bits. */
        size_t bits = (size_t)1 << (2 * DEPTH);
        uint8_t *seen = calloc(bits / 8, 1);
        if (!seen)
            return 1;
        long distinct = 0;
        for (long i = 0; i < iterations; i++) {
            uint32_t code = 0;
            for (int d = 0; d < DEPTH; d++)
                code = code << 2 | next_way();
            if (!(seen[code >> 3] >> (code & 7) & 1)) {
                seen[code >> 3] |= (uint8_t)(1 << (code & 7));
                distinct++;
            }
        }
        printf("%ld\n", distinct);
        free(seen);
        return 0;
    }
    long leak_every = argc > 2 ? atol(argv[2]) : 0;
    for (long i = 1; i <= iterations; i++) {
        void *p = go(DEPTH);
        if (leak_every > 0 && i % leak_every == 0)
            continue;
        free(p);
    }
    if (argc > 3 && strcmp(argv[3], "fork") == 0) {
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            rng = 0x9e3779b97f4a7c15ull; /* the first iteration's path */
            go(DEPTH);
            planted_leak();
            _exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
            return 1;
        return 0;
    }
    planted_leak();
    return 0;
}
