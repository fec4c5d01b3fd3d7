/* test_cvode_vector.c — every compiled kernel of cvode_vector.c gives
 * exactly what SUNDIALS' serial vector gives (fused operations enabled),
 * on data with zeros, negatives and magnitudes apart, for the coefficient
 * cases the library treats specially and with outputs aliasing inputs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <nvector/nvector_serial.h>

#include "cvode_vector.h"

enum { LEN = 37, NV = 4 };   /* odd: the vectorized loops' remainders run */

static SUNContext ctx;

/* Vectors in pairs: [0] with the library's operations, [1] with ours. */
typedef struct pair {
    N_Vector v[2];
} pair;

/* The same data in both: zeros, -1, large and small values, by seed. */
static void fill(pair *p, unsigned seed)
{
    uint64_t h = seed * 0x9e3779b97f4a7c15u + 1;
    for (int i = 0; i < LEN; i++) {
        h = h * 6364136223846793005u + 1442695040888963407u;
        int r = (int)(h >> 60);
        double x = (double)(h >> 11) / 9007199254740992.0 - 0.5;
        double v = r == 0 ? 0.0 : r == 1 ? x * 1e12 : r == 2 ? -1.0 : x;
        NV_Ith_S(p->v[0], i) = NV_Ith_S(p->v[1], i) = v;
    }
}

static pair make(unsigned seed)
{
    pair p;
    p.v[0] = N_VNew_Serial(LEN, ctx);
    assert_int_equal(N_VEnableFusedOps_Serial(p.v[0], SUNTRUE), 0);
    N_Vector tmpl = N_VNew_Serial(LEN, ctx);
    assert_int_equal(tm_cvode_vector_speed_up(tmpl), 0);
    p.v[1] = N_VClone(tmpl);     /* clones inherit the kernels */
    N_VDestroy(tmpl);
    fill(&p, seed);
    return p;
}

static void drop(pair *p)
{
    N_VDestroy(p->v[0]);
    N_VDestroy(p->v[1]);
}

/* Equal as numbers, NaN equal to NaN (the sign of a zero may differ). */
static void same_value(double a, double b)
{
    if (!(isnan(a) && isnan(b)) && a != b)
        fail_msg("library %.17g, compiled %.17g", a, b);
}

static void same(const pair *p)
{
    for (int i = 0; i < LEN; i++)
        same_value(NV_Ith_S(p->v[0], i), NV_Ith_S(p->v[1], i));
}

static const double coef[] = {1.0, -1.0, 0.0, 2.5, -2.5, 0.3};
#define NCOEF (sizeof coef / sizeof *coef)

static void test_linear_sum(void **state)
{
    for (size_t i = 0; i < NCOEF; i++)
        for (size_t j = 0; j < NCOEF; j++)
            for (int alias = 0; alias < 3; alias++) {
                pair x = make(1), y = make(2), z = make(3);
                for (int k = 0; k < 2; k++) {
                    N_Vector out = alias == 0 ? z.v[k] : alias == 1 ? x.v[k] : y.v[k];
                    N_VLinearSum(coef[i], x.v[k], coef[j], y.v[k], out);
                }
                same(alias == 0 ? &z : alias == 1 ? &x : &y);
                drop(&x);
                drop(&y);
                drop(&z);
            }
}

static void test_elementwise(void **state)
{
    for (int op = 0; op < 9; op++) {
        pair x = make(4), y = make(5), z = make(6);
        for (int k = 0; k < 2; k++) {
            N_Vector a = x.v[k], b = y.v[k], c = z.v[k];
            switch (op) {
            case 0: N_VConst(0.7, c); break;
            case 1: N_VProd(a, b, c); break;
            case 2: N_VDiv(a, b, c); break;
            case 3: N_VScale(-1.5, a, c); break;
            case 4: N_VScale(1.0, a, a); break;
            case 5: N_VAbs(a, c); break;
            case 6: N_VInv(a, c); break;
            case 7: N_VAddConst(a, 3.25, c); break;
            case 8: N_VCompare(0.25, a, c); break;
            }
        }
        same(&z);
        same(&x);
        drop(&x);
        drop(&y);
        drop(&z);
    }
}

static void test_reductions(void **state)
{
    pair x = make(7), w = make(8), id = make(9), z = make(10);
    double r[2][8];
    int inv[2];
    for (int k = 0; k < 2; k++) {
        r[k][0] = N_VDotProd(x.v[k], w.v[k]);
        r[k][1] = N_VMaxNorm(x.v[k]);
        r[k][2] = N_VWrmsNorm(x.v[k], w.v[k]);
        r[k][3] = N_VWrmsNormMask(x.v[k], w.v[k], id.v[k]);
        r[k][4] = N_VMin(x.v[k]);
        r[k][5] = N_VWL2Norm(x.v[k], w.v[k]);
        r[k][6] = N_VL1Norm(x.v[k]);
        r[k][7] = N_VWSqrSumLocal(x.v[k], w.v[k]);
        inv[k] = N_VInvTest(x.v[k], z.v[k]);
    }
    for (int i = 0; i < 8; i++)
        same_value(r[0][i], r[1][i]);
    assert_int_equal(inv[0], inv[1]);
    assert_int_equal(inv[0], SUNFALSE);    /* the data has zeros */
    same(&z);
    drop(&x);
    drop(&w);
    drop(&id);
    drop(&z);
}

static void test_fused(void **state)
{
    double c[NV] = {1.0, -0.5, 2.0, 1e-3};
    for (int nvec = 1; nvec <= NV; nvec++)
        for (int alias = 0; alias < 2; alias++) {
            pair X[NV], Y[NV], Z[NV], z = make(20);
            for (int i = 0; i < NV; i++) {
                X[i] = make(30 + i);
                Y[i] = make(40 + i);
                Z[i] = make(50 + i);
            }
            double dots[2][NV];
            for (int k = 0; k < 2; k++) {
                N_Vector xs[NV], ys[NV], zs[NV];
                for (int i = 0; i < NV; i++) {
                    xs[i] = X[i].v[k];
                    ys[i] = Y[i].v[k];
                    zs[i] = alias ? ys[i] : Z[i].v[k];
                }
                /* With alias, the combination accumulates into X[0]. */
                assert_int_equal(N_VLinearCombination(nvec, c, xs, alias ? xs[0] : z.v[k]), 0);
                assert_int_equal(N_VScaleAddMulti(nvec, c, z.v[k], ys, zs), 0);
                assert_int_equal(N_VDotProdMulti(nvec, z.v[k], ys, dots[k]), 0);
            }
            same(&z);
            for (int i = 0; i < NV; i++) {
                same(&X[i]);
                same(alias ? &Y[i] : &Z[i]);
            }
            for (int i = 0; i < nvec; i++)
                same_value(dots[0][i], dots[1][i]);
            for (int i = 0; i < NV; i++) {
                drop(&X[i]);
                drop(&Y[i]);
                drop(&Z[i]);
            }
            drop(&z);
        }
}

static void test_not_serial(void **state)
{
    N_Vector v = N_VNewEmpty(ctx);
    assert_int_equal(tm_cvode_vector_speed_up(v), -1);
    N_VFreeEmpty(v);
    assert_int_equal(tm_cvode_vector_speed_up(NULL), -1);
}

int main(void)
{
    if (SUNContext_Create(NULL, &ctx) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_sum),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_fused),
        cmocka_unit_test(test_not_serial),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    SUNContext_Free(&ctx);
    return rc;
}
