/* cvode_vector.h — compiled kernels for CVODE's serial vectors (see
 * cvode_vector.c for why). */
#ifndef TM_CVODE_VECTOR_H
#define TM_CVODE_VECTOR_H

#include <sundials/sundials_nvector.h>

/* Replaces the compute operations of serial vector v with compiled ones
 * giving the same results; clones of v made afterwards inherit them.
 * Returns 0, or -1 when v is not a serial vector (left unchanged). */
int tm_cvode_vector_speed_up(N_Vector v);

#endif /* TM_CVODE_VECTOR_H */
