"""Layer norm kernels: NumPy reference, finite differences, float32, interpreted agreement."""
import numpy as np
import pytest

from gradcheck import assert_grad_close, numerical_grad
from transformer_jit.kernels.layernorm import layernorm_backward, layernorm_forward

EPS = 1e-5


def np_layernorm(x, w, b, eps=EPS):
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)  # biased, as PyTorch
    rstd = 1.0 / np.sqrt(var + eps)
    return (x - mu) * rstd * w + b, mu[:, 0], rstd[:, 0]


def make(rng, N, C, dtype=np.float64):
    x = (rng.standard_normal((N, C)) * 2.0 + 0.5).astype(dtype)
    w = rng.standard_normal(C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    return x, w, b


def forward(x, w, b):
    N, C = x.shape
    out = np.full((N, C), np.nan, x.dtype)
    mean = np.full(N, np.nan, x.dtype)
    rstd = np.full(N, np.nan, x.dtype)
    layernorm_forward(out, mean, rstd, x, w, b, EPS)
    return out, mean, rstd


@pytest.mark.parametrize("N,C", [(1, 1), (1, 5), (4, 8), (7, 3)])
def test_forward_matches_numpy(rng, N, C):
    x, w, b = make(rng, N, C)
    out, mean, rstd = forward(x, w, b)
    ref, ref_mean, ref_rstd = np_layernorm(x, w, b)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(rstd, ref_rstd, rtol=1e-13)


def test_forward_in_place(rng):
    x, w, b = make(rng, 5, 6)
    ref, _, _ = np_layernorm(x, w, b)
    mean, rstd = np.empty(5), np.empty(5)
    layernorm_forward(x, mean, rstd, x, w, b, EPS)
    np.testing.assert_allclose(x, ref, rtol=1e-12, atol=1e-12)


def test_normalized_rows_have_zero_mean_unit_variance(rng):
    x, _, _ = make(rng, 6, 64)
    out, _, _ = forward(x, np.ones(64), np.zeros(64))
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=1), 1.0, rtol=1e-3)  # eps shrinks it slightly


@pytest.mark.parametrize("N,C", [(3, 5), (4, 1), (2, 8)])
def test_backward_finite_differences(rng, N, C):
    x, w, b = make(rng, N, C)
    R = rng.standard_normal((N, C))
    out, mean, rstd = np.empty((N, C)), np.empty(N), np.empty(N)

    def loss():
        layernorm_forward(out, mean, rstd, x, w, b, EPS)
        return float(np.sum(out * R))

    loss()  # fills mean and rstd for the backward
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
    layernorm_backward(dx, dw, db, R, x, mean.copy(), rstd.copy(), w)
    assert_grad_close(f"layernorm dinp {N}x{C}", dx, numerical_grad(loss, x))
    assert_grad_close(f"layernorm dweight {N}x{C}", dw, numerical_grad(loss, w))
    assert_grad_close(f"layernorm dbias {N}x{C}", db, numerical_grad(loss, b))


def test_an_empty_bias_is_no_bias(rng):
    """(0,) is "no bias", for the forward (y = xhat w) and the backward (no bias gradient)."""
    x, w, b = make(rng, 4, 6)
    out, mean, rstd = forward(x, w, np.empty(0))
    np.testing.assert_allclose(out, np_layernorm(x, w, 0.0)[0], rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal((4, 6))
    with_bias = [np.zeros((4, 6)), np.zeros(6), np.zeros(6)]
    layernorm_backward(*with_bias, dout, x, mean, rstd, w)
    without = [np.zeros((4, 6)), np.zeros(6), np.empty(0)]
    layernorm_backward(*without, dout, x, mean, rstd, w)
    np.testing.assert_array_equal(without[0], with_bias[0])
    np.testing.assert_array_equal(without[1], with_bias[1])


def test_backward_accumulates(rng):
    x, w, b = make(rng, 5, 7)
    dout = rng.standard_normal((5, 7))
    _, mean, rstd = forward(x, w, b)
    once = [np.zeros((5, 7)), np.zeros(7), np.zeros(7)]
    layernorm_backward(*once, dout, x, mean, rstd, w)
    start = [rng.standard_normal((5, 7)), rng.standard_normal(7), rng.standard_normal(7)]
    acc = [a.copy() for a in start]
    layernorm_backward(*acc, dout, x, mean, rstd, w)
    for a, s, o in zip(acc, start, once):
        np.testing.assert_allclose(a, s + o, rtol=1e-13, atol=1e-13)


def test_float32_agrees_with_float64(rng):
    N, C = 6, 48
    x, w, b = make(rng, N, C)
    x[2] += 300.0  # a row whose mean is far from zero: the two-pass variance stays accurate
    dout = rng.standard_normal((N, C))
    x32, w32, b32, dout32 = (a.astype(np.float32) for a in (x, w, b, dout))

    out64, mean64, rstd64 = forward(x, w, b)
    out32, mean32, rstd32 = forward(x32, w32, b32)
    assert out32.dtype == mean32.dtype == rstd32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rstd32, rstd64, rtol=1e-5)

    g64 = [np.zeros((N, C)), np.zeros(C), np.zeros(C)]
    layernorm_backward(*g64, dout, x, mean64, rstd64, w)
    g32 = [np.zeros((N, C), np.float32), np.zeros(C, np.float32), np.zeros(C, np.float32)]
    layernorm_backward(*g32, dout32, x32, mean32, rstd32, w32)
    for a32, a64 in zip(g32, g64):
        assert a32.dtype == np.float32
        np.testing.assert_allclose(a32, a64, rtol=1e-4, atol=1e-4)


def test_interpreted_matches_compiled(rng):
    N, C = 3, 4
    x, w, b = make(rng, N, C)
    dout = rng.standard_normal((N, C))
    jit = [np.empty((N, C)), np.empty(N), np.empty(N)]
    py = [np.empty((N, C)), np.empty(N), np.empty(N)]
    layernorm_forward(*jit, x, w, b, EPS)
    layernorm_forward.py_func(*py, x, w, b, EPS)
    for p, j in zip(py, jit):
        np.testing.assert_allclose(p, j, rtol=1e-13, atol=1e-13)

    jit_g = [np.zeros((N, C)), np.zeros(C), np.zeros(C)]
    py_g = [np.zeros((N, C)), np.zeros(C), np.zeros(C)]
    layernorm_backward(*jit_g, dout, x, jit[1], jit[2], w)
    layernorm_backward.py_func(*py_g, dout, x, jit[1], jit[2], w)
    for p, j in zip(py_g, jit_g):
        np.testing.assert_allclose(p, j, rtol=1e-13, atol=1e-13)
