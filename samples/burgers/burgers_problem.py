"""The reference workload (docs/design.md): inviscid Burgers' equation

    u_t + (u^2/2)_x = 0,  x in [0, 2], t in [0, 2],  u0 = 0.5 - 0.25 sin(pi x),

periodic, on x = linspace(0, 2, N) (dx = 2/(N-1)), with the Rusanov flux
using the global max|u| as the dissipation speed.  Output times every
0.5*dx up to t = 2.  This file is the reference definition: the C
right-hand side in solvers/ must agree with rhs() to 1e-14.
"""
import numpy as np

T_FINAL = 2.0

# The Jacobian band the problem declares to implicit solvers (lower, upper):
# the three-point stencil.  The periodic boundary flux (two corner entries)
# and the global max|u| (one dense column, small where u is smooth) lie
# outside it; Newton converges without them (solvers/include/tm_burgers.h).
BANDWIDTH = (1, 1)


def grid(n):
    x = np.linspace(0.0, 2.0, n)
    return x, 2.0 / (n - 1)


def initial(n):
    x, _ = grid(n)
    return 0.5 - 0.25 * np.sin(np.pi * x)


def output_times(n):
    """Times at which the benchmark asks for the solution (excluding t=0)."""
    _, dx = grid(n)
    dt = 0.5 * dx
    times = np.arange(dt, T_FINAL, dt)
    return np.append(times, T_FINAL) if times[-1] < T_FINAL else times


def rhs_into(t, u, udot, dx):
    """udot = -(F_{i+1/2} - F_{i-1/2}) / dx, written in place.

    Interface fluxes F[i] between points i and i+1; the periodic boundary
    flux Fb joins the last point with the first.
    """
    f = 0.5 * u * u
    c = np.max(np.abs(u))
    flux = 0.5 * (f[:-1] + f[1:]) - 0.5 * c * (u[1:] - u[:-1])
    fb = 0.5 * (f[-1] + f[0]) - 0.5 * c * (u[0] - u[-1])
    udot[1:-1] = -(flux[1:] - flux[:-1]) / dx
    udot[0] = -(flux[0] - fb) / dx
    udot[-1] = -(fb - flux[-1]) / dx


def rhs(t, u, dx):
    """Returning variant, for scipy's ode (f(t, y) -> ydot)."""
    udot = np.empty_like(u)
    rhs_into(t, u, udot, dx)
    return udot
