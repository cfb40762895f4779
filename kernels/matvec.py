"""A weight matrix times a few vectors: the linear layers of generation, one new token per row.

    out[b, o] = act(sum_c x[b, c] W[o, c] + bias[o])      (or out[b, o] += ..., a residual)

Generating a token multiplies every weight matrix by one vector per sequence: one multiply-add
per weight loaded from memory, so the time is the bytes of the weights over the memory bandwidth,
and the arithmetic hardly matters. The tiled `matmul` is the wrong tool: it copies the weights into
panels first, a second pass over them. Here each weight row is read once, front to back, and dotted
with every x row (those stay in the L1 cache); the threads take contiguous runs of rows, so each
streams its share of the matrix as one long sequential read, which the hardware prefetches.

The dot products run in the data's dtype (float32 for float32 models), vectorized. Weights may
also be bfloat16 (uint16 bits, bfloat16.py), widened to float32 as they are read: half the bytes.
Each out[b, o] is summed in the same order whatever the other rows of x hold, so a sequence's
results do not depend on what else is in the batch.
"""
from numba import prange

from ._jit import kernel, parallel_kernel
from .activations import GELU_CUBIC, GELU_SCALE
from .bfloat16 import widen
from .fast_exp import sigmoid

ROWS_PER_BLOCK = 16  # weight rows per prange item: many items, so the threads' shares stay equal


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
    B, C = x.shape
    OC = weight.shape[0]
    zero = x.dtype.type(0)
    for block in prange((OC + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK):
        for o in range(block * ROWS_PER_BLOCK, min(OC, (block + 1) * ROWS_PER_BLOCK)):
            w = weight[o]
            for b in range(B):
                xb = x[b]
                s = zero
                for c in range(C):  # a reduction: vectorized, as kernels may reassociate
                    s += widen(w[c]) * xb[c]
                finish_output(out, b, o, s, bias, accumulate, gelu)


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
