import math

import numba
import numpy as np
import pytest

from gradcheck import assert_grad_close, numerical_grad
from transformer_jit.kernels._jit import interpreted
from transformer_jit.kernels.dropout import dropout_backward, dropout_forward, keep_threshold

# The statistical checks below use fixed seeds, so they are deterministic; their bounds are still
# 5 sigma of the binomial spread, so any seed passes unless the generator is actually biased.
N_LARGE = 200_000


def run_dropout(inp, p, seed):
    out, mask = np.empty_like(inp), np.empty_like(inp)
    dropout_forward(out, mask, inp, p, seed)
    return out, mask


def test_mask_values_and_output(rng):
    inp = rng.standard_normal(1000)
    p = 0.25
    out, mask = run_dropout(inp, p, seed=123)
    scale = 1.0 / (1.0 - p)
    assert set(np.unique(mask)) == {0.0, scale}
    np.testing.assert_array_equal(out, inp * mask)
    assert mask.dtype == inp.dtype


def test_in_place(rng):
    inp = rng.standard_normal(500)
    expected, mask = run_dropout(inp, 0.3, seed=7)
    mask2 = np.empty_like(inp)
    dropout_forward(inp, mask2, inp, 0.3, 7)  # out aliases inp
    np.testing.assert_array_equal(inp, expected)
    np.testing.assert_array_equal(mask2, mask)


def test_p_zero_is_identity(rng):
    inp = rng.standard_normal(1000)
    out, mask = run_dropout(inp, 0.0, seed=99)
    np.testing.assert_array_equal(out, inp)
    np.testing.assert_array_equal(mask, 1.0)
    out32, _ = run_dropout(inp.astype(np.float32), 0.0, seed=99)
    np.testing.assert_array_equal(out32, inp.astype(np.float32))


def test_same_seed_same_mask_different_seed_different_mask():
    inp = np.ones(N_LARGE)
    p = 0.5
    _, m1 = run_dropout(inp, p, seed=1)
    _, m1_again = run_dropout(inp, p, seed=1)
    global_state = np.random.get_state()
    np.random.seed(12345)  # NumPy's global seed has no influence on the kernel
    try:
        _, m1_reseeded = run_dropout(inp, p, seed=1)
    finally:
        np.random.set_state(global_state)  # the seed set here must not reach other tests
    np.testing.assert_array_equal(m1, m1_again)
    np.testing.assert_array_equal(m1, m1_reseeded)
    # independent masks agree on a fraction p^2 + (1-p)^2 = 1/2 of the elements
    for other_seed in (2, 1 + 2**32, np.uint64(2**64 - 1)):
        _, m2 = run_dropout(inp, p, seed=other_seed)
        agree = np.mean(m1 == m2)
        sigma = math.sqrt(0.25 / N_LARGE)
        assert abs(agree - 0.5) < 5 * sigma, (other_seed, agree)


def test_int_and_uint64_seeds_agree():
    inp = np.ones(1000)
    for seed in (0, 12345, 2**63 - 1):
        _, m_int = run_dropout(inp, 0.5, seed)
        _, m_uint = run_dropout(inp, 0.5, np.uint64(seed))
        np.testing.assert_array_equal(m_int, m_uint)


def test_mask_does_not_depend_on_thread_count(fixed_threads):
    inp = np.ones(10_000)
    fixed_threads(1)
    _, serial = run_dropout(inp, 0.4, seed=5)
    fixed_threads(numba.config.NUMBA_NUM_THREADS)
    _, parallel = run_dropout(inp, 0.4, seed=5)
    np.testing.assert_array_equal(serial, parallel)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate_close_to_one_minus_p(p):
    _, mask = run_dropout(np.ones(N_LARGE), p, seed=2024)
    keep = np.mean(mask != 0)
    sigma = math.sqrt(p * (1 - p) / N_LARGE)
    assert abs(keep - (1 - p)) < 5 * sigma, keep


def test_neighbouring_decisions_are_independent():
    # counter-based hashes of i and i+1 must not be correlated: over disjoint pairs (2k, 2k+1),
    # both-kept happens with probability (1-p)^2
    p = 0.5
    _, mask = run_dropout(np.ones(N_LARGE), p, seed=31337)
    kept = mask != 0
    both = np.mean(kept[0::2] & kept[1::2])
    q = (1 - p) ** 2
    sigma = math.sqrt(q * (1 - q) / (N_LARGE // 2))
    assert abs(both - q) < 5 * sigma, both


def test_mean_is_preserved(rng):
    p = 0.3
    inp = rng.uniform(1.0, 2.0, N_LARGE)
    out, _ = run_dropout(inp, p, seed=8)
    # out_i = inp_i * b_i / (1-p), b_i ~ Bernoulli(1-p): E = inp_i, Var = inp_i^2 p / (1-p)
    sigma_mean = math.sqrt(np.sum(inp**2) * p / (1 - p)) / N_LARGE
    assert abs(out.mean() - inp.mean()) < 5 * sigma_mean


def test_dropout_backward_gradcheck(rng):
    x = rng.standard_normal(40)
    R = rng.standard_normal(40)  # loss = sum(dropout(x) * R); a fixed seed fixes the mask
    p, seed = 0.4, 11
    _, mask = run_dropout(x, p, seed)
    assert 0 < np.count_nonzero(mask) < 40  # the check covers both dropped and kept elements
    start = rng.standard_normal(40)
    dinp = start.copy()
    dropout_backward(dinp, R, mask)
    numeric = numerical_grad(lambda: float(np.sum(run_dropout(x, p, seed)[0] * R)), x)
    assert_grad_close("dropout_backward", dinp - start, numeric)


def test_float32_agrees_with_float64(rng):
    x = rng.standard_normal(3000)
    x32 = x.astype(np.float32)
    out64, mask64 = run_dropout(x, 0.2, seed=3)
    out32, mask32 = run_dropout(x32, 0.2, seed=3)
    assert out32.dtype == np.float32 and mask32.dtype == np.float32
    # the keep decisions are made in float64 from the hash, so they are identical
    np.testing.assert_array_equal(mask32 != 0, mask64 != 0)
    np.testing.assert_allclose(mask32, mask64, rtol=1e-7)
    np.testing.assert_allclose(out32, out64, rtol=1e-6, atol=1e-7)
    R = rng.standard_normal(3000)
    d64, d32 = np.zeros(3000), np.zeros(3000, np.float32)
    dropout_backward(d64, R, mask64)
    dropout_backward(d32, R.astype(np.float32), mask32)
    np.testing.assert_allclose(d32, d64, rtol=1e-6, atol=1e-7)


def test_py_func_agrees_with_compiled(rng):
    x = rng.standard_normal(16)
    seed = np.uint64(2**63 + 5)
    out_c, mask_c = run_dropout(x, 0.5, seed)
    out_i, mask_i = np.empty_like(x), np.empty_like(x)
    # the hash (_mix64) interpreted too; its uint64 wrap-around is intended (see dropout.py)
    with np.errstate(over="ignore"), interpreted(dropout_forward) as forward:
        forward(out_i, mask_i, x, 0.5, seed)
    np.testing.assert_array_equal(mask_i, mask_c)
    np.testing.assert_array_equal(out_i, out_c)
    R = rng.standard_normal(16)
    d_c, d_i = np.ones(16), np.ones(16)
    dropout_backward(d_c, R, mask_c)
    dropout_backward.py_func(d_i, R, mask_c)
    np.testing.assert_array_equal(d_i, d_c)


@pytest.mark.parametrize("p", [0.0, 1e-300, 3 / 2**53, 0.1, 0.5, 1 - 2**-53])
def test_keep_threshold_is_the_integer_form_of_u_at_least_p(p):
    # kept(key, i, t) tests k >= t on the hash's top 53 bits k; u = k / 2^53 >= p must hold exactly
    # for k >= t: t is the smallest such k
    t = int(keep_threshold(p))
    assert t / 2**53 >= p
    assert t == 0 or (t - 1) / 2**53 < p
