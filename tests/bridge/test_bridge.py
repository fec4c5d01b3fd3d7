"""tidemark.bridge: round trips both ways, shapes, argument errors,
exceptions crossing C, reference counts over many calls."""
import sys
import unittest

import numpy as np

import tidemark
from tidemark import bridge


def decay(t, y, ydot):
    ydot[...] = -t * y


class RoundTrip(unittest.TestCase):
    def test_python_to_c_to_python(self):
        f = bridge.py_callable(bridge.c_callback(decay))
        y = np.linspace(0.0, 1.0, 7)
        np.testing.assert_array_equal(f(2.0, y), -2.0 * y)

    def test_two_dimensional(self):
        f = bridge.py_callable(bridge.c_callback(decay))
        y = np.arange(12.0).reshape(3, 4)
        out = f(0.5, y)
        self.assertEqual(out.shape, (3, 4))
        np.testing.assert_array_equal(out, -0.5 * y)

    def test_out_is_filled_in_place(self):
        f = bridge.py_callable(bridge.copy_rhs())
        y = np.arange(5.0)
        out = np.zeros(5)
        self.assertIs(f(0.0, y, out=out), out)
        np.testing.assert_array_equal(out, y)
        out2 = np.zeros(5)
        f(0.0, y, out2)
        np.testing.assert_array_equal(out2, y)

    def test_c_calls_python_with_views(self):
        seen = []

        def rhs(t, y, ydot):
            seen.append((t, y.flags.writeable, ydot.flags.writeable, y.shape))
            ydot[:] = y + 1

        cb = bridge.c_callback(rhs, name="plus_one")
        y, ydot = np.arange(4.0), np.zeros(4)
        bridge.call_rhs(cb, 3.0, y, ydot)
        np.testing.assert_array_equal(ydot, y + 1)
        self.assertEqual(seen, [(3.0, False, True, (4,))])
        self.assertEqual(cb.name, "plus_one")

    def test_views_see_new_data(self):
        cb = bridge.c_callback(decay)
        y, ydot = np.ones(3), np.zeros(3)
        bridge.call_rhs(cb, 1.0, y, ydot)
        y[:] = 5.0                     # same buffer, new values
        bridge.call_rhs(cb, 1.0, y, ydot)
        np.testing.assert_array_equal(ydot, -5.0 * np.ones(3))
        z = np.full(6, 2.0)            # another buffer and shape
        zdot = np.zeros(6)
        bridge.call_rhs(cb, 1.0, z, zdot)
        np.testing.assert_array_equal(zdot, -2.0 * np.ones(6))

    def test_returned_array_is_copied(self):
        cb = bridge.c_callback(lambda t, y, ydot: 2 * y)
        y, ydot = np.arange(3.0), np.zeros(3)
        bridge.call_rhs(cb, 0.0, y, ydot)
        np.testing.assert_array_equal(ydot, 2 * y)

    def test_kept_view_is_not_overwritten(self):
        kept = []
        cb = bridge.c_callback(lambda t, y, ydot: kept.append(y))
        a, b, out = np.ones(3), np.full(3, 2.0), np.zeros(3)
        bridge.call_rhs(cb, 0.0, a, out)
        bridge.call_rhs(cb, 0.0, b, out)
        self.assertIsNot(kept[0], kept[1])


class Errors(unittest.TestCase):
    def setUp(self):
        self.f = bridge.py_callable(bridge.copy_rhs())

    def test_wrong_dtype(self):
        with self.assertRaisesRegex(TypeError, "float64"):
            self.f(0.0, np.arange(3))

    def test_not_an_array(self):
        with self.assertRaisesRegex(TypeError, "numpy.ndarray"):
            self.f(0.0, [1.0, 2.0])

    def test_not_contiguous(self):
        with self.assertRaisesRegex(ValueError, "C-contiguous"):
            self.f(0.0, np.arange(10.0)[::2])

    def test_out_shape(self):
        with self.assertRaisesRegex(ValueError, "shape"):
            self.f(0.0, np.arange(3.0), out=np.zeros(4))

    def test_out_readonly(self):
        out = np.zeros(3)
        out.flags.writeable = False
        with self.assertRaisesRegex(ValueError, "writeable"):
            self.f(0.0, np.arange(3.0), out=out)

    def test_not_a_c_callback(self):
        with self.assertRaisesRegex(TypeError, "__tidemark_rhs__"):
            bridge.py_callable(object())
        with self.assertRaisesRegex(TypeError, "callable"):
            bridge.c_callback(42)

    def test_exception_propagates(self):
        def bad(t, y, ydot):
            raise KeyError("boom at %g" % t)

        f = bridge.py_callable(bridge.c_callback(bad))
        with self.assertRaises(KeyError) as cm:
            f(1.5, np.ones(2))
        self.assertIn("boom at 1.5", str(cm.exception))
        with self.assertRaises(KeyError):
            bridge.call_rhs(bridge.c_callback(bad), 0.0, np.ones(2), np.zeros(2))


class RefCounts(unittest.TestCase):
    def test_no_reference_leaks(self):
        cb = bridge.c_callback(decay)
        f = bridge.py_callable(cb)
        y, out = np.ones(8), np.zeros(8)
        refs = lambda: (sys.getrefcount(decay), sys.getrefcount(cb), sys.getrefcount(y),
                        sys.getrefcount(out))
        for _ in range(100):           # warm the view cache
            f(0.0, y, out)
        before = refs()
        blocks = sys.getallocatedblocks()
        for _ in range(100000):
            f(0.0, y, out)
            f(0.0, y)
        self.assertEqual(refs(), before)
        self.assertLess(sys.getallocatedblocks() - blocks, 50)

    def test_callback_outlives_its_name(self):
        f = bridge.py_callable(bridge.c_callback(lambda t, y, ydot: None, name="tmp" * 3))
        f(0.0, np.ones(1))
        self.assertIn("tmptmptmp", repr(f.owner))


class Regions(unittest.TestCase):
    def test_region_and_mark_without_tracer(self):
        with tidemark.region("nothing") as r:
            tidemark.mark("label")
        self.assertEqual(r.name, "nothing")
        with self.assertRaises(TypeError):
            tidemark.region(3)


if __name__ == "__main__":
    unittest.main()
