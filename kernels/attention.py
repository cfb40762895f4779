"""Multi-head scaled dot-product attention, forward and backward.

One kernel pair serves the three attentions of a transformer:
- causal self-attention (GPT decoder): causal=True, S == T, query t sees keys s <= t;
- bidirectional self-attention (encoder): causal=False, key_mask hides padding tokens;
- cross-attention (decoder over encoder): q has T rows, k and v have S rows, key_mask is the
  source padding mask.

For batch element b and head h (channels h*hs:(h+1)*hs), with scale = 1 / sqrt(hs):
    A[t, s] = (q_t . k_s) * scale                   scores           (T, S)
    P[t, :] = softmax of A[t, :] over allowed s     probabilities    (T, S)
    O[t]    = sum_s P[t, s] v_s                     output           (T, hs)
Key s is allowed for query t when key_mask[b, s] is True (or key_mask is None) and, if causal,
s <= t. Disallowed keys are skipped by loop bounds and mask checks, never given a score of -inf,
so they get probability exactly 0 and cost no work. A query with no allowed key at all (a fully
padded source) gets P = 0 and O = 0 rather than 0/0 = NaN.

Heads and batch elements are independent, so both kernels run one `prange` over the B * NH
(b, h) pairs; each pair reads and writes only its own head's channels of batch b, so there are no
write races even when dq, dk and dv view one fused gradient buffer.

Why each (b, h) first copies its head into small contiguous scratch arrays: q, k, v are usually
strided views (thirds of a fused (B, T, 3C) buffer), which Numba types with layout 'A'. Every
access then goes through runtime strides and LLVM does not vectorize the head-size loops (in the
backward pass it cannot even prove that stores into dk do not overlap loads from q). The copy
costs O((T + S) hs) per head against O(T S hs) arithmetic, and made both kernels several times
faster in a float32 measurement (T = S = 128, hs = 64).

The keys (forward) and values (backward) are copied transposed, (hs, S), so that a row of scores
q_t . k_s is built one channel at a time with the inner loop along s: 16 scores per vector
instruction. A dot product per (t, s) instead ends in a sum across one vector per score, which at
hs = 32 costs as much as the multiplies. The exponentials use exp64 (fast_exp.py), which
vectorizes where math.exp does not.
"""
import math

import numpy as np
from numba import prange

from ._jit import parallel_kernel
from .fast_exp import exp64


@parallel_kernel
def attention_forward(out, probs, q, k, v, key_mask, n_head, causal):
    """Multi-head attention: out = softmax(q k^T / sqrt(hs), masked) v, one head per channel block.

    out:      (B, T, C) written, C-contiguous.
    probs:    (B, NH, T, S) written, C-contiguous; the probabilities P, kept for the backward pass.
              Entries of disallowed keys are 0; rows of queries with no allowed key are all 0.
    q:        (B, T, C); k, v: (B, S, C). Same float dtype as out. May be non-contiguous views
              (e.g. the q/k/v thirds of a fused (B, T, 3C) c_attn output) as long as the last
              axis is contiguous.
    key_mask: (B, S) bool, True = key may be attended; or None (every key allowed).
    n_head:   NH, which divides C; head h uses channels h*hs:(h+1)*hs with hs = C // NH.
    causal:   if True, S == T and query t attends only keys s <= t.
    """
    B, T, C = q.shape
    S = k.shape[1]
    hs = C // n_head
    dt = q.dtype.type
    zero = dt(0)
    one = dt(1)
    scale = dt(1.0 / math.sqrt(hs))
    for bh in prange(B * n_head):
        b = bh // n_head
        h = bh % n_head
        c0 = h * hs  # first channel of this head
        # Contiguous copies of this head's keys, transposed, and values (see module doc).
        kt = np.empty((hs, S), dtype=probs.dtype)
        vh = np.empty((S, hs), dtype=probs.dtype)
        for s in range(S):
            for i in range(hs):
                kt[i, s] = k[b, s, c0 + i]
                vh[s, i] = v[b, s, c0 + i]
        ot = np.empty(hs, dtype=probs.dtype)  # output row t
        for t in range(T):
            s_end = t + 1 if causal else S  # causal: keys after t are outside the loop bounds
            a = probs[b, h, t]  # this row of probs holds the scores until they become P
            # Scores A[t, s] = (q_t . k_s) * scale, summed one channel i at a time so that the
            # inner loop runs along s, over contiguous memory, with no sum across a vector.
            a[:s_end] = zero
            for i in range(hs):
                qi = q[b, t, c0 + i] * scale
                for s in range(s_end):
                    a[s] += qi * kt[i, s]
            # Their maximum over allowed keys: softmax(a) = softmax(a - max), and with the
            # maximum subtracted no exp can overflow.
            n_allowed = 0
            a_max = zero
            for s in range(s_end):
                if key_mask is None or key_mask[b, s]:
                    if n_allowed == 0 or a[s] > a_max:
                        a_max = a[s]
                    n_allowed += 1
            if n_allowed == 0:
                # Fully masked query: there is no distribution to normalise, so P and O are 0.
                a[:] = zero
                for i in range(hs):
                    out[b, t, c0 + i] = zero
                continue
            # e_s = exp(A[t, s] - max) for allowed keys, exactly 0 for the others, and their sum
            # (>= 1: the maximal key contributes exp(0) = 1); P = e / sum.
            denom = zero
            for s in range(s_end):
                e = dt(exp64(a[s] - a_max))
                if key_mask is not None and not key_mask[b, s]:
                    e = zero
                a[s] = e
                denom += e
            inv = one / denom
            for s in range(s_end):
                a[s] *= inv
            a[s_end:] = zero  # causal: future keys get probability exactly 0
            # O_t = sum_s P[t, s] v_s
            ot[:] = zero
            for s in range(s_end):
                p = a[s]
                for i in range(hs):
                    ot[i] += p * vh[s, i]
            for i in range(hs):
                out[b, t, c0 + i] = ot[i]


@parallel_kernel
def attention_backward(dq, dk, dv, dout, probs, q, k, v, key_mask, n_head, causal):
    """Backward of attention_forward; ACCUMULATES (+=) into dq, dk and dv.

    dq:       (B, T, C); dk, dv: (B, S, C). Accumulated into. Like q, k, v they may be
              non-contiguous views with a contiguous last axis (e.g. thirds of a fused
              (B, T, 3C) gradient buffer), and may even be the same array (q = k = v = x gives
              dq = dk = dv = dx): each (b, h) pair adds into only its own head's channels of
              batch b, and its three adds into one element happen one after another.
    dout:     (B, T, C) gradient of the loss with respect to out.
    probs:    (B, NH, T, S) the probabilities written by attention_forward for these inputs.
    q, k, v, key_mask, n_head, causal: exactly as passed to attention_forward.

    Forward, per (b, h), with scale = 1 / sqrt(hs):
        A = q k^T * scale ;  P = softmax(A) row-wise (over allowed keys) ;  O = P V
    Backward, given dO:
        dV = P^T dO                       O = P V is linear in V
        dP = dO V^T                       ... and linear in P
        dA = P * (dP - rowsum(P * dP))    the softmax VJP applied to each row: for y = softmax(a),
                                          J = diag(y) - y y^T, so J^T g = y * (g - <y, g>)
                                          (softmax_vjp in kernels/softmax.py, inlined here)
        dQ = dA K * scale                 A = q k^T * scale is bilinear in q and k
        dK = dA^T Q * scale
    Disallowed keys have P = 0, so every term they would receive (dV, dA and through it dK) is
    0 without a mask check: only causal future keys are skipped, by the loop bounds. A fully
    masked query row has P = 0 and gets dq = 0.
    """
    B, T, C = q.shape
    S = k.shape[1]
    hs = C // n_head
    dt = q.dtype.type
    zero = dt(0)
    scale = dt(1.0 / math.sqrt(hs))
    for bh in prange(B * n_head):
        b = bh // n_head
        h = bh % n_head
        c0 = h * hs
        # Contiguous copies of this head's inputs (values transposed), and contiguous gradient
        # accumulators that are added into dq, dk, dv once at the end (see module doc for why).
        qh = np.empty((T, hs), dtype=probs.dtype)
        gh = np.empty((T, hs), dtype=probs.dtype)  # dout
        kh = np.empty((S, hs), dtype=probs.dtype)
        vt = np.empty((hs, S), dtype=probs.dtype)
        for t in range(T):
            for i in range(hs):
                qh[t, i] = q[b, t, c0 + i]
                gh[t, i] = dout[b, t, c0 + i]
        for s in range(S):
            for i in range(hs):
                kh[s, i] = k[b, s, c0 + i]
                vt[i, s] = v[b, s, c0 + i]
        dqh = np.zeros((T, hs), dtype=probs.dtype)
        dkh = np.zeros((S, hs), dtype=probs.dtype)
        dvh = np.zeros((S, hs), dtype=probs.dtype)
        da = np.empty(S, dtype=probs.dtype)  # one row of dP, then of dA, reused for every query t
        for t in range(T):
            s_end = t + 1 if causal else S
            p = probs[b, h, t]
            # dP[t, s] = dO_t . v_s, one channel at a time (inner loop along s, contiguous)
            da[:s_end] = zero
            for i in range(hs):
                g = gh[t, i]
                for s in range(s_end):
                    da[s] += g * vt[i, s]
            # the row dot <P[t], dP[t]> that the softmax VJP needs, then
            # dA[t, s] = P[t, s] (dP[t, s] - <P[t], dP[t]>), with the scale of A folded in
            row_dot = zero
            for s in range(s_end):
                row_dot += p[s] * da[s]
            for s in range(s_end):
                da[s] = p[s] * (da[s] - row_dot) * scale
            # dV_s += P[t, s] dO_t;  dq_t += dA[t, s] k_s;  dk_s += dA[t, s] q_t
            for s in range(s_end):
                ps = p[s]
                ds = da[s]
                for i in range(hs):
                    dvh[s, i] += ps * gh[t, i]
                    dqh[t, i] += ds * kh[s, i]
                    dkh[s, i] += ds * qh[t, i]
        # Accumulate (+=) this head's gradients into the caller's buffers.
        for t in range(T):
            for i in range(hs):
                dq[b, t, c0 + i] += dqh[t, i]
        for s in range(S):
            for i in range(hs):
                dk[b, s, c0 + i] += dkh[s, i]
                dv[b, s, c0 + i] += dvh[s, i]
