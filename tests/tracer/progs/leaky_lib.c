/* leaky_lib.c — a shared library loaded with dlopen by dlopen_leak.c.
 * Its constructor leaks one block of 777 bytes while dlopen runs. */
#include <stdlib.h>

void *tm_leaky_kept;

__attribute__((noinline)) void *tm_leaky_make(size_t n)
{
    return malloc(n);
}

__attribute__((constructor)) static void tm_leaky_init(void)
{
    tm_leaky_kept = malloc(777);
}
