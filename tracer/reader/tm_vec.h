/* tm_vec.h — growing an array by doubling, the one way the reader and the
 * reports do it. */
#ifndef TM_VEC_H
#define TM_VEC_H

#include <errno.h>
#include <stdlib.h>

/* Makes room for element n of the array *arrp (capacity *cap, elements of
 * elem bytes), doubling from `first`.  Returns 0 or -ENOMEM (the array is
 * then unchanged). */
static inline int tm_vec_room(void *arrp, size_t *cap, size_t n, size_t elem, size_t first)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? 2 * *cap : first;
    while (c <= n)
        c *= 2;
    void *a = realloc(*(void **)arrp, c * elem);
    if (!a)
        return -ENOMEM;
    *(void **)arrp = a;
    *cap = c;
    return 0;
}

#endif /* TM_VEC_H */
