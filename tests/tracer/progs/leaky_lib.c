/* leaky_lib.c — a shared library loaded with dlopen by dlopen_leak.c. */
#include <stdlib.h>

__attribute__((noinline)) void *tm_leaky_make(size_t n)
{
    return malloc(n);
}
