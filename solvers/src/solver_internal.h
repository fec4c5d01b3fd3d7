/* solver_internal.h — what the solver front end (solver.c) shares with the
 * methods (dopri5.c, cvode.c). */
#ifndef TM_SOLVER_INTERNAL_H
#define TM_SOLVER_INTERNAL_H

#include <stdio.h>

#include "tm_solver.h"

typedef struct tm_solver_ops {
    const char *name;
    /* Sets up for a new initial value (s->y holds y0, s->t is t0). */
    int (*init)(tm_solver *s);
    /* Advances to t, writes y(t) into yout. */
    int (*integrate)(tm_solver *s, double t, double *yout);
    void (*release)(tm_solver *s);
    int variant;                /* method-specific (CVODE: Adams or BDF) */
} tm_solver_ops;

struct tm_solver {
    const tm_solver_ops *ops;
    tm_rhs_fn rhs;
    void *user_data;
    double rtol, atol;
    int tolerances_changed;
    long max_steps;
    long n;
    int ndim;
    intptr_t dims[TM_SOLVER_MAX_NDIM];
    double t;                   /* the method's time (may be past tout) */
    double tout;                /* the last time asked for */
    double *y;                  /* the method's state at t, n values */
    int ready;                  /* initial value set */
    tm_solver_stats stats;
    void *impl;
    char error[256];
};

/* Records an error message and returns code. */
int tm_solver_fail(tm_solver *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Calls the right-hand side on flat arrays of the solver's shape. */
int tm_solver_call_rhs(tm_solver *s, double t, const double *y, double *ydot);

extern const tm_solver_ops tm_dopri5_ops;
extern const tm_solver_ops tm_cvode_adams_ops;
extern const tm_solver_ops tm_cvode_bdf_ops;

#endif /* TM_SOLVER_INTERNAL_H */
