"""Matrix multiply the way BLAS libraries do it: packed panels and a register-tile micro-kernel.

    out  =  A @ B  (+ bias, or + out when accumulating)      A (M, K), B (K, N), out (M, N)

Every linear-layer product is one call: the forward and the two backward products only differ in
whether A and B are read as stored or transposed, which `a_transposed`/`b_transposed` say.

Why not three nested loops? A multiply-add needs two numbers; if both come from memory, the loads,
not the arithmetic, set the speed. The micro-kernel keeps an MR x NR = 6 x 32 tile of `out` in
192 scalar accumulators. Per step k it loads 6 numbers of A and 32 of B and does 6 * 32 = 192
multiply-adds with them. LLVM's SLP vectorizer packs each row's 32 accumulators into two 16-float
AVX-512 registers, so one step is 12 vector multiply-adds fed by 2 vector loads and 6 broadcasts,
and the 12 independent accumulators keep both multiply-add units busy despite their latency.

Packing makes those loads contiguous. Before the multiply, B is copied into panels of NR columns,
`b_panels[p, k, j] = B[k, p * NR + j]`, and a block of rows of A into `a_block[t, k, i] =
A[row of tile t + i, k]`, so the micro-kernel reads both with unit stride whatever the layout of
the original arrays (padding past the edge with zeros). The depth K is cut into slices of KC = 256:
one B panel slice (256 x 32 floats = 32 KB) stays in the 48 KB L1 cache while every row tile of a
block of A runs over it, and the block of A (a few times 6 KB) stays in L2.

Threads take blocks of rows of `out`; each owns its rows, so there are no races, and the sum over k
is done in the same order whatever the thread count.
"""
import numpy as np
from numba import prange

from ._jit import kernel, parallel_kernel, slp_kernel

MR = 6     # rows of the register tile
NR = 32    # columns of the register tile (two 16-float vectors)
KC = 256   # depth of one slice of a panel


@kernel
def aligned_empty(shape, dtype):
    """np.empty(shape, dtype) starting on a 64-byte boundary.

    Numba's allocator aligns arrays to 32 bytes, so about half of them start mid-cache-line, and
    then every 64-byte vector load from them straddles two cache lines. The micro-kernel ran at
    124 GFLOP/s on one core with aligned operands and 117 with operands 32 bytes off."""
    n = 1
    for d in shape:
        n *= d
    raw = np.empty(n + 64, dtype)
    offset = (-raw.ctypes.data) % 64 // raw.itemsize
    return raw[offset:offset + n].reshape(shape)


@slp_kernel(reassociate=False)
def micro_kernel(tile, a_block, t, b_panels, p, k0, k1):
    """tile (MR, NR) += a_block[t, k0:k1].T @ b_panels[p, k0:k1]: one row tile times one B panel.

    Written out in scalars so that every accumulator can live in a register: c{i}_{j} is
    tile[i, j], a is A[row i, k] and b{j} is B[k, column j]. The statements go row by row: in
    this order LLVM's SLP vectorizer turns each row's 32 multiply-adds into two vector ones
    (ordered column by column, it still vectorized but ran about 25x slower)."""
    c0_0 = tile[0, 0]; c0_1 = tile[0, 1]; c0_2 = tile[0, 2]; c0_3 = tile[0, 3]
    c0_4 = tile[0, 4]; c0_5 = tile[0, 5]; c0_6 = tile[0, 6]; c0_7 = tile[0, 7]
    c0_8 = tile[0, 8]; c0_9 = tile[0, 9]; c0_10 = tile[0, 10]; c0_11 = tile[0, 11]
    c0_12 = tile[0, 12]; c0_13 = tile[0, 13]; c0_14 = tile[0, 14]; c0_15 = tile[0, 15]
    c0_16 = tile[0, 16]; c0_17 = tile[0, 17]; c0_18 = tile[0, 18]; c0_19 = tile[0, 19]
    c0_20 = tile[0, 20]; c0_21 = tile[0, 21]; c0_22 = tile[0, 22]; c0_23 = tile[0, 23]
    c0_24 = tile[0, 24]; c0_25 = tile[0, 25]; c0_26 = tile[0, 26]; c0_27 = tile[0, 27]
    c0_28 = tile[0, 28]; c0_29 = tile[0, 29]; c0_30 = tile[0, 30]; c0_31 = tile[0, 31]
    c1_0 = tile[1, 0]; c1_1 = tile[1, 1]; c1_2 = tile[1, 2]; c1_3 = tile[1, 3]
    c1_4 = tile[1, 4]; c1_5 = tile[1, 5]; c1_6 = tile[1, 6]; c1_7 = tile[1, 7]
    c1_8 = tile[1, 8]; c1_9 = tile[1, 9]; c1_10 = tile[1, 10]; c1_11 = tile[1, 11]
    c1_12 = tile[1, 12]; c1_13 = tile[1, 13]; c1_14 = tile[1, 14]; c1_15 = tile[1, 15]
    c1_16 = tile[1, 16]; c1_17 = tile[1, 17]; c1_18 = tile[1, 18]; c1_19 = tile[1, 19]
    c1_20 = tile[1, 20]; c1_21 = tile[1, 21]; c1_22 = tile[1, 22]; c1_23 = tile[1, 23]
    c1_24 = tile[1, 24]; c1_25 = tile[1, 25]; c1_26 = tile[1, 26]; c1_27 = tile[1, 27]
    c1_28 = tile[1, 28]; c1_29 = tile[1, 29]; c1_30 = tile[1, 30]; c1_31 = tile[1, 31]
    c2_0 = tile[2, 0]; c2_1 = tile[2, 1]; c2_2 = tile[2, 2]; c2_3 = tile[2, 3]
    c2_4 = tile[2, 4]; c2_5 = tile[2, 5]; c2_6 = tile[2, 6]; c2_7 = tile[2, 7]
    c2_8 = tile[2, 8]; c2_9 = tile[2, 9]; c2_10 = tile[2, 10]; c2_11 = tile[2, 11]
    c2_12 = tile[2, 12]; c2_13 = tile[2, 13]; c2_14 = tile[2, 14]; c2_15 = tile[2, 15]
    c2_16 = tile[2, 16]; c2_17 = tile[2, 17]; c2_18 = tile[2, 18]; c2_19 = tile[2, 19]
    c2_20 = tile[2, 20]; c2_21 = tile[2, 21]; c2_22 = tile[2, 22]; c2_23 = tile[2, 23]
    c2_24 = tile[2, 24]; c2_25 = tile[2, 25]; c2_26 = tile[2, 26]; c2_27 = tile[2, 27]
    c2_28 = tile[2, 28]; c2_29 = tile[2, 29]; c2_30 = tile[2, 30]; c2_31 = tile[2, 31]
    c3_0 = tile[3, 0]; c3_1 = tile[3, 1]; c3_2 = tile[3, 2]; c3_3 = tile[3, 3]
    c3_4 = tile[3, 4]; c3_5 = tile[3, 5]; c3_6 = tile[3, 6]; c3_7 = tile[3, 7]
    c3_8 = tile[3, 8]; c3_9 = tile[3, 9]; c3_10 = tile[3, 10]; c3_11 = tile[3, 11]
    c3_12 = tile[3, 12]; c3_13 = tile[3, 13]; c3_14 = tile[3, 14]; c3_15 = tile[3, 15]
    c3_16 = tile[3, 16]; c3_17 = tile[3, 17]; c3_18 = tile[3, 18]; c3_19 = tile[3, 19]
    c3_20 = tile[3, 20]; c3_21 = tile[3, 21]; c3_22 = tile[3, 22]; c3_23 = tile[3, 23]
    c3_24 = tile[3, 24]; c3_25 = tile[3, 25]; c3_26 = tile[3, 26]; c3_27 = tile[3, 27]
    c3_28 = tile[3, 28]; c3_29 = tile[3, 29]; c3_30 = tile[3, 30]; c3_31 = tile[3, 31]
    c4_0 = tile[4, 0]; c4_1 = tile[4, 1]; c4_2 = tile[4, 2]; c4_3 = tile[4, 3]
    c4_4 = tile[4, 4]; c4_5 = tile[4, 5]; c4_6 = tile[4, 6]; c4_7 = tile[4, 7]
    c4_8 = tile[4, 8]; c4_9 = tile[4, 9]; c4_10 = tile[4, 10]; c4_11 = tile[4, 11]
    c4_12 = tile[4, 12]; c4_13 = tile[4, 13]; c4_14 = tile[4, 14]; c4_15 = tile[4, 15]
    c4_16 = tile[4, 16]; c4_17 = tile[4, 17]; c4_18 = tile[4, 18]; c4_19 = tile[4, 19]
    c4_20 = tile[4, 20]; c4_21 = tile[4, 21]; c4_22 = tile[4, 22]; c4_23 = tile[4, 23]
    c4_24 = tile[4, 24]; c4_25 = tile[4, 25]; c4_26 = tile[4, 26]; c4_27 = tile[4, 27]
    c4_28 = tile[4, 28]; c4_29 = tile[4, 29]; c4_30 = tile[4, 30]; c4_31 = tile[4, 31]
    c5_0 = tile[5, 0]; c5_1 = tile[5, 1]; c5_2 = tile[5, 2]; c5_3 = tile[5, 3]
    c5_4 = tile[5, 4]; c5_5 = tile[5, 5]; c5_6 = tile[5, 6]; c5_7 = tile[5, 7]
    c5_8 = tile[5, 8]; c5_9 = tile[5, 9]; c5_10 = tile[5, 10]; c5_11 = tile[5, 11]
    c5_12 = tile[5, 12]; c5_13 = tile[5, 13]; c5_14 = tile[5, 14]; c5_15 = tile[5, 15]
    c5_16 = tile[5, 16]; c5_17 = tile[5, 17]; c5_18 = tile[5, 18]; c5_19 = tile[5, 19]
    c5_20 = tile[5, 20]; c5_21 = tile[5, 21]; c5_22 = tile[5, 22]; c5_23 = tile[5, 23]
    c5_24 = tile[5, 24]; c5_25 = tile[5, 25]; c5_26 = tile[5, 26]; c5_27 = tile[5, 27]
    c5_28 = tile[5, 28]; c5_29 = tile[5, 29]; c5_30 = tile[5, 30]; c5_31 = tile[5, 31]
    for k in range(k0, k1):
        b0 = b_panels[p, k, 0]; b1 = b_panels[p, k, 1]; b2 = b_panels[p, k, 2]; b3 = b_panels[p, k, 3]
        b4 = b_panels[p, k, 4]; b5 = b_panels[p, k, 5]; b6 = b_panels[p, k, 6]; b7 = b_panels[p, k, 7]
        b8 = b_panels[p, k, 8]; b9 = b_panels[p, k, 9]; b10 = b_panels[p, k, 10]; b11 = b_panels[p, k, 11]
        b12 = b_panels[p, k, 12]; b13 = b_panels[p, k, 13]; b14 = b_panels[p, k, 14]; b15 = b_panels[p, k, 15]
        b16 = b_panels[p, k, 16]; b17 = b_panels[p, k, 17]; b18 = b_panels[p, k, 18]; b19 = b_panels[p, k, 19]
        b20 = b_panels[p, k, 20]; b21 = b_panels[p, k, 21]; b22 = b_panels[p, k, 22]; b23 = b_panels[p, k, 23]
        b24 = b_panels[p, k, 24]; b25 = b_panels[p, k, 25]; b26 = b_panels[p, k, 26]; b27 = b_panels[p, k, 27]
        b28 = b_panels[p, k, 28]; b29 = b_panels[p, k, 29]; b30 = b_panels[p, k, 30]; b31 = b_panels[p, k, 31]
        a = a_block[t, k, 0]
        c0_0 += a * b0; c0_1 += a * b1; c0_2 += a * b2; c0_3 += a * b3
        c0_4 += a * b4; c0_5 += a * b5; c0_6 += a * b6; c0_7 += a * b7
        c0_8 += a * b8; c0_9 += a * b9; c0_10 += a * b10; c0_11 += a * b11
        c0_12 += a * b12; c0_13 += a * b13; c0_14 += a * b14; c0_15 += a * b15
        c0_16 += a * b16; c0_17 += a * b17; c0_18 += a * b18; c0_19 += a * b19
        c0_20 += a * b20; c0_21 += a * b21; c0_22 += a * b22; c0_23 += a * b23
        c0_24 += a * b24; c0_25 += a * b25; c0_26 += a * b26; c0_27 += a * b27
        c0_28 += a * b28; c0_29 += a * b29; c0_30 += a * b30; c0_31 += a * b31
        a = a_block[t, k, 1]
        c1_0 += a * b0; c1_1 += a * b1; c1_2 += a * b2; c1_3 += a * b3
        c1_4 += a * b4; c1_5 += a * b5; c1_6 += a * b6; c1_7 += a * b7
        c1_8 += a * b8; c1_9 += a * b9; c1_10 += a * b10; c1_11 += a * b11
        c1_12 += a * b12; c1_13 += a * b13; c1_14 += a * b14; c1_15 += a * b15
        c1_16 += a * b16; c1_17 += a * b17; c1_18 += a * b18; c1_19 += a * b19
        c1_20 += a * b20; c1_21 += a * b21; c1_22 += a * b22; c1_23 += a * b23
        c1_24 += a * b24; c1_25 += a * b25; c1_26 += a * b26; c1_27 += a * b27
        c1_28 += a * b28; c1_29 += a * b29; c1_30 += a * b30; c1_31 += a * b31
        a = a_block[t, k, 2]
        c2_0 += a * b0; c2_1 += a * b1; c2_2 += a * b2; c2_3 += a * b3
        c2_4 += a * b4; c2_5 += a * b5; c2_6 += a * b6; c2_7 += a * b7
        c2_8 += a * b8; c2_9 += a * b9; c2_10 += a * b10; c2_11 += a * b11
        c2_12 += a * b12; c2_13 += a * b13; c2_14 += a * b14; c2_15 += a * b15
        c2_16 += a * b16; c2_17 += a * b17; c2_18 += a * b18; c2_19 += a * b19
        c2_20 += a * b20; c2_21 += a * b21; c2_22 += a * b22; c2_23 += a * b23
        c2_24 += a * b24; c2_25 += a * b25; c2_26 += a * b26; c2_27 += a * b27
        c2_28 += a * b28; c2_29 += a * b29; c2_30 += a * b30; c2_31 += a * b31
        a = a_block[t, k, 3]
        c3_0 += a * b0; c3_1 += a * b1; c3_2 += a * b2; c3_3 += a * b3
        c3_4 += a * b4; c3_5 += a * b5; c3_6 += a * b6; c3_7 += a * b7
        c3_8 += a * b8; c3_9 += a * b9; c3_10 += a * b10; c3_11 += a * b11
        c3_12 += a * b12; c3_13 += a * b13; c3_14 += a * b14; c3_15 += a * b15
        c3_16 += a * b16; c3_17 += a * b17; c3_18 += a * b18; c3_19 += a * b19
        c3_20 += a * b20; c3_21 += a * b21; c3_22 += a * b22; c3_23 += a * b23
        c3_24 += a * b24; c3_25 += a * b25; c3_26 += a * b26; c3_27 += a * b27
        c3_28 += a * b28; c3_29 += a * b29; c3_30 += a * b30; c3_31 += a * b31
        a = a_block[t, k, 4]
        c4_0 += a * b0; c4_1 += a * b1; c4_2 += a * b2; c4_3 += a * b3
        c4_4 += a * b4; c4_5 += a * b5; c4_6 += a * b6; c4_7 += a * b7
        c4_8 += a * b8; c4_9 += a * b9; c4_10 += a * b10; c4_11 += a * b11
        c4_12 += a * b12; c4_13 += a * b13; c4_14 += a * b14; c4_15 += a * b15
        c4_16 += a * b16; c4_17 += a * b17; c4_18 += a * b18; c4_19 += a * b19
        c4_20 += a * b20; c4_21 += a * b21; c4_22 += a * b22; c4_23 += a * b23
        c4_24 += a * b24; c4_25 += a * b25; c4_26 += a * b26; c4_27 += a * b27
        c4_28 += a * b28; c4_29 += a * b29; c4_30 += a * b30; c4_31 += a * b31
        a = a_block[t, k, 5]
        c5_0 += a * b0; c5_1 += a * b1; c5_2 += a * b2; c5_3 += a * b3
        c5_4 += a * b4; c5_5 += a * b5; c5_6 += a * b6; c5_7 += a * b7
        c5_8 += a * b8; c5_9 += a * b9; c5_10 += a * b10; c5_11 += a * b11
        c5_12 += a * b12; c5_13 += a * b13; c5_14 += a * b14; c5_15 += a * b15
        c5_16 += a * b16; c5_17 += a * b17; c5_18 += a * b18; c5_19 += a * b19
        c5_20 += a * b20; c5_21 += a * b21; c5_22 += a * b22; c5_23 += a * b23
        c5_24 += a * b24; c5_25 += a * b25; c5_26 += a * b26; c5_27 += a * b27
        c5_28 += a * b28; c5_29 += a * b29; c5_30 += a * b30; c5_31 += a * b31
    tile[0, 0] = c0_0; tile[0, 1] = c0_1; tile[0, 2] = c0_2; tile[0, 3] = c0_3
    tile[0, 4] = c0_4; tile[0, 5] = c0_5; tile[0, 6] = c0_6; tile[0, 7] = c0_7
    tile[0, 8] = c0_8; tile[0, 9] = c0_9; tile[0, 10] = c0_10; tile[0, 11] = c0_11
    tile[0, 12] = c0_12; tile[0, 13] = c0_13; tile[0, 14] = c0_14; tile[0, 15] = c0_15
    tile[0, 16] = c0_16; tile[0, 17] = c0_17; tile[0, 18] = c0_18; tile[0, 19] = c0_19
    tile[0, 20] = c0_20; tile[0, 21] = c0_21; tile[0, 22] = c0_22; tile[0, 23] = c0_23
    tile[0, 24] = c0_24; tile[0, 25] = c0_25; tile[0, 26] = c0_26; tile[0, 27] = c0_27
    tile[0, 28] = c0_28; tile[0, 29] = c0_29; tile[0, 30] = c0_30; tile[0, 31] = c0_31
    tile[1, 0] = c1_0; tile[1, 1] = c1_1; tile[1, 2] = c1_2; tile[1, 3] = c1_3
    tile[1, 4] = c1_4; tile[1, 5] = c1_5; tile[1, 6] = c1_6; tile[1, 7] = c1_7
    tile[1, 8] = c1_8; tile[1, 9] = c1_9; tile[1, 10] = c1_10; tile[1, 11] = c1_11
    tile[1, 12] = c1_12; tile[1, 13] = c1_13; tile[1, 14] = c1_14; tile[1, 15] = c1_15
    tile[1, 16] = c1_16; tile[1, 17] = c1_17; tile[1, 18] = c1_18; tile[1, 19] = c1_19
    tile[1, 20] = c1_20; tile[1, 21] = c1_21; tile[1, 22] = c1_22; tile[1, 23] = c1_23
    tile[1, 24] = c1_24; tile[1, 25] = c1_25; tile[1, 26] = c1_26; tile[1, 27] = c1_27
    tile[1, 28] = c1_28; tile[1, 29] = c1_29; tile[1, 30] = c1_30; tile[1, 31] = c1_31
    tile[2, 0] = c2_0; tile[2, 1] = c2_1; tile[2, 2] = c2_2; tile[2, 3] = c2_3
    tile[2, 4] = c2_4; tile[2, 5] = c2_5; tile[2, 6] = c2_6; tile[2, 7] = c2_7
    tile[2, 8] = c2_8; tile[2, 9] = c2_9; tile[2, 10] = c2_10; tile[2, 11] = c2_11
    tile[2, 12] = c2_12; tile[2, 13] = c2_13; tile[2, 14] = c2_14; tile[2, 15] = c2_15
    tile[2, 16] = c2_16; tile[2, 17] = c2_17; tile[2, 18] = c2_18; tile[2, 19] = c2_19
    tile[2, 20] = c2_20; tile[2, 21] = c2_21; tile[2, 22] = c2_22; tile[2, 23] = c2_23
    tile[2, 24] = c2_24; tile[2, 25] = c2_25; tile[2, 26] = c2_26; tile[2, 27] = c2_27
    tile[2, 28] = c2_28; tile[2, 29] = c2_29; tile[2, 30] = c2_30; tile[2, 31] = c2_31
    tile[3, 0] = c3_0; tile[3, 1] = c3_1; tile[3, 2] = c3_2; tile[3, 3] = c3_3
    tile[3, 4] = c3_4; tile[3, 5] = c3_5; tile[3, 6] = c3_6; tile[3, 7] = c3_7
    tile[3, 8] = c3_8; tile[3, 9] = c3_9; tile[3, 10] = c3_10; tile[3, 11] = c3_11
    tile[3, 12] = c3_12; tile[3, 13] = c3_13; tile[3, 14] = c3_14; tile[3, 15] = c3_15
    tile[3, 16] = c3_16; tile[3, 17] = c3_17; tile[3, 18] = c3_18; tile[3, 19] = c3_19
    tile[3, 20] = c3_20; tile[3, 21] = c3_21; tile[3, 22] = c3_22; tile[3, 23] = c3_23
    tile[3, 24] = c3_24; tile[3, 25] = c3_25; tile[3, 26] = c3_26; tile[3, 27] = c3_27
    tile[3, 28] = c3_28; tile[3, 29] = c3_29; tile[3, 30] = c3_30; tile[3, 31] = c3_31
    tile[4, 0] = c4_0; tile[4, 1] = c4_1; tile[4, 2] = c4_2; tile[4, 3] = c4_3
    tile[4, 4] = c4_4; tile[4, 5] = c4_5; tile[4, 6] = c4_6; tile[4, 7] = c4_7
    tile[4, 8] = c4_8; tile[4, 9] = c4_9; tile[4, 10] = c4_10; tile[4, 11] = c4_11
    tile[4, 12] = c4_12; tile[4, 13] = c4_13; tile[4, 14] = c4_14; tile[4, 15] = c4_15
    tile[4, 16] = c4_16; tile[4, 17] = c4_17; tile[4, 18] = c4_18; tile[4, 19] = c4_19
    tile[4, 20] = c4_20; tile[4, 21] = c4_21; tile[4, 22] = c4_22; tile[4, 23] = c4_23
    tile[4, 24] = c4_24; tile[4, 25] = c4_25; tile[4, 26] = c4_26; tile[4, 27] = c4_27
    tile[4, 28] = c4_28; tile[4, 29] = c4_29; tile[4, 30] = c4_30; tile[4, 31] = c4_31
    tile[5, 0] = c5_0; tile[5, 1] = c5_1; tile[5, 2] = c5_2; tile[5, 3] = c5_3
    tile[5, 4] = c5_4; tile[5, 5] = c5_5; tile[5, 6] = c5_6; tile[5, 7] = c5_7
    tile[5, 8] = c5_8; tile[5, 9] = c5_9; tile[5, 10] = c5_10; tile[5, 11] = c5_11
    tile[5, 12] = c5_12; tile[5, 13] = c5_13; tile[5, 14] = c5_14; tile[5, 15] = c5_15
    tile[5, 16] = c5_16; tile[5, 17] = c5_17; tile[5, 18] = c5_18; tile[5, 19] = c5_19
    tile[5, 20] = c5_20; tile[5, 21] = c5_21; tile[5, 22] = c5_22; tile[5, 23] = c5_23
    tile[5, 24] = c5_24; tile[5, 25] = c5_25; tile[5, 26] = c5_26; tile[5, 27] = c5_27
    tile[5, 28] = c5_28; tile[5, 29] = c5_29; tile[5, 30] = c5_30; tile[5, 31] = c5_31


@kernel
def pack_b_panel(b_panels, p, b, b_transposed, k0, kc):
    """b_panels[p, k, j] = B[k0 + k, p * NR + j], zero past the last column."""
    N = b.shape[0] if b_transposed else b.shape[1]
    j0 = p * NR
    nr = min(NR, N - j0)
    if b_transposed:  # B[k, j] = b[j, k]: read rows of b, contiguous along k
        for j in range(nr):
            for k in range(kc):
                b_panels[p, k, j] = b[j0 + j, k0 + k]
    else:             # B[k, j] = b[k, j]: copy the panel's slice of each row
        for k in range(kc):
            for j in range(nr):
                b_panels[p, k, j] = b[k0 + k, j0 + j]
    for k in range(kc):
        for j in range(nr, NR):
            b_panels[p, k, j] = 0


@parallel_kernel
def _pack_b(b_panels, b, b_transposed, k0, kc):
    """Every panel of B's depth slice k0:k0+kc (see pack_b_panel), one panel per thread."""
    for p in prange(b_panels.shape[0]):
        pack_b_panel(b_panels, p, b, b_transposed, k0, kc)


@kernel
def pack_a(a_block, a, a_transposed, i0, M, k0, kc):
    """a_block[t, k, i] = A[i0 + t * MR + i, k0 + k], zero past the last row."""
    n_tiles = a_block.shape[0]
    if a_transposed:  # A[i, k] = a[k, i]: row k0 + k of a holds the whole block's values side by side
        for k in range(kc):
            for t in range(n_tiles):
                r0 = i0 + t * MR
                for i in range(MR):
                    a_block[t, k, i] = a[k0 + k, r0 + i] if r0 + i < M else 0
        return
    for t in range(n_tiles):
        r0 = i0 + t * MR
        for i in range(MR):
            if r0 + i < M:
                for k in range(kc):
                    a_block[t, k, i] = a[r0 + i, k0 + k]
            else:
                for k in range(kc):
                    a_block[t, k, i] = 0


@slp_kernel(parallel=True)
def matmul(out, a, a_transposed, b, b_transposed, bias, accumulate):
    """out = A @ B + bias, or out += A @ B + bias when `accumulate`.

    out (M, N)
    a   (M, K), or (K, M) read transposed when a_transposed
    b   (K, N), or (N, K) read transposed when b_transposed
    bias (N,) added to every row, or None
    All arrays C-contiguous, one float dtype; K >= 1.
    """
    M, N = out.shape
    K = a.shape[0] if a_transposed else a.shape[1]
    n_panels = (N + NR - 1) // NR
    n_tiles = (M + MR - 1) // MR
    # Threads take blocks of up to 8 row tiles (every tile of a block reuses the B panel in L1),
    # at least 4 blocks so that 2 threads get nearly equal shares. (Numba cannot cache a kernel
    # that asks for the thread count.)
    tiles_per_block = min(8, max(1, (n_tiles + 3) // 4))
    n_blocks = (n_tiles + tiles_per_block - 1) // tiles_per_block
    kc_max = min(KC, K)
    b_panels = aligned_empty((n_panels, kc_max, NR), out.dtype)
    for k0 in range(0, K, KC):
        kc = min(KC, K - k0)
        first = k0 == 0
        _pack_b(b_panels, b, b_transposed, k0, kc)
        for blk in prange(n_blocks):
            i0 = blk * tiles_per_block * MR
            a_block = aligned_empty((tiles_per_block, kc_max, MR), out.dtype)
            pack_a(a_block, a, a_transposed, i0, M, k0, kc)
            tile = aligned_empty((MR, NR), out.dtype)
            tile[:, :] = 0  # rows/columns past an edge: computed, never stored
            for p in range(n_panels):
                j0 = p * NR
                nr = min(NR, N - j0)
                for t in range(tiles_per_block):
                    r0 = i0 + t * MR
                    mr = min(MR, M - r0)
                    if mr <= 0:
                        break
                    # the tile starts from out, or from zero on the first slice when overwriting
                    for i in range(mr):
                        for j in range(nr):
                            tile[i, j] = out[r0 + i, j0 + j] if accumulate or not first else 0
                            if first and bias is not None:
                                tile[i, j] += bias[j0 + j]
                    micro_kernel(tile, a_block, t, b_panels, p, 0, kc)
                    for i in range(mr):
                        for j in range(nr):
                            out[r0 + i, j0 + j] = tile[i, j]
