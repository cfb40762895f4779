"""The vectorizable exponentials behind GELU and attention, against NumPy over their whole ranges."""
import numpy as np
from numba import njit

from transformer_jit.kernels.fast_exp import exp32, exp64, sigmoid


@njit
def _apply(fn, x, out):
    for i in range(x.size):
        out[i] = fn(x[i])


@njit
def _sigmoid_of(x, out):
    for i in range(x.size):
        out[i] = sigmoid(x[i])


def test_exp64_relative_error_inside_its_clamp():
    y = np.linspace(-40.0, 40.0, 100_001)
    out = np.empty_like(y)
    _apply(exp64, y, out)
    np.testing.assert_allclose(out, np.exp(y), rtol=1e-12)


def test_exp32_is_float32_accurate_to_a_few_ulps():
    y = np.linspace(-87.0, 87.0, 1_000_001).astype(np.float32)
    out = np.empty_like(y)
    _apply(exp32, y, out)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.exp(y.astype(np.float64)), rtol=4e-7)  # float32 ulp: 1.2e-7
    clamped = np.empty(2, np.float32)
    _apply(exp32, np.array([-200.0, 200.0], np.float32), clamped)
    np.testing.assert_allclose(clamped, np.exp([-87.0, 87.0]), rtol=4e-7)  # finite, normal floats


def test_sigmoid_keeps_the_precision_of_its_argument():
    z = np.linspace(-30.0, 30.0, 10_001)
    ref = 1.0 / (1.0 + np.exp(-z))
    out64, out32 = np.empty_like(z), np.empty(z.size, np.float32)
    _sigmoid_of(z, out64)
    _sigmoid_of(z.astype(np.float32), out32)
    np.testing.assert_allclose(out64, ref, rtol=1e-12)
    np.testing.assert_allclose(out32, 1.0 / (1.0 + np.exp(-z.astype(np.float32).astype(np.float64))), rtol=4e-7)
