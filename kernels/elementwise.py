"""Residual (skip) connection: out = a + b.

Kernels take 1-D C-contiguous arrays (callers pass flattened views) of one float dtype and run
in parallel over elements.
"""
from numba import prange

from ._jit import parallel_kernel


@parallel_kernel
def residual_forward(out, a, b):
    """out = a + b. out may alias a (or b): each element is read before it is written.

    out, a, b: (n,) float32 or float64, C-contiguous, same dtype. Typically n = N * C.
    """
    for i in prange(out.shape[0]):
        out[i] = a[i] + b[i]


@parallel_kernel
def residual_backward(da, db, dout):
    """da += dout; db += dout   (accumulates).

    Forward: y = a + b, so dy/da = dy/db = I and the upstream gradient flows unchanged into
    both branches. That is why residual connections keep gradients alive in deep networks.
    If da and db are the same buffer (y = a + a) it correctly receives 2 * dout.

    da, db, dout: (n,) same dtype, C-contiguous.
    """
    for i in prange(dout.shape[0]):
        g = dout[i]
        da[i] += g
        db[i] += g


@parallel_kernel
def add_(out, x):
    """out += x, in place: a gradient that reaches one buffer along two paths (a residual's
    identity path, an inactive dropout) is the sum of both.

    out, x: (n,) same dtype, C-contiguous.
    """
    for i in prange(out.shape[0]):
        out[i] += x[i]
