"""Linear (fully connected) layer: y = x W^T + b, with W stored (OC, C) like PyTorch nn.Linear.

Row n of the output is  y[n, o] = sum_c x[n, c] W[o, c] + b[o].  The forward and both gradient
products are matrix multiplies, done by `matmul.matmul`. Only the bias gradient, a sum down the
columns, is computed here.

linear_forward and linear_backward are plain Python: they only call matmul. Compiled, each would
carry a copy of matmul's code of its own, which Numba optimizes and compiles again (about a
second per version on a first run).
"""
import numpy as np

from ._jit import kernel
from .matmul import matmul


def linear_forward(out, inp, weight, bias):
    """out = inp @ weight^T + bias   (overwrites out).

    out    (N, OC)  written
    inp    (N, C)
    weight (OC, C)  PyTorch nn.Linear layout
    bias   (OC,), or (0,) for no bias (as every kernel says "no bias")
    All arrays C-contiguous, one float dtype (float32 or float64). out must not alias inp.
    """
    matmul(out, inp, False, weight, True, bias, False)


def linear_backward(dinp, dweight, dbias, dout, inp, weight, accumulate):
    """Gradients of out = inp @ weight^T + bias   (accumulates into dweight, dbias, and dinp if asked).

    dinp    (N, C)   += dout @ weight, or = when not `accumulate`; or None (skip: e.g. the input
                     is token data)
    dweight (OC, C)  += dout^T @ inp
    dbias   (OC,)    += dout summed over rows; or (0,): no bias
    dout    (N, OC)  upstream gradient dL/dy
    inp     (N, C)   the forward's input x
    weight  (OC, C)
    accumulate       False: dinp is overwritten and its old contents never read, which spares the
                     caller zeroing a temporary first. The weight gradients always accumulate (a
                     weight used twice, such as a tied embedding, sums its gradients).
    All arrays C-contiguous, one float dtype.

    Forward: y[n, o] = sum_c x[n, c] W[o, c] + b[o]. Each partial derivative is one term:
        dy[n, o] / dx[n, c] = W[o, c]   =>  dL/dx[n, c] = sum_o dL/dy[n, o] W[o, c]   (dL/dx = dL/dy W)
        dy[n, o] / dW[o, c] = x[n, c]   =>  dL/dW[o, c] = sum_n dL/dy[n, o] x[n, c]   (dL/dW = dL/dy^T x)
        dy[n, o] / db[o]    = 1         =>  dL/db[o]    = sum_n dL/dy[n, o]
    (In column-vector notation, y = W x + b per row: dL/dx = W^T dL/dy and dL/dW = dL/dy x^T.)
    """
    no_bias = np.empty(0, dout.dtype)
    if dinp is not None:
        matmul(dinp, dout, False, weight, False, no_bias, accumulate)
    matmul(dweight, dout, True, inp, False, no_bias, True)
    if dbias.shape[0]:
        _column_sums(dbias, dout)


@kernel
def _column_sums(total, x):
    """total[o] += sum_n x[n, o]. Serial: one pass over x is too little work to pay for starting
    threads."""
    N, OC = x.shape
    for n in range(N):
        for o in range(OC):
            total[o] += x[n, o]
