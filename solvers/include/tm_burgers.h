/* tm_burgers.h — the Burgers right-hand side in C (see burgers.c). */
#ifndef TM_BURGERS_H
#define TM_BURGERS_H

#include "tm_callback.h"

typedef struct tm_burgers {
    intptr_t n;
    double dx;
} tm_burgers;

/* The Jacobian bandwidth the problem declares to the solvers
 * (tm_solver_set_bandwidth): one below, one above.  udot[i] depends on
 * u[i-1], u[i], u[i+1] through the fluxes; the true Jacobian has more: the
 * periodic boundary flux couples the first and last points (two corner
 * entries) and the global max|u| couples every point to the one where it
 * is reached (one dense column, its entries the second differences of u
 * over 2 dx: small where u is smooth).  A band of 1 leaves both out; Newton
 * converges with it as with the dense difference-quotient Jacobian (N = 101,
 * tolerance 1e-8: 1.16 iterations per step either way; a band of 0 takes
 * 55% more steps), and accuracy is the error test's alone. */
#define TM_BURGERS_LOWER 1
#define TM_BURGERS_UPPER 1

void tm_burgers_init(tm_burgers *b, intptr_t n);
/* A tm_rhs_fn; user_data is a tm_burgers. */
int tm_burgers_rhs(double t, const tm_array *y, tm_array *ydot, void *user_data);

#endif /* TM_BURGERS_H */
