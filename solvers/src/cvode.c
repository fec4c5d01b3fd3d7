/* cvode.c — SUNDIALS CVODE behind the tm_solver interface.
 *
 * Adams-Moulton (non-stiff) and BDF (stiff), each with the corrector the
 * caller chooses (tm_solver_set_linear_solver): fixed-point iteration, or
 * Newton with a dense or banded difference-quotient Jacobian, or Newton
 * with matrix-free GMRES, bare or preconditioned by a banded
 * difference-quotient Jacobian (CVBandPrec).  Every object is made when the
 * initial value is set; CVode() itself allocates nothing.  The right-hand
 * side adapter hands the caller's callback tm_array views of CVODE's own
 * vectors: no copy, no allocation per call.  Messages CVODE would print go
 * into the solver's error line instead.
 */
#include <cvode/cvode.h>
#include <cvode/cvode_bandpre.h>
#include <nvector/nvector_serial.h>
#include <stdio.h>
#include <string.h>
#include <sunlinsol/sunlinsol_band.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunmatrix/sunmatrix_band.h>
#include <sunmatrix/sunmatrix_dense.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

#include "cvode_vector.h"
#include "solver_internal.h"

enum { ADAMS, BDF };

typedef struct cv {
    SUNContext ctx;
    void *mem;
    N_Vector y;                 /* CVODE's state */
    N_Vector out;               /* wraps the caller's output buffer */
    SUNMatrix A;
    SUNLinearSolver ls;
    SUNNonlinearSolver nls;
    int rhs_rc;                 /* the callback's failure, kept for the message */
} cv;

static int cv_rhs(realtype t, N_Vector y, N_Vector ydot, void *user_data)
{
    tm_solver *s = user_data;
    /* tm_solver_call_rhs counts evaluations; CVODE counts its own too. */
    int rc = tm_solver_call_rhs(s, t, N_VGetArrayPointer(y), N_VGetArrayPointer(ydot));
    if (rc) {
        ((cv *)s->impl)->rhs_rc = rc;
        return -1;              /* unrecoverable: stop */
    }
    return 0;
}

static void cv_message(int code, const char *module, const char *function, char *msg,
                       void *user_data)
{
    tm_solver *s = user_data;
    if (code < 0 && !((cv *)s->impl)->rhs_rc)
        snprintf(s->error, sizeof s->error, "%s: %s", function, msg);
}

static void release(tm_solver *s)
{
    cv *c = s->impl;
    if (!c)
        return;
    if (c->mem)
        CVodeFree(&c->mem);
    if (c->nls)
        SUNNonlinSolFree(c->nls);
    if (c->ls)
        SUNLinSolFree(c->ls);
    if (c->A)
        SUNMatDestroy(c->A);
    if (c->y)
        N_VDestroy(c->y);
    if (c->out)
        N_VDestroy(c->out);
    if (c->ctx)
        SUNContext_Free(&c->ctx);
    free(c);
    s->impl = NULL;
}

/* The corrector: fixed-point iteration, or CVODE's default Newton solver
 * with the chosen linear solver.  Returns 0, or -1 with nothing said. */
static int attach_corrector(tm_solver *s, cv *c, int ls)
{
    sunindextype n = s->n;
    sunindextype ml = s->band_lower < n ? s->band_lower : n - 1;
    sunindextype mu = s->band_upper < n ? s->band_upper : n - 1;
    switch (ls) {
    case TM_LS_FIXED_POINT:
        c->nls = SUNNonlinSol_FixedPoint(c->y, 0, c->ctx);
        return c->nls && CVodeSetNonlinearSolver(c->mem, c->nls) == CV_SUCCESS ? 0 : -1;
    case TM_LS_DENSE:
        c->A = SUNDenseMatrix(n, n, c->ctx);
        c->ls = c->A ? SUNLinSol_Dense(c->y, c->A, c->ctx) : NULL;
        break;
    case TM_LS_BAND:
        c->A = SUNBandMatrix(n, mu, ml, c->ctx);
        c->ls = c->A ? SUNLinSol_Band(c->y, c->A, c->ctx) : NULL;
        break;
    default:
        c->ls = SUNLinSol_SPGMR(c->y, ls == TM_LS_SPGMR ? SUN_PREC_NONE : SUN_PREC_LEFT, 0,
                                c->ctx);
        break;
    }
    if (!c->ls || CVodeSetLinearSolver(c->mem, c->ls, c->A) != CV_SUCCESS)
        return -1;
    if (ls == TM_LS_SPGMR_BAND && CVBandPrecInit(c->mem, n, mu, ml) != CV_SUCCESS)
        return -1;
    return 0;
}

static int init(tm_solver *s)
{
    release(s);
    int ls = tm_solver_linear_solver_in_use(s);
    if ((ls == TM_LS_BAND || ls == TM_LS_SPGMR_BAND) && s->band_lower < 0)
        return tm_solver_fail(s, TM_SOLVER_EINVAL, "linear solver '%s' needs the problem's "
                              "bandwidth (set_bandwidth)", tm_linear_solver_names[ls]);
    cv *c = calloc(1, sizeof *c);
    if (!c)
        return tm_solver_fail(s, TM_SOLVER_ENOMEM, "out of memory for CVODE");
    s->impl = c;
    if (SUNContext_Create(NULL, &c->ctx) != 0)
        goto fail;
    c->y = N_VNew_Serial(s->n, c->ctx);
    c->out = N_VMake_Serial(s->n, s->y, c->ctx);   /* repointed per call */
    /* Before CVodeInit: every vector CVODE and the linear solvers clone
     * from y inherits the compiled kernels. */
    if (!c->y || !c->out || tm_cvode_vector_speed_up(c->y) || tm_cvode_vector_speed_up(c->out))
        goto fail;
    memcpy(N_VGetArrayPointer(c->y), s->y, (size_t)s->n * sizeof(double));
    c->mem = CVodeCreate(s->ops->variant == BDF ? CV_BDF : CV_ADAMS, c->ctx);
    if (!c->mem || CVodeSetErrHandlerFn(c->mem, cv_message, s) != CV_SUCCESS ||
        CVodeInit(c->mem, cv_rhs, s->t, c->y) != CV_SUCCESS ||
        CVodeSetUserData(c->mem, s) != CV_SUCCESS ||
        CVodeSStolerances(c->mem, s->rtol, s->atol) != CV_SUCCESS ||
        (s->max_order && CVodeSetMaxOrd(c->mem, s->max_order) != CV_SUCCESS) ||
        attach_corrector(s, c, ls) != 0)
        goto fail;
    s->tolerances_changed = 0;
    return 0;
fail:;
    char why[256];
    snprintf(why, sizeof why, "%s", s->error[0] ? s->error : "setup failed");
    release(s);
    return tm_solver_fail(s, TM_SOLVER_ENOMEM, "CVODE (%s): %s", tm_linear_solver_names[ls],
                          why);
}

/* CVODE's counters into the solver's stats (cheap: field reads). */
static void read_counters(tm_solver *s, cv *c)
{
    tm_solver_stats *st = &s->stats;
    CVodeGetNumSteps(c->mem, &st->steps);
    CVodeGetNumErrTestFails(c->mem, &st->rejected_steps);
    CVodeGetNumNonlinSolvIters(c->mem, &st->nonlinear_iters);
    CVodeGetNumNonlinSolvConvFails(c->mem, &st->nonlinear_fails);
    if (c->ls) {
        CVodeGetNumLinIters(c->mem, &st->linear_iters);
        CVodeGetNumLinConvFails(c->mem, &st->linear_fails);
        CVodeGetNumLinSolvSetups(c->mem, &st->linear_setups);
        if (c->A)
            CVodeGetNumJacEvals(c->mem, &st->jac_evals);
        else
            CVodeGetNumPrecEvals(c->mem, &st->jac_evals);
    }
    int q;
    if (CVodeGetLastOrder(c->mem, &q) == CV_SUCCESS) {
        st->order = q;
        if (q > st->max_order)
            st->max_order = q;
    }
}

static int integrate(tm_solver *s, double tout, double *yout)
{
    cv *c = s->impl;
    if (s->tolerances_changed) {
        if (CVodeSStolerances(c->mem, s->rtol, s->atol) != CV_SUCCESS)
            return tm_solver_fail(s, TM_SOLVER_EINVAL, "CVODE rejected the tolerances");
        s->tolerances_changed = 0;
    }
    CVodeSetMaxNumSteps(c->mem, s->max_steps);
    N_VSetArrayPointer(yout, c->out);
    c->rhs_rc = 0;
    s->error[0] = '\0';
    realtype t;
    int flag = CVode(c->mem, tout, c->out, &t, CV_NORMAL);
    read_counters(s, c);
    if (CVodeGetCurrentTime(c->mem, &t) == CV_SUCCESS)
        s->t = t;
    if (flag >= 0)
        return 0;
    /* The callback's failure may surface as a linear-solver setup failure
     * (BDF's difference-quotient Jacobian calls it too): report it as such. */
    if (c->rhs_rc)
        flag = CV_RHSFUNC_FAIL;
    switch (flag) {
    case CV_RHSFUNC_FAIL:
    case CV_FIRST_RHSFUNC_ERR:
        return tm_solver_fail(s, TM_SOLVER_ERHS, "right-hand side failed at t=%g (returned %d)",
                              s->t, c->rhs_rc);
    case CV_TOO_MUCH_WORK:
        return tm_solver_fail(s, TM_SOLVER_EMAXSTEPS,
                              "more than %ld steps to reach t=%g (at t=%g); raise max_steps",
                              s->max_steps, tout, s->t);
    default: {
        char why[256];
        snprintf(why, sizeof why, "%s", s->error[0] ? s->error : CVodeGetReturnFlagName(flag));
        return tm_solver_fail(s, TM_SOLVER_ESTEP, "CVODE failed at t=%g: %s", s->t, why);
    }
    }
}

const tm_solver_ops tm_cvode_adams_ops = {
    .name = "cvode-adams", .init = init, .integrate = integrate, .release = release,
    .variant = ADAMS, .max_order = 12,
};

const tm_solver_ops tm_cvode_bdf_ops = {
    .name = "cvode-bdf", .init = init, .integrate = integrate, .release = release,
    .variant = BDF, .max_order = 5, .stiff = 1,
};
