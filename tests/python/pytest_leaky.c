/* pytest_leaky.c — a C library the pytest plugin's tests call through
 * ctypes: one function keeps what it allocates (a leak per call), one
 * frees it before returning. */
#include <stdlib.h>
#include <string.h>

static void *kept[4096];
static int nkept;

/* Keeps n bytes per call. */
void leak_per_call(size_t n)
{
    void *p = malloc(n); /* the leaking line */
    memset(p, 1, n);
    if (nkept < 4096)
        kept[nkept++] = p;
}

/* Allocates n bytes and frees them: nothing kept. */
void clean_call(size_t n)
{
    void *p = malloc(n);
    memset(p, 2, n);
    free(p);
}
