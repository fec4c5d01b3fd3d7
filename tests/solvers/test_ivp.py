"""tidemark.ivp: Burgers with every solver and every CVODE corrector against
scipy at N = 101 and 1001, the C right-hand side against the NumPy one, the
counters, errors and exceptions."""
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

# (solver, linear solver): every method, and each CVODE corrector that fits
# it (Adams is non-stiff: fixed-point or matrix-free Newton; dense BDF only
# where n^3 is cheap).
VARIANTS = [("dopri5", None), ("cvode-adams", None), ("cvode-adams", "spgmr"),
            ("cvode-bdf", "band"), ("cvode-bdf", "spgmr"), ("cvode-bdf", "spgmr-band")]


def scipy_reference(n, t_end=2.0):
    _, dx = bp.grid(n)
    r = ode(lambda t, u: bp.rhs(t, u, dx)).set_integrator("dopri5", rtol=1e-10, atol=1e-10,
                                                           nsteps=100000)
    r.set_initial_value(bp.initial(n), 0.0)
    return r.integrate(t_end)


class Burgers(unittest.TestCase):
    refs = {}

    @classmethod
    def setUpClass(cls):
        cls.ref = cls.reference(N)

    @classmethod
    def reference(cls, n):
        if n not in cls.refs:
            cls.refs[n] = scipy_reference(n)
        return cls.refs[n]

    def solve(self, name, rhs, times=(2.0,), linear_solver=None, n=N):
        s = ivp.Solver(name)
        s.set_rhs(rhs)
        s.set_tolerances(1e-10, 1e-10)
        s.set_max_steps(100000)
        if linear_solver:
            s.set_bandwidth(*bp.BANDWIDTH)
            s.set_linear_solver(linear_solver)
        s.set_initial_value(bp.initial(n), 0.0)
        for t in times:
            y = s.integrate(t)
        self.assertEqual(s.t, times[-1])
        return y, s.stats()

    def check(self, y, n=N):
        ref = self.reference(n)
        rel = np.max(np.abs(y - ref)) / np.max(np.abs(ref))
        self.assertLess(rel, 1e-6)

    def test_every_variant_at_101_and_1001(self):
        for n in (101, 1001):
            _, dx = bp.grid(n)
            for name, ls in VARIANTS + ([("cvode-bdf", "dense")] if n == 101 else []):
                for kind, rhs in (("C", ivp.burgers_rhs(n)),
                                  ("NumPy", lambda t, u, ud, dx=dx: bp.rhs_into(t, u, ud, dx))):
                    with self.subTest(n=n, solver=name, linear_solver=ls, rhs=kind):
                        y, st = self.solve(name, rhs, linear_solver=ls, n=n)
                        self.check(y, n)
                        self.assertGreater(st["steps"], 10)

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

    def test_counters(self):
        """Adams' fixed-point iteration costs one call per iteration; BDF's
        banded Jacobian lower + upper + 1 = 3 calls (a dense one, n), which
        shows the declared bandwidth is the one used."""
        _, ad = self.solve("cvode-adams", ivp.burgers_rhs(N))
        self.assertEqual((ad["linear_iters"], ad["jac_evals"], ad["linear_setups"]), (0, 0, 0))
        self.assertTrue(1 <= ad["rhs_evals"] - ad["nonlinear_iters"] <= 5, ad)
        self.assertTrue(1 <= ad["order"] <= ad["max_order"] <= 12, ad)
        _, bdf = self.solve("cvode-bdf", ivp.burgers_rhs(N), linear_solver="band")
        self.assertGreater(bdf["jac_evals"], 0)
        self.assertTrue(1 <= bdf["rhs_evals"] - bdf["nonlinear_iters"] - 3 * bdf["jac_evals"] <= 5,
                        bdf)
        self.assertLess(bdf["nonlinear_fails"], bdf["steps"] // 100 + 1, bdf)
        self.assertTrue(1 <= bdf["order"] <= bdf["max_order"] <= 5, bdf)
        _, kr = self.solve("cvode-bdf", ivp.burgers_rhs(N), linear_solver="spgmr-band")
        self.assertGreater(kr["linear_iters"], 0)
        self.assertGreater(kr["jac_evals"], 0)
        s = ivp.Solver("cvode-adams")
        s.set_rhs(ivp.burgers_rhs(N))
        s.set_max_order(2)
        s.set_initial_value(bp.initial(N))
        s.integrate(0.5)
        self.assertEqual(s.stats()["max_order"], 2)

    def test_declared_bandwidth(self):
        self.assertEqual(ivp.burgers_rhs(7).bandwidth, bp.BANDWIDTH)
        self.assertEqual(bp.BANDWIDTH, (1, 1))

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

    def test_linear_solver_choice(self):
        self.assertEqual(ivp.linear_solver_names,
                         ("fixed-point", "dense", "band", "spgmr", "spgmr-band"))
        self.assertEqual(ivp.Solver("dopri5").linear_solver, "none")
        self.assertEqual(ivp.Solver("cvode-adams").linear_solver, "fixed-point")
        s = ivp.Solver("cvode-bdf")
        self.assertEqual(s.linear_solver, "dense")
        s.set_bandwidth(1, 1)
        self.assertEqual(s.linear_solver, "band")
        with self.assertRaisesRegex(ValueError, "explicit"):
            ivp.Solver("dopri5").set_linear_solver("band")
        with self.assertRaisesRegex(ValueError, "unknown linear solver 'lu'"):
            s.set_linear_solver("lu")
        with self.assertRaisesRegex(ValueError, "bandwidths must be >= 0"):
            s.set_bandwidth(-1, 0)
        with self.assertRaisesRegex(ValueError, "max order must be 1 to 5"):
            s.set_max_order(6)
        with self.assertRaisesRegex(ValueError, "max order must be 1 to 5"):
            s.set_max_order(2**40)
        b = ivp.Solver("cvode-bdf")
        b.set_rhs(ivp.burgers_rhs(N))
        b.set_linear_solver("spgmr-band")
        with self.assertRaisesRegex(ValueError, "needs the problem's bandwidth"):
            b.set_initial_value(bp.initial(N))
        with self.assertRaisesRegex(RuntimeError, "set_initial_value first"):
            b.integrate(0.1)
        b.set_bandwidth(*bp.BANDWIDTH)
        b.set_initial_value(bp.initial(N))
        b.integrate(0.1)
        b.set_linear_solver(None)
        with self.assertRaisesRegex(RuntimeError, "call set_initial_value"):
            b.integrate(0.2)

    def test_exception_propagates(self):
        for name, ls in VARIANTS:
            s = ivp.Solver(name)
            if ls:
                s.set_bandwidth(1, 1)
                s.set_linear_solver(ls)

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
