/* exact.c — every allocation entry point with a known outcome.
 *
 * Expected (asserted by tests/tracer/cases.py):
 *   alloc_calls 119, free_calls 108, bytes_allocated 26978,
 *   peak_bytes 12330, leaked 11 blocks / 7542 bytes, in five leak sites.
 * The program also checks that return values and errno are what glibc
 * gives, so it fails on its own if the preload changes them.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>

#include "prog_util.h"

static void *kept[16];
static int nkept;

NOINLINE static void leak_seven(void)
{
    for (int i = 0; i < 7; i++)
        kept[nkept++] = malloc(1000);
}

NOINLINE static void leak_calloc(void)
{
    char *p = calloc(10, 33);
    CHECK(p && p[0] == 0 && p[329] == 0);
    kept[nkept++] = p;
}

NOINLINE static void leak_realloc(void)
{
    char *p = realloc(NULL, 10);
    CHECK(p);
    p = realloc(p, 5000); /* moves: a free and an allocation */
    CHECK(p);
    p = realloc(p, 20);
    CHECK(p);
    kept[nkept++] = p;
}

NOINLINE static void leak_reallocarray_fail(void)
{
    char *p = malloc(64);
    CHECK(p);
    volatile size_t huge = SIZE_MAX / 2;
    errno = 0;
    void *q = reallocarray(p, huge, 4); /* overflows: p untouched */
    CHECK(q == NULL && errno == ENOMEM);
    kept[nkept++] = p;
}

NOINLINE static void leak_memalign(void)
{
    void *p = (void *)1;
    CHECK(posix_memalign(&p, 3, 10) == EINVAL); /* not a power of two */
    CHECK(posix_memalign(&p, 64, 128) == 0 && ((uintptr_t)p & 63) == 0);
    kept[nkept++] = p;
}

int main(void)
{
    /* 100 blocks live at once, then all freed. */
    void *a[100];
    for (int i = 0; i < 100; i++)
        a[i] = malloc(100);
    for (int i = 0; i < 100; i++)
        free(a[i]);

    leak_seven();
    leak_calloc();
    leak_realloc();

    /* realloc(p, 0) frees p and returns NULL in glibc. */
    char *p = malloc(50);
    CHECK(p);
    CHECK(realloc(p, 0) == NULL);

    leak_reallocarray_fail();

    /* A failed allocation is no block, and errno says why. */
    volatile size_t too_big = SIZE_MAX / 2;
    errno = 0;
    sink = malloc(too_big);
    CHECK(sink == NULL && errno == ENOMEM);
    volatile size_t max = SIZE_MAX; /* volatile: no compile-time size check */
    errno = 0;
    sink = malloc(max);
    CHECK(sink == NULL && errno == ENOMEM);
    errno = 0;
    sink = calloc(too_big, 4); /* n * size overflows */
    CHECK(sink == NULL && errno == ENOMEM);

    leak_memalign();

    void *b = aligned_alloc(64, 256);
    CHECK(b && ((uintptr_t)b & 63) == 0);
    free(b);
    b = memalign(32, 100);
    CHECK(b && ((uintptr_t)b & 31) == 0);
    free(b);
    b = valloc(4000);
    CHECK(b && ((uintptr_t)b & 4095) == 0);
    free(b);
    b = pvalloc(10);
    CHECK(b && ((uintptr_t)b & 4095) == 0);
    free(b);

    free(NULL);

    /* A successful call leaves errno alone. */
    errno = 12345;
    b = malloc(10);
    CHECK(b && errno == 12345);
    free(b);
    errno = 777;
    free(NULL);
    CHECK(errno == 777);

    sink = kept;
    return 0;
}
