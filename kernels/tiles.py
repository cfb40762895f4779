"""The parts of a tiled matrix product, shared by matmul.py and attention.py.

    C += A @ B      A (M, K), B (K, N), C (M, N), one MR x NR tile of C at a time

A multiply-add needs two numbers; if both come from memory, the loads and not the arithmetic set
the speed. So the micro-kernel keeps an MR x NR tile of C in registers, and per step k loads MR
numbers of A and NR of B for MR * NR multiply-adds. Packing first copies the operands into the
layout the micro-kernel reads contiguously, whatever the layout of a and b:

    a_rows[r, k]      = A[i0 + r, k0 + k]       tiles of MR rows of A, zero past its last row
    b_panels[p, k, j] = B[k0 + k, p * NR + j]   panels of NR columns of B, zero past its last column

Composed, C = A @ B is (attention.py's _head_product is this loop):

    a_rows = aligned_scratch((MR * ceil(M / MR), K), dtype);  pack_a(a_rows, a, a_transposed, 0, M, 0, K)
    b_panels = aligned_scratch((ceil(N / NR), K, NR), dtype); pack_b(b_panels, b, b_transposed, 0, K, 0, 1)
    tile = aligned_scratch((MR, NR), dtype)
    for every row tile t and panel p:
        tile[:, :] = 0
        micro_kernel(tile, 0, 0, a_rows, t * MR, 0, b_panels, p, 0, K)
        C[t * MR:, p * NR:] = the part of tile inside C

matmul.py adds threads, depth slices, an A read where it lies, and whole tiles computed on C itself.

Every loop here reads and writes through row views indexed from 0: an index with a runtime offset
(b[k0 + k, j0 + j]) comes with Numba's negative-index check, which stops LLVM vectorizing the loop.
"""
import numpy as np

from ._jit import kernel, slp_kernel, vector_bits
from .prefetch import prefetch_for_write
from .stack_alloc import stack_empty

# The register tile, sized to the vector registers. With 512-bit vectors (AVX-512: 32 registers of
# 16 floats), 8 x 32 sums in 16 registers, plus 2 for a row of B and 8 for broadcasts of A, 26 of
# the 32: the 16 independent multiply-add chains hide the instructions' latency. With 256-bit
# vectors (AVX2: 16 registers of 8 floats), 8 x 8 sums in 8 registers: a wider tile no longer fits
# and spills its sums to memory. More rows spill too; fewer load more per multiply-add.
MR = 8
NR = 32 if vector_bits() == 512 else 8


@kernel
def aligned_scratch(shape, dtype):
    """np.empty(shape, dtype) starting on a 64-byte boundary: Numba aligns arrays to 32 bytes, and
    a 64-byte vector load from a misaligned array straddles two cache lines."""
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

    The sums live in eight stack arrays, s{i}[j] = C[i, j] (stack_alloc.py), updated by loops of
    the constant length NR: LLVM unrolls them, keeps the MR x NR sums in registers and packs each
    row's NR multiply-adds into vector ones (two with AVX-512, one with AVX2). The rows are written out one by one because LLVM unrolls
    loops only up to a size. (256 scalar variables give the same machine code but compile slowly.)

    C, A and B are read through views indexed from 0: row{i} = c[cr + i, cj:cj + NR],
    a{i} = a_rows[r0 + i, a_k0 + k0:a_k0 + k1], bp = b_panels[p, k0:k1] (see the module docstring).

    The sums start at 0 and are added into C at the end, and C's cache lines are prefetched for
    writing at the start, so C is in cache by then. Loading C first would make the multiply-adds
    wait for it when it has left the cache, and rows of C a multiple of 4 KB apart can look to the
    CPU like a dependence on the previous tile's stores."""
    zero = c.dtype.type(0)
    s0 = stack_empty(NR, c.dtype); s1 = stack_empty(NR, c.dtype)
    s2 = stack_empty(NR, c.dtype); s3 = stack_empty(NR, c.dtype)
    s4 = stack_empty(NR, c.dtype); s5 = stack_empty(NR, c.dtype)
    s6 = stack_empty(NR, c.dtype); s7 = stack_empty(NR, c.dtype)
    s0[:] = zero; s1[:] = zero; s2[:] = zero; s3[:] = zero
    s4[:] = zero; s5[:] = zero; s6[:] = zero; s7[:] = zero
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
        b = bp[k]
        a = a0[k]
        for j in range(NR):
            s0[j] += a * b[j]
        a = a1[k]
        for j in range(NR):
            s1[j] += a * b[j]
        a = a2[k]
        for j in range(NR):
            s2[j] += a * b[j]
        a = a3[k]
        for j in range(NR):
            s3[j] += a * b[j]
        a = a4[k]
        for j in range(NR):
            s4[j] += a * b[j]
        a = a5[k]
        for j in range(NR):
            s5[j] += a * b[j]
        a = a6[k]
        for j in range(NR):
            s6[j] += a * b[j]
        a = a7[k]
        for j in range(NR):
            s7[j] += a * b[j]
    for j in range(NR):
        row0[j] += s0[j]
    for j in range(NR):
        row1[j] += s1[j]
    for j in range(NR):
        row2[j] += s2[j]
    for j in range(NR):
        row3[j] += s3[j]
    for j in range(NR):
        row4[j] += s4[j]
    for j in range(NR):
        row5[j] += s5[j]
    for j in range(NR):
        row6[j] += s6[j]
    for j in range(NR):
        row7[j] += s7[j]


@kernel
def pack_b(b_panels, b, b_transposed, k0, kc, part, n_parts):
    """Part `part` of `n_parts` of packing B's depth slice k0:k0 + kc into panels,
    b_panels[p, k, j] = B[k0 + k, p * NR + j], zero past the last column.

    b is (K, N), or (N, K) read transposed when b_transposed. The parts are cut so that b is read
    along its rows: a transposed B by panels (the NR rows of b behind a panel), a B stored row by
    row by depth (each row of b read whole and spread over the panels)."""
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


@kernel
def pack_a(a_rows, a, a_transposed, i0, M, k0, kc):
    """a_rows[r, k] = A[i0 + r, k0 + k], zero past the last row M of A.

    a is (M, K), or (K, M) read transposed when a_transposed."""
    n = max(0, min(a_rows.shape[0], M - i0))
    if a_transposed:  # A[i, k] = a[k, i]: a transpose, eight values of k at a time (eight loads
        k = 0         # from eight rows of a, then eight stores side by side)
        while k + 8 <= kc:
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
