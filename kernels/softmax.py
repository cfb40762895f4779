"""Softmax and log-softmax over the last axis, and the products with the softmax Jacobian.

Shapes: (N, n), where n is the length of the softmax axis (V for logits, T or S for a row of
attention scores) and N counts all the other axes flattened together.

Forward, for one row x of length n:

    y_j = exp(x_j - m) / sum_k exp(x_k - m),   m = max_k x_k

Subtracting the row maximum changes nothing mathematically (the factor exp(-m) cancels between
numerator and denominator) but keeps every exponent <= 0, so exp never overflows, even for logits
like 1000, and the largest term is exactly 1, so the sum is >= 1 and never underflows to 0.

The Jacobian, derived once here and used by every backward below:

    dy_i/dx_j = d/dx_j [ e_i / s ]          with e_i = exp(x_i - m), s = sum_k e_k
              = (de_i/dx_j) / s - e_i (ds/dx_j) / s^2
              = [i == j] e_i / s - (e_i / s)(e_j / s)     since de_i/dx_j = [i == j] e_i, ds/dx_j = e_j
              = [i == j] y_i - y_i y_j

    J = diag(y) - y y^T          (n, n), symmetric

`softmax_jacobian` builds J explicitly (for learning and tests). Building it costs n^2 memory and
time per row, so the backward passes never do: they apply it to a vector directly,

    J v = diag(y) v - y (y^T v) = y * (v - <y, v>)            (elementwise *, scalar <y, v>)

which is O(n). Because J is symmetric, J^T v (the vector-Jacobian product a backward pass needs)
is the very same expression.
"""
import numpy as np
from numba import prange

from ._jit import kernel, parallel_kernel


@parallel_kernel
def softmax_forward(out, inp):
    """Row-wise softmax over the last axis.

    out, inp: (N, n) C-contiguous, same float dtype, n >= 1. `out` may be `inp` (in place):
    each element is read before it is written. `out` is also what softmax_backward needs.
    """
    # (N, n) -> (N, n)
    N, n = inp.shape
    one = inp.dtype.type(1)
    for i in prange(N):  # rows are independent
        x = inp[i]
        y = out[i]
        m = x[0]
        for j in range(1, n):
            m = max(m, x[j])
        # e_j = exp(x_j - m) <= 1; store it in y and accumulate s = sum_j e_j >= 1
        s = inp.dtype.type(0)
        for j in range(n):
            e = np.exp(x[j] - m)
            y[j] = e
            s += e
        inv_s = one / s  # one division per row, then multiplications
        for j in range(n):
            y[j] *= inv_s


@parallel_kernel
def softmax_backward(dinp, dout, out):
    """Accumulate the softmax input gradient, using the stored softmax output.

    dinp, dout, out: (N, n) C-contiguous, same float dtype. `out` is softmax_forward's output y.
    """
    # (N, n), (N, n), (N, n)
    # forward:  y = softmax(x), row by row
    # backward: dL/dx = J^T dL/dy with J = diag(y) - y y^T (module docstring), and J^T = J, so
    #           dL/dx_j = y_j (dL/dy_j - <y, dL/dy>)
    N, n = out.shape
    for i in prange(N):
        y = out[i]
        g = dout[i]
        dx = dinp[i]
        dot = out.dtype.type(0)  # <y, dL/dy>
        for j in range(n):
            dot += y[j] * g[j]
        for j in range(n):
            dx[j] += y[j] * (g[j] - dot)


@kernel
def softmax_jacobian(jac, y):
    """Write the explicit softmax Jacobian J = diag(y) - y y^T.

    jac: (n, n) C-contiguous; y: (n,) a softmax output; same float dtype.
    J[i, j] = dy_i/dx_j. For learning and tests only: backward passes apply J without building it.
    """
    # (n, n), (n,)
    n = y.shape[0]
    for i in range(n):
        for j in range(n):
            jac[i, j] = -y[i] * y[j]  # - y y^T
        jac[i, i] += y[i]  # + diag(y)


@kernel
def softmax_jvp(out, y, v):
    """Jacobian-vector product: write out = J v = y * (v - <y, v>), without building J.

    out, y, v: (n,) same float dtype; y is a softmax output. `out` may be `v`.
    Forward-mode: how the softmax output moves when its input moves along v.
    """
    # (n,), (n,), (n,)
    # J v = (diag(y) - y y^T) v = y * v - y * <y, v>
    n = y.shape[0]
    dot = y.dtype.type(0)
    for j in range(n):
        dot += y[j] * v[j]
    for j in range(n):
        out[j] = y[j] * (v[j] - dot)


@kernel
def softmax_vjp(out, y, v):
    """Vector-Jacobian product: write out = J^T v = y * (v - <y, v>), without building J.

    out, y, v: (n,) same float dtype (1-D row slices of larger arrays are fine); y is a softmax
    output. `out` may be `v`. Reverse-mode: v is dL/dy and out is dL/dx. Attention's backward
    applies this formula inlined to each row of its probabilities (dA = P * (dP - rowsum(P * dP))).
    """
    # (n,), (n,), (n,)
    # J^T v = J v because J = diag(y) - y y^T is symmetric, so this is the same formula as
    # softmax_jvp. Both names exist because they answer different questions (forward-mode
    # tangent vs reverse-mode gradient), and for a non-symmetric Jacobian they would differ.
    n = y.shape[0]
    dot = y.dtype.type(0)
    for j in range(n):
        dot += y[j] * v[j]
    for j in range(n):
        out[j] = y[j] * (v[j] - dot)


@parallel_kernel
def log_softmax_forward(out, inp):
    """Row-wise log-softmax over the last axis: out = x - m - log(sum_k exp(x_k - m)).

    out, inp: (N, n) C-contiguous, same float dtype, n >= 1. `out` may be `inp`.
    `out` is also what log_softmax_backward needs (exp(out) is the softmax).
    """
    # (N, n) -> (N, n)
    # log y_j = log(e_j / s) = (x_j - m) - log s: computed this way, never as log(softmax), which
    # would give log(0) = -inf wherever the softmax underflows.
    N, n = inp.shape
    for i in prange(N):
        x = inp[i]
        z = out[i]
        m = x[0]
        for j in range(1, n):
            m = max(m, x[j])
        s = inp.dtype.type(0)
        for j in range(n):
            s += np.exp(x[j] - m)
        shift = m + np.log(s)  # log-sum-exp of the row
        for j in range(n):
            z[j] = x[j] - shift


@parallel_kernel
def log_softmax_backward(dinp, dout, out):
    """Accumulate the log-softmax input gradient, using the stored log-softmax output.

    dinp, dout, out: (N, n) C-contiguous, same float dtype. `out` is log_softmax_forward's output.
    """
    # (N, n), (N, n), (N, n)
    # forward:  z_i = x_i - lse(x),  lse(x) = log sum_k exp(x_k), and d lse/dx_j = softmax_j = p_j
    # so        dz_i/dx_j = [i == j] - p_j
    # backward: dL/dx_j = sum_i dL/dz_i ([i == j] - p_j) = dL/dz_j - p_j sum_i dL/dz_i,
    #           with p_j = exp(z_j) recovered from the stored output.
    N, n = out.shape
    for i in prange(N):
        z = out[i]
        g = dout[i]
        dx = dinp[i]
        total = out.dtype.type(0)
        for j in range(n):
            total += g[j]
        for j in range(n):
            dx[j] += g[j] - np.exp(z[j]) * total
