"""Pooling a sequence of vectors into one vector per sequence: the mean over selected positions.

    n_b      = sum_t mask[b, t]                                   positions that count
    out[b]   = (1 / n_b) sum_t mask[b, t] inp[b, t]               (B, C)

One kernel pair serves both poolings of an encoder classifier:
- mean pooling: mask = the non-padding positions, so padding never changes the result;
- classification-token pooling: mask selects only position 0 (where the CLS token sits), and the
  "mean" of one vector is that vector.
A sequence with no selected position gets out[b] = 0 (there is nothing to average; the model
layer refuses such inputs before they get here).
"""
from numba import prange

from ._jit import parallel_kernel


@parallel_kernel
def mean_pool_forward(out, inp, mask):
    """out[b, :] = mean of inp[b, t, :] over the t with mask[b, t]   (overwrites out).

    out  (B, C)     written
    inp  (B, T, C)
    mask (B, T)     bool, True = position counts
    out and inp C-contiguous, one float dtype. Parallel over sequences b: each thread writes
    only its own row of out.
    """
    B, T, C = inp.shape
    dt = inp.dtype.type
    for b in prange(B):
        for c in range(C):
            out[b, c] = dt(0)
        n = 0
        for t in range(T):
            if mask[b, t]:
                n += 1
                for c in range(C):
                    out[b, c] += inp[b, t, c]
        if n > 0:
            inv = dt(1) / dt(n)
            for c in range(C):
                out[b, c] *= inv


@parallel_kernel
def mean_pool_backward(dinp, dout, mask):
    """dinp[b, t, :] += mask[b, t] dout[b, :] / n_b   (accumulates).

    dinp (B, T, C)  +=, rows of unselected positions untouched
    dout (B, C)     upstream gradient
    mask (B, T)     bool, the forward's mask

    Forward: out[b] = (1/n_b) sum_t mask[b, t] x[b, t] is linear in x, with
        d out[b, c] / d x[b, t, c'] = [c == c'] mask[b, t] / n_b,
    so each selected position receives an equal 1/n_b share of the pooled gradient and padding
    receives nothing. Parallel over b: sequence b's rows of dinp belong to one thread.
    """
    B, T, C = dinp.shape
    dt = dinp.dtype.type
    for b in prange(B):
        n = 0
        for t in range(T):
            if mask[b, t]:
                n += 1
        if n == 0:
            continue
        inv = dt(1) / dt(n)
        for t in range(T):
            if mask[b, t]:
                for c in range(C):
                    dinp[b, t, c] += dout[b, c] * inv
