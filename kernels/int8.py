"""int8 weights with one scale per block of 32: a quarter of float32's bytes, for generation.

Generating a token reads every weight matrix once, so its time is the weights' bytes over the
memory bandwidth. Kept as 8-bit integers, a matrix W (OC, C) is

    q[o, c]        = round(W[o, c] / scale[o, k])     int8 in [-127, 127], k = c // QBLOCK
    scale[o, k]    = max_{c in block k} |W[o, c]| / 127
    W~[o, c]       = scale[o, k] q[o, c]               what the products read

each block of QBLOCK = 32 consecutive weights of a row (along the input dimension) sharing one
scale, as llama.cpp's Q8_0 does (it keeps the scale in float16; here it has the activations'
dtype). Rounding is to the nearest, halves away from zero, so |W - W~| <= scale / 2 per weight:
the largest weight of a block is exact, and a block's error is relative to its own largest weight,
not the matrix's. A last block shorter than QBLOCK (C not a multiple of it) has its own scale.

`matvec_int8` multiplies such a matrix by a few vectors, one weight row at a time: each row is read
once, widened to floating point in a small buffer of the thread (L1-resident) and dotted with
every x row, so the int8 bytes cross the memory bus once per product whatever the number of rows.
(matvec.py's tiles of x rows by weight rows do not serve it: a batch of one would sum each row in
one chain of multiply-adds, slower than widening.) The activations stay floating point: only the
weights are rounded.
"""
import math

import numpy as np
from numba import prange

from ._jit import parallel_kernel, slp_kernel
from .matvec import ROWS_PER_BLOCK, finish_output
from .stack_alloc import stack_empty

QBLOCK = 32  # weights per scale, along a row


def n_blocks(C):
    """Scales per weight row: ceil(C / QBLOCK)."""
    return (C + QBLOCK - 1) // QBLOCK


@parallel_kernel
def quantize_int8(q, scales, weight):
    """q, scales = the int8 form of `weight` (formulas above).

    q      (OC, C) int8 written
    scales (OC, n_blocks(C)) written, float32 or float64: the dtype the products will run in
    weight (OC, C) float32 or float64, finite
    All C-contiguous. Parallel over rows.
    """
    OC, C = weight.shape
    dt = scales.dtype.type
    zero, half, top = dt(0), dt(0.5), dt(127)
    for o in prange(OC):
        w, qo, so = weight[o], q[o], scales[o]
        for k in range(scales.shape[1]):
            c0, c1 = k * QBLOCK, min(C, (k + 1) * QBLOCK)
            amax = zero
            for c in range(c0, c1):
                amax = max(amax, abs(dt(w[c])))
            scale = amax / top
            so[k] = scale
            for c in range(c0, c1):
                v = dt(w[c]) / scale if scale > zero else zero
                r = min(dt(math.floor(abs(v) + half)), top)  # |v| <= 127 up to rounding of the division
                qo[c] = np.int8(r if v >= zero else -r)


@parallel_kernel
def dequantize_int8(weight, q, scales):
    """weight = W~, the values the int8 form stands for: weight[o, c] = scales[o, c // QBLOCK] q[o, c].

    weight (OC, C) written, the dtype of scales; q (OC, C) int8; scales (OC, n_blocks(C)).
    """
    OC, C = q.shape
    for o in prange(OC):
        _widen_row(weight[o], q[o], scales[o], C)


@parallel_kernel
def matvec_int8(out, x, q, scales, bias, accumulate, gelu):
    """out = act(x @ W~^T + bias), or out += that when `accumulate`; W~ = the int8 matrix (q, scales).

    out    (B, OC)  written (or added to)
    x      (B, C)   float32 or float64
    q      (OC, C)  int8;  scales (OC, n_blocks(C)) of x's dtype (quantize_int8)
    bias   (OC,) of x's dtype, or (0,) for none
    accumulate, gelu as in matvec.matvec
    All C-contiguous; out must not overlap x. Parallel over blocks of weight rows. Each out[b, o]
    is summed in the same order whatever the other rows of x hold.
    """
    B, C = x.shape
    OC = q.shape[0]
    dt = x.dtype.type
    zero = dt(0)
    for block in prange((OC + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK):
        w = np.empty(C, dt)  # one weight row, widened: read from L1 by every x row
        for o in range(block * ROWS_PER_BLOCK, min(OC, (block + 1) * ROWS_PER_BLOCK)):
            _widen_row(w, q[o], scales[o], C)
            for b in range(B):
                xb = x[b]
                s = zero
                for c in range(C):  # a reduction: vectorized, as kernels may reassociate
                    s += w[c] * xb[c]
                finish_output(out, b, o, s, bias, accumulate, gelu)


@slp_kernel
def _widen_row(w, qo, so, C):
    """w[c] = so[c // QBLOCK] qo[c] for c < C: one row of W~.

    A block's loops have a constant count, so LLVM unrolls them; the SLP vectorizer then packs
    them into a few vector instructions, once the integers pass through a stack array: w and qo
    might overlap as far as LLVM knows, which keeps it from packing loads of one and stores to the
    other, and nothing overlaps a stack array."""
    dt = w.dtype.type
    full = C // QBLOCK
    for k in range(full):
        scale = so[k]
        wk, qk = w[k * QBLOCK:(k + 1) * QBLOCK], qo[k * QBLOCK:(k + 1) * QBLOCK]
        widened = stack_empty(QBLOCK, dt)
        for c in range(QBLOCK):
            widened[c] = dt(qk[c])
        for c in range(QBLOCK):
            wk[c] = scale * widened[c]
    for c in range(full * QBLOCK, C):  # the last, shorter block
        w[c] = so[full] * dt(qo[c])
