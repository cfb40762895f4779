"""Local (sliding-window) self-attention, forward and backward: each query attends only to the keys
within a window of W positions, so time and memory grow with T * W instead of T^2.

With window W > 0, query t attends to the keys
    causal:         s in max(0, t - W + 1) .. t             (W keys, itself included, as Mistral masks)
    bidirectional:  s in max(0, t - W) .. min(T - 1, t + W)  (2W + 1 keys)
and, as in attention.py, only keys with key_mask[b, s] True; everything else in attention.py's
docstring holds unchanged (the scale 1 / sqrt(hs), a fully masked query gets P = 0 and O = 0, the
dropout mask). The probabilities are kept in band layout, (B, NH, T, Wk) with Wk = W (causal) or
2W + 1 (bidirectional):
    probs[b, h, t, j] = P[t, s]  for  s = t - W + 1 + j (causal),  s = t - W + j (bidirectional)
0 where s lies outside the sequence or is masked. `band_width(window, causal)` gives Wk.

Dropout draws exactly the mask attention_forward draws: the decision for P[t, s] is
kept(key, ((b NH + h) T + t) T + s), its index in a dense (B, NH, T, T) probability array. So a
window that covers the whole sequence draws the global kernels' mask, element for element, and
the mask is drawn again in the backward rather than stored.

Work. Each `prange` item is one (b, h, block of ROWS queries). The block's queries, and the keys
and values its band reaches, are packed as in attention.py (tiles.py), and every product is run
by the micro-kernel over MR-query tiles: the scores q k^T over the key panels a tile's band
touches, scattered into band layout; O = D V over the tile's key range, D copied into a dense
(MR, keys) strip. The backward runs two such loops: over query blocks (dD = dO v^T, the softmax
VJP dA, dQ = dA k), then over key blocks (dV = D^T dO, dK = dA^T q), so that each item writes
only its own rows of dq, or of dk and dv: no write races, no reduction. dA, the size of probs,
is the one array the backward allocates.

Generation (kv_attention.py's `kv_attention_forward` with the window): one new position per
sequence over a rolling cache of the last W keys and values, so that the cache does not grow with
the text.
"""
import math

import numpy as np
from numba import prange

from ._jit import kernel, slp_kernel
from .attention import _panels, _store_head
from .dropout import dropout_key, keep_threshold, kept
from .fast_exp import exp
from .tiles import MR, NR, aligned_scratch, micro_kernel, pack_a, pack_b

ROWS = 8 * MR  # queries (or keys, in the backward's second loop) per prange item


@kernel
def band_width(window, causal):
    """Wk, the keys one query's band holds: W causal, 2W + 1 bidirectional."""
    return window if causal else 2 * window + 1


@kernel
def _band_start(t, window, causal):
    """The key s that band column j = 0 of query t stands for (may be negative)."""
    return t - window + 1 if causal else t - window


@kernel
def _first_key(t, window, causal):
    return max(0, _band_start(t, window, causal))


@kernel
def _last_key(t, window, causal, T):
    return t if causal else min(T - 1, t + window)


@kernel
def _first_query(s, window, causal):
    """The first query whose band holds key s."""
    return s if causal else max(0, s - window)


@kernel
def _last_query(s, window, causal, T):
    return min(T - 1, s + window - 1) if causal else min(T - 1, s + window)


@kernel
def _block(item, n_blocks, n_head, T):
    """(b, h, first row, end row) of prange item `item`: one block of ROWS rows of head h, batch b."""
    bh = item // n_blocks
    r0 = (item % n_blocks) * ROWS
    return bh // n_head, bh % n_head, r0, min(T, r0 + ROWS)


@kernel
def _query_block(item, n_blocks, n_head, hs, T, window, causal):
    """_block's (b, h, t0, t1) for a block of queries, and its head's first channel c0 and the
    keys its band reaches, lo .. lo + n_keys - 1."""
    b, h, t0, t1 = _block(item, n_blocks, n_head, T)
    lo = _first_key(t0, window, causal)
    return b, h, t0, t1, h * hs, lo, _last_key(t1 - 1, window, causal, T) + 1 - lo


@kernel
def _block_scratch(hs, wk, dtype):
    """A query block's scratch: the tile, its queries' rows, two kinds of key panels, the strip."""
    return (aligned_scratch((MR, NR), dtype), aligned_scratch((ROWS, hs), dtype),
            aligned_scratch((_panels(ROWS + wk), hs, NR), dtype), aligned_scratch((_panels(hs), ROWS + wk, NR), dtype),
            aligned_scratch((MR, ROWS + wk), dtype))


@kernel
def _pack_query_block(rows, t_panels, panels, a, b_t, b_n, b, c0, hs, t0, t1, lo, n_keys):
    """The operands of a block of queries t0..t1-1 over its keys lo..lo + n_keys - 1, in one head's
    channels c0:c0 + hs of batch b: rows = a's rows of the queries; t_panels = b_t's rows of the
    keys, transposed (key s in column s - lo); panels = b_n's rows of the keys (depth s - lo)."""
    pack_a(rows, a[b, :, c0:c0 + hs], False, t0, t1, 0, hs)
    pack_b(t_panels[:_panels(n_keys)], b_t[b, lo:lo + n_keys, c0:c0 + hs], True, 0, hs, 0, 1)
    pack_b(panels, b_n[b, lo:lo + n_keys, c0:c0 + hs], False, 0, n_keys, 0, 1)


@kernel
def _band_scores(p_bh, q_rows, t0, mr, kt_panels, lo, window, causal, T, tile):
    """Rows t0..t0+mr-1 of p_bh (T, Wk), in band layout, = the products q_t . k_s (unscaled) over
    each row's band: q_rows (MR, hs) holds q_t0.. from row 0, kt_panels k^T with key s in column
    s - lo. The backward reuses it for dD = dO v^T."""
    k_first = _first_key(t0, window, causal) - lo
    k_last = _last_key(t0 + mr - 1, window, causal, T) - lo
    hs = q_rows.shape[1]
    for p in range(k_first // NR, k_last // NR + 1):
        tile[:, :] = 0
        micro_kernel(tile, 0, 0, q_rows, 0, 0, kt_panels, p, 0, hs)
        j0 = lo + p * NR  # the key of the tile's column 0
        for i in range(mr):
            t = t0 + i
            s0 = max(_first_key(t, window, causal), j0)
            s1 = min(_last_key(t, window, causal, T), j0 + NR - 1) + 1
            if s1 <= s0:
                continue
            start = _band_start(t, window, causal)
            dst = p_bh[t, s0 - start:s1 - start]
            src = tile[i, s0 - j0:s1 - j0]
            for j in range(s1 - s0):
                dst[j] = src[j]


@kernel
def _band_softmax(p_row, b, t, key_mask, window, causal, T, scale):
    """Row t of P in band layout, from its scores: softmax over the allowed keys of the band, 0
    elsewhere; all 0 when no key is allowed."""
    zero = p_row.dtype.type(0)
    start = _band_start(t, window, causal)
    j0 = _first_key(t, window, causal) - start
    j1 = _last_key(t, window, causal, T) - start + 1
    p_row[:j0] = zero
    p_row[j1:] = zero
    if key_mask is None:
        a_max = p_row[j0]
        for j in range(j0 + 1, j1):
            a_max = max(a_max, p_row[j])
    else:
        n_allowed = 0
        a_max = zero
        for j in range(j0, j1):
            if key_mask[b, start + j]:
                if n_allowed == 0 or p_row[j] > a_max:
                    a_max = p_row[j]
                n_allowed += 1
        if n_allowed == 0:
            p_row[j0:j1] = zero
            return
    denom = zero
    for j in range(j0, j1):
        e = exp((p_row[j] - a_max) * scale)
        if key_mask is not None and not key_mask[b, start + j]:
            e = zero
        p_row[j] = e
        denom += e
    inv = p_row.dtype.type(1) / denom
    for j in range(j0, j1):
        p_row[j] *= inv


@kernel
def _query_strip(strip, band_bh, t0, mr, lo, window, causal, T, dropout, key, threshold, keep_scale, first):
    """strip[i, s - lo] = X[t0 + i, s] over the keys of the tile's rows, zero elsewhere in that
    range and in rows past mr: the A operand of a product over keys. X is band_bh read in dense
    layout, times the dropout mask when `dropout` (first: the flat dropout index of (b, h, 0, 0))."""
    zero = strip.dtype.type(0)
    k0 = _first_key(t0, window, causal) - lo
    k1 = _last_key(t0 + mr - 1, window, causal, T) - lo + 1
    for i in range(MR):
        row = strip[i, k0:k1]
        row[:] = zero
        if i >= mr:
            continue
        t = t0 + i
        start = _band_start(t, window, causal)
        s0, s1 = _first_key(t, window, causal), _last_key(t, window, causal, T) + 1
        src = band_bh[t, s0 - start:s1 - start]
        dst = strip[i, s0 - lo:s1 - lo]
        if dropout:
            index = first + np.uint64(t) * np.uint64(T) + np.uint64(s0)
            for j in range(s1 - s0):
                dst[j] = src[j] * keep_scale if kept(key, index + np.uint64(j), threshold) else zero
        else:
            for j in range(s1 - s0):
                dst[j] = src[j]
    return k0, k1


@kernel
def _key_strip(strip, band_bh, s0, mr, lo, window, causal, T, dropout, key, threshold, keep_scale, first):
    """strip[i, t - lo] = X[t, s0 + i] over the queries that see the tile's keys, zero elsewhere in
    that range and in rows past mr: the A operand of a product over queries (X transposed). X is
    band_bh read in dense layout, times the dropout mask when `dropout`."""
    zero = strip.dtype.type(0)
    q0 = _first_query(s0, window, causal) - lo
    q1 = _last_query(s0 + mr - 1, window, causal, T) - lo + 1
    for i in range(MR):
        row = strip[i, q0:q1]
        row[:] = zero
        if i >= mr:
            continue
        s = s0 + i
        dst = strip[i]
        for t in range(_first_query(s, window, causal), _last_query(s, window, causal, T) + 1):
            x = band_bh[t, s - _band_start(t, window, causal)]
            if dropout:
                x = x * keep_scale if kept(key, first + np.uint64(t) * np.uint64(T) + np.uint64(s), threshold) else zero
            dst[t - lo] = x
    return q0, q1


@kernel
def _strip_product(x, b, t0, mr, c0, hs, strip, k0, k1, panels, tile, accumulate):
    """x[b, t0:t0 + mr, c0:c0 + hs] (+)= strip[:mr, k0:k1] @ the depth k0:k1 of `panels`."""
    for p in range(_panels(hs)):
        tile[:, :] = 0
        micro_kernel(tile, 0, 0, strip, 0, 0, panels, p, k0, k1)
        _store_head(x[:, t0:t0 + mr], b, c0 + p * NR, tile[:mr, :min(NR, hs - p * NR)], accumulate)


@slp_kernel(parallel=True, any_layout=("q", "k", "v"))
def local_attention_forward(out, probs, q, k, v, key_mask, n_head, causal, window, dropout_p, seed):
    """Multi-head self-attention within a window of W = window > 0 keys around each query.

    out:      (B, T, C) written.
    probs:    (B, NH, T, Wk) written, Wk = band_width(window, causal): P in band layout (see the
              module docstring), kept for the backward pass and the attention map.
    q, k, v:  (B, T, C), views with a contiguous last axis (e.g. thirds of a fused qkv buffer).
    key_mask: (B, T) bool, True = key may be attended; or None.
    n_head, causal, dropout_p, seed: as in attention.attention_forward.
    """
    B, T, C = q.shape
    hs = C // n_head
    dt = q.dtype.type
    scale = dt(1.0 / math.sqrt(hs))
    dropout = dropout_p > 0.0
    key, threshold = dropout_key(seed), keep_threshold(dropout_p)
    keep_scale = dt(1.0 / (1.0 - dropout_p))
    wk = probs.shape[3]
    n_blocks = (T + ROWS - 1) // ROWS
    for it in prange(B * n_head * n_blocks):  # it: uint64, as every prange index
        b, h, t0, t1, c0, lo, n_keys = _query_block(np.int64(it), n_blocks, n_head, hs, T, window, causal)
        tile, q_rows, kt_panels, v_panels, strip = _block_scratch(hs, wk, probs.dtype)
        _pack_query_block(q_rows, kt_panels, v_panels, q, k, v, b, c0, hs, t0, t1, lo, n_keys)
        p_bh = probs[b, h]
        first = np.uint64(b * n_head + h) * np.uint64(T) * np.uint64(T)
        for r0 in range(0, t1 - t0, MR):
            ta = t0 + r0
            mr = min(MR, t1 - ta)
            # A = q k^T over the tile's band, then P = softmax row by row
            _band_scores(p_bh, q_rows[r0:r0 + MR], ta, mr, kt_panels, lo, window, causal, T, tile)
            for t in range(ta, ta + mr):
                _band_softmax(p_bh[t], b, t, key_mask, window, causal, T, scale)
            # O = D v over the tile's keys (D = P without dropout)
            k0, k1 = _query_strip(strip, p_bh, ta, mr, lo, window, causal, T, dropout, key, threshold, keep_scale,
                                  first)
            _strip_product(out, b, ta, mr, c0, hs, strip, k0, k1, v_panels, tile, False)


@slp_kernel(parallel=True, any_layout=("dq", "dk", "dv", "q", "k", "v"))
def local_attention_backward(dq, dk, dv, dout, probs, q, k, v, key_mask, n_head, causal, window, dropout_p, seed,
                             accumulate):
    """Backward of local_attention_forward; ACCUMULATES (+=) into dq, dk and dv, or overwrites
    them (accumulate=False, then they must not overlap).

    dq, dk, dv, dout: (B, T, C), views with a contiguous last axis; probs (B, NH, T, Wk) from the
    forward; key_mask not read (pass None, as to attention_backward); the other arguments exactly
    as passed to the forward (the same seed draws the same dropout mask).

    The math is attention_backward's, restricted to the band (D = P * M / (1 - p), D = P without
    dropout; everything outside the band is 0):
        dD = dO V^T                       dV = D^T dO
        dP = dD * M / (1 - p)             dA = P * (dP - rowsum(P * dP))  (the softmax VJP)
        dQ = dA K * scale                 dK = dA^T Q * scale
    First loop, over query blocks: dD, dA (into a band-layout array like probs), dQ. Second
    loop, over key blocks: dV and dK, reading D and dA transposed.
    """
    B, T, C = q.shape
    hs = C // n_head
    dt = q.dtype.type
    zero = dt(0)
    scale = dt(1.0 / math.sqrt(hs))
    dropout = dropout_p > 0.0
    key, threshold = dropout_key(seed), keep_threshold(dropout_p)
    keep_scale = dt(1.0 / (1.0 - dropout_p))
    wk = probs.shape[3]
    n_blocks = (T + ROWS - 1) // ROWS
    da = np.empty(probs.shape, probs.dtype)
    for it in prange(B * n_head * n_blocks):
        b, h, t0, t1, c0, lo, n_keys = _query_block(np.int64(it), n_blocks, n_head, hs, T, window, causal)
        tile, g_rows, vt_panels, k_panels, strip = _block_scratch(hs, wk, probs.dtype)
        _pack_query_block(g_rows, vt_panels, k_panels, dout, v, k, b, c0, hs, t0, t1, lo, n_keys)
        p_bh, da_bh = probs[b, h], da[b, h]
        first = np.uint64(b * n_head + h) * np.uint64(T) * np.uint64(T)
        for r0 in range(0, t1 - t0, MR):
            ta = t0 + r0
            mr = min(MR, t1 - ta)
            # dD = dO v^T over the band, then dA row by row, with the scale of A folded in
            _band_scores(da_bh, g_rows[r0:r0 + MR], ta, mr, vt_panels, lo, window, causal, T, tile)
            for t in range(ta, ta + mr):
                start = _band_start(t, window, causal)
                j0 = _first_key(t, window, causal) - start
                j1 = _last_key(t, window, causal, T) - start + 1
                g, p = da_bh[t], p_bh[t]
                g[:j0] = zero
                g[j1:] = zero
                if dropout:  # dP = dD * M / (1 - p), then as without dropout
                    row = first + np.uint64(t) * np.uint64(T)
                    row_dot = zero
                    for j in range(j0, j1):
                        g[j] = g[j] * keep_scale if kept(key, row + np.uint64(start + j), threshold) else zero
                        row_dot += p[j] * g[j]
                    for j in range(j0, j1):
                        g[j] = p[j] * (g[j] - row_dot) * scale
                else:  # dA = P * (dP - rowsum(P * dP)), dP = dD
                    row_dot = zero
                    for j in range(j0, j1):
                        row_dot += p[j] * g[j]
                    for j in range(j0, j1):
                        g[j] = p[j] * (g[j] - row_dot) * scale
            # dQ (+)= dA k
            k0, k1 = _query_strip(strip, da_bh, ta, mr, lo, window, causal, T, False, key, threshold, keep_scale,
                                  first)
            _strip_product(dq, b, ta, mr, c0, hs, strip, k0, k1, k_panels, tile, accumulate)
    for it in prange(B * n_head * n_blocks):
        b, h, s0, s1 = _block(np.int64(it), n_blocks, n_head, T)
        c0 = h * hs
        lo = _first_query(s0, window, causal)
        n_queries = _last_query(s1 - 1, window, causal, T) + 1 - lo
        tile = aligned_scratch((MR, NR), probs.dtype)
        g_panels = aligned_scratch((_panels(hs), ROWS + wk, NR), probs.dtype)
        q_panels = aligned_scratch((_panels(hs), ROWS + wk, NR), probs.dtype)
        strip = aligned_scratch((MR, ROWS + wk), probs.dtype)
        pack_b(g_panels, dout[b, lo:lo + n_queries, c0:c0 + hs], False, 0, n_queries, 0, 1)
        pack_b(q_panels, q[b, lo:lo + n_queries, c0:c0 + hs], False, 0, n_queries, 0, 1)
        p_bh, da_bh = probs[b, h], da[b, h]
        first = np.uint64(b * n_head + h) * np.uint64(T) * np.uint64(T)
        for r0 in range(0, s1 - s0, MR):
            sa = s0 + r0
            mr = min(MR, s1 - sa)
            # dV (+)= D^T dO
            q0, q1 = _key_strip(strip, p_bh, sa, mr, lo, window, causal, T, dropout, key, threshold, keep_scale,
                                first)
            _strip_product(dv, b, sa, mr, c0, hs, strip, q0, q1, g_panels, tile, accumulate)
            # dK (+)= dA^T q
            q0, q1 = _key_strip(strip, da_bh, sa, mr, lo, window, causal, T, False, key, threshold, keep_scale,
                                first)
            _strip_product(dk, b, sa, mr, c0, hs, strip, q0, q1, q_panels, tile, accumulate)
