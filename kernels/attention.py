"""Multi-head scaled dot-product attention, forward and backward.

One kernel pair serves the three attentions of a transformer:
- causal self-attention (GPT decoder): causal=True, S == T, query t sees keys s <= t;
- bidirectional self-attention (encoder): causal=False, key_mask hides padding tokens;
- cross-attention (decoder over encoder): q has T rows, k and v have S rows, key_mask is the
  source padding mask.

For batch element b and head h (channels h*hs:(h+1)*hs), with scale = 1 / sqrt(hs):
    A[t, s] = (q_t . k_s) * scale                   scores           (T, S)
    P[t, :] = softmax of A[t, :] over allowed s     probabilities    (T, S)
    D       = P * M / (1 - p)                       dropped out      (T, S)   training, dropout p > 0
    O[t]    = sum_s D[t, s] v_s                     output           (T, hs)
Key s is allowed for query t when key_mask[b, s] is True (or key_mask is None) and, if causal,
s <= t. Disallowed keys are skipped by loop bounds and mask checks, never given a score of -inf,
so they get probability exactly 0. A query with no allowed key at all (a fully
padded source) gets P = 0 and O = 0 rather than 0/0 = NaN.

Dropout on the probabilities (GPT-2's attn_pdrop; D = P when p = 0, as outside training): M[t, s]
is 1 with probability 1 - p, else 0, from dropout.py's counter-based generator. The decision for
probs[b, h, t, s] is `kept(key, i)`, i its flat index in probs: the mask dropout_forward(..., seed)
would draw over probs.reshape(-1). Being a pure function of (seed, i), the mask is drawn again in
the backward from the same seed rather than stored: no (B, NH, T, S) buffer beside P, for one
integer hash per allowed element in each pass, cheap beside the forward's exp. D itself lives only
in per-thread scratch. With p = 0 neither pass draws anything and the arithmetic is that of
attention without dropout.

Heads and batch elements are independent, so both kernels run one `prange` over the B * NH
(b, h) pairs; each pair reads and writes only its own head's channels of batch b, so there are no
write races even when dq, dk and dv view one fused gradient buffer.

Every product of the two passes (q k^T, D v in the forward; D^T dO, dO v^T, dA k, dA^T q in the
backward) is a small matrix multiply, done per head with the parts in tiles.py: the head's
operands are packed into MR-row tiles and NR-column panels (which also turns strided views, such
as the q/k/v thirds of a fused (B, T, 3C) buffer, into contiguous memory), and `_head_product`
runs the micro-kernel over them. Causal attention computes only the tiles that touch the lower
triangle (the `part` constants below), about half the work of the full product. The scale
1/sqrt(hs) is applied inside the exponential in the forward and folded into dA in the backward.
The exponentials are fast_exp.py's, in the data's precision, which vectorize where math.exp does
not.
"""
import math

import numpy as np
from numba import prange

from ._jit import kernel, slp_kernel
from .dropout import dropout_key, keep_threshold, kept
from .fast_exp import exp
from .tiles import MR, NR, aligned_scratch, micro_kernel, pack_a, pack_b

# Which part of a product `_head_product` computes. With causal masking, P[t, s] = 0 for s > t:
FULL = 0            # all of it (no causal mask)
KEYS_UP_TO_ROW = 1  # out[t, s] for keys s up to the row tile's last query, where s <= t lies:
                    # the scores q k^T and dP = dO v^T
DEPTH_UP_TO_ROW = 2  # sum over s only up to the row tile's last row: P v and dA k (row t of P is 0
                     # past s = t)
DEPTH_FROM_ROW = 3  # sum over t only from the row tile's first row: P^T dO and dA^T q (row s of
                    # P^T is 0 before t = s)


@kernel
def _tiles(n):
    return (n + MR - 1) // MR


@kernel
def _panels(n):
    return (n + NR - 1) // NR


@kernel
def _as_rows(rows, x):
    """x as the A operand of _head_product: x itself when its row count is a multiple of MR (a
    C-contiguous matrix already is whole row tiles, so P and dA need no copy), else x copied into
    `rows`, padded with zero rows."""
    if x.shape[0] % MR == 0:
        return x
    pack_a(rows, x, False, 0, x.shape[0], 0, x.shape[1])
    return rows


@kernel
def _store_head(x, b, c0, head, accumulate):
    """x[b, :, c0:c0 + hs] += head (rows, hs), or = when not accumulating: one head's output or
    gradient into its channels of a (B, rows, C) buffer."""
    hs = head.shape[1]
    for t in range(head.shape[0]):
        dst = x[b, t, c0:c0 + hs]  # a row view, indexed from 0 (see tiles.py)
        src = head[t]
        if accumulate:
            for i in range(hs):
                dst[i] += src[i]
        else:
            for i in range(hs):
                dst[i] = src[i]


@kernel
def _dropped_out(d_rows, p, causal, key, threshold, keep_scale, first):
    """D = P * M / (1 - p) for one head, into d_rows ((MR * ceil(T / MR), S), the A operand of
    _head_product; rows past T zeroed): p (T, S) the head's probabilities, element (t, s) kept when
    kept(key, first + t S + s, threshold), first the flat index of p[0, 0] in probs; keep_scale =
    1 / (1 - p). Causal: D = 0 past t, as P is, with no hash drawn there."""
    T, S = p.shape
    zero = d_rows.dtype.type(0)
    n_keys = np.uint64(S)
    for t in range(T):
        s_end = t + 1 if causal else S
        d = d_rows[t]
        p_t = p[t]
        row = first + np.uint64(t) * n_keys
        for s in range(s_end):
            d[s] = p_t[s] * keep_scale if kept(key, row + np.uint64(s), threshold) else zero
        d[s_end:] = zero
    d_rows[T:] = zero


@kernel
def _dropped_out_softmax_vjp(g, d, p, causal, scale):
    """dA = scale (D * dD - P * rowsum(D * dD)), written over dD in g (T, S): the softmax VJP
    P * (dP - rowsum(P * dP)) with dP = dD * M / (1 - p), where P * dP = D * dD, so the mask is
    not needed again. d: D (its first T rows), p: P, both (T, S); 0 past t when causal.
    Kept apart from the loop without dropout, which a loop shared by both cases made slower."""
    T, S = p.shape
    zero = g.dtype.type(0)
    for t in range(T):
        s_end = t + 1 if causal else S
        g_t, d_t, p_t = g[t], d[t], p[t]
        row_dot = zero
        for s in range(s_end):
            row_dot += d_t[s] * g_t[s]
        for s in range(s_end):
            g_t[s] = (d_t[s] * g_t[s] - p_t[s] * row_dot) * scale
        g_t[s_end:] = zero


@slp_kernel
def _head_product(out, a_rows, b_panels, depth, part, tile):
    """out (M, N) = A @ B over the `part` a causal product needs; out is C-contiguous.

    a_rows (MR * ceil(M / MR), depth) and b_panels (ceil(N / NR), depth, NR) are A and B packed
    by tiles.pack_a and tiles.pack_b; tile is an (MR, NR) scratch array. With part
    KEYS_UP_TO_ROW, the columns past the tile's last row are not written.

    Every product writes a contiguous array (the callers copy results into strided views), so
    this function, and the micro-kernel inlined in it, is compiled once per dtype: a strided `out`
    would be a second, long compile."""
    M, N = out.shape
    for t in range(_tiles(M)):
        r0 = t * MR
        mr = min(MR, M - r0)
        n_end, k0, k1 = N, 0, depth
        if part == KEYS_UP_TO_ROW:
            n_end = min(N, r0 + mr)
        elif part == DEPTH_UP_TO_ROW:
            k1 = min(depth, r0 + mr)
        elif part == DEPTH_FROM_ROW:
            k0 = r0
        for p in range(_panels(n_end)):
            j0 = p * NR
            nr = min(NR, n_end - j0)
            tile[:, :] = 0
            micro_kernel(tile, 0, 0, a_rows, r0, 0, b_panels, p, k0, k1)
            for i in range(mr):
                dst = out[r0 + i, j0:j0 + nr]
                src = tile[i]
                for j in range(nr):
                    dst[j] = src[j]


@slp_kernel(parallel=True, any_layout=("q", "k", "v"))
def attention_forward(out, probs, q, k, v, key_mask, n_head, causal, dropout_p, seed):
    """Multi-head attention: out = dropout(softmax(q k^T / sqrt(hs), masked)) v, one head per
    channel block.

    out:      (B, T, C) written, C-contiguous.
    probs:    (B, NH, T, S) written, C-contiguous; the probabilities P, kept for the backward pass.
              Entries of disallowed keys are 0; rows of queries with no allowed key are all 0.
    q:        (B, T, C); k, v: (B, S, C). Same float dtype as out. May be non-contiguous views
              (e.g. the q/k/v thirds of a fused (B, T, 3C) c_attn output) as long as the last
              axis is contiguous.
    key_mask: (B, S) bool, True = key may be attended; or None (every key allowed).
    n_head:   NH, which divides C; head h uses channels h*hs:(h+1)*hs with hs = C // NH.
    causal:   if True, S == T and query t attends only keys s <= t.
    dropout_p: float in [0, 1), the dropout rate on the probabilities; 0.0 turns dropout off
              (evaluation, or no attention dropout) and leaves the seed unread.
    seed:     int in [0, 2^63), the mask's seed (see the module docstring); give the backward the
              same one. (Always pass a float and an int, even when dropout is off, so that one
              compiled version serves both.)
    probs holds P, not D, with or without dropout: the backward needs P, and it is the attention map.
    """
    B, T, C = q.shape
    S = k.shape[1]
    hs = C // n_head
    dt = q.dtype.type
    zero = dt(0)
    one = dt(1)
    scale = dt(1.0 / math.sqrt(hs))
    dropout = dropout_p > 0.0
    key, threshold = dropout_key(seed), keep_threshold(dropout_p)
    keep_scale = dt(1.0 / (1.0 - dropout_p))
    # Threads take runs of (b, h) pairs and allocate their scratch arrays once per run, not once
    # per pair (which is costly for small heads). Runs differ by at most one pair, and there are
    # 16 (or one per pair) so that 2 or 4 threads get equal shares.
    n_pairs = B * n_head
    n_runs = min(n_pairs, 16)
    for run in prange(n_runs):
        tile = aligned_scratch((MR, NR), probs.dtype)
        q_rows = aligned_scratch((_tiles(T) * MR, hs), probs.dtype)
        kt_panels = aligned_scratch((_panels(S), hs, NR), probs.dtype)
        p_rows = aligned_scratch((_tiles(T) * MR, S), probs.dtype)
        v_panels = aligned_scratch((_panels(hs), S, NR), probs.dtype)
        oh = aligned_scratch((T, hs), probs.dtype)
        for bh in range(run * n_pairs // n_runs, (run + 1) * n_pairs // n_runs):
            b = bh // n_head
            h = bh % n_head
            c0 = h * hs  # first channel of this head
            p_bh = probs[b, h]
            # Scores A = q k^T, unscaled, into probs (they become P row by row below).
            pack_a(q_rows, q[b, :, c0:c0 + hs], False, 0, T, 0, hs)
            pack_b(kt_panels, k[b, :, c0:c0 + hs], True, 0, hs, 0, 1)
            _head_product(p_bh, q_rows, kt_panels, hs, KEYS_UP_TO_ROW if causal else FULL, tile)
            for t in range(T):
                s_end = t + 1 if causal else S  # causal: keys after t get P = 0 and no exp
                a = p_bh[t]
                # The maximum score over allowed keys: softmax(a) = softmax(a - max), and with the
                # maximum subtracted no exp can overflow.
                if key_mask is None:
                    n_allowed = s_end
                    a_max = a[0] if s_end > 0 else zero
                    for s in range(1, s_end):
                        a_max = max(a_max, a[s])
                else:
                    n_allowed = 0
                    a_max = zero
                    for s in range(s_end):
                        if key_mask[b, s]:
                            if n_allowed == 0 or a[s] > a_max:
                                a_max = a[s]
                            n_allowed += 1
                if n_allowed == 0:
                    # Fully masked query: there is no distribution to normalise, so P = 0 (and O = 0).
                    a[:] = zero
                    continue
                # e_s = exp(scale (A[t, s] - max)) for allowed keys, exactly 0 for the others, and
                # their sum (>= 1: the maximal key contributes exp(0) = 1); P = e / sum.
                denom = zero
                for s in range(s_end):
                    e = exp((a[s] - a_max) * scale)
                    if key_mask is not None and not key_mask[b, s]:
                        e = zero
                    a[s] = e
                    denom += e
                inv = one / denom
                for s in range(s_end):
                    a[s] *= inv
                a[s_end:] = zero
            # O = D v, written into this head's channels of out; D = P without dropout.
            if dropout:
                _dropped_out(p_rows, p_bh, causal, key, threshold, keep_scale, np.uint64(bh) * np.uint64(T * S))
                d_rows = p_rows
            else:
                d_rows = _as_rows(p_rows, p_bh)
            pack_b(v_panels, v[b, :, c0:c0 + hs], False, 0, S, 0, 1)
            _head_product(oh, d_rows, v_panels, S, DEPTH_UP_TO_ROW if causal else FULL, tile)
            _store_head(out, b, c0, oh, False)


@slp_kernel(parallel=True, any_layout=("dq", "dk", "dv", "q", "k", "v"))
def attention_backward(dq, dk, dv, dout, probs, q, k, v, key_mask, n_head, causal, dropout_p, seed, accumulate):
    """Backward of attention_forward; ACCUMULATES (+=) into dq, dk and dv, or overwrites them.

    dq:       (B, T, C); dk, dv: (B, S, C). Like q, k, v they may be non-contiguous views with a
              contiguous last axis (e.g. thirds of a fused (B, T, 3C) gradient buffer), and
              when accumulating they may even be the same array (q = k = v = x gives
              dq = dk = dv = dx): each (b, h) pair adds into only its own head's channels of
              batch b, and its three adds into one element happen one after another.
    dout:     (B, T, C) gradient of the loss with respect to out.
    probs:    (B, NH, T, S) the probabilities written by attention_forward for these inputs.
    q, k, v, n_head, causal, dropout_p, seed: exactly as passed to attention_forward (the same
              seed recomputes the same dropout mask).
    key_mask: not read (a disallowed key has P = 0, which gives it no gradient): pass None, so
              that one compiled version serves masked and unmasked attention.
    accumulate: False overwrites dq, dk and dv without reading them (temporaries then need no
              zeroing first); they must then not overlap.

    Forward, per (b, h), with scale = 1 / sqrt(hs):
        A = q k^T * scale ;  P = softmax(A) row-wise (over allowed keys) ;  D = P * M / (1 - p) ;
        O = D V                           (D = P without dropout)
    Backward, given dO:
        dV = D^T dO                       O = D V is linear in V
        dD = dO V^T                       ... and linear in D
        dP = dD * M / (1 - p)             D = P * M / (1 - p) is elementwise, M a constant
        dA = P * (dP - rowsum(P * dP))    the softmax VJP applied to each row: for y = softmax(a),
                                          J = diag(y) - y y^T, so J^T g = y * (g - <y, g>)
                                          (softmax_vjp in kernels/softmax.py, inlined here)
        dQ = dA K * scale                 A = q k^T * scale is bilinear in q and k
        dK = dA^T Q * scale
    With dropout the mask drops out of dA: P * dP = P * M / (1 - p) * dD = D * dD, so
        dA = D * dD - P * rowsum(D * dD)
    which needs only D (recomputed from the seed, as in the forward) and P. Without dropout,
    D = P and dD = dP, and the first form is used as it is.
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
    dropout = dropout_p > 0.0
    key, threshold = dropout_key(seed), keep_threshold(dropout_p)
    keep_scale = dt(1.0 / (1.0 - dropout_p))
    # runs of (b, h) pairs with their own scratch arrays, as in attention_forward
    n_pairs = B * n_head
    n_runs = min(n_pairs, 16)
    for run in prange(n_runs):
        tile = aligned_scratch((MR, NR), probs.dtype)
        pt_rows = aligned_scratch((_tiles(S) * MR, T), probs.dtype)
        g_panels = aligned_scratch((_panels(hs), T, NR), probs.dtype)
        # one head's dV or dK, and its dQ, before they are added into the caller's buffers
        grad_s = aligned_scratch((S, hs), probs.dtype)
        grad_t = aligned_scratch((T, hs), probs.dtype)
        g_rows = aligned_scratch((_tiles(T) * MR, hs), probs.dtype)
        vt_panels = aligned_scratch((_panels(S), hs, NR), probs.dtype)
        da = aligned_scratch((T, S), probs.dtype)
        # dA's row tiles when T is no multiple of MR; with dropout first D's, while D is in use
        da_rows = aligned_scratch((_tiles(T) * MR, S), probs.dtype)
        k_panels = aligned_scratch((_panels(hs), S, NR), probs.dtype)
        dat_rows = aligned_scratch((_tiles(S) * MR, T), probs.dtype)
        q_panels = aligned_scratch((_panels(hs), T, NR), probs.dtype)
        for bh in range(run * n_pairs // n_runs, (run + 1) * n_pairs // n_runs):
            b = bh // n_head
            h = bh % n_head
            c0 = h * hs
            p_bh = probs[b, h]
            qh, kh, vh = q[b, :, c0:c0 + hs], k[b, :, c0:c0 + hs], v[b, :, c0:c0 + hs]
            gh = dout[b, :, c0:c0 + hs]
            # dV += D^T dO; D = P without dropout.
            if dropout:
                _dropped_out(da_rows, p_bh, causal, key, threshold, keep_scale, np.uint64(bh) * np.uint64(T * S))
                d_bh = da_rows  # its first T rows: pack_a and the rows below read no more
            else:
                d_bh = p_bh
            pack_a(pt_rows, d_bh, True, 0, S, 0, T)
            pack_b(g_panels, gh, False, 0, T, 0, 1)
            _head_product(grad_s, pt_rows, g_panels, T, DEPTH_FROM_ROW if causal else FULL, tile)
            _store_head(dv, b, c0, grad_s, accumulate)
            # dD = dO v^T (dP without dropout)
            pack_a(g_rows, gh, False, 0, T, 0, hs)
            pack_b(vt_panels, vh, True, 0, hs, 0, 1)
            _head_product(da, g_rows, vt_panels, hs, KEYS_UP_TO_ROW if causal else FULL, tile)
            # dA[t, s] = P[t, s] (dP[t, s] - <P[t], dP[t]>), with the scale of A folded in; 0 past t
            if dropout:
                _dropped_out_softmax_vjp(da, d_bh, p_bh, causal, scale)
            else:
                for t in range(T):
                    s_end = t + 1 if causal else S
                    p = p_bh[t]
                    row_dot = zero
                    for s in range(s_end):
                        row_dot += p[s] * da[t, s]
                    for s in range(s_end):
                        da[t, s] = p[s] * (da[t, s] - row_dot) * scale
                    da[t, s_end:] = zero
            # dQ += dA k
            pack_b(k_panels, kh, False, 0, S, 0, 1)
            _head_product(grad_t, _as_rows(da_rows, da), k_panels, S,
                          DEPTH_UP_TO_ROW if causal else FULL, tile)
            _store_head(dq, b, c0, grad_t, accumulate)
            # dK += dA^T q
            pack_a(dat_rows, da, True, 0, S, 0, T)
            pack_b(q_panels, qh, False, 0, T, 0, 1)
            _head_product(grad_s, dat_rows, q_panels, T, DEPTH_FROM_ROW if causal else FULL, tile)
            _store_head(dk, b, c0, grad_s, accumulate)
