"""Activation, residual and in-place add kernels: NumPy references, finite differences, float32,
in-place use, interpreted agreement."""
import math

import numpy as np
import pytest

from gradcheck import assert_grad_close, numerical_grad
from transformer_jit.kernels import activations as act
from transformer_jit.kernels.elementwise import add_, residual_backward, residual_forward

SLOPE = 0.1


def np_gelu(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def np_gelu_erf(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def np_sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


# name -> (forward(out, inp), backward(dinp, dout, saved, accumulate), NumPy reference,
#          backward saves output?)
ACTIVATIONS = {
    "relu": (act.relu_forward, act.relu_backward, lambda x: np.maximum(x, 0.0), False),
    "leaky_relu": (
        lambda out, inp: act.leaky_relu_forward(out, inp, SLOPE),
        lambda dinp, dout, inp, accumulate: act.leaky_relu_backward(dinp, dout, inp, SLOPE, accumulate),
        lambda x: np.where(x > 0, x, SLOPE * x),
        False,
    ),
    "sigmoid": (act.sigmoid_forward, act.sigmoid_backward, np_sigmoid, True),
    "tanh": (act.tanh_forward, act.tanh_backward, np.tanh, True),
    "gelu": (act.gelu_forward, act.gelu_backward, np_gelu, False),
    "gelu_erf": (act.gelu_erf_forward, act.gelu_erf_backward, np_gelu_erf, False),
}


def sample(rng, n, dtype=np.float64):
    """Values in about [-4, 4], kept away from ReLU's kink at 0 so finite differences are valid."""
    x = rng.uniform(-4.0, 4.0, n)
    x[np.abs(x) < 0.05] += 0.1
    return x.astype(dtype)


def run_backward(name, dinp, dout, x, accumulate=True):
    """Call the backward with whatever it needs saved: the forward output or the input."""
    fwd, bwd, _, saves_output = ACTIVATIONS[name]
    if saves_output:
        y = np.empty_like(x)
        fwd(y, x)
        bwd(dinp, dout, y, accumulate)
    else:
        bwd(dinp, dout, x, accumulate)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_matches_numpy(rng, name):
    fwd, _, ref, _ = ACTIVATIONS[name]
    x = sample(rng, 101)
    out = np.full_like(x, np.nan)
    fwd(out, x)
    np.testing.assert_allclose(out, ref(x), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_in_place(rng, name):
    fwd, _, ref, _ = ACTIVATIONS[name]
    x = sample(rng, 67)
    expected = ref(x)
    fwd(x, x)  # out aliases inp
    np.testing.assert_allclose(x, expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_finite_differences(rng, name):
    fwd = ACTIVATIONS[name][0]
    x = sample(rng, 23)
    R = rng.standard_normal(x.shape)
    out = np.empty_like(x)

    def loss():
        fwd(out, x)
        return float(np.sum(out * R))

    dinp = np.zeros_like(x)
    run_backward(name, dinp, R, x)
    assert_grad_close(name, dinp, numerical_grad(loss, x))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_accumulates(rng, name):
    x = sample(rng, 19)
    dout = rng.standard_normal(x.shape)
    once = np.zeros_like(x)
    run_backward(name, once, dout, x)
    start = rng.standard_normal(x.shape)
    acc = start.copy()
    run_backward(name, acc, dout, x)
    np.testing.assert_allclose(acc, start + once, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_overwrites_when_not_accumulating(rng, name):
    x = sample(rng, 19)
    dout = rng.standard_normal(x.shape)
    once = np.zeros_like(x)
    run_backward(name, once, dout, x)
    written = np.full_like(x, np.nan)  # never read: NaN would spread into the result
    run_backward(name, written, dout, x, accumulate=False)
    np.testing.assert_array_equal(written, once)


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_relu_backward_accepts_output(rng, name):
    """After an in-place forward only y is left; for (leaky) ReLU, y has x's sign, so it works."""
    fwd, bwd, _, _ = ACTIVATIONS[name]
    x = sample(rng, 31)
    dout = rng.standard_normal(x.shape)
    from_x = np.zeros_like(x)
    bwd(from_x, dout, x, True)
    y = x.copy()
    fwd(y, y)
    from_y = np.zeros_like(x)
    bwd(from_y, dout, y, True)
    np.testing.assert_array_equal(from_y, from_x)


def test_relu_gradient_at_zero_is_zero_and_leaky_is_slope():
    x = np.zeros(3)
    dout = np.ones(3)
    d = np.zeros(3)
    act.relu_backward(d, dout, x, True)
    np.testing.assert_array_equal(d, 0.0)
    d = np.zeros(3)
    act.leaky_relu_backward(d, dout, x, SLOPE, True)
    np.testing.assert_allclose(d, SLOPE)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_large_inputs(dtype):
    x = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0], dtype=dtype)
    s = np.empty_like(x)
    act.sigmoid_forward(s, x)
    assert np.all(np.isfinite(s))
    assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5
    assert np.all(np.diff(s) >= 0)
    d = np.zeros_like(x)
    act.sigmoid_backward(d, np.ones_like(x), s, True)
    assert np.all(np.isfinite(d)) and d[0] == 0.0 and d[-1] == 0.0 and d[3] == 0.25


def test_tanh_and_gelu_saturate_without_nan():
    x = np.array([-1000.0, -50.0, 50.0, 1000.0])
    y = np.empty_like(x)
    act.tanh_forward(y, x)
    np.testing.assert_array_equal(y, [-1.0, -1.0, 1.0, 1.0])
    act.gelu_forward(y, x)
    np.testing.assert_array_equal(y, [0.0, 0.0, 50.0, 1000.0])
    d = np.zeros_like(x)
    act.gelu_backward(d, np.ones_like(x), x, True)
    np.testing.assert_array_equal(d, [0.0, 0.0, 1.0, 1.0])
    # float32 has its own exponential, clamped where 2^n would leave the normal range
    x32 = x.astype(np.float32)
    y32, d32 = np.empty_like(x32), np.zeros_like(x32)
    act.gelu_forward(y32, x32)
    act.gelu_backward(d32, np.ones_like(x32), x32, True)
    np.testing.assert_allclose(y32, [0.0, 0.0, 50.0, 1000.0], atol=1e-30)
    np.testing.assert_allclose(d32, [0.0, 0.0, 1.0, 1.0], atol=1e-20)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_gelu_saturates_and_differs_from_the_tanh_form(dtype):
    x = np.array([-1000.0, -50.0, -1.0, 1.0, 50.0, 1000.0], dtype=dtype)
    y, d = np.empty_like(x), np.zeros_like(x)
    act.gelu_erf_forward(y, x)
    act.gelu_erf_backward(d, np.ones_like(x), x, True)
    # float32's exponential is clamped where 2^n would leave the normal range: ~1e-38, not 0
    np.testing.assert_allclose(y[[0, 1, 4, 5]], [0.0, 0.0, 50.0, 1000.0], rtol=0, atol=1e-30)
    np.testing.assert_allclose(d[[0, 1, 4, 5]], [0.0, 0.0, 1.0, 1.0], rtol=0, atol=1e-30)
    # GELU(1) = Phi(1) = 0.8413447460685429...; the tanh form gives 0.8411919906082768
    np.testing.assert_allclose(y[3], 0.8413447460685429, rtol=1e-7 if dtype == np.float32 else 1e-15)
    tanh_form = np.empty_like(x)
    act.gelu_forward(tanh_form, x)
    assert abs(float(tanh_form[3] - y[3])) > 1e-4


def test_exact_gelu_in_float32_follows_float64_into_the_tails():
    """float32 computes Phi from its own erfc fit (kernels/normal_cdf.py), float64 through the C
    library: they agree to a few float32 roundings, relatively too, where Phi is tiny."""
    x = np.linspace(-12.0, 12.0, 24001).astype(np.float32)
    y32, y64 = np.empty_like(x), np.empty(x.size)
    act.gelu_erf_forward(y32, x)
    act.gelu_erf_forward(y64, x.astype(np.float64))
    np.testing.assert_allclose(y32, y64, rtol=3e-5, atol=1e-37)
    np.testing.assert_allclose(y32, y64, rtol=0, atol=5e-7)
    d32, d64 = np.empty_like(x), np.empty(x.size)
    act.gelu_erf_backward(d32, np.ones_like(x), x, False)
    act.gelu_erf_backward(d64, np.ones(x.size), x.astype(np.float64), False)
    np.testing.assert_allclose(d32, d64, rtol=0, atol=5e-7)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_float32_agrees_with_float64(rng, name):
    fwd = ACTIVATIONS[name][0]
    x64 = sample(rng, 257)
    x32 = x64.astype(np.float32)
    dout64 = rng.standard_normal(x64.shape)
    dout32 = dout64.astype(np.float32)

    y64, y32 = np.empty_like(x64), np.empty_like(x32)
    fwd(y64, x64)
    fwd(y32, x32)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)

    d64, d32 = np.zeros_like(x64), np.zeros_like(x32)
    run_backward(name, d64, dout64, x64)
    run_backward(name, d32, dout32, x32)
    assert d32.dtype == np.float32
    np.testing.assert_allclose(d32, d64, rtol=1e-5, atol=1e-5)


def test_interpreted_matches_compiled(rng):
    x = sample(rng, 9)
    dout = rng.standard_normal(x.shape)
    pairs = [
        (act.relu_forward, act.relu_backward, ()),
        (act.leaky_relu_forward, act.leaky_relu_backward, (SLOPE,)),
        (act.sigmoid_forward, act.sigmoid_backward, ()),
        (act.tanh_forward, act.tanh_backward, ()),
        (act.gelu_forward, act.gelu_backward, ()),
        (act.gelu_erf_forward, act.gelu_erf_backward, ()),
    ]
    for fwd, bwd, extra in pairs:
        jit_y, py_y = np.empty_like(x), np.empty_like(x)
        fwd(jit_y, x, *extra)
        fwd.py_func(py_y, x, *extra)
        np.testing.assert_allclose(py_y, jit_y, rtol=1e-13, atol=1e-15, err_msg=fwd.__name__)
        saved = jit_y if bwd in (act.sigmoid_backward, act.tanh_backward) else x
        for accumulate in (True, False):
            jit_d, py_d = np.ones_like(x), np.ones_like(x)
            bwd(jit_d, dout, saved, *extra, accumulate)
            bwd.py_func(py_d, dout, saved, *extra, accumulate)
            np.testing.assert_allclose(py_d, jit_d, rtol=1e-13, atol=1e-15, err_msg=bwd.__name__)

    a, b = rng.standard_normal(5), rng.standard_normal(5)
    jit_y, py_y = np.empty(5), np.empty(5)
    residual_forward(jit_y, a, b)
    residual_forward.py_func(py_y, a, b)
    np.testing.assert_array_equal(py_y, jit_y)
    jit_g = [np.ones(5), np.ones(5)]
    py_g = [np.ones(5), np.ones(5)]
    residual_backward(*jit_g, dout[:5])
    residual_backward.py_func(*py_g, dout[:5])
    np.testing.assert_array_equal(py_g[0], jit_g[0])
    np.testing.assert_array_equal(py_g[1], jit_g[1])


# ---------------------------------------------------------------------------------------------
# residual connection
# ---------------------------------------------------------------------------------------------

def test_residual_forward_matches_numpy_and_in_place(rng):
    a, b = rng.standard_normal(41), rng.standard_normal(41)
    out = np.full_like(a, np.nan)
    residual_forward(out, a, b)
    np.testing.assert_array_equal(out, a + b)
    expected = a + b
    residual_forward(a, a, b)  # out aliases a
    np.testing.assert_array_equal(a, expected)


def test_residual_backward_finite_differences(rng):
    a, b = rng.standard_normal(13), rng.standard_normal(13)
    R = rng.standard_normal(13)
    out = np.empty(13)

    def loss():
        residual_forward(out, a, b)
        return float(np.sum(out * R))

    da0, db0 = rng.standard_normal(13), rng.standard_normal(13)
    da, db = da0.copy(), db0.copy()
    residual_backward(da, db, R)
    assert_grad_close("residual da", da - da0, numerical_grad(loss, a))
    assert_grad_close("residual db", db - db0, numerical_grad(loss, b))
    np.testing.assert_array_equal(da, da0 + R)  # accumulated, exactly


def test_residual_float32(rng):
    a, b, g = (rng.standard_normal(50).astype(np.float32) for _ in range(3))
    out = np.empty_like(a)
    residual_forward(out, a, b)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, a.astype(np.float64) + b, rtol=1e-6)
    da, db = np.zeros_like(a), np.zeros_like(b)
    residual_backward(da, db, g)
    np.testing.assert_array_equal(da, g)
    np.testing.assert_array_equal(db, g)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_add_in_place_matches_numpy_and_interpreted(rng, dtype):
    out0, x = (rng.standard_normal(37).astype(dtype) for _ in range(2))
    out = out0.copy()
    add_(out, x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, out0 + x)  # one addition per element, rounded in dtype
    py_out = out0.copy()
    add_.py_func(py_out, x)
    np.testing.assert_array_equal(py_out, out)
