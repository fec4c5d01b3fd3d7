/* count_allocs.c — a test-only preload that counts successful allocation
 * calls (malloc, calloc, realloc, reallocarray, posix_memalign: the calls
 * the tracer records as allocations) and writes "allocs N" to stderr at
 * exit.  It needs nothing but libc (glibc's __libc_* entry points, no
 * dlsym), so it shows what a program allocates when no tracer's libraries
 * are loaded into it: the oracle for host_libs.py. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static unsigned long allocs;

static void *counted(void *p)
{
    if (p)
        __atomic_fetch_add(&allocs, 1, __ATOMIC_RELAXED);
    return p;
}

void *malloc(size_t n) { return counted(__libc_malloc(n)); }
void *calloc(size_t n, size_t s) { return counted(__libc_calloc(n, s)); }
void *realloc(void *p, size_t n) { return counted(__libc_realloc(p, n)); }
void free(void *p) { __libc_free(p); }

void *reallocarray(void *p, size_t n, size_t s)
{
    size_t total;
    if (__builtin_mul_overflow(n, s, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, total);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = counted(p);
    return 0;
}

__attribute__((destructor)) static void report(void)
{
    char buf[40] = "allocs ", digits[24];
    int k = 0;
    unsigned long v = allocs;
    do
        digits[k++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    size_t len = strlen(buf);
    while (k)
        buf[len++] = digits[--k];
    buf[len++] = '\n';
    ssize_t rc = write(2, buf, len);
    (void)rc;
}
