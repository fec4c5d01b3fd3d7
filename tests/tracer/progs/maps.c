/* Anonymous maps of known sizes (tests/tracer/maps.py checks the figures).
 * Pages are 4096 bytes (checked).
 *
 *   a = mmap 64 KiB                          mapped  65536
 *   b = mmap64 10000 B (3 pages)                     77824
 *   f = file map 8 KiB (not anonymous), munmap f     77824  (not counted)
 *   munmap a+16 KiB, 16 KiB (a splits in two)        61440
 *   c = mmap 8 KiB                                   69632
 *   c = mremap c 8 KiB -> 32 KiB (may move)          94208  <- peak
 *   c = mremap c 32 KiB -> 4 KiB (shrinks in place)  65536
 *   mmap MAP_FIXED 1 page over b (replaces it)       65536
 *   failed mmap, munmap and mremap (EINVAL, errno kept; not recorded)
 *   malloc 1 MiB + free (glibc maps it itself: heap, not a map)
 *   munmap b                                         53248  at the end
 *
 * Recorded: 4 mmap (a, b, c, the MAP_FIXED one), 3 munmap (f, the part of
 * a, b), 2 mremap.  At the end 3 ranges: a's two parts and c.
 * With the argument "threads": 4 threads x 200 rounds of mmap 8 KiB and
 * munmap, nothing mapped at the end, 800 mmap and 800 munmap more.
 */
#define _GNU_SOURCE
#define _LARGEFILE64_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>

#include "prog_util.h"

#define KiB 1024

static void *anon(size_t len)
{
    errno = 1234;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    CHECK(errno == 1234); /* a successful call leaves errno alone */
    memset(p, 1, len);
    return p;
}

static void *churn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        char *p = mmap(NULL, 8 * KiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(p != MAP_FAILED);
        p[0] = 1;
        CHECK(munmap(p, 8 * KiB) == 0);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    CHECK(sysconf(_SC_PAGESIZE) == 4096);
    char *a = anon(64 * KiB);
    char *b = mmap64(NULL, 10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(b != MAP_FAILED);

    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    void *f = mmap(NULL, 8 * KiB, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK(f != MAP_FAILED);
    close(fd);
    CHECK(munmap(f, 8 * KiB) == 0);

    errno = 1234;
    CHECK(munmap(a + 16 * KiB, 16 * KiB) == 0);
    CHECK(errno == 1234);
    a[0] = a[40 * KiB] = 2;

    char *c = anon(8 * KiB);
    c = mremap(c, 8 * KiB, 32 * KiB, MREMAP_MAYMOVE);
    CHECK(c != MAP_FAILED);
    memset(c, 3, 32 * KiB);
    char *c2 = mremap(c, 32 * KiB, 4 * KiB, 0);
    CHECK(c2 == c);

    void *fx = mmap(b, 4 * KiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                    -1, 0);
    CHECK(fx == b);

    /* Failures: exact results and errno, nothing recorded. */
    errno = 0;
    CHECK(mmap(NULL, 4 * KiB, PROT_READ, MAP_ANONYMOUS, -1, 0) == MAP_FAILED); /* no type */
    CHECK(errno == EINVAL);
    errno = 0;
    CHECK(munmap(a + 1, 4 * KiB) == -1);
    CHECK(errno == EINVAL);
    errno = 0;
    CHECK(mremap(a + 1, 4 * KiB, 8 * KiB, MREMAP_MAYMOVE) == MAP_FAILED);
    CHECK(errno == EINVAL);
    errno = 0;
    CHECK(mremap(c, 4 * KiB, 8 * KiB, 99) == MAP_FAILED);
    CHECK(errno == EINVAL);

    char *big = malloc(1024 * KiB);
    CHECK(big != NULL);
    big[0] = 1;
    sink = big;
    free(big);

    CHECK(munmap(b, 10000) == 0);

    if (argc > 1 && !strcmp(argv[1], "threads")) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            CHECK(pthread_create(&t[i], NULL, churn, NULL) == 0);
        for (int i = 0; i < 4; i++)
            CHECK(pthread_join(t[i], NULL) == 0);
    }
    return 0;
}
