/* Helpers for the tracer's test programs: no stdio (its buffers would be
 * allocations the tests would have to account for). */
#ifndef PROG_UTIL_H
#define PROG_UTIL_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void say(const char *s)
{
    ssize_t rc = write(2, s, strlen(s));
    (void)rc;
}

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            say("check failed: " #cond "\n");                                   \
            exit(90);                                                           \
        }                                                                       \
    } while (0)

/* Keeps a pointer reachable so the compiler cannot drop the allocation. */
static void *volatile sink;

#define NOINLINE __attribute__((noinline))

#endif
