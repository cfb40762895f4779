import numpy as np
import pytest

from gradcheck import assert_grad_close, numerical_grad
from transformer_jit.kernels.losses import (
    count_targets,
    cross_entropy_backward,
    cross_entropy_forward,
    mse_backward,
    mse_forward,
)

IGNORE = -100


def ref_cross_entropy(logits, targets, ignore_index, eps):
    """Per-row losses and the mean over counted rows, straight from the definition."""
    N, V = logits.shape
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    losses = np.zeros(N)
    for i in range(N):
        if targets[i] == ignore_index:
            continue
        q = np.full(V, eps / V)
        q[targets[i]] += 1.0 - eps
        losses[i] = -np.sum(q * logp[i])
    counted = targets != ignore_index
    mean = losses[counted].mean() if counted.any() else 0.0
    return losses, mean


def run_ce(logits, targets, ignore_index=IGNORE, eps=0.0):
    N, V = logits.shape
    losses = np.empty(N, dtype=logits.dtype)
    probs = np.empty_like(logits)
    mean = cross_entropy_forward(losses, probs, logits, targets, ignore_index, eps)
    return mean, losses, probs


def make_batch(rng, N=6, V=5, ignored=()):
    logits = rng.standard_normal((N, V)) * 2
    targets = rng.integers(0, V, size=N).astype(np.int64)
    targets[list(ignored)] = IGNORE
    return logits, targets


# ---------------------------------------------------------------- forward against NumPy


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("ignored", [(), (1, 4)])
def test_cross_entropy_forward_matches_numpy(rng, eps, ignored):
    logits, targets = make_batch(rng, ignored=ignored)
    mean, losses, probs = run_ce(logits, targets, eps=eps)
    ref_losses, ref_mean = ref_cross_entropy(logits, targets, IGNORE, eps)
    assert isinstance(mean, float)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    # probs is the softmax of every row, ignored rows included
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-15)
    for i in ignored:
        assert losses[i] == 0.0


def test_cross_entropy_large_logits_are_finite():
    # The target's probability underflows to exactly 0 in float64: log(p) would be -inf, while
    # log-sum-exp gives the exact loss 2000.
    logits = np.array([[1000.0, -1000.0, 0.0], [1000.0, 1000.0, 1000.0]])
    targets = np.array([1, 2], dtype=np.int64)
    mean, losses, probs = run_ce(logits, targets)
    assert probs[0, 1] == 0.0
    np.testing.assert_allclose(losses, [2000.0, np.log(3.0)], rtol=1e-12)
    np.testing.assert_allclose(mean, (2000.0 + np.log(3.0)) / 2, rtol=1e-12)
    mean32, losses32, _ = run_ce(logits.astype(np.float32), targets)
    assert np.all(np.isfinite(losses32))
    # float32 logits near 1000 are only known to float32's spacing there (6.1e-5), and fastmath
    # reassociation may regroup the loss through that magnitude (see losses.py): allow 2 spacings.
    atol = 2 * float(np.spacing(np.float32(1000)))
    np.testing.assert_allclose(losses32, losses, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(mean32, mean, rtol=1e-6, atol=atol)


def test_count_targets():
    targets = np.array([3, IGNORE, 0, IGNORE, 7], dtype=np.int64)
    assert count_targets(targets, IGNORE) == 3
    assert count_targets(targets, -1) == 5
    assert count_targets(np.full(4, IGNORE, dtype=np.int64), IGNORE) == 0


def test_all_ignored_batch_gives_zero_loss_and_no_nan(rng):
    logits, targets = make_batch(rng, N=4, ignored=range(4))
    mean, losses, probs = run_ce(logits, targets, eps=0.1)
    assert mean == 0.0
    np.testing.assert_array_equal(losses, 0.0)
    assert np.all(np.isfinite(probs))
    dlogits = np.zeros_like(logits)
    cross_entropy_backward(dlogits, probs, targets, IGNORE, 0.1, 1.0)
    np.testing.assert_array_equal(dlogits, 0.0)


# ---------------------------------------------------------------- backward against finite differences


@pytest.mark.parametrize(
    "eps, ignored", [(0.0, ()), (0.0, (0, 3)), (0.1, ()), (0.2, (2,))],
    ids=["plain", "ignore_index", "label_smoothing", "smoothing+ignore"],
)
def test_cross_entropy_backward_gradcheck(rng, eps, ignored):
    logits, targets = make_batch(rng, ignored=ignored)
    _, _, probs = run_ce(logits, targets, eps=eps)
    n_counted = count_targets(targets, IGNORE)
    start = rng.standard_normal(logits.shape)  # nonzero start also proves accumulation
    dlogits = start.copy()
    cross_entropy_backward(dlogits, probs, targets, IGNORE, eps, 1.0 / n_counted)
    numeric = numerical_grad(lambda: run_ce(logits, targets, eps=eps)[0], logits)
    name = "cross_entropy_backward" + (f" eps={eps}" if eps else "") + (" ignore" if ignored else "")
    assert_grad_close(name, dlogits - start, numeric)
    for i in ignored:
        np.testing.assert_array_equal(dlogits[i], start[i])


def test_cross_entropy_backward_is_softmax_minus_onehot(rng):
    N, V = 5, 7
    logits, targets = make_batch(rng, N=N, V=V)
    _, _, probs = run_ce(logits, targets)
    dlogits = np.zeros_like(logits)
    cross_entropy_backward(dlogits, probs, targets, IGNORE, 0.0, 1.0 / N)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    onehot = np.eye(V)[targets]
    np.testing.assert_allclose(dlogits, (e / e.sum(axis=1, keepdims=True) - onehot) / N,
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=1e-15)  # p and q both sum to 1


def test_mse_forward_matches_numpy(rng):
    pred, target = rng.standard_normal(13), rng.standard_normal(13)
    got = mse_forward(pred, target)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, np.mean((pred - target) ** 2), rtol=1e-13)


def test_mse_backward_gradcheck(rng):
    pred, target = rng.standard_normal(9), rng.standard_normal(9)
    dloss = 0.7  # loss = 0.7 * mse
    start = rng.standard_normal(9)
    dpred = start.copy()
    mse_backward(dpred, pred, target, dloss)
    numeric = numerical_grad(lambda: dloss * mse_forward(pred, target), pred)
    assert_grad_close("mse_backward", dpred - start, numeric)


# ---------------------------------------------------------------- float32 and interpreted agreement


def test_float32_agrees_with_float64(rng):
    logits, targets = make_batch(rng, N=8, V=6, ignored=(5,))
    l32 = logits.astype(np.float32)
    for eps in (0.0, 0.1):
        mean64, losses64, probs64 = run_ce(logits, targets, eps=eps)
        mean32, losses32, probs32 = run_ce(l32, targets, eps=eps)
        assert losses32.dtype == np.float32 and probs32.dtype == np.float32
        np.testing.assert_allclose(losses32, losses64, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(probs32, probs64, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(mean32, mean64, rtol=1e-5)
        d64, d32 = np.zeros_like(logits), np.zeros_like(l32)
        cross_entropy_backward(d64, probs64, targets, IGNORE, eps, 1.0 / 7)
        cross_entropy_backward(d32, probs32, targets, IGNORE, eps, 1.0 / 7)
        assert d32.dtype == np.float32
        np.testing.assert_allclose(d32, d64, rtol=1e-5, atol=1e-7)

    pred, target = rng.standard_normal(10), rng.standard_normal(10)
    p32, t32 = pred.astype(np.float32), target.astype(np.float32)
    np.testing.assert_allclose(mse_forward(p32, t32), mse_forward(pred, target), rtol=1e-5)
    d64, d32 = np.zeros(10), np.zeros(10, np.float32)
    mse_backward(d64, pred, target, 0.5)
    mse_backward(d32, p32, t32, 0.5)
    np.testing.assert_allclose(d32, d64, rtol=1e-5, atol=1e-7)


def test_py_func_agrees_with_compiled(rng):
    logits, targets = make_batch(rng, N=3, V=4, ignored=(1,))
    eps = 0.1
    outs = []
    for fn in (cross_entropy_forward, cross_entropy_forward.py_func):
        losses, probs = np.empty(3), np.empty_like(logits)
        mean = fn(losses, probs, logits, targets, IGNORE, eps)
        outs.append((mean, losses, probs))
    (m_c, l_c, p_c), (m_i, l_i, p_i) = outs
    np.testing.assert_allclose(m_i, m_c, rtol=1e-12)
    np.testing.assert_allclose(l_i, l_c, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p_i, p_c, rtol=1e-12, atol=1e-15)

    start = rng.standard_normal(logits.shape)
    d_c, d_i = start.copy(), start.copy()
    cross_entropy_backward(d_c, p_c, targets, IGNORE, eps, 0.5)
    cross_entropy_backward.py_func(d_i, p_c, targets, IGNORE, eps, 0.5)
    np.testing.assert_allclose(d_i, d_c, rtol=1e-12, atol=1e-15)

    assert count_targets.py_func(targets, IGNORE) == count_targets(targets, IGNORE) == 2

    pred, target = rng.standard_normal(5), rng.standard_normal(5)
    np.testing.assert_allclose(mse_forward.py_func(pred, target), mse_forward(pred, target),
                               rtol=1e-12)
    d_c, d_i = np.ones(5), np.ones(5)
    mse_backward(d_c, pred, target, 0.3)
    mse_backward.py_func(d_i, pred, target, 0.3)
    np.testing.assert_allclose(d_i, d_c, rtol=1e-12, atol=1e-15)
