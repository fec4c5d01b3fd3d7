/* burgers.c — the seed's Burgers right-hand side in C (docs/design.md;
 * samples/burgers/burgers_problem.py is the reference it must match):
 * udot = -(F[i+1/2] - F[i-1/2]) / dx with the Rusanov flux, the global
 * max|u| as dissipation speed, and the periodic boundary flux joining the
 * last point to the first.  Fluxes are computed on the fly: no scratch, no
 * allocation. */
#include <math.h>

#include "tm_burgers.h"

int tm_burgers_rhs(double t, const tm_array *y, tm_array *ydot, void *user_data)
{
    const tm_burgers *b = user_data;
    intptr_t n = tm_array_size(y);
    if (n != b->n || tm_array_size(ydot) != n || n < 3)
        return -1;
    const double *u = y->data;
    double *du = ydot->data;
    double c = 0;
    for (intptr_t i = 0; i < n; i++)
        c = fmax(c, fabs(u[i]));
    /* Same operation order as the NumPy reference, so results agree to
     * rounding. */
    double fb = 0.5 * (0.5 * u[n - 1] * u[n - 1] + 0.5 * u[0] * u[0]) -
                0.5 * c * (u[0] - u[n - 1]);
    double prev = fb;   /* flux on the left of point i */
    for (intptr_t i = 0; i < n - 1; i++) {
        double fi = 0.5 * u[i] * u[i], fj = 0.5 * u[i + 1] * u[i + 1];
        double flux = 0.5 * (fi + fj) - 0.5 * c * (u[i + 1] - u[i]);
        du[i] = -(flux - prev) / b->dx;
        prev = flux;
    }
    du[n - 1] = -(fb - prev) / b->dx;
    (void)t;
    return 0;
}

void tm_burgers_init(tm_burgers *b, intptr_t n)
{
    b->n = n;
    b->dx = 2.0 / (double)(n - 1);
}
