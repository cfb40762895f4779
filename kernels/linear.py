"""Linear (fully connected) layer: y = x W^T + b, with W stored (OC, C) like PyTorch nn.Linear.

Row n of the output is  y[n, o] = sum_c x[n, c] W[o, c] + b[o]:  a dot product of row n of x
with row o of W, both contiguous in memory. That makes the forward a cache-friendly
"dot product of two rows" and the backward two "scaled row additions" (axpy), see below.

Speed: a plain triple loop spends most of its time loading numbers, not multiplying them. All
three products here work on 4 x 4 tiles: 4 rows of one operand against 4 rows of the other, so
every value loaded from memory is used 4 times while it sits in a register. The innermost loop
always runs over the contiguous channel axis c, which LLVM turns into SIMD instructions.

Edge tiles (when N or OC is not a multiple of 4) reuse the same code: row indices past the end
are clamped to the last row. In the forward a clamped row just recomputes the last row and writes
the same value again; in the backward its coefficient is zero (see `_masked`), so it adds nothing.
"""
from numba import prange

from ._jit import kernel, parallel_kernel

TILE = 4  # rows per tile; the kernels below spell out 4 x 4 scalar accumulators by hand


@kernel
def _masked(a, i, j):
    """a[i, j] if (i, j) lies inside the 2-D array a, else 0: the coefficient of a clamped
    edge-tile row, so that the duplicated row contributes exactly nothing."""
    if i < a.shape[0] and j < a.shape[1]:
        return a[i, j]
    return a.dtype.type(0)


@parallel_kernel
def linear_forward(out, inp, weight, bias):
    """out = inp @ weight^T + bias   (overwrites out).

    out    (N, OC)  written
    inp    (N, C)
    weight (OC, C)  PyTorch nn.Linear layout
    bias   (OC,) or None (no bias; Numba compiles a separate version without the bias code)
    All arrays C-contiguous, one float dtype (float32 or float64). out must not alias inp.
    Parallel over tiles of 4 rows of out: each thread owns its rows, so there are no races.
    """
    N, C = inp.shape
    OC = weight.shape[0]
    zero = inp.dtype.type(0)
    for nt in prange((N + TILE - 1) // TILE):
        # 4 rows of inp; past the last row, repeat it (recomputed, same value written twice)
        n0 = TILE * nt
        n1 = min(n0 + 1, N - 1)
        n2 = min(n0 + 2, N - 1)
        n3 = min(n0 + 3, N - 1)
        for ot in range((OC + TILE - 1) // TILE):
            # 4 rows of weight = 4 output columns, clamped the same way
            o0 = TILE * ot
            o1 = min(o0 + 1, OC - 1)
            o2 = min(o0 + 2, OC - 1)
            o3 = min(o0 + 3, OC - 1)
            # s_ij accumulates the dot product of inp row n_i and weight row o_j
            s00 = zero; s01 = zero; s02 = zero; s03 = zero
            s10 = zero; s11 = zero; s12 = zero; s13 = zero
            s20 = zero; s21 = zero; s22 = zero; s23 = zero
            s30 = zero; s31 = zero; s32 = zero; s33 = zero
            for c in range(C):
                x0 = inp[n0, c]; x1 = inp[n1, c]; x2 = inp[n2, c]; x3 = inp[n3, c]
                w0 = weight[o0, c]; w1 = weight[o1, c]; w2 = weight[o2, c]; w3 = weight[o3, c]
                s00 += x0 * w0; s01 += x0 * w1; s02 += x0 * w2; s03 += x0 * w3
                s10 += x1 * w0; s11 += x1 * w1; s12 += x1 * w2; s13 += x1 * w3
                s20 += x2 * w0; s21 += x2 * w1; s22 += x2 * w2; s23 += x2 * w3
                s30 += x3 * w0; s31 += x3 * w1; s32 += x3 * w2; s33 += x3 * w3
            if bias is not None:
                b0 = bias[o0]; b1 = bias[o1]; b2 = bias[o2]; b3 = bias[o3]
                s00 += b0; s01 += b1; s02 += b2; s03 += b3
                s10 += b0; s11 += b1; s12 += b2; s13 += b3
                s20 += b0; s21 += b1; s22 += b2; s23 += b3
                s30 += b0; s31 += b1; s32 += b2; s33 += b3
            out[n0, o0] = s00; out[n0, o1] = s01; out[n0, o2] = s02; out[n0, o3] = s03
            out[n1, o0] = s10; out[n1, o1] = s11; out[n1, o2] = s12; out[n1, o3] = s13
            out[n2, o0] = s20; out[n2, o1] = s21; out[n2, o2] = s22; out[n2, o3] = s23
            out[n3, o0] = s30; out[n3, o1] = s31; out[n3, o2] = s32; out[n3, o3] = s33


@parallel_kernel
def linear_backward(dinp, dweight, dbias, dout, inp, weight):
    """Gradients of out = inp @ weight^T + bias   (accumulates into dinp, dweight, dbias).

    dinp    (N, C)   += dout @ weight          or None (skip: e.g. the input is token data)
    dweight (OC, C)  += dout^T @ inp
    dbias   (OC,)    += dout summed over rows  or None (layer without bias)
    dout    (N, OC)  upstream gradient dL/dy
    inp     (N, C)   the forward's input x
    weight  (OC, C)
    All arrays C-contiguous, one float dtype.

    Forward: y[n, o] = sum_c x[n, c] W[o, c] + b[o]. Each partial derivative is one term:
        dy[n, o] / dx[n, c] = W[o, c]   =>  dL/dx[n, c] = sum_o dL/dy[n, o] W[o, c]   (dL/dx = dL/dy W)
        dy[n, o] / dW[o, c] = x[n, c]   =>  dL/dW[o, c] = sum_n dL/dy[n, o] x[n, c]   (dL/dW = dL/dy^T x)
        dy[n, o] / db[o]    = 1         =>  dL/db[o]    = sum_n dL/dy[n, o]
    (In column-vector notation, y = W x + b per row: dL/dx = W^T dL/dy and dL/dW = dL/dy x^T.)

    Both products are computed as sums of scaled rows ("axpy"): row n of dinp gathers rows o of W
    with weights dout[n, o]; row o of dweight gathers rows n of inp with weights dout[n, o].
    The inner loop runs along c, contiguous in every array it touches.

    Parallel first over tiles of 4 rows of dinp (a thread owns its rows of dinp), then over tiles
    of 4 rows of dweight (a thread owns its rows of dweight and the matching dbias entries):
    no two threads ever add into the same element.
    """
    N, C = inp.shape
    OC = weight.shape[0]
    zero = inp.dtype.type(0)

    # dinp[n, :] += sum_o dout[n, o] * weight[o, :]   (loop order n, o, c)
    if dinp is not None:
        for nt in prange((N + TILE - 1) // TILE):
            n0 = TILE * nt
            n1 = min(n0 + 1, N - 1)
            n2 = min(n0 + 2, N - 1)
            n3 = min(n0 + 3, N - 1)
            for ot in range((OC + TILE - 1) // TILE):
                o0 = TILE * ot
                o1 = min(o0 + 1, OC - 1)
                o2 = min(o0 + 2, OC - 1)
                o3 = min(o0 + 3, OC - 1)
                # g_ij = dout[n_i, o_j]; zero for an index past the edge (unclamped indices here)
                g00 = _masked(dout, n0, o0); g01 = _masked(dout, n0, o0 + 1)
                g02 = _masked(dout, n0, o0 + 2); g03 = _masked(dout, n0, o0 + 3)
                g10 = _masked(dout, n0 + 1, o0); g11 = _masked(dout, n0 + 1, o0 + 1)
                g12 = _masked(dout, n0 + 1, o0 + 2); g13 = _masked(dout, n0 + 1, o0 + 3)
                g20 = _masked(dout, n0 + 2, o0); g21 = _masked(dout, n0 + 2, o0 + 1)
                g22 = _masked(dout, n0 + 2, o0 + 2); g23 = _masked(dout, n0 + 2, o0 + 3)
                g30 = _masked(dout, n0 + 3, o0); g31 = _masked(dout, n0 + 3, o0 + 1)
                g32 = _masked(dout, n0 + 3, o0 + 2); g33 = _masked(dout, n0 + 3, o0 + 3)
                for c in range(C):
                    w0 = weight[o0, c]; w1 = weight[o1, c]; w2 = weight[o2, c]; w3 = weight[o3, c]
                    dinp[n0, c] += g00 * w0 + g01 * w1 + g02 * w2 + g03 * w3
                    dinp[n1, c] += g10 * w0 + g11 * w1 + g12 * w2 + g13 * w3
                    dinp[n2, c] += g20 * w0 + g21 * w1 + g22 * w2 + g23 * w3
                    dinp[n3, c] += g30 * w0 + g31 * w1 + g32 * w2 + g33 * w3

    # dweight[o, :] += sum_n dout[n, o] * inp[n, :]   and   dbias[o] += sum_n dout[n, o]
    for ot in prange((OC + TILE - 1) // TILE):
        o0 = TILE * ot
        o1 = min(o0 + 1, OC - 1)
        o2 = min(o0 + 2, OC - 1)
        o3 = min(o0 + 3, OC - 1)
        for nt in range((N + TILE - 1) // TILE):
            n0 = TILE * nt
            n1 = min(n0 + 1, N - 1)
            n2 = min(n0 + 2, N - 1)
            n3 = min(n0 + 3, N - 1)
            # g_ij = dout[n_j, o_i]: the weight of inp row n_j in dweight row o_i
            g00 = _masked(dout, n0, o0); g01 = _masked(dout, n0 + 1, o0)
            g02 = _masked(dout, n0 + 2, o0); g03 = _masked(dout, n0 + 3, o0)
            g10 = _masked(dout, n0, o0 + 1); g11 = _masked(dout, n0 + 1, o0 + 1)
            g12 = _masked(dout, n0 + 2, o0 + 1); g13 = _masked(dout, n0 + 3, o0 + 1)
            g20 = _masked(dout, n0, o0 + 2); g21 = _masked(dout, n0 + 1, o0 + 2)
            g22 = _masked(dout, n0 + 2, o0 + 2); g23 = _masked(dout, n0 + 3, o0 + 2)
            g30 = _masked(dout, n0, o0 + 3); g31 = _masked(dout, n0 + 1, o0 + 3)
            g32 = _masked(dout, n0 + 2, o0 + 3); g33 = _masked(dout, n0 + 3, o0 + 3)
            for c in range(C):
                x0 = inp[n0, c]; x1 = inp[n1, c]; x2 = inp[n2, c]; x3 = inp[n3, c]
                dweight[o0, c] += g00 * x0 + g01 * x1 + g02 * x2 + g03 * x3
                dweight[o1, c] += g10 * x0 + g11 * x1 + g12 * x2 + g13 * x3
                dweight[o2, c] += g20 * x0 + g21 * x1 + g22 * x2 + g23 * x3
                dweight[o3, c] += g30 * x0 + g31 * x1 + g32 * x2 + g33 * x3
        if dbias is not None:
            for o in range(o0, min(o0 + TILE, OC)):
                s = zero
                for n in range(N):
                    s += dout[n, o]
                dbias[o] += s
