/* cvode_vector.c — compiled vector kernels for CVODE's serial vectors.
 *
 * Why: Debian 12's libsundials (6.4.1+dfsg1-3) is built without
 * optimization.  Its serial N_Vector kernels, where CVODE spends nearly all
 * of its own time, run at about 20 instructions per element (callgrind,
 * Burgers N = 401: N_VLinearSum alone took 48% of the whole process's
 * instructions with the right-hand side in C), which is why CVODE fell
 * behind as N grew.  N_Vector is SUNDIALS' extension point for exactly
 * this: a vector carries its own table of operations, clones copy it, so
 * replacing the compute operations of the one template vector gives every
 * vector CVODE and its linear solvers make the fast kernels.
 *
 * Each kernel does the same floating-point operations in the same order as
 * the serial one it replaces, special cases included (a*x + b*y is
 * a*(x + y) when a == b), so results are bit for bit those of the library
 * (tests/solvers/test_cvode_vector.c checks every kernel).  Storage,
 * cloning and the constraint operations (never used here) stay the
 * library's.
 */
#include <math.h>
#include <nvector/nvector_serial.h>

#include "cvode_vector.h"

#define LEN(v) NV_LENGTH_S(v)
#define DATA(v) NV_DATA_S(v)

static void vec_linear_sum(realtype a, N_Vector x, realtype b, N_Vector y, N_Vector z)
{
    const realtype *xd = DATA(x), *yd = DATA(y);
    realtype *zd = DATA(z);
    sunindextype n = LEN(x);
    if (a == b) {
        for (sunindextype i = 0; i < n; i++)
            zd[i] = a * (xd[i] + yd[i]);
    } else if (a == -b) {
        for (sunindextype i = 0; i < n; i++)
            zd[i] = a * (xd[i] - yd[i]);
    } else {
        for (sunindextype i = 0; i < n; i++)
            zd[i] = a * xd[i] + b * yd[i];
    }
}

static void vec_const(realtype c, N_Vector z)
{
    realtype *zd = DATA(z);
    for (sunindextype i = 0, n = LEN(z); i < n; i++)
        zd[i] = c;
}

static void vec_prod(N_Vector x, N_Vector y, N_Vector z)
{
    const realtype *xd = DATA(x), *yd = DATA(y);
    realtype *zd = DATA(z);
    for (sunindextype i = 0, n = LEN(x); i < n; i++)
        zd[i] = xd[i] * yd[i];
}

static void vec_div(N_Vector x, N_Vector y, N_Vector z)
{
    const realtype *xd = DATA(x), *yd = DATA(y);
    realtype *zd = DATA(z);
    for (sunindextype i = 0, n = LEN(x); i < n; i++)
        zd[i] = xd[i] / yd[i];
}

static void vec_scale(realtype c, N_Vector x, N_Vector z)
{
    const realtype *xd = DATA(x);
    realtype *zd = DATA(z);
    for (sunindextype i = 0, n = LEN(x); i < n; i++)
        zd[i] = c * xd[i];
}

static void vec_abs(N_Vector x, N_Vector z)
{
    const realtype *xd = DATA(x);
    realtype *zd = DATA(z);
    for (sunindextype i = 0, n = LEN(x); i < n; i++)
        zd[i] = fabs(xd[i]);
}

static void vec_inv(N_Vector x, N_Vector z)
{
    const realtype *xd = DATA(x);
    realtype *zd = DATA(z);
    for (sunindextype i = 0, n = LEN(x); i < n; i++)
        zd[i] = 1.0 / xd[i];
}

static void vec_add_const(N_Vector x, realtype b, N_Vector z)
{
    const realtype *xd = DATA(x);
    realtype *zd = DATA(z);
    for (sunindextype i = 0, n = LEN(x); i < n; i++)
        zd[i] = xd[i] + b;
}

static realtype vec_dot_prod(N_Vector x, N_Vector y)
{
    const realtype *xd = DATA(x), *yd = DATA(y);
    realtype sum = 0;
    for (sunindextype i = 0, n = LEN(x); i < n; i++)
        sum += xd[i] * yd[i];
    return sum;
}

static realtype vec_max_norm(N_Vector x)
{
    const realtype *xd = DATA(x);
    realtype max = 0;
    for (sunindextype i = 0, n = LEN(x); i < n; i++)
        if (fabs(xd[i]) > max)
            max = fabs(xd[i]);
    return max;
}

static realtype vec_wsqr_sum(N_Vector x, N_Vector w)
{
    const realtype *xd = DATA(x), *wd = DATA(w);
    realtype sum = 0;
    for (sunindextype i = 0, n = LEN(x); i < n; i++) {
        realtype p = xd[i] * wd[i];
        sum += p * p;
    }
    return sum;
}

static realtype vec_wsqr_sum_mask(N_Vector x, N_Vector w, N_Vector id)
{
    const realtype *xd = DATA(x), *wd = DATA(w), *idd = DATA(id);
    realtype sum = 0;
    for (sunindextype i = 0, n = LEN(x); i < n; i++)
        if (idd[i] > 0) {
            realtype p = xd[i] * wd[i];
            sum += p * p;
        }
    return sum;
}

/* The library's square root of a sum: 0 for a non-positive argument. */
static realtype vec_sqrt(realtype v)
{
    return v <= 0 ? 0 : sqrt(v);
}

static realtype vec_wrms_norm(N_Vector x, N_Vector w)
{
    return vec_sqrt(vec_wsqr_sum(x, w) / (realtype)LEN(x));
}

static realtype vec_wrms_norm_mask(N_Vector x, N_Vector w, N_Vector id)
{
    return vec_sqrt(vec_wsqr_sum_mask(x, w, id) / (realtype)LEN(x));
}

static realtype vec_min(N_Vector x)
{
    const realtype *xd = DATA(x);
    realtype min = xd[0];
    for (sunindextype i = 1, n = LEN(x); i < n; i++)
        if (xd[i] < min)
            min = xd[i];
    return min;
}

static realtype vec_wl2_norm(N_Vector x, N_Vector w)
{
    return vec_sqrt(vec_wsqr_sum(x, w));
}

static realtype vec_l1_norm(N_Vector x)
{
    const realtype *xd = DATA(x);
    realtype sum = 0;
    for (sunindextype i = 0, n = LEN(x); i < n; i++)
        sum += fabs(xd[i]);
    return sum;
}

static void vec_compare(realtype c, N_Vector x, N_Vector z)
{
    const realtype *xd = DATA(x);
    realtype *zd = DATA(z);
    for (sunindextype i = 0, n = LEN(x); i < n; i++)
        zd[i] = fabs(xd[i]) >= c ? 1.0 : 0.0;
}

static booleantype vec_inv_test(N_Vector x, N_Vector z)
{
    const realtype *xd = DATA(x);
    realtype *zd = DATA(z);
    booleantype no_zero = SUNTRUE;
    for (sunindextype i = 0, n = LEN(x); i < n; i++) {
        if (xd[i] == 0)
            no_zero = SUNFALSE;
        else
            zd[i] = 1.0 / xd[i];
    }
    return no_zero;
}

/* z = sum c[k] X[k], summed in k order per element (as the library). */
static int vec_linear_combination(int nvec, realtype *c, N_Vector *X, N_Vector z)
{
    if (nvec == 1) {
        vec_scale(c[0], X[0], z);
        return 0;
    }
    if (nvec == 2) {
        vec_linear_sum(c[0], X[0], c[1], X[1], z);
        return 0;
    }
    realtype *zd = DATA(z);
    sunindextype n = LEN(z);
    const realtype *x0 = DATA(X[0]);
    if (X[0] != z || c[0] != 1.0)
        for (sunindextype i = 0; i < n; i++)
            zd[i] = c[0] * x0[i];
    for (int k = 1; k < nvec; k++) {
        const realtype *xk = DATA(X[k]);
        realtype ck = c[k];
        for (sunindextype i = 0; i < n; i++)
            zd[i] += ck * xk[i];
    }
    return 0;
}

/* Z[k] = a[k] x + Y[k]. */
static int vec_scale_add_multi(int nvec, realtype *a, N_Vector x, N_Vector *Y, N_Vector *Z)
{
    if (nvec == 1) {
        vec_linear_sum(a[0], x, 1.0, Y[0], Z[0]);
        return 0;
    }
    const realtype *xd = DATA(x);
    sunindextype n = LEN(x);
    for (int k = 0; k < nvec; k++) {
        const realtype *yd = DATA(Y[k]);
        realtype *zd = DATA(Z[k]), ak = a[k];
        for (sunindextype i = 0; i < n; i++)
            zd[i] = ak * xd[i] + yd[i];
    }
    return 0;
}

static int vec_dot_prod_multi(int nvec, N_Vector x, N_Vector *Y, realtype *dots)
{
    for (int k = 0; k < nvec; k++)
        dots[k] = vec_dot_prod(x, Y[k]);
    return 0;
}

int tm_cvode_vector_speed_up(N_Vector v)
{
    if (!v || !v->ops || !v->ops->nvgetvectorid || N_VGetVectorID(v) != SUNDIALS_NVEC_SERIAL)
        return -1;
    N_Vector_Ops o = v->ops;
    o->nvlinearsum = vec_linear_sum;
    o->nvconst = vec_const;
    o->nvprod = vec_prod;
    o->nvdiv = vec_div;
    o->nvscale = vec_scale;
    o->nvabs = vec_abs;
    o->nvinv = vec_inv;
    o->nvaddconst = vec_add_const;
    o->nvdotprod = vec_dot_prod;
    o->nvmaxnorm = vec_max_norm;
    o->nvwrmsnorm = vec_wrms_norm;
    o->nvwrmsnormmask = vec_wrms_norm_mask;
    o->nvmin = vec_min;
    o->nvwl2norm = vec_wl2_norm;
    o->nvl1norm = vec_l1_norm;
    o->nvcompare = vec_compare;
    o->nvinvtest = vec_inv_test;
    o->nvlinearcombination = vec_linear_combination;
    o->nvscaleaddmulti = vec_scale_add_multi;
    o->nvdotprodmulti = vec_dot_prod_multi;
    /* The local reductions are the whole reductions on one process. */
    o->nvdotprodlocal = vec_dot_prod;
    o->nvmaxnormlocal = vec_max_norm;
    o->nvminlocal = vec_min;
    o->nvl1normlocal = vec_l1_norm;
    o->nvinvtestlocal = vec_inv_test;
    o->nvwsqrsumlocal = vec_wsqr_sum;
    o->nvwsqrsummasklocal = vec_wsqr_sum_mask;
    return 0;
}
