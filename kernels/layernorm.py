"""Layer normalization over the channel axis of each row.

For one row x of C numbers (one token's features):
    mu   = mean(x)
    var  = mean((x - mu)^2)           biased variance (divide by C), as PyTorch
    rstd = 1 / sqrt(var + eps)        "reciprocal standard deviation"
    xhat = (x - mu) * rstd            zero mean, unit variance
    y    = xhat * weight + bias       learned per-channel scale and shift
"""
import math

from numba import prange

from ._jit import parallel_kernel


@parallel_kernel
def layernorm_forward(out, mean, rstd, inp, weight, bias, eps):
    """Normalize each row of inp, then scale and shift   (overwrites out, mean, rstd).

    out    (N, C)  written
    mean   (N,)    written: each row's mean, kept for the backward
    rstd   (N,)    written: each row's 1 / sqrt(var + eps), kept for the backward
    inp    (N, C)
    weight (C,)
    bias   (C,), or (0,) for no bias
    eps    Python float (e.g. 1e-5)
    All arrays C-contiguous, one float dtype. out may alias inp (each row is read in full before
    it is written). Parallel over rows.
    """
    N, C = inp.shape
    zero = inp.dtype.type(0)
    one = inp.dtype.type(1)
    inv_c = one / inp.dtype.type(C)
    eps_ = inp.dtype.type(eps)
    for n in prange(N):
        # Two passes (mean first, then squared deviations) rather than E[x^2] - E[x]^2, which
        # cancels catastrophically when |mean| is large compared with the spread.
        s = zero
        for c in range(C):
            s += inp[n, c]
        mu = s * inv_c
        v = zero
        for c in range(C):
            d = inp[n, c] - mu
            v += d * d
        r = one / math.sqrt(v * inv_c + eps_)
        mean[n] = mu
        rstd[n] = r
        if bias.shape[0]:
            for c in range(C):
                out[n, c] = (inp[n, c] - mu) * r * weight[c] + bias[c]
        else:
            for c in range(C):
                out[n, c] = (inp[n, c] - mu) * r * weight[c]


@parallel_kernel
def layernorm_backward(dinp, dweight, dbias, dout, inp, mean, rstd, weight):
    """Gradients of layer norm   (accumulates into dinp, dweight, dbias).

    dinp    (N, C)  +=
    dweight (C,)    +=
    dbias   (C,)    +=, or (0,): no bias
    dout    (N, C)  upstream gradient dL/dy
    inp     (N, C)  the forward's input x
    mean    (N,), rstd (N,)  as stored by layernorm_forward
    weight  (C,)
    All arrays C-contiguous, one float dtype.

    Forward, per row: y_c = xhat_c w_c + b_c with xhat_c = (x_c - mu) rstd.

    Scale and shift are per channel and shared by all rows, so their gradients sum over rows:
        dL/db_c = sum_n dy[n, c]          dL/dw_c = sum_n dy[n, c] xhat[n, c]

    Input, one row at a time. Write g_c = dL/dy_c * w_c = dL/dxhat_c. Both mu and rstd depend on
    every x_j, so each x_j reaches the loss through xhat_j directly and through mu and rstd:
        dmu/dx_j   = 1/C
        drstd/dx_j = d/dx_j (var + eps)^(-1/2) = -1/2 rstd^3 * dvar/dx_j = -rstd^3 (x_j - mu) / C
                   = -rstd^2 xhat_j / C        (the mu-dependence of var drops out: sum (x - mu) = 0)
        dxhat_c/dx_j = rstd (delta_cj - 1/C) + (x_c - mu) drstd/dx_j
                     = rstd (delta_cj - 1/C - xhat_c xhat_j / C)
    Then dL/dx_j = sum_c g_c dxhat_c/dx_j gives
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    i.e. remove from g its mean and its component along xhat, then scale by rstd.

    dinp: parallel over rows (a thread owns its rows). dweight/dbias: every row adds into the
    same C entries, so that sum runs serially over rows (the inner loop over C stays contiguous).
    It costs O(N C), small next to the linear layers around it.
    """
    N, C = inp.shape
    zero = inp.dtype.type(0)
    inv_c = inp.dtype.type(1) / inp.dtype.type(C)

    for n in prange(N):
        mu = mean[n]
        r = rstd[n]
        # the two row means: mean(g) and mean(g * xhat)
        sum_g = zero
        sum_gx = zero
        for c in range(C):
            g = dout[n, c] * weight[c]
            sum_g += g
            sum_gx += g * (inp[n, c] - mu) * r
        mean_g = sum_g * inv_c
        mean_gx = sum_gx * inv_c
        for c in range(C):
            xhat = (inp[n, c] - mu) * r
            g = dout[n, c] * weight[c]
            dinp[n, c] += r * (g - mean_g - xhat * mean_gx)

    # sums over rows: serial over n, so no two iterations add into one element at the same time
    has_bias = dbias.shape[0] > 0
    for n in range(N):
        mu = mean[n]
        r = rstd[n]
        for c in range(C):
            dy = dout[n, c]
            if has_bias:
                dbias[c] += dy
            dweight[c] += dy * (inp[n, c] - mu) * r
