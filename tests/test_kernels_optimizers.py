"""Optimizer kernels against plain NumPy transcriptions of each published update rule.

No backward kernels live in kernels/optimizers.py, so there is no finite-difference check here:
every kernel is compared with a reference written straight from the formula, over several steps
with a fresh gradient each step.

Float64 tolerance: rtol 1e-12 plus atol 1e-15. The kernel and NumPy round differently (fused
multiply-adds, constants like lr / (1 - beta1^step) folded once), which is ~1e-16 absolute per
step; the atol keeps an element that lands near zero (w - step ~ 0) from turning that into a large
relative error.
"""
import numba
import numpy as np
import pytest

from transformer_jit.kernels._jit import interpreted
from transformer_jit.kernels.optimizers import (
    _NORM_CHUNK,
    adagrad_step,
    adam_step,
    adamw_step,
    clip_grad_norm,
    grad_norm,
    momentum_step,
    rmsprop_step,
    scale_,
    sgd_step,
)

P = 1003  # not a multiple of any vector width
N_STEPS = 5
RTOL, ATOL = 1e-12, 1e-15
LR, BETA1, BETA2, EPS, WD = 1e-2, 0.9, 0.999, 1e-8, 0.1


# ---- plain NumPy references, one line per formula -------------------------------------------

def ref_sgd(w, g, s, t):
    w -= LR * g


def ref_momentum(w, g, s, t, momentum=0.9):
    s[0][:] = momentum * s[0] + LR * g          # v <- mu v + lr g
    w -= s[0]                                   # w <- w - v


def ref_adagrad(w, g, s, t):
    s[0] += g ** 2                              # G <- G + g^2
    w -= LR * g / (np.sqrt(s[0]) + EPS)


def ref_rmsprop(w, g, s, t, alpha=0.99):
    s[0][:] = alpha * s[0] + (1 - alpha) * g ** 2
    w -= LR * g / (np.sqrt(s[0]) + EPS)


def ref_adam(w, g, s, t):
    m, v = s
    m[:] = BETA1 * m + (1 - BETA1) * g
    v[:] = BETA2 * v + (1 - BETA2) * g ** 2
    mhat = m / (1 - BETA1 ** t)
    vhat = v / (1 - BETA2 ** t)
    w -= LR * mhat / (np.sqrt(vhat) + EPS)


def make_ref_adamw(n_decay):
    def ref_adamw(w, g, s, t):
        w[:n_decay] -= LR * WD * w[:n_decay]    # decoupled decay first, then plain Adam
        ref_adam(w, g, s, t)
    return ref_adamw


# ---- the kernels under test, each as f(w, g, state, t) --------------------------------------

def k_sgd(w, g, s, t):
    sgd_step(w, g, LR)


def k_momentum(w, g, s, t):
    momentum_step(w, g, s[0], LR, 0.9)


def k_adagrad(w, g, s, t):
    adagrad_step(w, g, s[0], LR, EPS)


def k_rmsprop(w, g, s, t):
    rmsprop_step(w, g, s[0], LR, 0.99, EPS)


def k_adam(w, g, s, t):
    adam_step(w, g, s[0], s[1], LR, BETA1, BETA2, EPS, t)


def make_k_adamw(n_decay):
    def k_adamw(w, g, s, t):
        adamw_step(w, g, s[0], s[1], LR, BETA1, BETA2, EPS, WD, t, n_decay)
    return k_adamw


CASES = {
    "sgd": (k_sgd, ref_sgd, 0),
    "momentum": (k_momentum, ref_momentum, 1),
    "adagrad": (k_adagrad, ref_adagrad, 1),
    "rmsprop": (k_rmsprop, ref_rmsprop, 1),
    "adam": (k_adam, ref_adam, 2),
    "adamw": (make_k_adamw(P // 2), make_ref_adamw(P // 2), 2),
}


def run(step_fn, w0, grads, n_state, dtype):
    """Apply step_fn for len(grads) steps from w0 and zero state; return final (w, state)."""
    w = w0.astype(dtype)
    state = [np.zeros(w0.size, dtype=dtype) for _ in range(n_state)]
    for t, g in enumerate(grads, start=1):
        step_fn(w, g.astype(dtype), state, t)
    return w, state


def random_problem(rng, n=P, steps=N_STEPS):
    w0 = rng.standard_normal(n)
    grads = [rng.standard_normal(n) * (0.5 + t) for t in range(steps)]  # a new gradient each step
    return w0, grads


@pytest.mark.parametrize("name", list(CASES))
def test_matches_numpy_reference(name, rng):
    k, ref, n_state = CASES[name]
    w0, grads = random_problem(rng)
    w, state = run(k, w0, grads, n_state, np.float64)
    w_ref, state_ref = run(ref, w0, grads, n_state, np.float64)
    assert not np.allclose(w, w0)  # the step did something
    np.testing.assert_allclose(w, w_ref, rtol=RTOL, atol=ATOL)
    for s, s_ref in zip(state, state_ref):
        np.testing.assert_allclose(s, s_ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", list(CASES))
def test_float32_stays_float32_and_agrees_with_float64(name, rng):
    k, _, n_state = CASES[name]
    w0, grads = random_problem(rng)
    w64, state64 = run(k, w0, grads, n_state, np.float64)
    w32, state32 = run(k, w0, grads, n_state, np.float32)
    assert w32.dtype == np.float32 and all(s.dtype == np.float32 for s in state32)
    # Float32 rounding of inputs and ~5 steps of arithmetic: a few 1e-7 relative.
    np.testing.assert_allclose(w32, w64, rtol=2e-5, atol=1e-6)
    for s32, s64 in zip(state32, state64):
        np.testing.assert_allclose(s32, s64, rtol=2e-5, atol=1e-6)


# ---- properties stated by the papers --------------------------------------------------------

def test_adam_first_step_is_lr_times_sign(rng):
    """Bias correction at step 1: mhat = g and vhat = g^2 exactly, so the move is
    lr * g / (|g| + eps) ~ lr * sign(g) whatever the gradient's scale. Without the correction it
    would be lr * (1 - beta1) / sqrt(1 - beta2) * sign(g) ~ 3.16 lr * sign(g)."""
    w0 = rng.standard_normal(P)
    # gradients of wildly different scales, all well above eps in magnitude
    g = rng.choice([-1.0, 1.0], P) * 10.0 ** rng.uniform(-3, 3, P)
    w, m, v = w0.copy(), np.zeros(P), np.zeros(P)
    adam_step(w, g, m, v, LR, BETA1, BETA2, EPS, 1)
    np.testing.assert_allclose(w0 - w, LR * g / (np.abs(g) + EPS), rtol=1e-12, atol=1e-17)
    np.testing.assert_allclose(w0 - w, LR * np.sign(g), rtol=1e-4)


def test_adam_bias_correction_with_constant_gradient(rng):
    """With the same g every step, m and v are the biased averages (1 - beta^t) g and
    (1 - beta^t) g^2, so after correction every step moves by lr * g / (|g| + eps)."""
    w0 = rng.standard_normal(P)
    g = rng.choice([-1.0, 1.0], P) * rng.uniform(0.1, 10.0, P)
    w, m, v = w0.copy(), np.zeros(P), np.zeros(P)
    for t in range(1, N_STEPS + 1):
        before = w.copy()
        adam_step(w, g, m, v, LR, BETA1, BETA2, EPS, t)
        np.testing.assert_allclose(m, (1 - BETA1 ** t) * g, rtol=1e-12)
        np.testing.assert_allclose(before - w, LR * g / (np.abs(g) + EPS), rtol=1e-10)


def test_adamw_decays_only_the_first_n_decay(rng):
    n_decay = 600
    w0, grads = random_problem(rng)
    w_w, (m_w, v_w) = run(make_k_adamw(n_decay), w0, grads, 2, np.float64)
    w_a, (m_a, v_a) = run(k_adam, w0, grads, 2, np.float64)
    # exempt tail: exactly Adam
    np.testing.assert_allclose(w_w[n_decay:], w_a[n_decay:], rtol=1e-14, atol=1e-16)
    # decayed head: Adam's moves do not depend on w, so AdamW's head is Adam's minus the
    # compounded shrink (1 - (1 - lr wd)^steps) w0, up to ~lr wd * (Adam moves) = O(1e-4)
    shrink = (1 - (1 - LR * WD) ** N_STEPS) * w0[:n_decay]
    diff = w_a[:n_decay] - w_w[:n_decay]
    np.testing.assert_allclose(diff, shrink, rtol=0, atol=5e-4)
    big = np.abs(w0[:n_decay]) > 0.5
    assert big.sum() > 100 and np.all(np.sign(diff[big]) == np.sign(w0[:n_decay][big]))  # toward 0
    # moments never see the decay (it is decoupled from the gradient)
    np.testing.assert_allclose(m_w, m_a, rtol=1e-14)
    np.testing.assert_allclose(v_w, v_a, rtol=1e-14)


def test_adamw_one_step_decay_is_multiplicative(rng):
    """At step 1 a decayed weight is (1 - lr wd) w minus exactly Adam's step."""
    n_decay = 400
    w0, (g,) = random_problem(rng, steps=1)
    w_w, w_a = w0.copy(), w0.copy()
    adamw_step(w_w, g, np.zeros(P), np.zeros(P), LR, BETA1, BETA2, EPS, WD, 1, n_decay)
    adam_step(w_a, g, np.zeros(P), np.zeros(P), LR, BETA1, BETA2, EPS, 1)
    adam_move = w0 - w_a
    expected = w0.copy()
    expected[:n_decay] *= 1 - LR * WD
    expected -= adam_move
    np.testing.assert_allclose(w_w, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("n_decay", [0, P])
def test_adamw_edge_n_decay(n_decay, rng):
    w0, grads = random_problem(rng)
    w, _ = run(make_k_adamw(n_decay), w0, grads, 2, np.float64)
    w_ref, _ = run(make_ref_adamw(n_decay), w0, grads, 2, np.float64)
    np.testing.assert_allclose(w, w_ref, rtol=RTOL, atol=ATOL)


def test_momentum_zero_is_sgd(rng):
    w0, grads = random_problem(rng)
    w_m, v = w0.copy(), np.zeros(P)
    w_s = w0.copy()
    for g in grads:
        momentum_step(w_m, g, v, LR, 0.0)
        sgd_step(w_s, g, LR)
    np.testing.assert_allclose(w_m, w_s, rtol=1e-15, atol=1e-16)


def test_sgd_single_step_exact(rng):
    w0, (g,) = random_problem(rng, steps=1)
    w = w0.copy()
    sgd_step(w, g, LR)
    np.testing.assert_allclose(w, w0 - LR * g, rtol=RTOL, atol=ATOL)


# ---- gradient norm and clipping -------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 7, _NORM_CHUNK - 1, _NORM_CHUNK, _NORM_CHUNK + 1, 3 * _NORM_CHUNK + 5])
def test_grad_norm_matches_numpy(n, rng):
    g = rng.standard_normal(n)
    norm = grad_norm(g)
    assert isinstance(norm, float)
    assert norm == pytest.approx(float(np.linalg.norm(g)), rel=1e-13, abs=0.0)


def test_grad_norm_float32_accumulates_in_float64(rng):
    """A float32 input's norm is accurate to float64 precision (squares of float32 values are
    exact in float64), far better than the ~1e-7 a float32 accumulator could give."""
    g = (rng.standard_normal(200_000) * rng.uniform(0.01, 100.0, 200_000)).astype(np.float32)
    exact = float(np.linalg.norm(g.astype(np.float64)))
    assert grad_norm(g) == pytest.approx(exact, rel=1e-12, abs=0.0)


def test_grad_norm_independent_of_thread_count(rng, fixed_threads):
    g = rng.standard_normal(5 * _NORM_CHUNK + 17).astype(np.float32)
    fixed_threads(1)
    one = grad_norm(g)
    fixed_threads(numba.config.NUMBA_NUM_THREADS)
    assert grad_norm(g) == one


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_norm_clips_when_above(dtype, rng):
    g0 = rng.standard_normal(P).astype(dtype) * dtype(3.0)
    pre = float(np.linalg.norm(g0.astype(np.float64)))
    max_norm = 1.0
    assert pre > max_norm
    g = g0.copy()
    returned = clip_grad_norm(g, max_norm)
    assert g.dtype == dtype
    assert returned == pytest.approx(pre, rel=1e-12)  # the norm BEFORE clipping
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(g, g0 * (max_norm / (pre + 1e-6)), rtol=tol)
    assert float(np.linalg.norm(g.astype(np.float64))) == pytest.approx(max_norm, rel=2e-6)


def test_clip_grad_norm_leaves_alone_when_below(rng):
    g0 = rng.standard_normal(P)
    pre = float(np.linalg.norm(g0))
    g = g0.copy()
    returned = clip_grad_norm(g, pre * 1.5)
    assert returned == pytest.approx(pre, rel=1e-13)
    assert np.array_equal(g, g0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scale_(dtype, rng):
    b0 = rng.standard_normal(P).astype(dtype)
    b = b0.copy()
    scale_(b, 0.37)
    assert b.dtype == dtype
    np.testing.assert_allclose(b, b0 * dtype(0.37), rtol=1e-15 if dtype == np.float64 else 1e-7)


# ---- the same loops interpreted ---------------------------------------------------------------

def test_py_func_matches_compiled(rng):
    n, n_decay = 9, 5
    hyper = {
        sgd_step: (LR,),
        momentum_step: (LR, 0.9),
        adagrad_step: (LR, EPS),
        rmsprop_step: (LR, 0.99, EPS),
        adam_step: (LR, BETA1, BETA2, EPS, 3),
        adamw_step: (LR, BETA1, BETA2, EPS, WD, 3, n_decay),
    }
    n_state = {sgd_step: 0, momentum_step: 1, adagrad_step: 1, rmsprop_step: 1, adam_step: 2, adamw_step: 2}
    for dtype in (np.float64, np.float32):
        for k, h in hyper.items():
            w0 = rng.standard_normal(n).astype(dtype)
            g = rng.standard_normal(n).astype(dtype)
            s0 = [rng.uniform(0.1, 1.0, n).astype(dtype) for _ in range(n_state[k])]
            outs = []
            for fn in (k, k.py_func):
                w, s = w0.copy(), [x.copy() for x in s0]
                fn(w, g, *s, *h)
                outs.append([w, *s])
            tol = 1e-12 if dtype == np.float64 else 1e-5
            for compiled, uncompiled in zip(*outs):
                assert uncompiled.dtype == dtype
                np.testing.assert_allclose(compiled, uncompiled, rtol=tol, atol=tol, err_msg=k.__name__)

        g0 = rng.standard_normal(n).astype(dtype)
        assert grad_norm.py_func(g0) == pytest.approx(grad_norm(g0), rel=1e-12)
        b1, b2 = g0.copy(), g0.copy()
        scale_(b1, 0.5)
        scale_.py_func(b2, 0.5)
        np.testing.assert_allclose(b1, b2, rtol=1e-15)
        b1, b2 = g0.copy(), g0.copy()
        norm = clip_grad_norm(b2, 0.5)
        with interpreted(clip_grad_norm) as clip:  # grad_norm and scale_ interpreted too
            assert clip(b1, 0.5) == pytest.approx(norm, rel=1e-12)
        np.testing.assert_allclose(b1, b2, rtol=1e-12 if dtype == np.float64 else 1e-6)
