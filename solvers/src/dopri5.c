/* dopri5.c — Dormand–Prince 5(4) with Hairer's step control and dense
 * output.
 *
 * The method: seven stages with the classic coefficients, first same as
 * last (k7 of a step is k1 of the next), the embedded 4th-order solution
 * for the error estimate, the error norm and PI step-size control of
 * Hairer & Wanner's DOPRI5 (safety 0.9, factors in [0.2, 10], beta 0.04),
 * and its automatic initial step.  Output times are served by the 4th-order
 * continuous extension, so asking for y at many times never shortens a
 * step: the integrator runs at the steps its error control chooses and
 * interpolates.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "solver_internal.h"

/* Nodes and coefficients (Dormand & Prince 1980). */
static const double c2 = 1.0 / 5, c3 = 3.0 / 10, c4 = 4.0 / 5, c5 = 8.0 / 9;
static const double a21 = 1.0 / 5;
static const double a31 = 3.0 / 40, a32 = 9.0 / 40;
static const double a41 = 44.0 / 45, a42 = -56.0 / 15, a43 = 32.0 / 9;
static const double a51 = 19372.0 / 6561, a52 = -25360.0 / 2187, a53 = 64448.0 / 6561,
                    a54 = -212.0 / 729;
static const double a61 = 9017.0 / 3168, a62 = -355.0 / 33, a63 = 46732.0 / 5247,
                    a64 = 49.0 / 176, a65 = -5103.0 / 18656;
static const double a71 = 35.0 / 384, a73 = 500.0 / 1113, a74 = 125.0 / 192,
                    a75 = -2187.0 / 6784, a76 = 11.0 / 84;
/* Difference between the 5th- and 4th-order weights. */
static const double e1 = 71.0 / 57600, e3 = -71.0 / 16695, e4 = 71.0 / 1920,
                    e5 = -17253.0 / 339200, e6 = 22.0 / 525, e7 = -1.0 / 40;
/* Dense output (Shampine's 4th-order interpolant as in Hairer's code). */
static const double d1 = -12715105075.0 / 11282082432.0, d3 = 87487479700.0 / 32700410799.0,
                    d4 = -10690763975.0 / 1880347072.0, d5 = 701980252875.0 / 199316789632.0,
                    d6 = -1453857185.0 / 822651844.0, d7 = 69997945.0 / 29380423.0;

#define SAFE 0.9
#define FAC1 0.2            /* smallest step-size ratio */
#define FAC2 10.0           /* largest */
#define BETA 0.04
#define UROUND 2.3e-16

typedef struct dopri {
    double *mem;                     /* one allocation for all vectors */
    double *k1, *k2, *k3, *k4, *k5, *k6, *k7, *y1, *ysti;
    double *r1, *r2, *r3, *r4, *r5;   /* dense output of the last step */
    double told, hold;               /* the last accepted step */
    double h;                        /* next step size, 0 = choose */
    double facold;
    int have_k1, have_dense, rejected_last;
} dopri;

static void release(tm_solver *s)
{
    dopri *d = s->impl;
    if (d)
        free(d->mem);
    free(d);
    s->impl = NULL;
}

static int init(tm_solver *s)
{
    dopri *d = s->impl;
    if (!d) {
        d = calloc(1, sizeof *d);
        double *v = calloc(14 * (size_t)s->n, sizeof *v);
        if (!d || !v) {
            free(d);
            free(v);
            return tm_solver_fail(s, TM_SOLVER_ENOMEM, "out of memory for dopri5 (n=%ld)", s->n);
        }
        d->mem = v;
        double **vecs[] = {&d->k1, &d->k2, &d->k3, &d->k4, &d->k5, &d->k6, &d->k7,
                           &d->y1, &d->ysti, &d->r1, &d->r2, &d->r3, &d->r4, &d->r5};
        for (int i = 0; i < 14; i++)
            *vecs[i] = v + (size_t)i * (size_t)s->n;
        s->impl = d;
    }
    d->h = 0;
    d->facold = 1e-4;
    d->have_k1 = d->have_dense = d->rejected_last = 0;
    return 0;
}

static double sk(const tm_solver *s, double a, double b)
{
    return s->atol + s->rtol * fmax(fabs(a), fabs(b));
}

/* Hairer's initial step: from |f0| and a trial Euler step, a step whose
 * local error would be about 0.01 of the tolerance. */
static int initial_step(tm_solver *s, dopri *d, double hmax, double *h)
{
    long n = s->n;
    double dnf = 0, dny = 0;
    for (long i = 0; i < n; i++) {
        double w = s->atol + s->rtol * fabs(s->y[i]);
        dnf += (d->k1[i] / w) * (d->k1[i] / w);
        dny += (s->y[i] / w) * (s->y[i] / w);
    }
    double h0 = (dnf <= 1e-10 || dny <= 1e-10) ? 1e-6 : sqrt(dny / dnf) * 0.01;
    h0 = fmin(h0, hmax);
    for (long i = 0; i < n; i++)
        d->k3[i] = s->y[i] + h0 * d->k1[i];
    int rc = tm_solver_call_rhs(s, s->t + h0, d->k3, d->k2);
    if (rc)
        return rc;
    double der2 = 0;
    for (long i = 0; i < n; i++) {
        double w = s->atol + s->rtol * fabs(s->y[i]);
        double q = (d->k2[i] - d->k1[i]) / w;
        der2 += q * q;
    }
    der2 = sqrt(der2) / h0;
    double der12 = fmax(fabs(der2), sqrt(dnf));
    double h1 = der12 <= 1e-15 ? fmax(1e-6, h0 * 1e-3) : pow(0.01 / der12, 1.0 / 5);
    *h = fmin(100 * h0, fmin(h1, hmax));
    return 0;
}

/* One attempted step of size h from (s->t, s->y) with k1 = f(t, y).  On
 * return, y1 is the 5th-order solution, k7 = f(t+h, y1), and *err the
 * scaled error norm. */
static int attempt(tm_solver *s, dopri *d, double h, double *err)
{
    long n = s->n;
    double t = s->t, *y = s->y, *ys = d->ysti;
    int rc;
    for (long i = 0; i < n; i++)
        ys[i] = y[i] + h * a21 * d->k1[i];
    if ((rc = tm_solver_call_rhs(s, t + c2 * h, ys, d->k2)))
        return rc;
    for (long i = 0; i < n; i++)
        ys[i] = y[i] + h * (a31 * d->k1[i] + a32 * d->k2[i]);
    if ((rc = tm_solver_call_rhs(s, t + c3 * h, ys, d->k3)))
        return rc;
    for (long i = 0; i < n; i++)
        ys[i] = y[i] + h * (a41 * d->k1[i] + a42 * d->k2[i] + a43 * d->k3[i]);
    if ((rc = tm_solver_call_rhs(s, t + c4 * h, ys, d->k4)))
        return rc;
    for (long i = 0; i < n; i++)
        ys[i] = y[i] + h * (a51 * d->k1[i] + a52 * d->k2[i] + a53 * d->k3[i] + a54 * d->k4[i]);
    if ((rc = tm_solver_call_rhs(s, t + c5 * h, ys, d->k5)))
        return rc;
    for (long i = 0; i < n; i++)
        ys[i] = y[i] + h * (a61 * d->k1[i] + a62 * d->k2[i] + a63 * d->k3[i] +
                            a64 * d->k4[i] + a65 * d->k5[i]);
    if ((rc = tm_solver_call_rhs(s, t + h, ys, d->k6)))
        return rc;
    for (long i = 0; i < n; i++)
        d->y1[i] = y[i] + h * (a71 * d->k1[i] + a73 * d->k3[i] + a74 * d->k4[i] +
                               a75 * d->k5[i] + a76 * d->k6[i]);
    if ((rc = tm_solver_call_rhs(s, t + h, d->y1, d->k7)))
        return rc;
    double e = 0;
    for (long i = 0; i < n; i++) {
        double ei = h * (e1 * d->k1[i] + e3 * d->k3[i] + e4 * d->k4[i] + e5 * d->k5[i] +
                         e6 * d->k6[i] + e7 * d->k7[i]);
        double q = ei / sk(s, y[i], d->y1[i]);
        e += q * q;
    }
    *err = sqrt(e / (double)n);
    return 0;
}

/* Keeps what the continuous extension of the accepted step needs. */
static void keep_dense(tm_solver *s, dopri *d, double h)
{
    for (long i = 0; i < s->n; i++) {
        double ydiff = d->y1[i] - s->y[i];
        double bspl = h * d->k1[i] - ydiff;
        d->r1[i] = s->y[i];
        d->r2[i] = ydiff;
        d->r3[i] = bspl;
        d->r4[i] = ydiff - h * d->k7[i] - bspl;
        d->r5[i] = h * (d1 * d->k1[i] + d3 * d->k3[i] + d4 * d->k4[i] + d5 * d->k5[i] +
                        d6 * d->k6[i] + d7 * d->k7[i]);
    }
    d->told = s->t;
    d->hold = h;
    d->have_dense = 1;
}

static void dense(const tm_solver *s, const dopri *d, double t, double *out)
{
    double th = (t - d->told) / d->hold, th1 = 1 - th;
    for (long i = 0; i < s->n; i++)
        out[i] = d->r1[i] + th * (d->r2[i] + th1 * (d->r3[i] + th * (d->r4[i] + th1 * d->r5[i])));
}

static int integrate(tm_solver *s, double tout, double *yout)
{
    dopri *d = s->impl;
    int rc;
    if (tout == s->t) {
        memcpy(yout, s->y, (size_t)s->n * sizeof *yout);
        return 0;
    }
    /* Already passed by the last step: interpolate. */
    if (d->have_dense && tout >= d->told && tout <= s->t) {
        dense(s, d, tout, yout);
        return 0;
    }
    if (!d->have_k1) {
        if ((rc = tm_solver_call_rhs(s, s->t, s->y, d->k1)))
            return rc;
        d->have_k1 = 1;
    }
    double hmax = fmax(fabs(tout - s->t), 1e-300) * 1e6;
    if (d->h == 0 && (rc = initial_step(s, d, hmax, &d->h)))
        return rc;
    long steps = 0;
    double expo1 = 0.2 - BETA * 0.75;
    while (s->t < tout) {
        if (steps++ >= s->max_steps)
            return tm_solver_fail(s, TM_SOLVER_EMAXSTEPS,
                                  "more than %ld steps to reach t=%g (at t=%g); raise max_steps",
                                  s->max_steps, tout, s->t);
        double h = d->h;
        if (0.1 * fabs(h) <= fabs(s->t) * UROUND)
            return tm_solver_fail(s, TM_SOLVER_ESTEP, "step size %g too small at t=%g", h, s->t);
        double err;
        if ((rc = attempt(s, d, h, &err)))
            return rc;
        if (!isfinite(err))
            err = 1e10;
        double fac11 = pow(err, expo1);
        /* Lund stabilization (the BETA term), then the bounded ratio. */
        double fac = fac11 / pow(d->facold, BETA);
        fac = fmax(1.0 / FAC2, fmin(1.0 / FAC1, fac / SAFE));
        double hnew = h / fac;
        if (err <= 1.0) {
            d->facold = fmax(err, 1e-4);
            s->stats.steps++;
            s->stats.order = s->stats.max_order = 5;
            keep_dense(s, d, h);
            s->t += h;
            memcpy(s->y, d->y1, (size_t)s->n * sizeof *s->y);
            double *k = d->k1;       /* first same as last */
            d->k1 = d->k7;
            d->k7 = k;
            if (d->rejected_last)
                hnew = fmin(hnew, h);
            d->rejected_last = 0;
            d->h = hnew;
        } else {
            s->stats.rejected_steps++;
            d->rejected_last = 1;
            d->h = h / fmin(1.0 / FAC1, fac11 / SAFE);
        }
    }
    dense(s, d, tout, yout);
    return 0;
}

const tm_solver_ops tm_dopri5_ops = {
    .name = "dopri5",
    .init = init,
    .integrate = integrate,
    .release = release,
};
