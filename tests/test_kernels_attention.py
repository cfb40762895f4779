"""Tests for kernels/attention.py: multi-head scaled dot-product attention.

Each case describes one way the model calls attention: causal self-attention on views into a fused
(B, T, 3C) qkv buffer (GPT), bidirectional self-attention with a key padding mask (encoder),
cross-attention of T decoder queries over S encoder keys/values from a fused (B, S, 2C) kv buffer
with a source mask, no mask at all, and q = k = v = one array (gradients alias one buffer).

Dropout on the probabilities (the last section) is tested with the mask the kernel draws, made
visible two ways: dropout_forward with the same seed over probs.reshape(-1) draws the same mask, and
with v the identity (head size = S) the output of each head is D itself.
"""
import math
from dataclasses import dataclass

import numpy as np
import pytest

from transformer_jit.kernels._jit import interpreted
from transformer_jit.kernels.attention import attention_backward, attention_forward
from transformer_jit.kernels.dropout import dropout_forward

from gradcheck import assert_grad_close, numerical_grad


@dataclass
class Case:
    B: int
    T: int  # queries
    S: int  # keys / values
    C: int
    NH: int
    causal: bool
    layout: str  # "qkv" fused (B,T,3C) | "separate" q, k, v | "q_kv" q + fused (B,S,2C) | "shared"
    mask: tuple = None  # one string of 0/1 per batch element (1 = key allowed), or None

    def key_mask(self):
        if self.mask is None:
            return None
        return np.array([[c == "1" for c in row] for row in self.mask], dtype=bool)

    def make_leaves(self, rng, dtype=np.float64):
        """The contiguous arrays the inputs are views of (and that finite differences perturb)."""
        B, T, S, C = self.B, self.T, self.S, self.C
        shapes = {
            "qkv": {"qkv": (B, T, 3 * C)},
            "separate": {"q": (B, T, C), "k": (B, S, C), "v": (B, S, C)},
            "q_kv": {"q": (B, T, C), "kv": (B, S, 2 * C)},
            "shared": {"x": (B, T, C)},
        }[self.layout]
        return {n: rng.standard_normal(s).astype(dtype) for n, s in shapes.items()}

    def split(self, arrays):
        """(q, k, v) views into `arrays`; applied to gradient buffers it gives (dq, dk, dv)."""
        C = self.C
        if self.layout == "qkv":
            a = arrays["qkv"]
            return a[:, :, 0:C], a[:, :, C:2 * C], a[:, :, 2 * C:3 * C]
        if self.layout == "separate":
            return arrays["q"], arrays["k"], arrays["v"]
        if self.layout == "q_kv":
            kv = arrays["kv"]
            return arrays["q"], kv[:, :, 0:C], kv[:, :, C:2 * C]
        x = arrays["x"]
        return x, x, x

    def allowed(self):
        """(B, T, S) bool: may query t attend key s."""
        ok = np.ones((self.B, self.T, self.S), dtype=bool)
        if self.mask is not None:
            ok &= self.key_mask()[:, None, :]
        if self.causal:
            ok &= np.tril(np.ones((self.T, self.S), dtype=bool))
        return ok


CASES = {
    "causal_fused_qkv": Case(2, 4, 4, 4, 2, True, "qkv"),
    # batch 1: key 0 is padding, so query 0 has no allowed key at all; key 3 is padding too
    "causal_fused_padded": Case(2, 4, 4, 4, 2, True, "qkv", ("1111", "0110")),
    "encoder_padded": Case(2, 5, 5, 4, 2, False, "separate", ("11111", "11100")),
    "cross_padded": Case(2, 3, 5, 4, 2, False, "q_kv", ("11110", "11011")),
    "no_mask": Case(2, 4, 4, 4, 2, False, "separate"),
    "shared_buffer": Case(2, 4, 4, 4, 2, False, "shared", ("1111", "1110")),
    # head size 20: not a multiple of any vector width, so vectorized loops run their tails
    "cross_wide_heads": Case(2, 6, 7, 40, 2, False, "q_kv", ("1111111", "1111100")),
    # more than one row tile, key panel and head-size panel (see kernels/tiles.py: MR = 8, NR = 32 or 8),
    # each with a partial last one: T = 38 queries, 38 or 35 keys, head size 35
    "causal_many_tiles": Case(1, 38, 38, 70, 2, True, "qkv"),
    "cross_many_tiles": Case(2, 8, 35, 70, 2, False, "q_kv", ("1" * 35, "1" * 30 + "0" * 5)),
    # T a multiple of MR: P and dA are used in place as whole row tiles (attention._as_rows)
    "causal_whole_tiles": Case(2, 16, 16, 8, 2, True, "qkv"),
}


P_DROP, SEED = 0.3, 1234  # attention dropout's rate and seed where a test turns it on


def run_forward(case, leaves, p=0.0, seed=0):
    """The kernel's (out, probs); p, seed: attention dropout's rate and seed (p = 0: off)."""
    q, k, v = case.split(leaves)
    dtype = q.dtype
    # NaN-filled so that any element the kernel forgets to write fails the tests.
    out = np.full((case.B, case.T, case.C), np.nan, dtype=dtype)
    probs = np.full((case.B, case.NH, case.T, case.S), np.nan, dtype=dtype)
    attention_forward(out, probs, q, k, v, case.key_mask(), case.NH, case.causal, p, seed)
    return out, probs


def run_backward(case, leaves, probs, dout, grads=None, accumulate=True, p=0.0, seed=0):
    if grads is None:
        grads = {n: np.zeros_like(a) for n, a in leaves.items()}
    q, k, v = case.split(leaves)
    dq, dk, dv = case.split(grads)
    attention_backward(dq, dk, dv, dout, probs, q, k, v, None, case.NH, case.causal, p, seed, accumulate)
    return grads


def reference_attention(q, k, v, allowed, n_head, keep=None):
    """Per head softmax(q k^T / sqrt(hs) + mask) v, the mask a large negative number (reference
    only); rows with no allowed key are set to 0, the kernel's convention. keep (B, NH, T, S):
    dropout's mask, 0 or 1 / (1 - p), applied to the probabilities before v (probs stays P)."""
    B, T, C = q.shape
    S = k.shape[1]
    hs = C // n_head
    out = np.zeros((B, T, C))
    probs = np.zeros((B, n_head, T, S))
    for b in range(B):
        for h in range(n_head):
            c = slice(h * hs, (h + 1) * hs)
            a = q[b, :, c] @ k[b, :, c].T / np.sqrt(hs) + np.where(allowed[b], 0.0, -1e9)
            p = np.exp(a - a.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[~allowed[b].any(axis=1)] = 0.0
            probs[b, h] = p
            out[b, :, c] = (p if keep is None else p * keep[b, h]) @ v[b, :, c]
    return out, probs


@pytest.mark.parametrize("name", CASES)
def test_forward_matches_numpy_reference(name, rng):
    case = CASES[name]
    leaves = case.make_leaves(rng)
    out, probs = run_forward(case, leaves)
    ref_out, ref_probs = reference_attention(*case.split(leaves), case.allowed(), case.NH)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_probs_sum_to_one_over_allowed_keys_and_are_zero_elsewhere(name, rng):
    case = CASES[name]
    out, probs = run_forward(case, case.make_leaves(rng))
    allowed = np.broadcast_to(case.allowed()[:, None], probs.shape)
    assert np.all(probs[~allowed] == 0.0)  # exactly 0, not merely tiny
    assert np.all(probs[allowed] > 0.0)
    has_key = allowed.any(axis=-1)
    np.testing.assert_allclose(probs.sum(axis=-1)[has_key], 1.0, rtol=0, atol=1e-14)
    assert np.all(probs.sum(axis=-1)[~has_key] == 0.0)


@pytest.mark.parametrize("name", CASES)
def test_backward_matches_finite_differences(name, rng):
    case = CASES[name]
    leaves = case.make_leaves(rng)
    R = rng.standard_normal((case.B, case.T, case.C))  # loss = sum(out * R), so dout = R
    _, probs = run_forward(case, leaves)
    grads = run_backward(case, leaves, probs, R)

    def loss():
        return float(np.sum(run_forward(case, leaves)[0] * R))

    for leaf_name, leaf in leaves.items():
        numeric = numerical_grad(loss, leaf)
        assert_grad_close(f"attention_backward {name} d{leaf_name}", grads[leaf_name], numeric)


def test_backward_accumulates_into_gradient_buffers(rng):
    case = CASES["causal_fused_padded"]
    leaves = case.make_leaves(rng)
    dout = rng.standard_normal((case.B, case.T, case.C))
    _, probs = run_forward(case, leaves)
    fresh = run_backward(case, leaves, probs, dout)["qkv"]
    start = rng.standard_normal(leaves["qkv"].shape)
    accumulated = run_backward(case, leaves, probs, dout, {"qkv": start.copy()})["qkv"]
    assert np.abs(fresh).max() > 0.1
    np.testing.assert_allclose(accumulated, start + fresh, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", [n for n in CASES if n != "shared_buffer"])  # dq, dk, dv must not overlap
def test_backward_overwrites_when_not_accumulating(name, rng):
    case = CASES[name]
    leaves = case.make_leaves(rng)
    dout = rng.standard_normal((case.B, case.T, case.C))
    _, probs = run_forward(case, leaves)
    fresh = run_backward(case, leaves, probs, dout)
    nan_filled = {n: np.full_like(a, np.nan) for n, a in leaves.items()}  # never read
    written = run_backward(case, leaves, probs, dout, nan_filled, accumulate=False)
    for n in leaves:
        np.testing.assert_array_equal(written[n], fresh[n])


def test_causal_later_tokens_do_not_change_earlier_outputs(rng):
    case = CASES["causal_fused_qkv"]
    leaves = case.make_leaves(rng)
    out, probs = run_forward(case, leaves)
    for t in range(case.T - 1):
        changed = {"qkv": leaves["qkv"].copy()}
        changed["qkv"][:, t + 1:, :] = rng.standard_normal(changed["qkv"][:, t + 1:, :].shape)
        out2, probs2 = run_forward(case, changed)
        assert np.array_equal(out2[:, :t + 1], out[:, :t + 1])
        assert np.array_equal(probs2[:, :, :t + 1], probs[:, :, :t + 1])
        assert not np.allclose(out2[:, t + 1:], out[:, t + 1:])  # the change did reach later rows


@pytest.mark.parametrize("name", ["causal_fused_padded", "encoder_padded", "cross_padded"])
def test_fully_masked_batch_element_gives_zeros_not_nan(name, rng):
    base = CASES[name]
    # batch element 0: every key is padding; element 1 keeps its mask
    case = Case(base.B, base.T, base.S, base.C, base.NH, base.causal, base.layout,
                ("0" * base.S, base.mask[1]))
    leaves = case.make_leaves(rng)
    out, probs = run_forward(case, leaves)
    grads = run_backward(case, leaves, probs, rng.standard_normal(out.shape))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(probs))
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    assert np.all(out[0] == 0.0) and np.all(probs[0] == 0.0)
    for g in case.split(grads):  # nothing in element 0 influences the output: zero gradients
        assert np.all(g[0] == 0.0)
    ref_out, ref_probs = reference_attention(*case.split(leaves), case.allowed(), case.NH)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-12, atol=1e-12)


# One case per input layout (fused qkv views, contiguous arrays, q + fused kv): each float32
# layout is a separate compiled specialization, so more cases would only add compile time.
@pytest.mark.parametrize("name", ["causal_fused_padded", "no_mask", "cross_wide_heads"])
def test_float32_agrees_with_float64(name, rng):
    case = CASES[name]
    leaves64 = case.make_leaves(rng)
    leaves32 = {n: a.astype(np.float32) for n, a in leaves64.items()}
    dout64 = rng.standard_normal((case.B, case.T, case.C))
    results = []
    for leaves, dout in ((leaves64, dout64), (leaves32, dout64.astype(np.float32))):
        out, probs = run_forward(case, leaves)
        grads = run_backward(case, leaves, probs, dout)
        results.append((out, probs, grads))
    (out64, probs64, grads64), (out32, probs32, grads32) = results
    assert out32.dtype == probs32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probs32, probs64, rtol=1e-4, atol=1e-6)
    for n in leaves64:
        assert grads32[n].dtype == np.float32
        np.testing.assert_allclose(grads32[n], grads64[n], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,p", [("causal_fused_padded", 0.0), ("cross_padded", 0.0), ("no_mask", 0.0),
                                    ("causal_fused_padded", P_DROP), ("cross_padded", P_DROP)])
def test_py_func_agrees_with_compiled(name, p, rng):
    case = CASES[name]
    leaves = case.make_leaves(rng)
    q, k, v = case.split(leaves)
    mask = case.key_mask()
    dout = rng.standard_normal((case.B, case.T, case.C))

    def run(fwd, bwd):
        out = np.full((case.B, case.T, case.C), np.nan)
        probs = np.full((case.B, case.NH, case.T, case.S), np.nan)
        fwd(out, probs, q, k, v, mask, case.NH, case.causal, p, SEED)
        grads = {n: np.zeros_like(a) for n, a in leaves.items()}
        bwd(*case.split(grads), dout, probs, q, k, v, None, case.NH, case.causal, p, SEED, True)
        return out, probs, grads

    results = [run(attention_forward, attention_backward)]
    # the per-head products, packing and micro-kernel interpreted too, and the dropout mask's hash
    # (whose uint64 wrap-around is intended, see kernels/dropout.py)
    with np.errstate(over="ignore"), interpreted(attention_forward) as fwd, interpreted(attention_backward) as bwd:
        results.append(run(fwd, bwd))
    (out_c, probs_c, grads_c), (out_p, probs_p, grads_p) = results
    np.testing.assert_allclose(out_p, out_c, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(probs_p, probs_c, rtol=1e-12, atol=1e-14)
    for n in leaves:
        np.testing.assert_allclose(grads_p[n], grads_c[n], rtol=1e-12, atol=1e-14)


# -- dropout on the attention probabilities ----------------------------------------------------------
DROPOUT_CASES = ["causal_fused_padded", "encoder_padded", "cross_padded", "shared_buffer", "causal_many_tiles",
                 "cross_many_tiles"]


def dropout_mask(case, p, seed):
    """The kernel's mask, 0 or 1 / (1 - p), (B, NH, T, S): what dropout_forward draws with the same
    seed over the probabilities' flat indices."""
    n = case.B * case.NH * case.T * case.S
    mask = np.empty(n)
    dropout_forward(np.empty(n), mask, np.ones(n), p, seed)
    return mask.reshape(case.B, case.NH, case.T, case.S)


def dropped_probs(case, rng, p, seed, dtype=np.float64):
    """(D, P): the probabilities the kernel multiplied v by, and those it stored. With each head's
    values the identity (head size = S), head h's output rows are D's rows."""
    assert case.layout == "separate" and case.C // case.NH == case.S
    leaves = case.make_leaves(rng, dtype)
    leaves["v"][:] = np.tile(np.eye(case.S, dtype=dtype), case.NH)
    out, probs = run_forward(case, leaves, p, seed)
    return out.reshape(case.B, case.T, case.NH, case.S).transpose(0, 2, 1, 3), probs


@pytest.mark.parametrize("name", DROPOUT_CASES)
def test_dropout_forward_matches_numpy_reference_with_the_same_mask(name, rng):
    case = CASES[name]
    leaves = case.make_leaves(rng)
    out, probs = run_forward(case, leaves, P_DROP, SEED)
    mask = dropout_mask(case, P_DROP, SEED)
    ref_out, ref_probs = reference_attention(*case.split(leaves), case.allowed(), case.NH, keep=mask)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-12, atol=1e-12)  # P, not the dropped-out D
    # the mask did drop something that mattered, and another seed drops something else
    assert not np.allclose(out, reference_attention(*case.split(leaves), case.allowed(), case.NH)[0])
    assert not np.allclose(out, run_forward(case, leaves, P_DROP, SEED + 1)[0])
    np.testing.assert_array_equal(out, run_forward(case, leaves, P_DROP, SEED)[0])


@pytest.mark.parametrize("name", DROPOUT_CASES)
def test_dropout_backward_matches_finite_differences(name, rng):
    case = CASES[name]
    leaves = case.make_leaves(rng)
    R = rng.standard_normal((case.B, case.T, case.C))  # loss = sum(out * R), so dout = R
    _, probs = run_forward(case, leaves, P_DROP, SEED)
    grads = run_backward(case, leaves, probs, R, p=P_DROP, seed=SEED)

    def loss():  # the same seed in every evaluation: the same mask, so a smooth function of the inputs
        return float(np.sum(run_forward(case, leaves, P_DROP, SEED)[0] * R))

    # eps = 1e-4, not gradcheck's 1e-6: the softmax's exp64 is accurate to ~2e-13 relative
    # (kernels/fast_exp.py), so a difference of two losses carries ~1e-13 of noise whatever |loss|
    # is, 1e-7 after dividing by 2e-6, above the bound where the loss happens to be near 0
    # (cross_many_tiles). At 1e-4 that noise is 1e-9, and the truncation error (eps^2 / 6 times
    # the third derivative) is as small.
    for leaf_name, leaf in leaves.items():
        numeric = numerical_grad(loss, leaf, eps=1e-4)
        assert_grad_close(f"attention_backward dropout {name} d{leaf_name}", grads[leaf_name], numeric)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_drops_a_fraction_p_and_scales_the_rest(p, rng):
    case = Case(4, 48, 48, 96, 2, False, "separate")  # head size 48 = S: the output shows D
    d, probs = dropped_probs(case, rng, p, seed=7)
    dropped = np.mean(d == 0.0)
    sigma = math.sqrt(p * (1 - p) / d.size)  # fixed seed: deterministic, but any seed passes 5 sigma
    assert abs(dropped - p) < 5 * sigma, dropped
    kept = d != 0.0
    np.testing.assert_allclose(d[kept], probs[kept] / (1 - p), rtol=1e-12)
    np.testing.assert_array_equal(kept, dropout_mask(case, p, 7) != 0.0)


@pytest.mark.parametrize("causal,mask", [(True, None), (True, ("11111111", "01101110")),
                                         (False, ("11111111", "11100000"))])
def test_dropout_keeps_causal_and_padded_keys_masked(causal, mask, rng):
    case = Case(2, 8, 8, 16, 2, causal, "separate", mask)
    d, probs = dropped_probs(case, rng, 0.5, seed=3)
    allowed = np.broadcast_to(case.allowed()[:, None], d.shape)
    assert np.all(d[~allowed] == 0.0) and np.all(probs[~allowed] == 0.0)
    kept = allowed & (d != 0.0)
    assert kept.any() and (allowed & ~kept).any()  # p = 0.5 dropped some allowed keys and kept others
    np.testing.assert_allclose(d[kept], 2 * probs[kept], rtol=1e-12)  # 1 / (1 - p) = 2


@pytest.mark.parametrize("name", ["causal_fused_padded", "cross_many_tiles"])
def test_dropout_off_ignores_the_seed_and_tiny_p_keeps_everything(name, rng):
    case = CASES[name]
    leaves = case.make_leaves(rng)
    dout = rng.standard_normal((case.B, case.T, case.C))
    out, probs = run_forward(case, leaves)
    grads = run_backward(case, leaves, probs, dout)
    # p = 0: the seed is not read, the result is the kernel without dropout
    out_seeded, probs_seeded = run_forward(case, leaves, 0.0, SEED)
    np.testing.assert_array_equal(out_seeded, out)
    np.testing.assert_array_equal(probs_seeded, probs)
    for n, g in run_backward(case, leaves, probs, dout, p=0.0, seed=SEED).items():
        np.testing.assert_array_equal(g, grads[n])
    # p = 1e-300 runs the dropout path with every element kept and 1 / (1 - p) == 1 exactly: D = P,
    # so the forward is the same to the bit; the backward's other form of dA agrees to rounding
    tiny = 1e-300
    out_tiny, probs_tiny = run_forward(case, leaves, tiny, SEED)
    np.testing.assert_array_equal(out_tiny, out)
    np.testing.assert_array_equal(probs_tiny, probs)
    for n, g in run_backward(case, leaves, probs, dout, p=tiny, seed=SEED).items():
        np.testing.assert_allclose(g, grads[n], rtol=1e-12, atol=1e-14)


def test_dropout_float32_stays_float32(rng):
    case = CASES["causal_fused_padded"]  # a float32 layout test_float32_agrees_with_float64 compiles already
    leaves64 = case.make_leaves(rng)
    leaves32 = {n: a.astype(np.float32) for n, a in leaves64.items()}
    dout64 = rng.standard_normal((case.B, case.T, case.C))
    results = []
    for leaves, dout in ((leaves64, dout64), (leaves32, dout64.astype(np.float32))):
        out, probs = run_forward(case, leaves, P_DROP, SEED)
        results.append((out, run_backward(case, leaves, probs, dout, p=P_DROP, seed=SEED)))
    (out64, grads64), (out32, grads32) = results
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)  # the same mask in both precisions
    for n in leaves64:
        assert grads32[n].dtype == np.float32
        np.testing.assert_allclose(grads32[n], grads64[n], rtol=1e-4, atol=1e-5)
