/* hwm_peak — a short resident peak: 64 MiB allocated, touched and freed
 * at once, then exit.  With RSS sampling off only the kernel's
 * high-water mark (the HWM record) sees it (tests/tracer/stackcap.py). */
#include <stdlib.h>

int main(void)
{
    size_t n = (size_t)64 << 20;
    char *p = malloc(n);
    if (!p)
        return 1;
    volatile char *v = p; /* every page touched, not optimized away */
    for (size_t i = 0; i < n; i += 4096)
        v[i] = 1;
    free(p);
    return 0;
}
