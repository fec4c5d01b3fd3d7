/* cycles.c — run under the tracer: each solver set up, run (also into its
 * error paths) and freed inside a region "cycle"; every invocation must
 * give back exactly what it took (checked by check_cycles.py). */
#include <math.h>
#include <stddef.h>

#include "tidemark.h"
#include "tm_solver.h"

static int decay(double t, const tm_array *y, tm_array *ydot, void *ud)
{
    for (intptr_t i = 0; i < tm_array_size(y); i++)
        ydot->data[i] = -y->data[i];
    return ud && t > 0.5 ? 1 : 0;   /* with user data: fail after t=0.5 */
}

int main(void)
{
    static int fail = 1;
    for (int round = 0; round < 10; round++) {
        for (int k = 0; tm_solver_names[k]; k++) {
            for (int mode = 0; mode < 3; mode++) {
                tidemark_region_begin("cycle");
                tm_solver *s;
                if (tm_solver_create(tm_solver_names[k], &s))
                    return 1;
                double y0[4] = {1, 2, 3, 4}, y[4];
                intptr_t n = 4;
                tm_solver_set_rhs(s, decay, mode == 1 ? &fail : NULL);
                tm_solver_set_tolerances(s, 1e-8, 1e-10);
                if (mode == 2)
                    tm_solver_set_max_steps(s, 2);
                tm_solver_set_initial_value(s, 0.0, y0, 1, &n);
                int rc = tm_solver_integrate(s, 1.0, y);
                if ((mode == 0) != (rc == 0))
                    return 2;
                tm_solver_free(s);
                tidemark_region_end();
            }
        }
    }
    return 0;
}
