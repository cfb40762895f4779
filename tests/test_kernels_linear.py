"""Linear layer kernels: NumPy reference, finite differences, float32, interpreted agreement."""
import numpy as np
import pytest

from gradcheck import assert_grad_close, numerical_grad
from transformer_jit.kernels._jit import interpreted
from transformer_jit.kernels.linear import linear_backward, linear_forward

# Small shapes, one or two 8 x 32 register tiles at most: the edge cases of the matrix multiply's
# padding (tests/test_kernels_matmul.py covers shapes across several tiles and depth slices).
SHAPES = [(1, 1, 1), (3, 5, 2), (4, 8, 4), (5, 3, 7), (6, 7, 9), (9, 4, 6)]


def make(rng, N, C, OC, dtype=np.float64):
    x = rng.standard_normal((N, C)).astype(dtype)
    w = rng.standard_normal((OC, C)).astype(dtype)
    b = rng.standard_normal(OC).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("N,C,OC", SHAPES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_forward_matches_numpy(rng, N, C, OC, with_bias):
    x, w, b = make(rng, N, C, OC)
    out = np.full((N, OC), np.nan)  # overwritten, never read
    linear_forward(out, x, w, b if with_bias else np.empty(0))
    ref = x @ w.T + (b if with_bias else 0.0)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("N,C,OC", [(5, 3, 7), (4, 6, 2)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_backward_finite_differences(rng, N, C, OC, with_bias):
    x, w, b = make(rng, N, C, OC)
    bias = b if with_bias else np.empty(0)
    R = rng.standard_normal((N, OC))  # loss = sum(out * R), so dout = R
    out = np.empty((N, OC))

    def loss():
        linear_forward(out, x, w, bias)
        return float(np.sum(out * R))

    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    db = np.zeros_like(b) if with_bias else np.empty(0)
    linear_backward(dx, dw, db, R, x, w, True)

    tag = "bias" if with_bias else "nobias"
    assert_grad_close(f"linear dinp ({tag})", dx, numerical_grad(loss, x))
    assert_grad_close(f"linear dweight ({tag})", dw, numerical_grad(loss, w))
    if with_bias:
        assert_grad_close("linear dbias", db, numerical_grad(loss, b))


@pytest.mark.parametrize("N,C,OC", SHAPES)
def test_backward_matches_numpy_and_accumulates(rng, N, C, OC):
    x, w, _ = make(rng, N, C, OC)
    dout = rng.standard_normal((N, OC))
    dx0 = rng.standard_normal((N, C))
    dw0 = rng.standard_normal((OC, C))
    db0 = rng.standard_normal(OC)
    dx, dw, db = dx0.copy(), dw0.copy(), db0.copy()
    linear_backward(dx, dw, db, dout, x, w, True)
    np.testing.assert_allclose(dx, dx0 + dout @ w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dw0 + dout.T @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, db0 + dout.sum(axis=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("N,C,OC", SHAPES)
def test_backward_overwrites_dinp_when_not_accumulating(rng, N, C, OC):
    """accumulate=False writes dinp without reading it; the weight gradients still accumulate."""
    x, w, _ = make(rng, N, C, OC)
    dout = rng.standard_normal((N, OC))
    dw0, db0 = rng.standard_normal((OC, C)), rng.standard_normal(OC)
    dx, dw, db = np.full((N, C), np.nan), dw0.copy(), db0.copy()
    linear_backward(dx, dw, db, dout, x, w, False)
    np.testing.assert_allclose(dx, dout @ w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dw0 + dout.T @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, db0 + dout.sum(axis=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_bias", [True, False])
def test_backward_without_dinp(rng, with_bias):
    """dinp=None skips the input gradient and leaves the weight gradients unchanged."""
    N, C, OC = 7, 5, 6
    x, w, _ = make(rng, N, C, OC)
    dout = rng.standard_normal((N, OC))
    dw_full, db_full = np.zeros((OC, C)), np.zeros(OC)
    linear_backward(np.zeros((N, C)), dw_full, db_full, dout, x, w, True)
    dw, db = np.zeros((OC, C)), (np.zeros(OC) if with_bias else np.empty(0))
    linear_backward(None, dw, db, dout, x, w, True)
    np.testing.assert_array_equal(dw, dw_full)
    if with_bias:
        np.testing.assert_array_equal(db, db_full)


def test_float32_agrees_with_float64(rng):
    N, C, OC = 10, 37, 13
    x, w, b = make(rng, N, C, OC)
    dout = rng.standard_normal((N, OC))
    f32 = [a.astype(np.float32) for a in (x, w, b, dout)]

    out64 = np.empty((N, OC))
    linear_forward(out64, x, w, b)
    out32 = np.empty((N, OC), np.float32)
    linear_forward(out32, *f32[:3])
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-4)

    g64 = [np.zeros((N, C)), np.zeros((OC, C)), np.zeros(OC)]
    linear_backward(*g64, dout, x, w, True)
    g32 = [np.zeros((N, C), np.float32), np.zeros((OC, C), np.float32), np.zeros(OC, np.float32)]
    linear_backward(*g32, f32[3], f32[0], f32[1], True)
    for a32, a64 in zip(g32, g64):
        assert a32.dtype == np.float32
        np.testing.assert_allclose(a32, a64, rtol=1e-4, atol=1e-4)


def test_interpreted_matches_compiled(rng):
    N, C, OC = 5, 3, 6
    x, w, b = make(rng, N, C, OC)
    dout = rng.standard_normal((N, OC))
    for bias in (b, np.empty(0)):
        jit_out, py_out = np.empty((N, OC)), np.empty((N, OC))
        linear_forward(jit_out, x, w, bias)
        with interpreted(linear_forward) as forward:  # the matrix multiply interpreted too
            forward(py_out, x, w, bias)
        np.testing.assert_allclose(py_out, jit_out, rtol=1e-13, atol=1e-13)

    for accumulate in (True, False):
        jit_g = [np.ones((N, C)), np.zeros((OC, C)), np.zeros(OC)]
        py_g = [np.ones((N, C)), np.zeros((OC, C)), np.zeros(OC)]
        linear_backward(*jit_g, dout, x, w, accumulate)
        with interpreted(linear_backward) as backward:
            backward(*py_g, dout, x, w, accumulate)
        for a, b_ in zip(py_g, jit_g):
            np.testing.assert_allclose(a, b_, rtol=1e-13, atol=1e-13)
