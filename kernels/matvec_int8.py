"""An int8 weight matrix times a few vectors, in integer dot products: generation's linear layers
with weights="int8".

The rows of x are rounded as the weights are (int8.py, as llama.cpp's Q8_0 does for its products):
each to int8 numbers with a scale per block of QBLOCK = 32,

    x~[b, c] = sx[b, k] qx[b, c],      W~[o, c] = sw[o, k] q[o, c],      k = c // QBLOCK

so that the dot product of a block of each is an exact integer,

    D[b, o, k] = sum_{c in block k} qx[b, c] q[o, c]      (int8.add_block_dot: one VPDPBUSD)
    out[b, o]  = act(sum_k (sw[o, k] sx[b, k]) D[b, o, k] + bias[o])     (or out[b, o] += ...)

A block costs a few integer instructions and one multiply-add in x's dtype, where widening each
weight to a float costs a conversion, a multiply and a multiply-add per vector: at one token per
step the weights' bytes then bound the speed, not the arithmetic.

The order of every sum is fixed by the code, whatever the other rows of x hold (as matvec's):

    lane l < 8 sums (sw sx)[o, k] D_l over the whole blocks k in increasing order, D_l the block's
    int32 sum of its products 4l .. 4l + 3;
    the lanes are added as a tree: s[l] += s[l + 4], then s[l] += s[l + 2], then s[0] + s[1];
    a last block shorter than QBLOCK (C not a multiple of it) is added to that, its D summed one by one.

The integer sums are exact whatever instructions compute them, and each block's multiply-add is
fused, so AVX-512 and AVX2 give the same bits (a CPU without FMA differs only where a row ends in a
shorter block). The tile is matvec's 4 x 2, XR rows of x against WR = 2 rows of W, on every CPU.
"""
import numpy as np
from numba import prange

from ._jit import kernel, parallel_kernel, slp_kernel
from .int8 import QBLOCK, add_block_dot, quantize_row
from .matvec import ROWS_PER_BLOCK, XR, write_tile
from .prefetch import prefetch_for_read
from .stack_alloc import stack_empty, tree_sum
from .vectors import vectors

WR = 2  # weight rows of the tile
SUMS = XR * WR
L = QBLOCK // 4  # a block's int32 sums, and the lanes of each dot product


@parallel_kernel
def matvec_int8(out, x, q, scales, bias, accumulate, gelu):
    """out = act(x~ @ W~^T + bias), or out += that, as matvec; W~ = the int8 matrix (q, scales),
    x~ = x rounded the same way (module docstring).

    q (OC, C) int8 and scales (OC, n_blocks(C)) of x's dtype, as int8.quantize_int8 writes them;
    the other arguments as matvec's. Parallel over blocks of weight rows.
    """
    B, C = x.shape
    qx = np.empty((B, C), np.int8)
    sx = np.empty((B, scales.shape[1]), scales.dtype)
    for b in range(B):
        quantize_row(qx[b], sx[b], x[b])
    OC = q.shape[0]
    for block in prange((OC + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK):
        o_end = min(OC, (block + 1) * ROWS_PER_BLOCK)
        for o in range(block * ROWS_PER_BLOCK, o_end, WR):
            int8_dot_rows(out, qx, sx, q, scales, o, min(WR, o_end - o), bias, accumulate, gelu)


@slp_kernel(reassociate=False)
def int8_dot_rows(out, qx, sx, q, sw, o, no, bias, accumulate, gelu):
    """out[b, o + j] for every row b of qx and j < no (1 or WR) from the rows o + j of q, XR rows
    of qx at a time, as matvec.dot_rows. Each dot product's lanes live in a stack array of L floats;
    "reassoc" is off, so LLVM keeps every lane's order."""
    dt = out.dtype.type
    B, C = qx.shape
    n = C // QBLOCK
    u0 = vectors(q, o, n, QBLOCK); u1 = vectors(q, o + no - 1, n, QBLOCK)
    last = q.shape[0] - 1  # the next two rows, prefetched while these are read
    next0 = vectors(q, min(o + WR, last), n, QBLOCK); next1 = vectors(q, min(o + WR + 1, last), n, QBLOCK)
    s00 = stack_empty(L, dt); s01 = stack_empty(L, dt)
    s10 = stack_empty(L, dt); s11 = stack_empty(L, dt)
    s20 = stack_empty(L, dt); s21 = stack_empty(L, dt)
    s30 = stack_empty(L, dt); s31 = stack_empty(L, dt)
    zero = dt(0)
    for b in range(0, B, XR):
        nb = min(XR, B - b)
        b1, b2, b3 = b + min(1, nb - 1), b + min(2, nb - 1), b + min(3, nb - 1)
        y0 = vectors(qx, b, n, QBLOCK); y1 = vectors(qx, b1, n, QBLOCK)
        y2 = vectors(qx, b2, n, QBLOCK); y3 = vectors(qx, b3, n, QBLOCK)
        s00[:] = zero; s01[:] = zero; s10[:] = zero; s11[:] = zero
        s20[:] = zero; s21[:] = zero; s30[:] = zero; s31[:] = zero
        if nb == 1:  # one row of x: the same sums, one weight row after the other (one stream)
            for k in range(n):
                prefetch_for_read(next0[k], 0)
                add_block_dot(s00, u0[k], y0[k], sw[o, k] * sx[b, k])
            for k in range(n if no > 1 else 0):
                prefetch_for_read(next1[k], 0)
                add_block_dot(s01, u1[k], y0[k], sw[o + 1, k] * sx[b, k])
        for k in range(n if nb > 1 else 0):
            prefetch_for_read(next0[k], 0); prefetch_for_read(next1[k], 0)
            a0 = u0[k]; a1 = u1[k]
            g0 = sw[o, k]; g1 = sw[o + no - 1, k]
            f = sx[b, k]
            add_block_dot(s00, a0, y0[k], g0 * f); add_block_dot(s01, a1, y0[k], g1 * f)
            f = sx[b1, k]
            add_block_dot(s10, a0, y1[k], g0 * f); add_block_dot(s11, a1, y1[k], g1 * f)
            f = sx[b2, k]
            add_block_dot(s20, a0, y2[k], g0 * f); add_block_dot(s21, a1, y2[k], g1 * f)
            f = sx[b3, k]
            add_block_dot(s30, a0, y3[k], g0 * f); add_block_dot(s31, a1, y3[k], g1 * f)
        sums = stack_empty(SUMS, dt)
        sums[0] = tree_sum(s00, L); sums[1] = tree_sum(s01, L)
        sums[2] = tree_sum(s10, L); sums[3] = tree_sum(s11, L)
        sums[4] = tree_sum(s20, L); sums[5] = tree_sum(s21, L)
        sums[6] = tree_sum(s30, L); sums[7] = tree_sum(s31, L)
        if C % QBLOCK:  # the last, shorter block
            for i in range(nb):
                for j in range(no):
                    sums[i * WR + j] += (sw[o + j, n] * sx[b + i, n]) * dt(tail_dot(qx, b + i, q, o + j, n * QBLOCK))
        write_tile(out, sums, WR, b, nb, o, no, bias, accumulate, gelu)


@kernel
def tail_dot(qx, b, q, o, c0):
    """sum over c >= c0 of qx[b, c] q[o, c], an exact integer."""
    s = 0
    for c in range(c0, qx.shape[1]):
        s += np.int32(qx[b, c]) * np.int32(q[o, c])
    return s
