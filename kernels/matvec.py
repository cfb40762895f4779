"""A weight matrix times a few vectors: the linear layers of generation, one new token per row.

    out[b, o] = act(sum_c x[b, c] W[o, c] + bias[o])      (or out[b, o] += ..., a residual)

Generating a token multiplies every weight matrix by one vector per sequence: one multiply-add
per weight loaded from memory, so with one sequence the time is the weights' bytes over the memory
bandwidth. The tiled `matmul` is the wrong tool: it copies the weights into panels first, a second
pass over them. Here each weight row is read once, front to back; the threads take contiguous runs
of rows, so each streams its share of the matrix as one long sequential read, which the hardware
prefetches.

With several sequences the arithmetic counts too: a dot product loads two numbers per multiply-add.
So a tile of XR rows of x and WR rows of W is dotted at once, XR x WR dot products in registers,
each step loading XR + WR vectors for XR * WR vector multiply-adds; a weight row leaves the L1
cache only once all rows of x have used it.

The order of every sum is fixed by the code, whatever the other rows of x hold, so a sequence's
results do not depend on what else is in the batch:

    lane l of LANES (the floats of a vector register) sums x[b, c] W[o, c] for c = l (mod LANES),
    c in increasing order, up to the last whole vector of the row;
    the lanes are added pairwise, as a tree: s[l] += s[l + h] for h = LANES/2, ..., 1;
    the last C mod LANES products are summed one by one, and that sum is added to s[0].

A tile short of rows (at the end of x or of a block of W) repeats its last row and keeps only the
sums of real ones, so every dot product runs the same instructions; a single row of x (a batch of
one) runs the same sums without the others, one weight row after the other.

The dot products run in the data's dtype (float32 for float32 models). Weights may also be bfloat16
(uint16 bits, bfloat16.py), widened to float32 as they are read: half the bytes. int8 weights have
a kernel of their own (matvec_int8.py), tiled the same way (4 x 2 on every CPU).
"""
from numba import prange

from ._jit import kernel, parallel_kernel, slp_kernel, vector_bits
from .activations import GELU_CUBIC, GELU_SCALE
from .bfloat16 import widen, widen_streaming
from .fast_exp import sigmoid
from .prefetch import prefetch_for_read
from .stack_alloc import stack_empty, tree_sum
from .vectors import vectors

ROWS_PER_BLOCK = 16  # weight rows per prange item: many items, so the threads' shares stay equal
LANES = vector_bits() // 32  # float32s per vector register: 16 with AVX-512, 8 with AVX2
# The tile: XR * WR sums and XR + WR vectors loaded per step, 24 of AVX-512's 32 vector registers
# and 14 of AVX2's 16 (where `WR > 2` is false when compiling, and its code drops out).
XR, WR = 4, 4 if LANES == 16 else 2
SUMS = XR * WR


@parallel_kernel
def matvec(out, x, weight, bias, accumulate, gelu):
    """out = act(x @ weight^T + bias), or out += that when `accumulate`.

    out    (B, OC)  written (or added to)
    x      (B, C)   float32 or float64
    weight (OC, C)  the dtype of x, or uint16 bfloat16 bits (nn.Linear layout)
    bias   (OC,) of x's dtype, or (0,) for none
    accumulate      add into out (the residual stream: x + f(x) in one pass) instead of writing it
    gelu            act = GELU, tanh approximation, as activations.gelu_forward; else identity
    All C-contiguous; out must not overlap x. Parallel over blocks of weight rows.
    """
    OC = weight.shape[0]
    for block in prange((OC + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK):
        o_end = min(OC, (block + 1) * ROWS_PER_BLOCK)
        for o in range(block * ROWS_PER_BLOCK, o_end, WR):
            dot_rows(out, x, weight, o, min(WR, o_end - o), bias, accumulate, gelu)


@slp_kernel(reassociate=False)
def dot_rows(out, x, w, o, no, bias, accumulate, gelu):
    """out[b, o + j] for every row b of x and j < no (1 to WR) from the rows o + j of w, XR rows of
    x at a time (the order of each sum: the module docstring).

    Each sum lives in a stack array of LANES floats, updated by loops of that constant length:
    LLVM unrolls them, keeps the arrays in registers and makes each loop one vector multiply-add
    (stack_alloc.py; tiles.py's micro-kernel works the same way). "reassoc" is off, so LLVM keeps
    every lane's order. `tree_sum` adds the lanes with shuffles of the whole register: lane loops
    of other widths over these arrays would make LLVM split them, and the multiply-adds with them."""
    dt = out.dtype.type
    B, C = x.shape
    n = C // LANES
    zero = dt(0)
    u0 = vectors(w, o, n, LANES); u1 = vectors(w, o + min(1, no - 1), n, LANES)
    u2 = vectors(w, o + min(2, no - 1), n, LANES); u3 = vectors(w, o + min(3, no - 1), n, LANES)
    last = w.shape[0] - 1  # the next rows, prefetched while these are read
    next0 = vectors(w, min(o + WR, last), n, LANES); next1 = vectors(w, min(o + WR + 1, last), n, LANES)
    next2 = vectors(w, min(o + WR + 2, last), n, LANES); next3 = vectors(w, min(o + WR + 3, last), n, LANES)
    s00 = stack_empty(LANES, dt); s01 = stack_empty(LANES, dt)
    s02 = stack_empty(LANES, dt); s03 = stack_empty(LANES, dt)
    s10 = stack_empty(LANES, dt); s11 = stack_empty(LANES, dt)
    s12 = stack_empty(LANES, dt); s13 = stack_empty(LANES, dt)
    s20 = stack_empty(LANES, dt); s21 = stack_empty(LANES, dt)
    s22 = stack_empty(LANES, dt); s23 = stack_empty(LANES, dt)
    s30 = stack_empty(LANES, dt); s31 = stack_empty(LANES, dt)
    s32 = stack_empty(LANES, dt); s33 = stack_empty(LANES, dt)
    v0 = stack_empty(LANES, dt); v1 = stack_empty(LANES, dt); v2 = stack_empty(LANES, dt); v3 = stack_empty(LANES, dt)
    sums = stack_empty(SUMS, dt)
    for b in range(0, B, XR):
        nb = min(XR, B - b)
        b1, b2, b3 = b + min(1, nb - 1), b + min(2, nb - 1), b + min(3, nb - 1)
        y0 = vectors(x, b, n, LANES); y1 = vectors(x, b1, n, LANES)
        y2 = vectors(x, b2, n, LANES); y3 = vectors(x, b3, n, LANES)
        if nb == 1:  # one row of x: the same sums, one weight row after the other (one stream)
            for j in range(no):
                u = vectors(w, o + j, n, LANES); ahead = vectors(w, min(o + WR + j, last), n, LANES)
                s00[:] = zero
                for k in range(n):
                    prefetch_for_read(ahead[k], 0)
                    a = u[k]
                    y = y0[k]
                    for l in range(LANES):
                        s00[l] += y[l] * widen_streaming(a[l])
                sums[j] = tree_sum(s00, LANES)
        else:
            s00[:] = zero; s01[:] = zero; s02[:] = zero; s03[:] = zero
            s10[:] = zero; s11[:] = zero; s12[:] = zero; s13[:] = zero
            s20[:] = zero; s21[:] = zero; s22[:] = zero; s23[:] = zero
            s30[:] = zero; s31[:] = zero; s32[:] = zero; s33[:] = zero
            for k in range(n):
                prefetch_for_read(next0[k], 0); prefetch_for_read(next1[k], 0)
                if WR > 2:
                    prefetch_for_read(next2[k], 0); prefetch_for_read(next3[k], 0)
                a = u0[k]
                for l in range(LANES):
                    v0[l] = widen(a[l])
                a = u1[k]
                for l in range(LANES):
                    v1[l] = widen(a[l])
                if WR > 2:
                    a = u2[k]
                    for l in range(LANES):
                        v2[l] = widen(a[l])
                    a = u3[k]
                    for l in range(LANES):
                        v3[l] = widen(a[l])
                y = y0[k]
                for l in range(LANES):
                    s00[l] += y[l] * v0[l]
                for l in range(LANES):
                    s01[l] += y[l] * v1[l]
                if WR > 2:
                    for l in range(LANES):
                        s02[l] += y[l] * v2[l]
                    for l in range(LANES):
                        s03[l] += y[l] * v3[l]
                y = y1[k]
                for l in range(LANES):
                    s10[l] += y[l] * v0[l]
                for l in range(LANES):
                    s11[l] += y[l] * v1[l]
                if WR > 2:
                    for l in range(LANES):
                        s12[l] += y[l] * v2[l]
                    for l in range(LANES):
                        s13[l] += y[l] * v3[l]
                y = y2[k]
                for l in range(LANES):
                    s20[l] += y[l] * v0[l]
                for l in range(LANES):
                    s21[l] += y[l] * v1[l]
                if WR > 2:
                    for l in range(LANES):
                        s22[l] += y[l] * v2[l]
                    for l in range(LANES):
                        s23[l] += y[l] * v3[l]
                y = y3[k]
                for l in range(LANES):
                    s30[l] += y[l] * v0[l]
                for l in range(LANES):
                    s31[l] += y[l] * v1[l]
                if WR > 2:
                    for l in range(LANES):
                        s32[l] += y[l] * v2[l]
                    for l in range(LANES):
                        s33[l] += y[l] * v3[l]
            sums[0] = tree_sum(s00, LANES); sums[1] = tree_sum(s01, LANES)
            if WR > 2:
                sums[2] = tree_sum(s02, LANES); sums[3] = tree_sum(s03, LANES)
            sums[WR] = tree_sum(s10, LANES); sums[WR + 1] = tree_sum(s11, LANES)
            if WR > 2:
                sums[WR + 2] = tree_sum(s12, LANES); sums[WR + 3] = tree_sum(s13, LANES)
            sums[2 * WR] = tree_sum(s20, LANES); sums[2 * WR + 1] = tree_sum(s21, LANES)
            if WR > 2:
                sums[2 * WR + 2] = tree_sum(s22, LANES); sums[2 * WR + 3] = tree_sum(s23, LANES)
            sums[3 * WR] = tree_sum(s30, LANES); sums[3 * WR + 1] = tree_sum(s31, LANES)
            if WR > 2:
                sums[3 * WR + 2] = tree_sum(s32, LANES); sums[3 * WR + 3] = tree_sum(s33, LANES)
        if C % LANES:  # the products past the last whole vector, summed one by one
            for i in range(nb):
                for j in range(no):
                    sums[i * WR + j] += tail_dot(x, b + i, w, o + j, C - C % LANES)
        write_tile(out, sums, WR, b, nb, o, no, bias, accumulate, gelu)


@kernel(inline=True)
def write_tile(out, sums, wr, b, nb, o, no, bias, accumulate, gelu):
    """out[b + i, o + j] = act(sums[i wr + j] + bias[o + j]) for i < nb, j < no (or += that).
    Compiled into its callers: called, it would count references to its arrays at every tile."""
    if bias.shape[0] > 0:
        for i in range(nb):
            for j in range(no):
                sums[i * wr + j] += bias[o + j]
    if gelu or accumulate:  # (generation's layers ask for neither: a plain store is quicker)
        for i in range(nb):
            for j in range(no):
                finish_output(out, b + i, o + j, sums[i * wr + j], bias[:0], accumulate, gelu)
    else:
        for i in range(nb):
            for j in range(no):
                out[b + i, o + j] = sums[i * wr + j]


@kernel
def tail_dot(x, b, w, o, c0):
    """sum over c >= c0 of x[b, c] w[o, c], one by one in order of c."""
    s = x.dtype.type(0)
    for c in range(c0, x.shape[1]):
        s += x[b, c] * widen(w[o, c])
    return s


@kernel
def finish_output(out, b, o, s, bias, accumulate, gelu):
    """out[b, o] = act(s + bias[o]), or out[b, o] += that: the end of one dot product s = x[b] . W[o]."""
    dt = out.dtype.type
    if bias.shape[0] > 0:
        s += bias[o]
    if gelu:  # GELU(s) = s sigmoid(2 sqrt(2/pi) (s + 0.044715 s^3))
        s = s * sigmoid(dt(2 * GELU_SCALE) * (s + dt(GELU_CUBIC) * s * s * s))
    if accumulate:
        out[b, o] += s
    else:
        out[b, o] = s
