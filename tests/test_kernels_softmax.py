import numba
import numpy as np
import pytest
from numba import prange

from gradcheck import assert_grad_close, numerical_grad
from transformer_jit.kernels.softmax import (
    log_softmax_backward,
    log_softmax_forward,
    softmax_backward,
    softmax_forward,
    softmax_jacobian,
    softmax_jvp,
    softmax_vjp,
)


def ref_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_log_softmax(x):
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def run_softmax(x):
    out = np.empty_like(x)
    softmax_forward(out, x)
    return out


def run_log_softmax(x):
    out = np.empty_like(x)
    log_softmax_forward(out, x)
    return out


# ---------------------------------------------------------------- forwards against NumPy


def test_softmax_forward_matches_numpy(rng):
    x = rng.standard_normal((7, 11)) * 3
    y = run_softmax(x)
    np.testing.assert_allclose(y, ref_softmax(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)


def test_softmax_forward_large_logits_no_overflow():
    # exp(1000) overflows float64; subtracting the row max keeps every exponent <= 0.
    x = np.array([[1000.0, 999.0, 998.0], [-1000.0, 0.0, 1000.0], [1000.0, 1000.0, 1000.0]])
    y = run_softmax(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, ref_softmax(x), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(y[2], 1.0 / 3.0, rtol=1e-14)
    y32 = run_softmax(x.astype(np.float32))
    assert np.all(np.isfinite(y32))
    np.testing.assert_allclose(y32, ref_softmax(x), rtol=1e-5, atol=1e-7)


def test_softmax_forward_in_place(rng):
    x = rng.standard_normal((5, 9))
    expected = ref_softmax(x)
    softmax_forward(x, x)  # out aliases inp
    np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-15)


def test_log_softmax_forward_matches_numpy(rng):
    x = rng.standard_normal((6, 10)) * 3
    z = run_log_softmax(x)
    np.testing.assert_allclose(z, ref_log_softmax(x), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.exp(z), ref_softmax(x), rtol=1e-12, atol=1e-15)


def test_log_softmax_forward_large_logits_stay_finite():
    # softmax of [0, -1000] underflows to [1, 0]; log-softmax must still give the exact -1000.
    x = np.array([[0.0, -1000.0, 1000.0], [1000.0, 999.0, 0.0]])
    z = run_log_softmax(x)
    assert np.all(np.isfinite(z))
    np.testing.assert_allclose(z, ref_log_softmax(x), rtol=1e-12)
    np.testing.assert_allclose(z[0, 1], -2000.0, rtol=1e-12)


def test_log_softmax_forward_in_place(rng):
    x = rng.standard_normal((4, 8))
    expected = ref_log_softmax(x)
    log_softmax_forward(x, x)
    np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------- backwards against finite differences


def test_softmax_backward_gradcheck(rng):
    x = rng.standard_normal((4, 7))
    R = rng.standard_normal((4, 7))  # loss = sum(softmax(x) * R), so dL/dy = R
    y = run_softmax(x)
    dinp = np.zeros_like(x)
    softmax_backward(dinp, R, y)
    numeric = numerical_grad(lambda: float(np.sum(run_softmax(x) * R)), x)
    assert_grad_close("softmax_backward", dinp, numeric)


def test_softmax_backward_accumulates(rng):
    x = rng.standard_normal((3, 5))
    R = rng.standard_normal((3, 5))
    y = run_softmax(x)
    fresh = np.zeros_like(x)
    softmax_backward(fresh, R, y)
    start = rng.standard_normal((3, 5))
    acc = start.copy()
    softmax_backward(acc, R, y)
    np.testing.assert_allclose(acc, start + fresh, rtol=1e-14, atol=1e-15)


def test_log_softmax_backward_gradcheck(rng):
    x = rng.standard_normal((4, 7))
    R = rng.standard_normal((4, 7))
    z = run_log_softmax(x)
    start = rng.standard_normal((4, 7))  # also proves accumulation
    dinp = start.copy()
    log_softmax_backward(dinp, R, z)
    numeric = numerical_grad(lambda: float(np.sum(run_log_softmax(x) * R)), x)
    assert_grad_close("log_softmax_backward", dinp - start, numeric)


# ---------------------------------------------------------------- the Jacobian and its products


def test_softmax_jacobian_matches_finite_differences(rng):
    n = 6
    x = rng.standard_normal((1, n))
    y = run_softmax(x)[0]
    jac = np.empty((n, n))
    softmax_jacobian(jac, y)
    # row i of J is the gradient of y_i with respect to x
    numeric = np.stack(
        [numerical_grad(lambda i=i: float(run_softmax(x)[0, i]), x)[0] for i in range(n)]
    )
    assert_grad_close("softmax_jacobian", jac, numeric)
    np.testing.assert_allclose(jac, np.diag(y) - np.outer(y, y), rtol=1e-14, atol=1e-16)
    np.testing.assert_array_equal(jac, jac.T)  # symmetric
    np.testing.assert_allclose(jac.sum(axis=1), 0.0, atol=1e-15)  # softmax is shift-invariant


def test_softmax_jvp_and_vjp_match_explicit_jacobian(rng):
    n = 9
    y = ref_softmax(rng.standard_normal(n))
    v = rng.standard_normal(n)
    jac = np.empty((n, n))
    softmax_jacobian(jac, y)
    jv = np.empty(n)
    softmax_jvp(jv, y, v)
    np.testing.assert_allclose(jv, jac @ v, rtol=1e-12, atol=1e-15)
    vj = np.empty(n)
    softmax_vjp(vj, y, v)
    np.testing.assert_allclose(vj, jac.T @ v, rtol=1e-12, atol=1e-15)
    # the products write (not accumulate), and out may alias v
    softmax_vjp(v, y, v)
    np.testing.assert_allclose(v, vj, rtol=1e-15, atol=0)


@numba.njit(parallel=True)
def _rowwise_vjp(dx, y, g):
    # how another kernel (e.g. attention) uses softmax_vjp: on 1-D row slices in a prange loop
    for i in prange(y.shape[0]):
        softmax_vjp(dx[i], y[i], g[i])


def test_softmax_vjp_callable_from_njit_on_row_slices(rng):
    x = rng.standard_normal((5, 8))
    g = rng.standard_normal((5, 8))
    y = run_softmax(x)
    via_vjp = np.empty_like(x)
    _rowwise_vjp(via_vjp, y, g)
    via_backward = np.zeros_like(x)
    softmax_backward(via_backward, g, y)
    np.testing.assert_allclose(via_vjp, via_backward, rtol=1e-14, atol=1e-16)


# ---------------------------------------------------------------- float32 and interpreted agreement


def test_float32_agrees_with_float64(rng):
    x = rng.standard_normal((5, 12)) * 4
    R = rng.standard_normal((5, 12))
    x32, R32 = x.astype(np.float32), R.astype(np.float32)

    y64, y32 = run_softmax(x), run_softmax(x32)
    z64, z32 = run_log_softmax(x), run_log_softmax(x32)
    assert y32.dtype == np.float32 and z32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(z32, z64, rtol=1e-5, atol=1e-5)

    d64, d32 = np.zeros_like(x), np.zeros_like(x32)
    softmax_backward(d64, R, y64)
    softmax_backward(d32, R32, y32)
    np.testing.assert_allclose(d32, d64, rtol=1e-4, atol=1e-6)

    d64, d32 = np.zeros_like(x), np.zeros_like(x32)
    log_softmax_backward(d64, R, z64)
    log_softmax_backward(d32, R32, z32)
    np.testing.assert_allclose(d32, d64, rtol=1e-4, atol=1e-5)

    y, v = y64[0], R[0]
    y_32, v_32 = y.astype(np.float32), v.astype(np.float32)
    for fn in (softmax_jvp, softmax_vjp):
        o64, o32 = np.empty(12), np.empty(12, np.float32)
        fn(o64, y, v)
        fn(o32, y_32, v_32)
        np.testing.assert_allclose(o32, o64, rtol=1e-4, atol=1e-6)
    j64, j32 = np.empty((12, 12)), np.empty((12, 12), np.float32)
    softmax_jacobian(j64, y)
    softmax_jacobian(j32, y_32)
    np.testing.assert_allclose(j32, j64, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "name",
    ["softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward",
     "softmax_jacobian", "softmax_jvp", "softmax_vjp"],
)
def test_py_func_agrees_with_compiled(rng, name):
    x = rng.standard_normal((3, 4))
    g = rng.standard_normal((3, 4))
    y = run_softmax(x)
    z = run_log_softmax(x)
    start = rng.standard_normal((3, 4))
    cases = {
        "softmax_forward": (softmax_forward, lambda: (np.empty_like(x), x)),
        "softmax_backward": (softmax_backward, lambda: (start.copy(), g, y)),
        "log_softmax_forward": (log_softmax_forward, lambda: (np.empty_like(x), x)),
        "log_softmax_backward": (log_softmax_backward, lambda: (start.copy(), g, z)),
        "softmax_jacobian": (softmax_jacobian, lambda: (np.empty((4, 4)), y[0])),
        "softmax_jvp": (softmax_jvp, lambda: (np.empty(4), y[0], g[0])),
        "softmax_vjp": (softmax_vjp, lambda: (np.empty(4), y[0], g[0])),
    }
    fn, make_args = cases[name]
    compiled_args, interpreted_args = make_args(), make_args()
    fn(*compiled_args)
    fn.py_func(*interpreted_args)
    np.testing.assert_allclose(interpreted_args[0], compiled_args[0], rtol=1e-12, atol=1e-15)
