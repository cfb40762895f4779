"""Tests for kernels/attention.py: multi-head scaled dot-product attention.

Each case describes one way the model calls attention: causal self-attention on views into a fused
(B, T, 3C) qkv buffer (GPT), bidirectional self-attention with a key padding mask (encoder),
cross-attention of T decoder queries over S encoder keys/values from a fused (B, S, 2C) kv buffer
with a source mask, no mask at all, and q = k = v = one array (gradients alias one buffer).
"""
from dataclasses import dataclass

import numpy as np
import pytest

from transformer_jit.kernels._jit import interpreted
from transformer_jit.kernels.attention import attention_backward, attention_forward

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
    # more than one row tile, key panel and head-size panel (see kernels/tiles.py: MR = 8, NR = 32),
    # each with a partial last one: T = 38 queries, 38 or 35 keys, head size 35
    "causal_many_tiles": Case(1, 38, 38, 70, 2, True, "qkv"),
    "cross_many_tiles": Case(2, 8, 35, 70, 2, False, "q_kv", ("1" * 35, "1" * 30 + "0" * 5)),
    # T a multiple of MR: P and dA are used in place as whole row tiles (attention._as_rows)
    "causal_whole_tiles": Case(2, 16, 16, 8, 2, True, "qkv"),
}


def run_forward(case, leaves):
    q, k, v = case.split(leaves)
    dtype = q.dtype
    # NaN-filled so that any element the kernel forgets to write fails the tests.
    out = np.full((case.B, case.T, case.C), np.nan, dtype=dtype)
    probs = np.full((case.B, case.NH, case.T, case.S), np.nan, dtype=dtype)
    attention_forward(out, probs, q, k, v, case.key_mask(), case.NH, case.causal)
    return out, probs


def run_backward(case, leaves, probs, dout, grads=None, accumulate=True):
    if grads is None:
        grads = {n: np.zeros_like(a) for n, a in leaves.items()}
    q, k, v = case.split(leaves)
    dq, dk, dv = case.split(grads)
    attention_backward(dq, dk, dv, dout, probs, q, k, v, case.key_mask(), case.NH, case.causal, accumulate)
    return grads


def reference_attention(q, k, v, allowed, n_head):
    """Per head softmax(q k^T / sqrt(hs) + mask) v, the mask a large negative number (reference
    only); rows with no allowed key are set to 0, the kernel's convention."""
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
            out[b, :, c] = p @ v[b, :, c]
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


@pytest.mark.parametrize("name", ["causal_fused_padded", "cross_padded", "no_mask"])
def test_py_func_agrees_with_compiled(name, rng):
    case = CASES[name]
    leaves = case.make_leaves(rng)
    q, k, v = case.split(leaves)
    mask = case.key_mask()
    dout = rng.standard_normal((case.B, case.T, case.C))

    def run(fwd, bwd):
        out = np.full((case.B, case.T, case.C), np.nan)
        probs = np.full((case.B, case.NH, case.T, case.S), np.nan)
        fwd(out, probs, q, k, v, mask, case.NH, case.causal)
        grads = {n: np.zeros_like(a) for n, a in leaves.items()}
        bwd(*case.split(grads), dout, probs, q, k, v, mask, case.NH, case.causal, True)
        return out, probs, grads

    results = [run(attention_forward, attention_backward)]
    # the per-head products, packing and micro-kernel interpreted too
    with interpreted(attention_forward) as fwd, interpreted(attention_backward) as bwd:
        results.append(run(fwd, bwd))
    (out_c, probs_c, grads_c), (out_p, probs_p, grads_p) = results
    np.testing.assert_allclose(out_p, out_c, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(probs_p, probs_c, rtol=1e-12, atol=1e-14)
    for n in leaves:
        np.testing.assert_allclose(grads_p[n], grads_c[n], rtol=1e-12, atol=1e-14)
