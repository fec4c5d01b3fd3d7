"""tidemark.ivp: Burgers with every solver against scipy, the C right-hand
side against the NumPy one, errors and exceptions."""
import os
import sys
import unittest

import numpy as np
from scipy.integrate import ode

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "samples", "burgers"))
import burgers_problem as bp  # noqa: E402

from tidemark import ivp  # noqa: E402

N = 101


def scipy_reference(n, t_end=2.0):
    _, dx = bp.grid(n)
    r = ode(lambda t, u: bp.rhs(t, u, dx)).set_integrator("dopri5", rtol=1e-10, atol=1e-10,
                                                           nsteps=100000)
    r.set_initial_value(bp.initial(n), 0.0)
    return r.integrate(t_end)


class Burgers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = scipy_reference(N)

    def solve(self, name, rhs, times=(2.0,)):
        s = ivp.Solver(name)
        s.set_rhs(rhs)
        s.set_tolerances(1e-10, 1e-10)
        s.set_max_steps(100000)
        s.set_initial_value(bp.initial(N), 0.0)
        for t in times:
            y = s.integrate(t)
        self.assertEqual(s.t, times[-1])
        return y, s.stats()

    def check(self, y):
        rel = np.max(np.abs(y - self.ref)) / np.max(np.abs(self.ref))
        self.assertLess(rel, 1e-6)

    def test_every_solver_c_rhs(self):
        for name in ivp.solver_names:
            with self.subTest(name):
                y, st = self.solve(name, ivp.burgers_rhs(N))
                self.check(y)
                self.assertGreater(st["steps"], 10)
                self.assertGreaterEqual(st["rhs_evals"], st["steps"])

    def test_every_solver_python_rhs(self):
        _, dx = bp.grid(N)
        for name in ivp.solver_names:
            with self.subTest(name):
                y, _ = self.solve(name, lambda t, u, udot: bp.rhs_into(t, u, udot, dx))
                self.check(y)

    def test_output_times_do_not_shorten_steps(self):
        _, st_one = self.solve("dopri5", ivp.burgers_rhs(N))
        y, st_many = self.solve("dopri5", ivp.burgers_rhs(N), bp.output_times(N))
        self.check(y)
        self.assertEqual(st_one["steps"], st_many["steps"])

    def test_c_rhs_matches_numpy(self):
        rng = np.random.default_rng(7)
        for n in (3, 101, 1001):
            _, dx = bp.grid(n)
            c = ivp.burgers_rhs(n)
            for _ in range(5):
                u = rng.uniform(-1, 1, n)
                want = bp.rhs(0.0, u, dx)
                got = c(0.0, u)
                self.assertLess(np.max(np.abs(got - want)), 1e-14 * max(1.0, np.max(np.abs(want))))


class Errors(unittest.TestCase):
    def test_unknown_solver(self):
        with self.assertRaisesRegex(ValueError, "unknown solver"):
            ivp.Solver("rk4")

    def test_bad_tolerances_and_values(self):
        s = ivp.Solver("dopri5")
        with self.assertRaisesRegex(ValueError, "tolerances"):
            s.set_tolerances(-1.0, 1e-6)
        with self.assertRaisesRegex(ValueError, "not finite"):
            s.set_initial_value(np.array([1.0, np.nan]))
        with self.assertRaisesRegex(RuntimeError, "right-hand side"):
            s.set_initial_value(np.ones(2))
            s.integrate(1.0)

    def test_exception_propagates(self):
        for name in ivp.solver_names:
            s = ivp.Solver(name)

            def bad(t, y, ydot):
                if t > 0.1:
                    raise ZeroDivisionError("rhs gave up at t=%.2f" % t)
                ydot[:] = -y

            s.set_rhs(bad)
            s.set_initial_value(np.ones(3))
            with self.assertRaisesRegex(ZeroDivisionError, "rhs gave up"):
                s.integrate(1.0)

    def test_max_steps(self):
        s = ivp.Solver("dopri5")
        s.set_rhs(ivp.burgers_rhs(N))
        s.set_tolerances(1e-12, 1e-12)
        s.set_max_steps(3)
        s.set_initial_value(bp.initial(N))
        with self.assertRaisesRegex(RuntimeError, "max_steps"):
            s.integrate(2.0)


if __name__ == "__main__":
    unittest.main()
