/* solver.c — the solver front end: argument checks, shapes, errors; the
 * methods do the integrating. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "solver_internal.h"

const char *const tm_solver_names[] = {"dopri5", "cvode-adams", "cvode-bdf", NULL};
const char *const tm_linear_solver_names[] = {"fixed-point", "dense", "band", "spgmr",
                                              "spgmr-band", NULL};

static const tm_solver_ops *const methods[] = {&tm_dopri5_ops, &tm_cvode_adams_ops,
                                               &tm_cvode_bdf_ops};

int tm_solver_fail(tm_solver *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    return code;
}

int tm_solver_create(const char *name, tm_solver **out)
{
    *out = NULL;
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        if (name && strcmp(name, methods[i]->name) == 0) {
            tm_solver *s = calloc(1, sizeof *s);
            if (!s)
                return TM_SOLVER_ENOMEM;
            s->ops = methods[i];
            s->rtol = 1e-6;
            s->atol = 1e-12;
            s->max_steps = 500;
            s->linear_solver = TM_LS_DEFAULT;
            s->band_lower = s->band_upper = -1;
            *out = s;
            return 0;
        }
    }
    return TM_SOLVER_EUNKNOWN;
}

void tm_solver_free(tm_solver *s)
{
    if (!s)
        return;
    if (s->ops->release)
        s->ops->release(s);
    free(s->y);
    free(s);
}

int tm_solver_set_rhs(tm_solver *s, tm_rhs_fn fn, void *user_data)
{
    if (!fn)
        return tm_solver_fail(s, TM_SOLVER_EINVAL, "right-hand side is NULL");
    s->rhs = fn;
    s->user_data = user_data;
    return 0;
}

int tm_solver_set_tolerances(tm_solver *s, double rtol, double atol)
{
    if (!(rtol >= 0) || !(atol >= 0) || !isfinite(rtol) || !isfinite(atol) ||
        (rtol == 0 && atol == 0))
        return tm_solver_fail(s, TM_SOLVER_EINVAL,
                              "tolerances must be finite and >= 0, not both 0 (rtol=%g, "
                              "atol=%g)", rtol, atol);
    s->rtol = rtol;
    s->atol = atol;
    s->tolerances_changed = 1;  /* methods read them at their next step */
    return 0;
}

int tm_solver_set_max_steps(tm_solver *s, long max_steps)
{
    if (max_steps < 1)
        return tm_solver_fail(s, TM_SOLVER_EINVAL, "max_steps must be >= 1, got %ld",
                              max_steps);
    s->max_steps = max_steps;
    return 0;
}

/* A setting that shapes the method takes effect at the next
 * set_initial_value; until then integrate refuses rather than run with
 * the old one. */
static int method_setting_changed(tm_solver *s)
{
    if (s->ready)
        s->settings_changed = 1;
    return 0;
}

int tm_solver_set_linear_solver(tm_solver *s, const char *name)
{
    if (!s->ops->max_order)
        return tm_solver_fail(s, TM_SOLVER_EINVAL, "%s is explicit: it has no linear solver",
                              s->ops->name);
    if (!name) {
        s->linear_solver = TM_LS_DEFAULT;
        return method_setting_changed(s);
    }
    for (int i = 0; tm_linear_solver_names[i]; i++)
        if (strcmp(name, tm_linear_solver_names[i]) == 0) {
            s->linear_solver = i;
            return method_setting_changed(s);
        }
    return tm_solver_fail(s, TM_SOLVER_EINVAL, "unknown linear solver '%s' (choose fixed-point, "
                          "dense, band, spgmr, spgmr-band)", name);
}

int tm_solver_set_bandwidth(tm_solver *s, long lower, long upper)
{
    if (lower < 0 || upper < 0)
        return tm_solver_fail(s, TM_SOLVER_EINVAL, "bandwidths must be >= 0 (lower=%ld, "
                              "upper=%ld)", lower, upper);
    s->band_lower = lower;
    s->band_upper = upper;
    return method_setting_changed(s);
}

int tm_solver_set_max_order(tm_solver *s, int order)
{
    if (!s->ops->max_order)
        return tm_solver_fail(s, TM_SOLVER_EINVAL, "%s has a fixed order", s->ops->name);
    if (order < 0 || order > s->ops->max_order)
        return tm_solver_fail(s, TM_SOLVER_EINVAL, "%s: max order must be 1 to %d (0 = %d), "
                              "got %d", s->ops->name, s->ops->max_order, s->ops->max_order,
                              order);
    s->max_order = order;
    return method_setting_changed(s);
}

int tm_solver_linear_solver_in_use(const tm_solver *s)
{
    if (!s->ops->max_order)
        return TM_LS_DEFAULT;
    if (s->linear_solver != TM_LS_DEFAULT)
        return s->linear_solver;
    if (!s->ops->stiff)
        return TM_LS_FIXED_POINT;
    return s->band_lower >= 0 ? TM_LS_BAND : TM_LS_DENSE;
}

const char *tm_solver_linear_solver(const tm_solver *s)
{
    int ls = tm_solver_linear_solver_in_use(s);
    return ls == TM_LS_DEFAULT ? "none" : tm_linear_solver_names[ls];
}

int tm_solver_set_initial_value(tm_solver *s, double t0, const double *y0, int ndim,
                                const intptr_t *dims)
{
    if (ndim < 1 || ndim > TM_SOLVER_MAX_NDIM)
        return tm_solver_fail(s, TM_SOLVER_EINVAL, "y0 must have 1 to %d dimensions, got %d",
                              TM_SOLVER_MAX_NDIM, ndim);
    long n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 1)
            return tm_solver_fail(s, TM_SOLVER_EINVAL, "y0 has an empty dimension");
        n *= (long)dims[i];
    }
    if (!isfinite(t0))
        return tm_solver_fail(s, TM_SOLVER_EINVAL, "t0 is not finite");
    for (long i = 0; i < n; i++)
        if (!isfinite(y0[i]))
            return tm_solver_fail(s, TM_SOLVER_EINVAL, "y0[%ld] is not finite (%g)", i, y0[i]);
    s->ready = 0;
    if (n != s->n) {
        if (s->ops->release)
            s->ops->release(s);
        free(s->y);
        s->y = malloc((size_t)n * sizeof *s->y);
        s->n = s->y ? n : 0;
        if (!s->y)
            return tm_solver_fail(s, TM_SOLVER_ENOMEM, "out of memory for %ld values", n);
    }
    memcpy(s->y, y0, (size_t)n * sizeof *s->y);
    s->ndim = ndim;
    memcpy(s->dims, dims, (size_t)ndim * sizeof *dims);
    s->t = s->tout = t0;
    s->settings_changed = 0;
    memset(&s->stats, 0, sizeof s->stats);
    s->error[0] = '\0';
    /* A method that failed to set up has nothing to integrate with. */
    int rc = s->ops->init(s);
    s->ready = rc == 0;
    return rc;
}

int tm_solver_integrate(tm_solver *s, double t, double *yout)
{
    if (!s->rhs)
        return tm_solver_fail(s, TM_SOLVER_ESTATE, "no right-hand side set");
    if (!s->ready)
        return tm_solver_fail(s, TM_SOLVER_ESTATE, "no initial value set");
    if (s->settings_changed)
        return tm_solver_fail(s, TM_SOLVER_ESTATE, "the linear solver, bandwidth or max order "
                              "changed: call set_initial_value to restart with them");
    if (!isfinite(t) || t < s->tout)
        return tm_solver_fail(s, TM_SOLVER_EINVAL,
                              "can only integrate forward: t=%g is before the current t=%g",
                              t, s->tout);
    int rc = s->ops->integrate(s, t, yout);
    if (rc == 0)
        s->tout = t;
    return rc;
}

int tm_solver_call_rhs(tm_solver *s, double t, const double *y, double *ydot)
{
    tm_array ya = {.ndim = s->ndim, .dims = s->dims, .data = (double *)y};
    tm_array da = {.ndim = s->ndim, .dims = s->dims, .data = ydot};
    s->stats.rhs_evals++;
    int rc = s->rhs(t, &ya, &da, s->user_data);
    if (rc != 0)
        return tm_solver_fail(s, TM_SOLVER_ERHS, "right-hand side failed at t=%g (returned %d)",
                              t, rc);
    return 0;
}

double tm_solver_t(const tm_solver *s) { return s->tout; }
long tm_solver_size(const tm_solver *s) { return s->n; }
const char *tm_solver_name(const tm_solver *s) { return s->ops->name; }
const char *tm_solver_error(const tm_solver *s) { return s->error; }

void tm_solver_get_stats(const tm_solver *s, tm_solver_stats *out)
{
    *out = s->stats;
}
