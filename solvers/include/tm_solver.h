/* tm_solver.h — IVP solvers behind one interface: tidemark's own dopri5 and
 * SUNDIALS CVODE (Adams and BDF, each with a choice of how its implicit
 * corrector is solved).
 *
 * The right-hand side is the bridge's callback convention (tm_callback.h),
 * so a solver cannot tell a C right-hand side from a Python one.
 *
 *   tm_solver *s;
 *   tm_solver_create("dopri5", &s);          // or "cvode-adams", "cvode-bdf"
 *   tm_solver_set_rhs(s, rhs, user_data);
 *   tm_solver_set_tolerances(s, 1e-8, 1e-10);
 *   tm_solver_set_bandwidth(s, 1, 1);        // optional: the Jacobian's band
 *   tm_solver_set_linear_solver(s, "band");  // optional (CVODE only)
 *   tm_solver_set_initial_value(s, 0.0, y0, 1, &n);
 *   tm_solver_integrate(s, 1.0, y);           // y(1.0) into y
 *   tm_solver_free(s);
 *
 * Functions return 0 or a negative TM_SOLVER_E* code; tm_solver_error()
 * then says why in one line.  Nothing calls exit() or prints.  Memory is
 * allocated by set_initial_value, and by the first integrate call where
 * CVODE's linear solvers finish their set-up; integrating allocates
 * nothing after that (tests/solvers/check_cycles.py).
 */
#ifndef TM_SOLVER_H
#define TM_SOLVER_H

#include <stdint.h>

#include "tm_callback.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    TM_SOLVER_EINVAL = -1,      /* bad argument (tolerance, NaN in y0, ...) */
    TM_SOLVER_ENOMEM = -2,
    TM_SOLVER_ERHS = -3,        /* the right-hand side returned non-zero */
    TM_SOLVER_EMAXSTEPS = -4,   /* more than max_steps steps in one call */
    TM_SOLVER_ESTEP = -5,       /* step size underflow / convergence failure */
    TM_SOLVER_ESTATE = -6,      /* no right-hand side or initial value yet */
    TM_SOLVER_EUNKNOWN = -7,    /* no solver of that name */
};

#define TM_SOLVER_MAX_NDIM 8

typedef struct tm_solver tm_solver;

/* Counters since the last set_initial_value.  Those a method does not have
 * stay 0 (dopri5 has no corrector: only steps, rejected_steps, rhs_evals
 * and order). */
typedef struct tm_solver_stats {
    long steps;                 /* accepted steps */
    long rejected_steps;        /* error-test failures */
    long rhs_evals;             /* every call, Jacobian and Krylov ones included */
    long nonlinear_iters;       /* corrector iterations */
    long nonlinear_fails;       /* corrector convergence failures (each shrinks h) */
    long linear_iters;          /* Krylov iterations */
    long linear_fails;          /* Krylov convergence failures */
    long jac_evals;             /* Jacobian or banded preconditioner evaluations */
    long linear_setups;         /* matrix (or preconditioner) factorizations */
    int order;                  /* the order of the last step */
    int max_order;              /* the highest order a step used, as far as seen */
} tm_solver_stats;

/* Solver names, NULL-terminated: "dopri5", "cvode-adams", "cvode-bdf". */
extern const char *const tm_solver_names[];
/* Linear solver names, NULL-terminated (tm_solver_set_linear_solver). */
extern const char *const tm_linear_solver_names[];

int tm_solver_create(const char *name, tm_solver **out);
void tm_solver_free(tm_solver *s);
int tm_solver_set_rhs(tm_solver *s, tm_rhs_fn fn, void *user_data);
/* Copies y0 (C-contiguous, ndim dims); (re)starts the integration at t0. */
int tm_solver_set_initial_value(tm_solver *s, double t0, const double *y0, int ndim,
                                const intptr_t *dims);
/* rtol >= 0, atol >= 0, not both 0; default 1e-6 / 1e-12 (scipy's ode). */
int tm_solver_set_tolerances(tm_solver *s, double rtol, double atol);
/* Most steps one integrate call may take (scipy's nsteps); default 500. */
int tm_solver_set_max_steps(tm_solver *s, long max_steps);
/* How CVODE solves its corrector equations (cvode-adams, cvode-bdf):
 *   "fixed-point"  functional iteration, no linear algebra (Adams' default)
 *   "dense"        Newton, dense difference-quotient Jacobian: O(n^3) per
 *                  factorization, for small systems (BDF's default when no
 *                  bandwidth is declared)
 *   "band"         Newton, banded difference-quotient Jacobian of the
 *                  declared bandwidth: lower + upper + 1 right-hand side
 *                  calls per Jacobian, O(n) factorization (BDF's default
 *                  once a bandwidth is declared)
 *   "spgmr"        Newton, matrix-free GMRES (Jacobian-vector products by
 *                  difference quotients), no preconditioner
 *   "spgmr-band"   the same, preconditioned by a banded difference-quotient
 *                  Jacobian of the declared bandwidth (CVBandPrec)
 * NULL restores the method's default.  dopri5 is explicit and takes none.
 * Read by the next set_initial_value, as are the bandwidth and max order;
 * changing one while an integration runs requires set_initial_value again
 * (integrate says so otherwise). */
int tm_solver_set_linear_solver(tm_solver *s, const char *name);
/* The problem's declared Jacobian bandwidth: df_i/dy_j is treated as zero
 * unless i - lower <= j <= i + upper.  An approximation is fine (Newton
 * converges with an inexact Jacobian; the error test alone decides
 * accuracy): entries outside the band are dropped. */
int tm_solver_set_bandwidth(tm_solver *s, long lower, long upper);
/* Caps the method's order (CVODE: Adams 1..12, BDF 1..5; 0 = the most). */
int tm_solver_set_max_order(tm_solver *s, int order);
/* The corrector's linear solver in use ("none" for dopri5). */
const char *tm_solver_linear_solver(const tm_solver *s);
/* Advances to t (>= the current time) and writes y(t) into yout (size n). */
int tm_solver_integrate(tm_solver *s, double t, double *yout);
double tm_solver_t(const tm_solver *s);
long tm_solver_size(const tm_solver *s);
void tm_solver_get_stats(const tm_solver *s, tm_solver_stats *out);
const char *tm_solver_name(const tm_solver *s);
/* One line about the last error ("" when none). */
const char *tm_solver_error(const tm_solver *s);

#ifdef __cplusplus
}
#endif

#endif /* TM_SOLVER_H */
