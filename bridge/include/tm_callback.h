/* tm_callback.h — the one C callback convention shared by bridge/ and
 * solvers/.
 *
 * An IVP right-hand side computes ydot = f(t, y).  Arrays are float64,
 * C-contiguous, described by tm_array (the seed's OIFArrayF64 shape).  A
 * solver cannot tell a C right-hand side from a Python one wrapped by the
 * bridge: both are a tm_rhs_fn plus user data.
 */
#ifndef TM_CALLBACK_H
#define TM_CALLBACK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tm_array {
    int ndim;
    intptr_t *dims;     /* ndim extents */
    double *data;       /* C-contiguous float64 */
} tm_array;

/* Returns 0 on success; non-zero stops the solver, which reports it as an
 * RHS failure (for a Python callback, the exception is pending and the
 * Python-facing caller re-raises it). */
typedef int (*tm_rhs_fn)(double t, const tm_array *y, tm_array *ydot, void *user_data);

/* A right-hand side as a value.  Python objects that carry one (the bridge's
 * c_callback, the solvers' C Burgers RHS, ...) expose it through an
 * attribute __tidemark_rhs__ holding a PyCapsule named TM_RHS_CAPSULE whose
 * pointer is a tm_rhs valid while the object lives.  Extensions exchange
 * callbacks that way, without ctypes. */
typedef struct tm_rhs {
    tm_rhs_fn fn;
    void *user_data;
    const char *name;   /* region name for tracing, e.g. the function name */
} tm_rhs;

#define TM_RHS_CAPSULE "tidemark.rhs"
#define TM_RHS_ATTR "__tidemark_rhs__"

static inline intptr_t tm_array_size(const tm_array *a)
{
    intptr_t n = 1;
    for (int i = 0; i < a->ndim; i++)
        n *= a->dims[i];
    return n;
}

#ifdef __cplusplus
}
#endif

#endif /* TM_CALLBACK_H */
