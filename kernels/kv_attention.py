"""Causal self-attention for one new position per sequence, over a cache of earlier keys and values.

Generation runs the model one token at a time. The keys and values of earlier positions do not
change when a token is appended (causal attention: position s never sees later ones), so they are
kept in a cache and only the new position's are computed. For sequence b at position t = positions[b]
and head h (channels h*hs:(h+1)*hs), with scale = 1 / sqrt(hs):
    K[t], V[t] = k_t, v_t                       the new key and value, appended to the cache
    a_s = q_t . K[s]                   s <= t   scores against every cached key
    P_s = exp(scale (a_s - max a)) / sum_s' ... softmax, as attention.attention_forward computes it
    o   = sum_s P_s V[s]                        output, (hs,)
Each sequence has its own t: the batch may hold sequences of different lengths. Forward only:
generation needs no gradients.

The cache is laid out (B, NH, W, hs): one head's keys are consecutive rows of hs numbers, read
front to back. One `prange` over the B * NH (b, h) pairs; a pair writes only its own head's slice.
"""
import math

from numba import prange

from ._jit import parallel_kernel
from .fast_exp import exp


@parallel_kernel
def kv_attention_forward(out, probs, qkv, k_cache, v_cache, positions, n_head):
    """Append each sequence's new key and value to the cache, then attend from its new query.

    out       (B, C) written: the attention output of each sequence's new position
    probs     (B, NH, W) written: P over keys 0..positions[b], 0 past them (the attention map)
    qkv       (B, 3C): the new position's query, key and value side by side (c_attn's output)
    k_cache, v_cache (B, NH, W, hs): rows 0..positions[b]-1 hold the earlier positions; row
              positions[b] is overwritten with the new key and value
    positions (B,) int64, each in [0, W): the new position of each sequence
    n_head    NH, which divides C; hs = C // NH
    All C-contiguous, one float dtype.
    """
    B = qkv.shape[0]
    C = qkv.shape[1] // 3
    hs = C // n_head
    dt = qkv.dtype.type
    zero, one = dt(0), dt(1)
    scale = dt(1.0 / math.sqrt(hs))
    for bh in prange(B * n_head):
        b = bh // n_head
        h = bh % n_head
        t = positions[b]
        c0 = h * hs
        q = qkv[b, c0:c0 + hs]
        keys = k_cache[b, h]
        values = v_cache[b, h]
        new_k = qkv[b, C + c0:C + c0 + hs]
        new_v = qkv[b, 2 * C + c0:2 * C + c0 + hs]
        k_row = keys[t]
        v_row = values[t]
        for i in range(hs):
            k_row[i] = new_k[i]
            v_row[i] = new_v[i]
        p = probs[b, h]
        # scores a_s and their maximum (subtracted before exp, so no exp can overflow)
        a_max = zero
        for s in range(t + 1):
            k = keys[s]
            a = zero
            for i in range(hs):
                a += q[i] * k[i]
            p[s] = a
            a_max = a if s == 0 else max(a_max, a)
        denom = zero
        for s in range(t + 1):
            e = exp((p[s] - a_max) * scale)
            p[s] = e
            denom += e
        inv = one / denom  # >= 1 term is exp(0) = 1: no division by zero
        for s in range(t + 1):
            p[s] *= inv
        p[t + 1:] = zero
        o = out[b, c0:c0 + hs]
        o[:] = zero
        for s in range(t + 1):
            weight = p[s]
            v = values[s]
            for i in range(hs):
                o[i] += weight * v[i]
