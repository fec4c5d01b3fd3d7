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
    int max_order;              /* highest order; 0 = fixed order, no corrector */
    int stiff;                  /* defaults to Newton with a direct solver */
} tm_solver_ops;

/* Indices into tm_linear_solver_names. */
enum {
    TM_LS_DEFAULT = -1,
    TM_LS_FIXED_POINT,
    TM_LS_DENSE,
    TM_LS_BAND,
    TM_LS_SPGMR,
    TM_LS_SPGMR_BAND,
};

struct tm_solver {
    const tm_solver_ops *ops;
    tm_rhs_fn rhs;
    void *user_data;
    double rtol, atol;
    int tolerances_changed;
    long max_steps;
    int linear_solver;          /* TM_LS_*, as asked for */
    long band_lower, band_upper;    /* declared bandwidth; -1 = none */
    int max_order;              /* 0 = the method's highest */
    int settings_changed;       /* since set_initial_value: integrate refuses */
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
/* The linear solver the method will use (TM_LS_*; TM_LS_DEFAULT resolved),
 * or TM_LS_DEFAULT for a method without a corrector. */
int tm_solver_linear_solver_in_use(const tm_solver *s);
/* Calls the right-hand side on flat arrays of the solver's shape. */
int tm_solver_call_rhs(tm_solver *s, double t, const double *y, double *ydot);

extern const tm_solver_ops tm_dopri5_ops;
extern const tm_solver_ops tm_cvode_adams_ops;
extern const tm_solver_ops tm_cvode_bdf_ops;

#endif /* TM_SOLVER_INTERNAL_H */
