"""Matrix multiply the way BLAS libraries do it: packed panels and a register-tile micro-kernel.

    out  =  A @ B  (+ bias, or + out when accumulating)      A (M, K), B (K, N), out (M, N)

Every linear-layer product is one call: the forward and the two backward products only differ in
whether A and B are read as stored or transposed, which `a_transposed`/`b_transposed` say.

Why not three nested loops? A multiply-add needs two numbers; if both come from memory, the loads,
not the arithmetic, set the speed. The micro-kernel keeps an MR x NR = 8 x 32 tile of `out` in
256 accumulators in registers. Per step k it loads 8 numbers of A and 32 of B and does 8 * 32 =
256 multiply-adds with them. LLVM's SLP vectorizer packs each row's 32 accumulators into two 16-float
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
from .stack import stack_empty

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

    The tile's sums live in eight arrays of NR numbers on the stack, s{i}[j] = C[i, j]
    (stack.py), and every loop over them has the constant length NR, which LLVM unrolls
    completely. Indexed only by constants then, the arrays become 256 separate values in
    registers, and LLVM's SLP vectorizer packs each row's 32 multiply-adds into two vector ones.
    That is why the rows are written out one by one: LLVM unrolls a loop only up to a size, and
    while the last loop still added all eight rows into C, the arrays stayed in memory. On the
    heap (np.empty) instead of the stack, the products took more than 10x the time.
    Written as 256 scalar variables, c0_0 += a * b0 and so on, the machine code was the same,
    but Numba's passes over 256 variables made this function 7 s of cold compile instead of 1.6 s.

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
        # prange's index is unsigned: passed as it is, pack_b would be compiled a second time
        pack_b(b_panels, b, b_transposed, k0, kc, np.int64(part), 8)


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
