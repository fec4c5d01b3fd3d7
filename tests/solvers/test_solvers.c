/* test_solvers.c — the C solvers on problems with exact solutions, and
 * their error codes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tm_solver.h"

static int decay(double t, const tm_array *y, tm_array *ydot, void *ud)
{
    for (intptr_t i = 0; i < tm_array_size(y); i++)
        ydot->data[i] = -(double)(i + 1) * y->data[i];
    return 0;
}

/* y'' = -y as a first-order system. */
static int oscillator(double t, const tm_array *y, tm_array *ydot, void *ud)
{
    ydot->data[0] = y->data[1];
    ydot->data[1] = -y->data[0];
    return 0;
}

/* Stiff: y0' = -1000 (y0 - cos t) - sin t, solution cos t from y0(0) = 1;
 * y1' = -0.5 y1. */
static int stiff(double t, const tm_array *y, tm_array *ydot, void *ud)
{
    ydot->data[0] = -1000.0 * (y->data[0] - cos(t)) - sin(t);
    ydot->data[1] = -0.5 * y->data[1];
    return 0;
}

/* The heat equation on (0, 1), zero at both ends, HEAT_N interior points:
 * stiff (eigenvalues down to -4/h^2) and tridiagonal.  From
 * sin(pi x) the solution is exp(-lambda t) sin(pi x), lambda =
 * 4/h^2 sin^2(pi h / 2). */
enum { HEAT_N = 50 };

static int heat(double t, const tm_array *y, tm_array *ydot, void *ud)
{
    const double *u = y->data;
    double h = 1.0 / (HEAT_N + 1);
    for (int i = 0; i < HEAT_N; i++) {
        double left = i > 0 ? u[i - 1] : 0, right = i < HEAT_N - 1 ? u[i + 1] : 0;
        ydot->data[i] = (left - 2 * u[i] + right) / (h * h);
    }
    return 0;
}

static int failing(double t, const tm_array *y, tm_array *ydot, void *ud)
{
    int *calls = ud;
    if (++*calls > 20)
        return 7;
    return decay(t, y, ydot, NULL);
}

static tm_solver *make(const char *name, tm_rhs_fn f, void *ud, double rtol, double atol)
{
    tm_solver *s;
    assert_int_equal(tm_solver_create(name, &s), 0);
    assert_int_equal(tm_solver_set_rhs(s, f, ud), 0);
    assert_int_equal(tm_solver_set_tolerances(s, rtol, atol), 0);
    assert_int_equal(tm_solver_set_max_steps(s, 100000), 0);
    return s;
}

static void test_decay_every_solver(void **state)
{
    for (int k = 0; tm_solver_names[k]; k++) {
        tm_solver *s = make(tm_solver_names[k], decay, NULL, 1e-9, 1e-12);
        double y0[3] = {1, 1, 1}, y[3];
        intptr_t n = 3;
        assert_int_equal(tm_solver_set_initial_value(s, 0.0, y0, 1, &n), 0);
        /* Many output times, as the benchmark asks. */
        for (int i = 1; i <= 40; i++) {
            double t = 0.05 * i;
            assert_int_equal(tm_solver_integrate(s, t, y), 0);
            for (int j = 0; j < 3; j++)
                assert_true(fabs(y[j] - exp(-(j + 1) * t)) < 1e-7);
        }
        assert_true(fabs(tm_solver_t(s) - 2.0) < 1e-15);
        tm_solver_stats st;
        tm_solver_get_stats(s, &st);
        assert_true(st.steps > 5 && st.steps < 5000);
        assert_true(st.rhs_evals >= st.steps);
        assert_true(st.rejected_steps >= 0 && st.rejected_steps < st.steps);
        tm_solver_free(s);
    }
}

static void test_oscillator(void **state)
{
    const char *names[] = {"dopri5", "cvode-adams"};
    for (int k = 0; k < 2; k++) {
        tm_solver *s = make(names[k], oscillator, NULL, 1e-10, 1e-12);
        double y0[2] = {1, 0}, y[2];
        intptr_t n = 2;
        assert_int_equal(tm_solver_set_initial_value(s, 0.0, y0, 1, &n), 0);
        assert_int_equal(tm_solver_integrate(s, 10.0, y), 0);
        assert_true(fabs(y[0] - cos(10.0)) < 1e-7);
        assert_true(fabs(y[1] + sin(10.0)) < 1e-7);
        tm_solver_free(s);
    }
}

static void test_stiff_bdf(void **state)
{
    tm_solver *s = make("cvode-bdf", stiff, NULL, 1e-8, 1e-10);
    double y0[2] = {1, 1}, y[2];
    intptr_t n = 2;
    assert_int_equal(tm_solver_set_initial_value(s, 0.0, y0, 1, &n), 0);
    assert_int_equal(tm_solver_integrate(s, 5.0, y), 0);
    assert_true(fabs(y[0] - cos(5.0)) < 1e-6);
    assert_true(fabs(y[1] - exp(-2.5)) < 1e-6);
    tm_solver_stats st;
    tm_solver_get_stats(s, &st);
    /* Stiff: BDF needs few steps where an explicit method would need
     * thousands (|h lambda| bounded by ~3.3 for dopri5: >= 1500 steps). */
    assert_true(st.steps < 1500);
    tm_solver_free(s);
}

static void test_heat_every_linear_solver(void **state)
{
    double h = 1.0 / (HEAT_N + 1), lambda = 4 / (h * h) * pow(sin(M_PI * h / 2), 2);
    for (int k = 0; tm_linear_solver_names[k]; k++) {
        const char *ls = tm_linear_solver_names[k];
        if (strcmp(ls, "fixed-point") == 0)
            continue;           /* not for a stiff problem */
        tm_solver *s = make("cvode-bdf", heat, NULL, 1e-8, 1e-10);
        assert_int_equal(tm_solver_set_bandwidth(s, 1, 1), 0);
        assert_int_equal(tm_solver_set_linear_solver(s, ls), 0);
        assert_string_equal(tm_solver_linear_solver(s), ls);
        double y0[HEAT_N], y[HEAT_N];
        for (int i = 0; i < HEAT_N; i++)
            y0[i] = sin(M_PI * (i + 1) * h);
        intptr_t n = HEAT_N;
        assert_int_equal(tm_solver_set_initial_value(s, 0.0, y0, 1, &n), 0);
        assert_int_equal(tm_solver_integrate(s, 0.1, y), 0);
        for (int i = 0; i < HEAT_N; i++)
            assert_true(fabs(y[i] - exp(-lambda * 0.1) * y0[i]) < 1e-6);
        tm_solver_stats st;
        tm_solver_get_stats(s, &st);
        /* dopri5 would need >= 370 steps (|h lambda_max| <= 3.3). */
        assert_true(st.steps > 10 && st.steps < 300);
        assert_true(st.nonlinear_iters >= st.steps);
        assert_true(st.order >= 1 && st.order <= st.max_order && st.max_order <= 5);
        int krylov = strncmp(ls, "spgmr", 5) == 0;
        assert_true(krylov ? st.linear_iters > 0 : st.linear_iters == 0);
        /* Every variant but bare GMRES evaluates a (preconditioner) Jacobian. */
        assert_true(strcmp(ls, "spgmr") == 0 ? st.jac_evals == 0 : st.jac_evals > 0);
        assert_true(st.linear_setups > 0 || strcmp(ls, "spgmr") == 0);
        /* A banded Jacobian costs lower + upper + 1 = 3 calls, a dense one n. */
        if (strcmp(ls, "band") == 0)
            assert_true(st.rhs_evals <= st.nonlinear_iters + st.steps + 3 * st.jac_evals + 10);
        tm_solver_free(s);
    }
}

static void test_linear_solver_choice(void **state)
{
    tm_solver *s;
    assert_int_equal(tm_solver_create("dopri5", &s), 0);
    assert_string_equal(tm_solver_linear_solver(s), "none");
    assert_int_equal(tm_solver_set_linear_solver(s, "band"), TM_SOLVER_EINVAL);
    assert_non_null(strstr(tm_solver_error(s), "explicit"));
    assert_int_equal(tm_solver_set_max_order(s, 4), TM_SOLVER_EINVAL);
    assert_int_equal(tm_solver_set_bandwidth(s, 1, 1), 0);    /* the problem's, harmless */
    tm_solver_free(s);

    assert_int_equal(tm_solver_create("cvode-adams", &s), 0);
    assert_string_equal(tm_solver_linear_solver(s), "fixed-point");
    assert_int_equal(tm_solver_set_max_order(s, 13), TM_SOLVER_EINVAL);
    assert_non_null(strstr(tm_solver_error(s), "1 to 12"));
    assert_int_equal(tm_solver_set_max_order(s, 12), 0);
    assert_int_equal(tm_solver_set_linear_solver(s, "lu"), TM_SOLVER_EINVAL);
    assert_non_null(strstr(tm_solver_error(s), "unknown linear solver 'lu'"));
    assert_int_equal(tm_solver_set_linear_solver(s, "spgmr"), 0);
    assert_string_equal(tm_solver_linear_solver(s), "spgmr");
    tm_solver_free(s);

    assert_int_equal(tm_solver_create("cvode-bdf", &s), 0);
    assert_string_equal(tm_solver_linear_solver(s), "dense");
    assert_int_equal(tm_solver_set_bandwidth(s, -1, 1), TM_SOLVER_EINVAL);
    assert_int_equal(tm_solver_set_max_order(s, 6), TM_SOLVER_EINVAL);
    assert_non_null(strstr(tm_solver_error(s), "1 to 5"));
    assert_int_equal(tm_solver_set_rhs(s, decay, NULL), 0);
    double y0[3] = {1, 1, 1}, y[3];
    intptr_t n = 3;
    /* A band solver needs the problem's bandwidth; a failed set-up leaves
     * nothing to integrate with. */
    assert_int_equal(tm_solver_set_linear_solver(s, "spgmr-band"), 0);
    assert_int_equal(tm_solver_set_initial_value(s, 0.0, y0, 1, &n), TM_SOLVER_EINVAL);
    assert_non_null(strstr(tm_solver_error(s), "needs the problem's bandwidth"));
    assert_int_equal(tm_solver_integrate(s, 1.0, y), TM_SOLVER_ESTATE);
    /* Declared: band becomes the default. */
    assert_int_equal(tm_solver_set_linear_solver(s, NULL), 0);
    assert_int_equal(tm_solver_set_bandwidth(s, 0, 0), 0);
    assert_string_equal(tm_solver_linear_solver(s), "band");
    assert_int_equal(tm_solver_set_initial_value(s, 0.0, y0, 1, &n), 0);
    assert_int_equal(tm_solver_integrate(s, 0.5, y), 0);
    assert_true(fabs(y[2] - exp(-1.5)) < 1e-5);
    /* Changed under way: integrate asks for a restart instead of running
     * with the old solver. */
    assert_int_equal(tm_solver_set_linear_solver(s, "spgmr"), 0);
    assert_int_equal(tm_solver_integrate(s, 1.0, y), TM_SOLVER_ESTATE);
    assert_non_null(strstr(tm_solver_error(s), "call set_initial_value"));
    assert_int_equal(tm_solver_set_initial_value(s, 0.0, y0, 1, &n), 0);
    assert_int_equal(tm_solver_integrate(s, 1.0, y), 0);
    assert_true(fabs(y[0] - exp(-1.0)) < 1e-5);
    tm_solver_free(s);
}

static void test_bad_input(void **state)
{
    tm_solver *s;
    assert_int_equal(tm_solver_create("rk4", &s), TM_SOLVER_EUNKNOWN);
    assert_int_equal(tm_solver_create("dopri5", &s), 0);
    double y[2], y0[2] = {1, NAN};
    intptr_t n = 2;
    assert_int_equal(tm_solver_integrate(s, 1.0, y), TM_SOLVER_ESTATE);
    assert_non_null(strstr(tm_solver_error(s), "right-hand side"));
    assert_int_equal(tm_solver_set_tolerances(s, -1e-6, 1e-6), TM_SOLVER_EINVAL);
    assert_non_null(strstr(tm_solver_error(s), "tolerances"));
    assert_int_equal(tm_solver_set_tolerances(s, 0, 0), TM_SOLVER_EINVAL);
    assert_int_equal(tm_solver_set_max_steps(s, 0), TM_SOLVER_EINVAL);
    assert_int_equal(tm_solver_set_rhs(s, decay, NULL), 0);
    assert_int_equal(tm_solver_set_initial_value(s, 0.0, y0, 1, &n), TM_SOLVER_EINVAL);
    assert_non_null(strstr(tm_solver_error(s), "y0[1]"));
    y0[1] = 2;
    assert_int_equal(tm_solver_set_initial_value(s, 0.0, y0, 1, &n), 0);
    assert_int_equal(tm_solver_integrate(s, 1.0, y), 0);
    assert_int_equal(tm_solver_integrate(s, 0.5, y), TM_SOLVER_EINVAL);
    assert_non_null(strstr(tm_solver_error(s), "forward"));
    tm_solver_free(s);
}

static void test_rhs_failure_and_max_steps(void **state)
{
    for (int k = 0; tm_solver_names[k]; k++) {
        int calls = 0;
        tm_solver *s = make(tm_solver_names[k], failing, &calls, 1e-10, 1e-12);
        double y0[2] = {1, 1}, y[2];
        intptr_t n = 2;
        assert_int_equal(tm_solver_set_initial_value(s, 0.0, y0, 1, &n), 0);
        assert_int_equal(tm_solver_integrate(s, 100.0, y), TM_SOLVER_ERHS);
        assert_non_null(strstr(tm_solver_error(s), "right-hand side failed"));
        tm_solver_free(s);

        s = make(tm_solver_names[k], decay, NULL, 1e-12, 1e-14);
        assert_int_equal(tm_solver_set_max_steps(s, 3), 0);
        assert_int_equal(tm_solver_set_initial_value(s, 0.0, y0, 1, &n), 0);
        assert_int_equal(tm_solver_integrate(s, 100.0, y), TM_SOLVER_EMAXSTEPS);
        assert_non_null(strstr(tm_solver_error(s), "max_steps"));
        tm_solver_free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decay_every_solver),
        cmocka_unit_test(test_oscillator),
        cmocka_unit_test(test_stiff_bdf),
        cmocka_unit_test(test_heat_every_linear_solver),
        cmocka_unit_test(test_linear_solver_choice),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_rhs_failure_and_max_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
