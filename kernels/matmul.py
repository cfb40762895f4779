"""Matrix multiply the way BLAS libraries do it: packed panels and a register-tile micro-kernel.

    out  =  A @ B  (+ bias, or + out when accumulating)      A (M, K), B (K, N), out (M, N)

Every linear-layer product is one call: the forward and the two backward products only differ in
whether A and B are read as stored or transposed, which `a_transposed`/`b_transposed` say.

`matmul` is built from the parts in tiles.py (read its docstring first): B packed into panels of
NR columns, and the micro-kernel over one MR x NR tile of out at a time. On top of them:

- A is read where it lies when stored row by row (the forward and input-gradient products): per
  step the micro-kernel reads one number from each of MR rows, and the rows of a row-major array
  are streams the hardware prefetches well. Only a transposed A (dout^T in the weight gradient),
  or a block of rows that runs past the last row, is first packed into rows.
- The depth K is cut into slices of _KC = 256: a slice of one B panel (256 x 32 floats = 32 KB)
  stays in the 48 KB L1 cache while every row tile of a block of A runs over it, and the block of
  A stays in L2.
- Threads take blocks of rows of `out`; each owns its part, so there are no races. When there are
  few rows and a deep K, they take parts of the depth instead, each summed into a buffer of its
  own, and the buffers are added into `out` in a fixed order. Either way the sum over k is done in
  the same order whatever the thread count.
"""
import numpy as np
from numba import prange

from ._jit import kernel, parallel_kernel, slp_kernel
from .tiles import MR, NR, aligned_scratch, micro_kernel, pack_a, pack_b

_KC = 256  # depth of one slice of a panel


@parallel_kernel
def _pack_b_parallel(b_panels, b, b_transposed, k0, kc):
    """Every panel of B's depth slice k0:k0+kc (tiles.pack_b), in 8 parts shared by the threads."""
    for part in prange(8):
        # prange's index is unsigned: passed as it is, pack_b would be compiled a second time
        pack_b(b_panels, b, b_transposed, k0, kc, np.int64(part), 8)


@kernel
def _pack_b_columns(b_columns, b, b_transposed, j0, k0, kc):
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
    _pack_b_columns(b_columns, b, b_transposed, j0, k0, kc)
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
        # the bias in a loop of its own: inside the loop above it slows the dot products, bias or not
        if k0 == 0 and bias.shape[0] > 0:
            bias_part = bias[j0:N]
            for j in range(N - j0):
                out_row[j] += bias_part[j]


@slp_kernel(parallel=True)
def matmul(out, a, a_transposed, b, b_transposed, bias, accumulate):
    """out = A @ B + bias, or out += A @ B + bias when `accumulate`.

    out (M, N)
    a   (M, K), or (K, M) read transposed when a_transposed
    b   (K, N), or (N, K) read transposed when b_transposed
    bias (N,) added to every row, or (0,) for none
    All arrays C-contiguous, one float dtype; K >= 1.

    "No bias" is an empty array rather than None so that one compiled version serves both: Numba
    compiles a function once per combination of argument types, and matmul is a long compile.
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
    # product, added into out at the end in a fixed order.
    n_splits = 4 if n_tiles < 16 and K >= 256 else 1
    if n_splits > 1:
        n_blocks = 1
    tiles_per_block = (n_tiles + n_blocks - 1) // n_blocks
    # A last panel of at most NR / 4 columns would spend at least 3/4 of its multiply-adds on the
    # zeros that pad it. Those columns are dot products of rows of A with columns of B instead
    # (the lm head's 65 columns: 2 panels and 1 column). They are computed in a loop of their own:
    # inside the loop over row blocks, their code slows every product, with such columns or not.
    n_columns = N % NR if N % NR <= NR // 4 and n_splits == 1 else 0
    n_panels = (N - n_columns + NR - 1) // NR
    split_depth = (K + n_splits - 1) // n_splits  # >= 64: every part has some depth
    kc_max = min(_KC, split_depth)  # the deepest slice: packing buffers need no more
    shared_panels = aligned_scratch((n_panels if n_splits == 1 else 0, kc_max, NR), out.dtype)
    partials = aligned_scratch((n_splits if n_splits > 1 else 0, M, N), out.dtype)
    b_columns = aligned_scratch((n_columns, kc_max), out.dtype)
    # Without a split, one pass per depth slice: B packed by all threads, then the blocks. With
    # one, a single pass in which each part runs over its own slices.
    for k_slice in range(0, K if n_splits == 1 else 1, _KC):
        if n_splits == 1:
            _pack_b_parallel(shared_panels, b, b_transposed, k_slice, min(_KC, K - k_slice))
            if n_columns > 0:
                _dot_columns(out, a, a_transposed, b, b_transposed, bias, accumulate, n_panels * NR, k_slice,
                             min(_KC, K - k_slice), b_columns)
        for item in prange(n_splits * n_blocks):
            blk = item % n_blocks
            split = item // n_blocks
            if n_splits == 1:
                k_start, k_end = k_slice, min(K, k_slice + _KC)
                c_all, b_panels = out, shared_panels
            else:
                k_start, k_end = split * split_depth, min(K, (split + 1) * split_depth)
                c_all, b_panels = partials[split], aligned_scratch((n_panels, kc_max, NR), out.dtype)
            t0 = blk * n_tiles // n_blocks
            t1 = (blk + 1) * n_tiles // n_blocks
            i0 = t0 * MR
            # A stored row by row is read where it lies; a transposed A, or a block whose last
            # tile runs past the last row, is packed first (transposed, or padded with zeros).
            in_place = not a_transposed and t1 * MR <= M
            a_rows = a if in_place else aligned_scratch((tiles_per_block * MR, kc_max), out.dtype)
            tile = aligned_scratch((MR, NR), out.dtype)
            tile[:, :] = 0  # rows/columns past an edge: computed, never stored
            for k0 in range(k_start, k_end, _KC):
                kc = min(_KC, k_end - k0)
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
