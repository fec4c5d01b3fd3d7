/* cycles.c — run under the tracer: each solver, with each CVODE linear
 * solver, set up, run (also into its error paths) and freed inside a region
 * "cycle"; every invocation must give back exactly what it took.  On the
 * successful runs each integrate() call after the first is a region
 * "integrate" and each right-hand side call a region "rhs": past its
 * set-up, the solver loop must allocate nothing at all.  Prints the right-hand side calls it made, which
 * check_cycles.py compares with the "rhs" region's invocations. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "tidemark.h"
#include "tm_solver.h"

static int decay(double t, const tm_array *y, tm_array *ydot, void *ud)
{
    tidemark_region_begin("rhs");
    for (intptr_t i = 0; i < tm_array_size(y); i++)
        ydot->data[i] = -y->data[i];
    tidemark_region_end();
    return ud && t > 0.5 ? 1 : 0;   /* with user data: fail after t=0.5 */
}

static const struct {
    const char *solver, *linear_solver;
} variants[] = {
    {"dopri5", NULL},        {"cvode-adams", "fixed-point"}, {"cvode-adams", "spgmr"},
    {"cvode-bdf", "dense"},  {"cvode-bdf", "band"},          {"cvode-bdf", "spgmr"},
    {"cvode-bdf", "spgmr-band"},
};

enum { OUTPUTS = 20 };

int main(void)
{
    static int fail = 1;
    long rhs_calls = 0;
    for (int round = 0; round < 10; round++) {
        for (size_t k = 0; k < sizeof variants / sizeof *variants; k++) {
            for (int mode = 0; mode < 3; mode++) {
                tidemark_region_begin("cycle");
                tm_solver *s;
                if (tm_solver_create(variants[k].solver, &s))
                    return 1;
                double y0[4] = {1, 2, 3, 4}, y[4];
                intptr_t n = 4;
                tm_solver_set_rhs(s, decay, mode == 1 ? &fail : NULL);
                tm_solver_set_tolerances(s, 1e-8, 1e-10);
                tm_solver_set_bandwidth(s, 1, 1);
                if (variants[k].linear_solver &&
                    tm_solver_set_linear_solver(s, variants[k].linear_solver))
                    return 3;
                if (mode == 2)
                    tm_solver_set_max_steps(s, 2);
                if (tm_solver_set_initial_value(s, 0.0, y0, 1, &n))
                    return 4;
                int rc = 0;
                for (int i = 1; i <= (mode == 0 ? OUTPUTS : 1) && rc == 0; i++) {
                    /* CVODE's linear solvers finish their set-up (saved
                     * Jacobian, Krylov basis) in the first call. */
                    int watched = mode == 0 && i > 1;
                    if (watched)
                        tidemark_region_begin("integrate");
                    rc = tm_solver_integrate(s, mode == 0 ? (double)i / OUTPUTS : 1.0, y);
                    if (watched)
                        tidemark_region_end();
                }
                if ((mode == 0) != (rc == 0))
                    return 2;
                tm_solver_stats st;
                tm_solver_get_stats(s, &st);
                rhs_calls += st.rhs_evals;
                tm_solver_free(s);
                tidemark_region_end();
            }
        }
    }
    printf("%ld\n", rhs_calls);
    return 0;
}
