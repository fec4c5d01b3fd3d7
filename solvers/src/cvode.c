/* cvode.c — SUNDIALS CVODE behind the tm_solver interface.
 *
 * Adams-Moulton with CVODE's fixed-point nonlinear solver (non-stiff), BDF
 * with Newton and the dense direct linear solver (stiff).  The right-hand
 * side adapter hands the caller's callback tm_array views of CVODE's own
 * vectors: no copy, no allocation per call.  Messages CVODE would print go
 * into the solver's error line instead.
 */
#include <cvode/cvode.h>
#include <nvector/nvector_serial.h>
#include <stdio.h>
#include <string.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunmatrix/sunmatrix_dense.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

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

static int init(tm_solver *s)
{
    release(s);
    cv *c = calloc(1, sizeof *c);
    if (!c)
        return tm_solver_fail(s, TM_SOLVER_ENOMEM, "out of memory for CVODE");
    s->impl = c;
    int bdf = s->ops->variant == BDF;
    if (SUNContext_Create(NULL, &c->ctx) != 0)
        goto fail;
    c->y = N_VNew_Serial(s->n, c->ctx);
    c->out = N_VMake_Serial(s->n, s->y, c->ctx);   /* repointed per call */
    if (!c->y || !c->out)
        goto fail;
    memcpy(N_VGetArrayPointer(c->y), s->y, (size_t)s->n * sizeof(double));
    c->mem = CVodeCreate(bdf ? CV_BDF : CV_ADAMS, c->ctx);
    if (!c->mem || CVodeSetErrHandlerFn(c->mem, cv_message, s) != CV_SUCCESS ||
        CVodeInit(c->mem, cv_rhs, s->t, c->y) != CV_SUCCESS ||
        CVodeSetUserData(c->mem, s) != CV_SUCCESS ||
        CVodeSStolerances(c->mem, s->rtol, s->atol) != CV_SUCCESS)
        goto fail;
    if (bdf) {
        c->A = SUNDenseMatrix(s->n, s->n, c->ctx);
        c->ls = c->A ? SUNLinSol_Dense(c->y, c->A, c->ctx) : NULL;
        if (!c->ls || CVodeSetLinearSolver(c->mem, c->ls, c->A) != CV_SUCCESS)
            goto fail;
    } else {
        c->nls = SUNNonlinSol_FixedPoint(c->y, 0, c->ctx);
        if (!c->nls || CVodeSetNonlinearSolver(c->mem, c->nls) != CV_SUCCESS)
            goto fail;
    }
    s->tolerances_changed = 0;
    return 0;
fail:;
    char why[256];
    snprintf(why, sizeof why, "%s", s->error[0] ? s->error : "setup failed");
    release(s);
    return tm_solver_fail(s, TM_SOLVER_ENOMEM, "CVODE: %s", why);
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
    long v;
    if (CVodeGetNumSteps(c->mem, &v) == CV_SUCCESS)
        s->stats.steps = v;
    if (CVodeGetNumErrTestFails(c->mem, &v) == CV_SUCCESS)
        s->stats.rejected_steps = v;
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
    .variant = ADAMS,
};

const tm_solver_ops tm_cvode_bdf_ops = {
    .name = "cvode-bdf", .init = init, .integrate = integrate, .release = release,
    .variant = BDF,
};
