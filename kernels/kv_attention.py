"""Causal self-attention for one new position per sequence, over a cache of earlier keys and values.

Generation runs the model one token at a time. The keys and values of earlier positions do not
change when a token is appended (causal attention: position s never sees later ones), so they are
kept in a cache and only the new position's are computed. For sequence b at position t = positions[b]
and head h (channels h*hs:(h+1)*hs), with scale = 1 / sqrt(hs), over the keys first..t:
    K[t], V[t] = k_t, v_t                       the new key and value, appended to the cache
    a_s = q_t . K[s]                first <= s <= t   scores against the cached keys
    P_s = exp(scale (a_s - max a)) / sum_s' ... softmax, as attention.attention_forward computes it
    o   = sum_s P_s V[s]                        output, (hs,)
first is 0 for global attention; with a window W (local_attention.py), first = max(0, t - W + 1),
and the cache may be a ring of R >= min(W, t + 1) rows, position s in row s % R, so that it does
not grow with the text. A cache of more than t rows never wraps: the global case is the same loop.
Each sequence has its own t: the batch may hold sequences of different lengths. Forward only:
generation needs no gradients.

The cache is laid out (B, NH, R, hs): one head's keys are consecutive rows of hs numbers, read
front to back. One `prange` over the B * NH (b, h) pairs; a pair writes only its own head's slice.
"""
import math

import numpy as np
from numba import prange

from ._jit import parallel_kernel
from .fast_exp import exp


@parallel_kernel
def kv_attention_forward(out, probs, qkv, k_cache, v_cache, positions, n_head, window):
    """Append each sequence's new key and value to the cache, then attend from its new query over
    its keys first..t, oldest first.

    out       (B, C) written: the attention output of each sequence's new position
    probs     (B, NH, R) written: P[j] of key first + j, 0 past t - first (the attention map)
    qkv       (B, 3C): the new position's query, key and value side by side (c_attn's output)
    k_cache, v_cache (B, NH, R, hs): position s in row s % R; row t % R is overwritten with the new
              key and value (the oldest, position t - R, which a window of W <= R no longer reaches)
    positions (B,) int64: the new position t of each sequence; R > t unless window is in [1, R]
    n_head    NH, which divides C; hs = C // NH
    window    W > 0: attend over the last W positions only; 0: over all of them
    All C-contiguous, one float dtype.
    """
    B = qkv.shape[0]
    C = qkv.shape[1] // 3
    hs = C // n_head
    R = k_cache.shape[2]
    dt = qkv.dtype.type
    zero, one = dt(0), dt(1)
    scale = dt(1.0 / math.sqrt(hs))
    for it in prange(B * n_head):
        bh = np.int64(it)
        b = bh // n_head
        h = bh % n_head
        t = positions[b]
        first = max(0, t - window + 1) if window > 0 else 0
        n = t + 1 - first
        c0 = h * hs
        q = qkv[b, c0:c0 + hs]
        keys = k_cache[b, h]
        values = v_cache[b, h]
        k_row = keys[t % R]
        v_row = values[t % R]
        new_k = qkv[b, C + c0:C + c0 + hs]
        new_v = qkv[b, 2 * C + c0:2 * C + c0 + hs]
        for i in range(hs):
            k_row[i] = new_k[i]
            v_row[i] = new_v[i]
        p = probs[b, h]
        # scores and their maximum (subtracted before exp, so no exp can overflow)
        a_max = zero
        for j in range(n):
            k = keys[(first + j) % R]
            a = zero
            for i in range(hs):
                a += q[i] * k[i]
            p[j] = a
            a_max = a if j == 0 else max(a_max, a)
        denom = zero
        for j in range(n):
            e = exp((p[j] - a_max) * scale)
            p[j] = e
            denom += e
        inv = one / denom  # the maximal key contributes exp(0) = 1: no division by zero
        for j in range(n):
            p[j] *= inv
        p[n:] = zero
        o = out[b, c0:c0 + hs]
        o[:] = zero
        for j in range(n):
            weight = p[j]
            v = values[(first + j) % R]
            for i in range(hs):
                o[i] += weight * v[i]
