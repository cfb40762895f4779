"""Matrix multiply the way BLAS libraries do it: packed panels and a register-tile micro-kernel.

    out  =  A @ B  (+ bias, or + out when accumulating)      A (M, K), B (K, N), out (M, N)

Every linear-layer product is one call: the forward and the two backward products only differ in
whether A and B are read as stored or transposed, which `a_transposed`/`b_transposed` say.

Why not three nested loops? A multiply-add needs two numbers; if both come from memory, the loads,
not the arithmetic, set the speed. The micro-kernel keeps an MR x NR = 8 x 32 tile of `out` in
256 scalar accumulators. Per step k it loads 8 numbers of A and 32 of B and does 8 * 32 = 256
multiply-adds with them. LLVM's SLP vectorizer packs each row's 32 accumulators into two 16-float
AVX-512 registers, so one step is 16 vector multiply-adds fed by 2 vector loads and 8 broadcasts,
and the 16 independent accumulators keep both multiply-add units busy despite their latency. That
uses 26 of the 32 vector registers: 12 rows (24 accumulators) ran 30% slower, as LLVM then spills
registers to memory, and 6 rows 3-5% slower (more loads and loop overhead per multiply-add, and
6 does not divide the model's row counts, so more edge tiles).

Packing makes the loads of B contiguous. Before the multiply, B is copied into panels of NR
columns, `b_panels[p, k, j] = B[k, p * NR + j]` (zero past the last column), so the micro-kernel
reads 32 neighbouring numbers per step whatever the layout of b. A needs less: per step the
micro-kernel reads one number from each of its 8 rows, and the rows of a row-major array are eight
streams the hardware prefetches well. So A is read where it lies when stored row by row (the
forward and input-gradient products), and only a transposed A (dout^T in the weight gradient), or
a block of rows that runs past the last row, is first copied into rows, `a_rows[r, k] = A[i0 + r,
k]`. With 128 output columns, copying A had cost up to a fifth of the multiply. The depth K is cut
into slices of KC = 256: one B panel slice (256 x 32 floats = 32 KB) stays in the 48 KB L1 cache
while every row tile of a block of A runs over it, and the block of A stays in L2.

Threads take blocks of rows of `out`; each owns its part, so there are no races. When there are
few rows and a deep K, they take parts of the depth instead, each summed into a buffer of its own,
and the buffers are added into `out` in a fixed order. Either way the sum over k is done in the
same order whatever the thread count.
"""
import numpy as np
from numba import prange

from ._jit import kernel, parallel_kernel, slp_kernel
from .prefetch import prefetch_for_write

MR = 8     # rows of the register tile
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
def micro_kernel(c, cr, cj, a_rows, r0, a_k0, b_panels, p, k0, k1):
    """C += A @ B over depth k0:k1 for one MR x NR tile C = c[cr:cr + MR, cj:cj + NR], where
    A[i, k] = a_rows[r0 + i, a_k0 + k] (MR rows of A) and B[k, j] = b_panels[p, k, j].

    Written out in scalars so that every accumulator can live in a register: c{i}_{j} is
    C[i, j], a is A[row i, k] and b{j} is B[k, column j]. The statements go row by row: in
    this order LLVM's SLP vectorizer turns each row's 32 multiply-adds into two vector ones
    (ordered column by column, it still vectorized but ran about 25x slower).

    C is read and written through one view per row, `row{i} = c[cr + i, cj:cj + NR]`, indexed
    by constants. Indexing c[cr + i, cj + j] directly runs 12x slower: Numba turns a negative
    index into one counted from the end, and with cj unknown that check comes with every
    index, so the loads and stores can no longer be packed into vectors. Working on the
    caller's array in place, instead of on a copy of the tile, saved 6-7% of every product.

    The same check is why A and B are read through views that start at depth k0,
    `a{i} = a_rows[r0 + i, a_k0 + k0:a_k0 + k1]` and `bp = b_panels[p, k0:k1]`, with k counting
    from 0. Only then can LLVM prove k is never negative and drop the check. Counting k from k0,
    every step paid for it in about 30 integer instructions: for each of the 8 loads of A a sign
    test, a mask, an add and a reload of a spilled register, and for B a multiply. They shared
    the execution ports with the 16 vector multiply-adds, which then ran at about 70% of their
    peak. With k counting from 0, the larger model config's products take 0.77-0.89x the time,
    the baby config's 0.79-0.97x.

    The accumulators start at 0 and are added into C at the end, and the tile's cache lines are
    prefetched for writing at the start: by the end they are in cache. Loading C first instead
    makes the multiply-adds wait for it when C has left the cache (`out` of the larger config's
    MLP is 12 MB), and rows 8 apart are often a multiple of 4 KB apart, which the CPU can
    mistake for a dependence on the previous tile's stores. In cache, the micro-kernel alone ran
    at 120 GFLOP/s on one core instead of 100, and all the products of the model configs took
    0.95-0.96x the time (the baby's once 0.995x). Accumulating from 0 without the prefetch was
    1.03x slower."""
    row0 = c[cr, cj:cj + NR]
    row1 = c[cr + 1, cj:cj + NR]
    row2 = c[cr + 2, cj:cj + NR]
    row3 = c[cr + 3, cj:cj + NR]
    row4 = c[cr + 4, cj:cj + NR]
    row5 = c[cr + 5, cj:cj + NR]
    row6 = c[cr + 6, cj:cj + NR]
    row7 = c[cr + 7, cj:cj + NR]
    prefetch_for_write(row0, 0); prefetch_for_write(row0, 16)
    prefetch_for_write(row1, 0); prefetch_for_write(row1, 16)
    prefetch_for_write(row2, 0); prefetch_for_write(row2, 16)
    prefetch_for_write(row3, 0); prefetch_for_write(row3, 16)
    prefetch_for_write(row4, 0); prefetch_for_write(row4, 16)
    prefetch_for_write(row5, 0); prefetch_for_write(row5, 16)
    prefetch_for_write(row6, 0); prefetch_for_write(row6, 16)
    prefetch_for_write(row7, 0); prefetch_for_write(row7, 16)  # 16 floats = one 64-byte line
    zero = c.dtype.type(0)
    c0_0 = zero; c0_1 = zero; c0_2 = zero; c0_3 = zero
    c0_4 = zero; c0_5 = zero; c0_6 = zero; c0_7 = zero
    c0_8 = zero; c0_9 = zero; c0_10 = zero; c0_11 = zero
    c0_12 = zero; c0_13 = zero; c0_14 = zero; c0_15 = zero
    c0_16 = zero; c0_17 = zero; c0_18 = zero; c0_19 = zero
    c0_20 = zero; c0_21 = zero; c0_22 = zero; c0_23 = zero
    c0_24 = zero; c0_25 = zero; c0_26 = zero; c0_27 = zero
    c0_28 = zero; c0_29 = zero; c0_30 = zero; c0_31 = zero
    c1_0 = zero; c1_1 = zero; c1_2 = zero; c1_3 = zero
    c1_4 = zero; c1_5 = zero; c1_6 = zero; c1_7 = zero
    c1_8 = zero; c1_9 = zero; c1_10 = zero; c1_11 = zero
    c1_12 = zero; c1_13 = zero; c1_14 = zero; c1_15 = zero
    c1_16 = zero; c1_17 = zero; c1_18 = zero; c1_19 = zero
    c1_20 = zero; c1_21 = zero; c1_22 = zero; c1_23 = zero
    c1_24 = zero; c1_25 = zero; c1_26 = zero; c1_27 = zero
    c1_28 = zero; c1_29 = zero; c1_30 = zero; c1_31 = zero
    c2_0 = zero; c2_1 = zero; c2_2 = zero; c2_3 = zero
    c2_4 = zero; c2_5 = zero; c2_6 = zero; c2_7 = zero
    c2_8 = zero; c2_9 = zero; c2_10 = zero; c2_11 = zero
    c2_12 = zero; c2_13 = zero; c2_14 = zero; c2_15 = zero
    c2_16 = zero; c2_17 = zero; c2_18 = zero; c2_19 = zero
    c2_20 = zero; c2_21 = zero; c2_22 = zero; c2_23 = zero
    c2_24 = zero; c2_25 = zero; c2_26 = zero; c2_27 = zero
    c2_28 = zero; c2_29 = zero; c2_30 = zero; c2_31 = zero
    c3_0 = zero; c3_1 = zero; c3_2 = zero; c3_3 = zero
    c3_4 = zero; c3_5 = zero; c3_6 = zero; c3_7 = zero
    c3_8 = zero; c3_9 = zero; c3_10 = zero; c3_11 = zero
    c3_12 = zero; c3_13 = zero; c3_14 = zero; c3_15 = zero
    c3_16 = zero; c3_17 = zero; c3_18 = zero; c3_19 = zero
    c3_20 = zero; c3_21 = zero; c3_22 = zero; c3_23 = zero
    c3_24 = zero; c3_25 = zero; c3_26 = zero; c3_27 = zero
    c3_28 = zero; c3_29 = zero; c3_30 = zero; c3_31 = zero
    c4_0 = zero; c4_1 = zero; c4_2 = zero; c4_3 = zero
    c4_4 = zero; c4_5 = zero; c4_6 = zero; c4_7 = zero
    c4_8 = zero; c4_9 = zero; c4_10 = zero; c4_11 = zero
    c4_12 = zero; c4_13 = zero; c4_14 = zero; c4_15 = zero
    c4_16 = zero; c4_17 = zero; c4_18 = zero; c4_19 = zero
    c4_20 = zero; c4_21 = zero; c4_22 = zero; c4_23 = zero
    c4_24 = zero; c4_25 = zero; c4_26 = zero; c4_27 = zero
    c4_28 = zero; c4_29 = zero; c4_30 = zero; c4_31 = zero
    c5_0 = zero; c5_1 = zero; c5_2 = zero; c5_3 = zero
    c5_4 = zero; c5_5 = zero; c5_6 = zero; c5_7 = zero
    c5_8 = zero; c5_9 = zero; c5_10 = zero; c5_11 = zero
    c5_12 = zero; c5_13 = zero; c5_14 = zero; c5_15 = zero
    c5_16 = zero; c5_17 = zero; c5_18 = zero; c5_19 = zero
    c5_20 = zero; c5_21 = zero; c5_22 = zero; c5_23 = zero
    c5_24 = zero; c5_25 = zero; c5_26 = zero; c5_27 = zero
    c5_28 = zero; c5_29 = zero; c5_30 = zero; c5_31 = zero
    c6_0 = zero; c6_1 = zero; c6_2 = zero; c6_3 = zero
    c6_4 = zero; c6_5 = zero; c6_6 = zero; c6_7 = zero
    c6_8 = zero; c6_9 = zero; c6_10 = zero; c6_11 = zero
    c6_12 = zero; c6_13 = zero; c6_14 = zero; c6_15 = zero
    c6_16 = zero; c6_17 = zero; c6_18 = zero; c6_19 = zero
    c6_20 = zero; c6_21 = zero; c6_22 = zero; c6_23 = zero
    c6_24 = zero; c6_25 = zero; c6_26 = zero; c6_27 = zero
    c6_28 = zero; c6_29 = zero; c6_30 = zero; c6_31 = zero
    c7_0 = zero; c7_1 = zero; c7_2 = zero; c7_3 = zero
    c7_4 = zero; c7_5 = zero; c7_6 = zero; c7_7 = zero
    c7_8 = zero; c7_9 = zero; c7_10 = zero; c7_11 = zero
    c7_12 = zero; c7_13 = zero; c7_14 = zero; c7_15 = zero
    c7_16 = zero; c7_17 = zero; c7_18 = zero; c7_19 = zero
    c7_20 = zero; c7_21 = zero; c7_22 = zero; c7_23 = zero
    c7_24 = zero; c7_25 = zero; c7_26 = zero; c7_27 = zero
    c7_28 = zero; c7_29 = zero; c7_30 = zero; c7_31 = zero
    a0 = a_rows[r0, a_k0 + k0:a_k0 + k1]
    a1 = a_rows[r0 + 1, a_k0 + k0:a_k0 + k1]
    a2 = a_rows[r0 + 2, a_k0 + k0:a_k0 + k1]
    a3 = a_rows[r0 + 3, a_k0 + k0:a_k0 + k1]
    a4 = a_rows[r0 + 4, a_k0 + k0:a_k0 + k1]
    a5 = a_rows[r0 + 5, a_k0 + k0:a_k0 + k1]
    a6 = a_rows[r0 + 6, a_k0 + k0:a_k0 + k1]
    a7 = a_rows[r0 + 7, a_k0 + k0:a_k0 + k1]
    bp = b_panels[p, k0:k1]
    for k in range(k1 - k0):
        b0 = bp[k, 0]; b1 = bp[k, 1]; b2 = bp[k, 2]; b3 = bp[k, 3]
        b4 = bp[k, 4]; b5 = bp[k, 5]; b6 = bp[k, 6]; b7 = bp[k, 7]
        b8 = bp[k, 8]; b9 = bp[k, 9]; b10 = bp[k, 10]; b11 = bp[k, 11]
        b12 = bp[k, 12]; b13 = bp[k, 13]; b14 = bp[k, 14]; b15 = bp[k, 15]
        b16 = bp[k, 16]; b17 = bp[k, 17]; b18 = bp[k, 18]; b19 = bp[k, 19]
        b20 = bp[k, 20]; b21 = bp[k, 21]; b22 = bp[k, 22]; b23 = bp[k, 23]
        b24 = bp[k, 24]; b25 = bp[k, 25]; b26 = bp[k, 26]; b27 = bp[k, 27]
        b28 = bp[k, 28]; b29 = bp[k, 29]; b30 = bp[k, 30]; b31 = bp[k, 31]
        a = a0[k]
        c0_0 += a * b0; c0_1 += a * b1; c0_2 += a * b2; c0_3 += a * b3
        c0_4 += a * b4; c0_5 += a * b5; c0_6 += a * b6; c0_7 += a * b7
        c0_8 += a * b8; c0_9 += a * b9; c0_10 += a * b10; c0_11 += a * b11
        c0_12 += a * b12; c0_13 += a * b13; c0_14 += a * b14; c0_15 += a * b15
        c0_16 += a * b16; c0_17 += a * b17; c0_18 += a * b18; c0_19 += a * b19
        c0_20 += a * b20; c0_21 += a * b21; c0_22 += a * b22; c0_23 += a * b23
        c0_24 += a * b24; c0_25 += a * b25; c0_26 += a * b26; c0_27 += a * b27
        c0_28 += a * b28; c0_29 += a * b29; c0_30 += a * b30; c0_31 += a * b31
        a = a1[k]
        c1_0 += a * b0; c1_1 += a * b1; c1_2 += a * b2; c1_3 += a * b3
        c1_4 += a * b4; c1_5 += a * b5; c1_6 += a * b6; c1_7 += a * b7
        c1_8 += a * b8; c1_9 += a * b9; c1_10 += a * b10; c1_11 += a * b11
        c1_12 += a * b12; c1_13 += a * b13; c1_14 += a * b14; c1_15 += a * b15
        c1_16 += a * b16; c1_17 += a * b17; c1_18 += a * b18; c1_19 += a * b19
        c1_20 += a * b20; c1_21 += a * b21; c1_22 += a * b22; c1_23 += a * b23
        c1_24 += a * b24; c1_25 += a * b25; c1_26 += a * b26; c1_27 += a * b27
        c1_28 += a * b28; c1_29 += a * b29; c1_30 += a * b30; c1_31 += a * b31
        a = a2[k]
        c2_0 += a * b0; c2_1 += a * b1; c2_2 += a * b2; c2_3 += a * b3
        c2_4 += a * b4; c2_5 += a * b5; c2_6 += a * b6; c2_7 += a * b7
        c2_8 += a * b8; c2_9 += a * b9; c2_10 += a * b10; c2_11 += a * b11
        c2_12 += a * b12; c2_13 += a * b13; c2_14 += a * b14; c2_15 += a * b15
        c2_16 += a * b16; c2_17 += a * b17; c2_18 += a * b18; c2_19 += a * b19
        c2_20 += a * b20; c2_21 += a * b21; c2_22 += a * b22; c2_23 += a * b23
        c2_24 += a * b24; c2_25 += a * b25; c2_26 += a * b26; c2_27 += a * b27
        c2_28 += a * b28; c2_29 += a * b29; c2_30 += a * b30; c2_31 += a * b31
        a = a3[k]
        c3_0 += a * b0; c3_1 += a * b1; c3_2 += a * b2; c3_3 += a * b3
        c3_4 += a * b4; c3_5 += a * b5; c3_6 += a * b6; c3_7 += a * b7
        c3_8 += a * b8; c3_9 += a * b9; c3_10 += a * b10; c3_11 += a * b11
        c3_12 += a * b12; c3_13 += a * b13; c3_14 += a * b14; c3_15 += a * b15
        c3_16 += a * b16; c3_17 += a * b17; c3_18 += a * b18; c3_19 += a * b19
        c3_20 += a * b20; c3_21 += a * b21; c3_22 += a * b22; c3_23 += a * b23
        c3_24 += a * b24; c3_25 += a * b25; c3_26 += a * b26; c3_27 += a * b27
        c3_28 += a * b28; c3_29 += a * b29; c3_30 += a * b30; c3_31 += a * b31
        a = a4[k]
        c4_0 += a * b0; c4_1 += a * b1; c4_2 += a * b2; c4_3 += a * b3
        c4_4 += a * b4; c4_5 += a * b5; c4_6 += a * b6; c4_7 += a * b7
        c4_8 += a * b8; c4_9 += a * b9; c4_10 += a * b10; c4_11 += a * b11
        c4_12 += a * b12; c4_13 += a * b13; c4_14 += a * b14; c4_15 += a * b15
        c4_16 += a * b16; c4_17 += a * b17; c4_18 += a * b18; c4_19 += a * b19
        c4_20 += a * b20; c4_21 += a * b21; c4_22 += a * b22; c4_23 += a * b23
        c4_24 += a * b24; c4_25 += a * b25; c4_26 += a * b26; c4_27 += a * b27
        c4_28 += a * b28; c4_29 += a * b29; c4_30 += a * b30; c4_31 += a * b31
        a = a5[k]
        c5_0 += a * b0; c5_1 += a * b1; c5_2 += a * b2; c5_3 += a * b3
        c5_4 += a * b4; c5_5 += a * b5; c5_6 += a * b6; c5_7 += a * b7
        c5_8 += a * b8; c5_9 += a * b9; c5_10 += a * b10; c5_11 += a * b11
        c5_12 += a * b12; c5_13 += a * b13; c5_14 += a * b14; c5_15 += a * b15
        c5_16 += a * b16; c5_17 += a * b17; c5_18 += a * b18; c5_19 += a * b19
        c5_20 += a * b20; c5_21 += a * b21; c5_22 += a * b22; c5_23 += a * b23
        c5_24 += a * b24; c5_25 += a * b25; c5_26 += a * b26; c5_27 += a * b27
        c5_28 += a * b28; c5_29 += a * b29; c5_30 += a * b30; c5_31 += a * b31
        a = a6[k]
        c6_0 += a * b0; c6_1 += a * b1; c6_2 += a * b2; c6_3 += a * b3
        c6_4 += a * b4; c6_5 += a * b5; c6_6 += a * b6; c6_7 += a * b7
        c6_8 += a * b8; c6_9 += a * b9; c6_10 += a * b10; c6_11 += a * b11
        c6_12 += a * b12; c6_13 += a * b13; c6_14 += a * b14; c6_15 += a * b15
        c6_16 += a * b16; c6_17 += a * b17; c6_18 += a * b18; c6_19 += a * b19
        c6_20 += a * b20; c6_21 += a * b21; c6_22 += a * b22; c6_23 += a * b23
        c6_24 += a * b24; c6_25 += a * b25; c6_26 += a * b26; c6_27 += a * b27
        c6_28 += a * b28; c6_29 += a * b29; c6_30 += a * b30; c6_31 += a * b31
        a = a7[k]
        c7_0 += a * b0; c7_1 += a * b1; c7_2 += a * b2; c7_3 += a * b3
        c7_4 += a * b4; c7_5 += a * b5; c7_6 += a * b6; c7_7 += a * b7
        c7_8 += a * b8; c7_9 += a * b9; c7_10 += a * b10; c7_11 += a * b11
        c7_12 += a * b12; c7_13 += a * b13; c7_14 += a * b14; c7_15 += a * b15
        c7_16 += a * b16; c7_17 += a * b17; c7_18 += a * b18; c7_19 += a * b19
        c7_20 += a * b20; c7_21 += a * b21; c7_22 += a * b22; c7_23 += a * b23
        c7_24 += a * b24; c7_25 += a * b25; c7_26 += a * b26; c7_27 += a * b27
        c7_28 += a * b28; c7_29 += a * b29; c7_30 += a * b30; c7_31 += a * b31
    row0[0] += c0_0; row0[1] += c0_1; row0[2] += c0_2; row0[3] += c0_3
    row0[4] += c0_4; row0[5] += c0_5; row0[6] += c0_6; row0[7] += c0_7
    row0[8] += c0_8; row0[9] += c0_9; row0[10] += c0_10; row0[11] += c0_11
    row0[12] += c0_12; row0[13] += c0_13; row0[14] += c0_14; row0[15] += c0_15
    row0[16] += c0_16; row0[17] += c0_17; row0[18] += c0_18; row0[19] += c0_19
    row0[20] += c0_20; row0[21] += c0_21; row0[22] += c0_22; row0[23] += c0_23
    row0[24] += c0_24; row0[25] += c0_25; row0[26] += c0_26; row0[27] += c0_27
    row0[28] += c0_28; row0[29] += c0_29; row0[30] += c0_30; row0[31] += c0_31
    row1[0] += c1_0; row1[1] += c1_1; row1[2] += c1_2; row1[3] += c1_3
    row1[4] += c1_4; row1[5] += c1_5; row1[6] += c1_6; row1[7] += c1_7
    row1[8] += c1_8; row1[9] += c1_9; row1[10] += c1_10; row1[11] += c1_11
    row1[12] += c1_12; row1[13] += c1_13; row1[14] += c1_14; row1[15] += c1_15
    row1[16] += c1_16; row1[17] += c1_17; row1[18] += c1_18; row1[19] += c1_19
    row1[20] += c1_20; row1[21] += c1_21; row1[22] += c1_22; row1[23] += c1_23
    row1[24] += c1_24; row1[25] += c1_25; row1[26] += c1_26; row1[27] += c1_27
    row1[28] += c1_28; row1[29] += c1_29; row1[30] += c1_30; row1[31] += c1_31
    row2[0] += c2_0; row2[1] += c2_1; row2[2] += c2_2; row2[3] += c2_3
    row2[4] += c2_4; row2[5] += c2_5; row2[6] += c2_6; row2[7] += c2_7
    row2[8] += c2_8; row2[9] += c2_9; row2[10] += c2_10; row2[11] += c2_11
    row2[12] += c2_12; row2[13] += c2_13; row2[14] += c2_14; row2[15] += c2_15
    row2[16] += c2_16; row2[17] += c2_17; row2[18] += c2_18; row2[19] += c2_19
    row2[20] += c2_20; row2[21] += c2_21; row2[22] += c2_22; row2[23] += c2_23
    row2[24] += c2_24; row2[25] += c2_25; row2[26] += c2_26; row2[27] += c2_27
    row2[28] += c2_28; row2[29] += c2_29; row2[30] += c2_30; row2[31] += c2_31
    row3[0] += c3_0; row3[1] += c3_1; row3[2] += c3_2; row3[3] += c3_3
    row3[4] += c3_4; row3[5] += c3_5; row3[6] += c3_6; row3[7] += c3_7
    row3[8] += c3_8; row3[9] += c3_9; row3[10] += c3_10; row3[11] += c3_11
    row3[12] += c3_12; row3[13] += c3_13; row3[14] += c3_14; row3[15] += c3_15
    row3[16] += c3_16; row3[17] += c3_17; row3[18] += c3_18; row3[19] += c3_19
    row3[20] += c3_20; row3[21] += c3_21; row3[22] += c3_22; row3[23] += c3_23
    row3[24] += c3_24; row3[25] += c3_25; row3[26] += c3_26; row3[27] += c3_27
    row3[28] += c3_28; row3[29] += c3_29; row3[30] += c3_30; row3[31] += c3_31
    row4[0] += c4_0; row4[1] += c4_1; row4[2] += c4_2; row4[3] += c4_3
    row4[4] += c4_4; row4[5] += c4_5; row4[6] += c4_6; row4[7] += c4_7
    row4[8] += c4_8; row4[9] += c4_9; row4[10] += c4_10; row4[11] += c4_11
    row4[12] += c4_12; row4[13] += c4_13; row4[14] += c4_14; row4[15] += c4_15
    row4[16] += c4_16; row4[17] += c4_17; row4[18] += c4_18; row4[19] += c4_19
    row4[20] += c4_20; row4[21] += c4_21; row4[22] += c4_22; row4[23] += c4_23
    row4[24] += c4_24; row4[25] += c4_25; row4[26] += c4_26; row4[27] += c4_27
    row4[28] += c4_28; row4[29] += c4_29; row4[30] += c4_30; row4[31] += c4_31
    row5[0] += c5_0; row5[1] += c5_1; row5[2] += c5_2; row5[3] += c5_3
    row5[4] += c5_4; row5[5] += c5_5; row5[6] += c5_6; row5[7] += c5_7
    row5[8] += c5_8; row5[9] += c5_9; row5[10] += c5_10; row5[11] += c5_11
    row5[12] += c5_12; row5[13] += c5_13; row5[14] += c5_14; row5[15] += c5_15
    row5[16] += c5_16; row5[17] += c5_17; row5[18] += c5_18; row5[19] += c5_19
    row5[20] += c5_20; row5[21] += c5_21; row5[22] += c5_22; row5[23] += c5_23
    row5[24] += c5_24; row5[25] += c5_25; row5[26] += c5_26; row5[27] += c5_27
    row5[28] += c5_28; row5[29] += c5_29; row5[30] += c5_30; row5[31] += c5_31
    row6[0] += c6_0; row6[1] += c6_1; row6[2] += c6_2; row6[3] += c6_3
    row6[4] += c6_4; row6[5] += c6_5; row6[6] += c6_6; row6[7] += c6_7
    row6[8] += c6_8; row6[9] += c6_9; row6[10] += c6_10; row6[11] += c6_11
    row6[12] += c6_12; row6[13] += c6_13; row6[14] += c6_14; row6[15] += c6_15
    row6[16] += c6_16; row6[17] += c6_17; row6[18] += c6_18; row6[19] += c6_19
    row6[20] += c6_20; row6[21] += c6_21; row6[22] += c6_22; row6[23] += c6_23
    row6[24] += c6_24; row6[25] += c6_25; row6[26] += c6_26; row6[27] += c6_27
    row6[28] += c6_28; row6[29] += c6_29; row6[30] += c6_30; row6[31] += c6_31
    row7[0] += c7_0; row7[1] += c7_1; row7[2] += c7_2; row7[3] += c7_3
    row7[4] += c7_4; row7[5] += c7_5; row7[6] += c7_6; row7[7] += c7_7
    row7[8] += c7_8; row7[9] += c7_9; row7[10] += c7_10; row7[11] += c7_11
    row7[12] += c7_12; row7[13] += c7_13; row7[14] += c7_14; row7[15] += c7_15
    row7[16] += c7_16; row7[17] += c7_17; row7[18] += c7_18; row7[19] += c7_19
    row7[20] += c7_20; row7[21] += c7_21; row7[22] += c7_22; row7[23] += c7_23
    row7[24] += c7_24; row7[25] += c7_25; row7[26] += c7_26; row7[27] += c7_27
    row7[28] += c7_28; row7[29] += c7_29; row7[30] += c7_30; row7[31] += c7_31



@kernel
def pack_b(b_panels, b, b_transposed, k0, kc, part, n_parts):
    """Part `part` of `n_parts` of packing B's depth slice k0:k0 + kc into panels,
    b_panels[p, k, j] = B[k0 + k, p * NR + j], zero past the last column.

    The parts are cut so that b is read along its rows. A transposed B (b is (N, K)) is packed
    by panels: the NR rows of b behind a panel, each contiguous along k. A B stored row by row
    is packed by depth: each row of b read whole and spread over the panels. Reading it panel
    by panel instead (NR numbers from each of kc rows, a row of the MLP's activations apart)
    made packing 19% of the larger config's MLP-projection weight gradient (measured by skipping
    it); by rows, that product took 0.82x and 0.95x the time in two runs, the baby config's
    0.90x (`scripts/ab_kernels.py cba0f76 2c23201 --only dW`; the gain depends on how busy the
    machine's memory is). A B that stays in cache gains nothing: the baby attention projection's
    weight gradient (128 columns) took 1.09x.

    Every copy loop here and in pack_a indexes row views by loop counters (see micro_kernel: an
    index with a runtime offset such as b[k0 + k, j0 + j] comes with a negative-index check that
    stops LLVM from turning the loop into vector moves)."""
    n_panels = b_panels.shape[0]
    if b_transposed:  # B[k, j] = b[j, k]
        N = b.shape[0]
        for p in range(part * n_panels // n_parts, (part + 1) * n_panels // n_parts):
            j0 = p * NR
            nr = min(NR, N - j0)
            panel = b_panels[p]
            for j in range(nr):
                src = b[j0 + j, k0:k0 + kc]
                for k in range(kc):
                    panel[k, j] = src[k]
            for k in range(kc):
                dst = panel[k]
                for j in range(nr, NR):
                    dst[j] = 0
    else:
        N = b.shape[1]
        n_whole = N // NR  # panels without padding; a last one, if any, is partly columns
        for k in range(part * kc // n_parts, (part + 1) * kc // n_parts):
            src = b[k0 + k]
            for p in range(n_whole):
                dst = b_panels[p, k]
                src_part = src[p * NR:p * NR + NR]
                for j in range(NR):  # a fixed count: LLVM copies with vector moves
                    dst[j] = src_part[j]
            if n_whole < n_panels:
                dst = b_panels[n_whole, k]
                src_part = src[n_whole * NR:N]
                for j in range(N - n_whole * NR):
                    dst[j] = src_part[j]
                for j in range(N - n_whole * NR, NR):
                    dst[j] = 0


@parallel_kernel
def _pack_b(b_panels, b, b_transposed, k0, kc):
    """Every panel of B's depth slice k0:k0+kc (see pack_b), in 8 parts shared by the threads."""
    for part in prange(8):
        pack_b(b_panels, b, b_transposed, k0, kc, part, 8)


@kernel
def pack_b_columns(b_columns, b, b_transposed, j0, k0, kc):
    """b_columns[j, k] = B[k0 + k, j0 + j]: the last few columns of B, each contiguous along k."""
    nr = b_columns.shape[0]
    if b_transposed:
        for j in range(nr):
            src = b[j0 + j, k0:k0 + kc]
            dst = b_columns[j]
            for k in range(kc):
                dst[k] = src[k]
    else:
        for k in range(kc):
            src = b[k0 + k, j0:j0 + nr]
            for j in range(nr):
                b_columns[j, k] = src[j]


@parallel_kernel
def _dot_columns(out, a, a_transposed, b, b_transposed, bias, accumulate, j0, k0, kc, b_columns):
    """out[:, j0:] = or += A[:, k0:k0 + kc] @ B[k0:k0 + kc, j0:] (+ bias when k0 is 0), each element
    a dot product: for the few columns past matmul's last panel."""
    pack_b_columns(b_columns, b, b_transposed, j0, k0, kc)
    M, N = out.shape
    for r in prange(M):
        out_row = out[r, j0:N]
        for j in range(N - j0):
            b_column = b_columns[j, :kc]
            if a_transposed:  # A[r, k] = a[k, r]
                total = a[k0, r] * b_column[0]
                for k in range(1, kc):
                    total += a[k0 + k, r] * b_column[k]
            else:
                a_row = a[r, k0:k0 + kc]
                total = a_row[0] * b_column[0]
                for k in range(1, kc):  # a reduction: vectorized, as kernels may reassociate
                    total += a_row[k] * b_column[k]
            if k0 == 0 and not accumulate:
                out_row[j] = 0
            out_row[j] += total
        # The bias in a loop of its own: inside the loop above, the dot products took 1.6x the
        # time, even when there was no bias.
        if k0 == 0 and bias.shape[0] > 0:
            bias_part = bias[j0:N]
            for j in range(N - j0):
                out_row[j] += bias_part[j]


@kernel
def pack_a(a_rows, a, a_transposed, i0, M, k0, kc):
    """a_rows[r, k] = A[i0 + r, k0 + k], zero past the last row of A."""
    n = max(0, min(a_rows.shape[0], M - i0))
    if a_transposed:  # A[i, k] = a[k, i]: a transpose, eight values of k at a time (eight loads
        k = 0         # from eight rows of a, then eight stores side by side: 2.5x faster than one
        while k + 8 <= kc:  # value at a time)
            a0 = a[k0 + k, i0:i0 + n]; a1 = a[k0 + k + 1, i0:i0 + n]
            a2 = a[k0 + k + 2, i0:i0 + n]; a3 = a[k0 + k + 3, i0:i0 + n]
            a4 = a[k0 + k + 4, i0:i0 + n]; a5 = a[k0 + k + 5, i0:i0 + n]
            a6 = a[k0 + k + 6, i0:i0 + n]; a7 = a[k0 + k + 7, i0:i0 + n]
            for r in range(n):
                dst = a_rows[r, k:k + 8]
                dst[0] = a0[r]; dst[1] = a1[r]; dst[2] = a2[r]; dst[3] = a3[r]
                dst[4] = a4[r]; dst[5] = a5[r]; dst[6] = a6[r]; dst[7] = a7[r]
            k += 8
        for kk in range(k, kc):
            src = a[k0 + kk, i0:i0 + n]
            for r in range(n):
                a_rows[r, kk] = src[r]
    else:
        for r in range(n):
            src = a[i0 + r, k0:k0 + kc]
            dst = a_rows[r]
            for k in range(kc):
                dst[k] = src[k]
    for r in range(n, a_rows.shape[0]):
        dst = a_rows[r]
        for k in range(kc):
            dst[k] = 0


@slp_kernel(parallel=True)
def matmul(out, a, a_transposed, b, b_transposed, bias, accumulate):
    """out = A @ B + bias, or out += A @ B + bias when `accumulate`.

    out (M, N)
    a   (M, K), or (K, M) read transposed when a_transposed
    b   (K, N), or (N, K) read transposed when b_transposed
    bias (N,) added to every row, or (0,) for none
    All arrays C-contiguous, one float dtype; K >= 1.

    "No bias" is an empty array rather than None so that one compiled version serves both: Numba
    compiles a function once per combination of argument types, and a second matmul took about
    6 s more of the cold compile.
    """
    M, N = out.shape
    K = a.shape[0] if a_transposed else a.shape[1]
    n_tiles = (M + MR - 1) // MR
    # Threads take blocks of up to 8 row tiles (every tile of a block reuses the B panel in L1).
    # The number of blocks is a multiple of 4 (or every tile is a block), and block sizes differ
    # by at most one tile, so that 2 or 4 threads get equal shares. (Numba cannot cache a kernel
    # that asks for the thread count.)
    n_blocks = min(n_tiles, (n_tiles + 31) // 32 * 4)
    # With fewer than 16 row tiles, blocks cannot be equal (the lm head's weight gradient has 65
    # rows, 9 tiles: one thread would do 5 and the other 4), and with a deep K every slice would
    # pay for two parallel loops, packing B and multiplying, for little work. Then the threads
    # split K instead: 4 parts of the depth, each with its own B panels and its own partial
    # product, added into out at the end in a fixed order. With B packed by rows (see pack_b),
    # the lm head's weight gradient took 0.62x the time at the baby config and 0.72-0.75x at the
    # larger one (`scripts/ab_kernels.py cba0f76 2c23201 --only dW`).
    n_splits = 4 if n_tiles < 16 and K >= 256 else 1
    if n_splits > 1:
        n_blocks = 1
    tiles_per_block = (n_tiles + n_blocks - 1) // n_blocks
    # A last panel of at most NR / 4 columns would spend at least 3/4 of its multiply-adds on the
    # zeros that pad it. Those columns are dot products of rows of A with columns of B instead
    # (lm head forward: 65 columns = 2 panels + 1 column, 1.2-1.3x faster than 3 panels). They are
    # computed in a loop of their own: inside the loop over row blocks, the same code made every
    # other product 3-5% slower even when it had no such columns.
    n_columns = N % NR if N % NR <= NR // 4 and n_splits == 1 else 0
    n_panels = (N - n_columns + NR - 1) // NR
    split_depth = (K + n_splits - 1) // n_splits  # >= 64: every part has some depth
    kc_max = min(KC, split_depth)  # the deepest slice: packing buffers need no more
    shared_panels = aligned_empty((n_panels if n_splits == 1 else 0, kc_max, NR), out.dtype)
    partials = aligned_empty((n_splits if n_splits > 1 else 0, M, N), out.dtype)
    b_columns = aligned_empty((n_columns, kc_max), out.dtype)
    # Without a split, one pass per depth slice: B packed by all threads, then the blocks. With
    # one, a single pass in which each part runs over its own slices.
    for k_slice in range(0, K if n_splits == 1 else 1, KC):
        if n_splits == 1:
            _pack_b(shared_panels, b, b_transposed, k_slice, min(KC, K - k_slice))
            if n_columns > 0:
                _dot_columns(out, a, a_transposed, b, b_transposed, bias, accumulate, n_panels * NR, k_slice,
                             min(KC, K - k_slice), b_columns)
        for item in prange(n_splits * n_blocks):
            blk = item % n_blocks
            split = item // n_blocks
            if n_splits == 1:
                k_start, k_end = k_slice, min(K, k_slice + KC)
                c_all, b_panels = out, shared_panels
            else:
                k_start, k_end = split * split_depth, min(K, (split + 1) * split_depth)
                c_all, b_panels = partials[split], aligned_empty((n_panels, kc_max, NR), out.dtype)
            t0 = blk * n_tiles // n_blocks
            t1 = (blk + 1) * n_tiles // n_blocks
            i0 = t0 * MR
            # A stored row by row is read where it lies; a transposed A, or a block whose last
            # tile runs past the last row, is packed first (transposed, or padded with zeros).
            in_place = not a_transposed and t1 * MR <= M
            a_rows = a if in_place else aligned_empty((tiles_per_block * MR, kc_max), out.dtype)
            tile = aligned_empty((MR, NR), out.dtype)
            tile[:, :] = 0  # rows/columns past an edge: computed, never stored
            for k0 in range(k_start, k_end, KC):
                kc = min(KC, k_end - k0)
                # the first slice of the sum into c_all (out's starts at depth 0, a part's at its start)
                first = k0 == 0 or (n_splits > 1 and k0 == k_start)
                keep = not first or (accumulate and n_splits == 1)  # add to what c_all holds
                add_bias = first and n_splits == 1 and bias.shape[0] > 0  # (a split's partial sums get none)
                if n_splits > 1:
                    pack_b(b_panels, b, b_transposed, k0, kc, 0, 1)
                a_r0, a_k0 = 0, k0  # where A[i0, k0] sits in a_rows: row i0 - a_r0, column a_k0
                if not in_place:
                    pack_a(a_rows, a, a_transposed, i0, M, k0, kc)
                    a_r0, a_k0 = i0, 0
                for p in range(n_panels):
                    j0 = p * NR
                    nr = min(NR, N - j0)
                    for t in range(t0, t1):
                        r0 = t * MR
                        mr = min(MR, M - r0)
                        whole = mr == MR and nr == NR
                        if whole:  # the micro-kernel works on c_all in place
                            if not keep and not add_bias:  # overwrite: start from 0
                                for i in range(MR):
                                    row = c_all[r0 + i, j0:j0 + NR]
                                    for j in range(NR):
                                        row[j] = 0
                            elif not keep:  # or from the bias
                                for i in range(MR):
                                    row = c_all[r0 + i, j0:j0 + NR]
                                    for j in range(NR):
                                        row[j] = bias[j0 + j]
                            elif add_bias:
                                for i in range(MR):
                                    row = c_all[r0 + i, j0:j0 + NR]
                                    for j in range(NR):
                                        row[j] += bias[j0 + j]
                            c, cr, cj = c_all, r0, j0
                        else:  # an edge tile: on a full-size copy, whose inside is stored back
                            for i in range(mr):
                                for j in range(nr):
                                    tile[i, j] = c_all[r0 + i, j0 + j] if keep else 0
                                    if add_bias:
                                        tile[i, j] += bias[j0 + j]
                            c, cr, cj = tile, 0, 0
                        # one call site: a second would inline a second copy of the micro-kernel
                        micro_kernel(c, cr, cj, a_rows, r0 - a_r0, a_k0, b_panels, p, 0, kc)
                        if not whole:
                            for i in range(mr):
                                for j in range(nr):
                                    c_all[r0 + i, j0 + j] = tile[i, j]
    if n_splits > 1:  # out (+)= bias + the parts' sums, in the order of the parts
        for r in prange(M):
            out_row = out[r]
            if not accumulate:
                out_row[:] = 0
            if bias.shape[0] > 0:
                for j in range(N):
                    out_row[j] += bias[j]
            for split in range(n_splits):
                part_row = partials[split, r]
                for j in range(N):
                    out_row[j] += part_row[j]
