"""Elementwise activation functions and their backward passes.

Every activation here acts on each element on its own, y_i = f(x_i), so its Jacobian dy/dx is
DIAGONAL: dL/dx_i = dL/dy_i * f'(x_i). No activation backward ever needs a matrix; it is one
multiply per element.

All kernels take 1-D C-contiguous arrays (callers pass flattened views, e.g. `x.reshape(-1)`) of
one float dtype (float32 or float64), and run in parallel over elements. Backwards add into dinp,
or with accumulate=False overwrite it without reading it (a fresh temporary then needs no zeroing).

In-place use: every forward reads inp[i] before it writes out[i] and touches no other element, so
`out` may be the same array as `inp`. The backward then has only what survived: sigmoid and tanh
backwards read the stored OUTPUT, so they work after an in-place forward; ReLU and leaky ReLU
backwards read the input, but only its sign, and (for a slope >= 0) y has the same sign as x, so
passing the output there works too; GELU's backward needs the true INPUT, so do not run GELU in
place if you need its gradient.
"""
import math

import numpy as np
from numba import prange

from ._jit import parallel_kernel
from .fast_exp import sigmoid
from .normal_cdf import normal_cdf, normal_pdf

# sqrt(2 / pi), the scale inside GELU's tanh approximation (a float64 compile-time constant)
GELU_SCALE = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715


# ----------------------------------------------------------------------------------------------
# ReLU:  y = max(x, 0)
# ----------------------------------------------------------------------------------------------

@parallel_kernel
def relu_forward(out, inp):
    """out = max(inp, 0). out may alias inp.

    out, inp: (n,) float32 or float64, C-contiguous, same dtype.
    """
    zero = inp.dtype.type(0)
    for i in prange(inp.shape[0]):
        x = inp[i]
        out[i] = x if x > zero else zero


@parallel_kernel
def relu_backward(dinp, dout, inp, accumulate):
    """dinp += dout * relu'(inp), or dinp = dout * relu'(inp) when not `accumulate`.

    Forward: y = max(x, 0). Its Jacobian is diagonal with entries
        dy_i/dx_i = 1 if x_i > 0 else 0
    (at x = 0 we take 0, as PyTorch does), so dL/dx_i = dL/dy_i where x_i > 0 and 0 elsewhere.
    `inp` may be the forward's output instead of its input: only the sign test x > 0 is used.

    dinp, dout, inp: (n,) same dtype, C-contiguous. accumulate: False overwrites dinp without
    reading it (a temporary then needs no zeroing first).
    """
    zero = inp.dtype.type(0)
    for i in prange(inp.shape[0]):
        g = dout[i] if inp[i] > zero else zero
        dinp[i] = dinp[i] + g if accumulate else g


# ----------------------------------------------------------------------------------------------
# Leaky ReLU:  y = x if x > 0 else a * x
# ----------------------------------------------------------------------------------------------

@parallel_kernel
def leaky_relu_forward(out, inp, negative_slope):
    """out = inp where inp > 0, else negative_slope * inp. out may alias inp.

    out, inp: (n,) float32 or float64, C-contiguous, same dtype. negative_slope: Python float.
    """
    zero = inp.dtype.type(0)
    a = inp.dtype.type(negative_slope)
    for i in prange(inp.shape[0]):
        x = inp[i]
        out[i] = x if x > zero else a * x


@parallel_kernel
def leaky_relu_backward(dinp, dout, inp, negative_slope, accumulate):
    """dinp += dout * leaky_relu'(inp), or = when not `accumulate`.

    Forward: y = x if x > 0 else a x. Diagonal Jacobian:
        dy_i/dx_i = 1 if x_i > 0 else a
    (at x = 0 we take a, as PyTorch does). For a >= 0 the output has the sign of the input, so
    the forward's output may be passed as `inp`.

    dinp, dout, inp: (n,) same dtype, C-contiguous. negative_slope: Python float. accumulate: as
    in relu_backward.
    """
    zero = inp.dtype.type(0)
    a = inp.dtype.type(negative_slope)
    for i in prange(inp.shape[0]):
        g = dout[i] if inp[i] > zero else a * dout[i]
        dinp[i] = dinp[i] + g if accumulate else g


# ----------------------------------------------------------------------------------------------
# Sigmoid:  s = 1 / (1 + exp(-x))
# ----------------------------------------------------------------------------------------------

@parallel_kernel
def sigmoid_forward(out, inp):
    """out = 1 / (1 + exp(-inp)), computed without overflow. out may alias inp.

    exp is only ever taken of a non-positive number, so it cannot overflow:
        x >= 0:  s = 1 / (1 + exp(-x))
        x <  0:  s = exp(x) / (1 + exp(x))     (the same value, multiplied by exp(x)/exp(x))
    For x -> +inf this gives exactly 1, for x -> -inf exactly 0, never inf/inf.
    The output is what the backward needs; store it.

    out, inp: (n,) float32 or float64, C-contiguous, same dtype.
    """
    zero = inp.dtype.type(0)
    one = inp.dtype.type(1)
    for i in prange(inp.shape[0]):
        x = inp[i]
        if x >= zero:
            out[i] = one / (one + math.exp(-x))
        else:
            e = math.exp(x)
            out[i] = e / (one + e)


@parallel_kernel
def sigmoid_backward(dinp, dout, out, accumulate):
    """dinp += dout * s (1 - s), or = when not `accumulate`; from the forward's OUTPUT s.

    Forward: s = 1 / (1 + exp(-x)). Differentiating,
        ds/dx = exp(-x) / (1 + exp(-x))^2 = s * (1 - s),
    so the derivative is a function of the output alone and the input need not be kept.

    dinp, dout, out: (n,) same dtype, C-contiguous. accumulate: as in relu_backward.
    """
    one = out.dtype.type(1)
    for i in prange(out.shape[0]):
        s = out[i]
        g = dout[i] * s * (one - s)
        dinp[i] = dinp[i] + g if accumulate else g


# ----------------------------------------------------------------------------------------------
# tanh:  y = tanh(x)
# ----------------------------------------------------------------------------------------------

@parallel_kernel
def tanh_forward(out, inp):
    """out = tanh(inp). out may alias inp. The output is what the backward needs; store it.

    out, inp: (n,) float32 or float64, C-contiguous, same dtype.
    """
    for i in prange(inp.shape[0]):
        out[i] = math.tanh(inp[i])


@parallel_kernel
def tanh_backward(dinp, dout, out, accumulate):
    """dinp += dout * (1 - y^2), or = when not `accumulate`; from the forward's OUTPUT y.

    Forward: y = tanh(x). Differentiating, dy/dx = 1 / cosh(x)^2 = 1 - tanh(x)^2 = 1 - y^2.

    dinp, dout, out: (n,) same dtype, C-contiguous. accumulate: as in relu_backward.
    """
    one = out.dtype.type(1)
    for i in prange(out.shape[0]):
        y = out[i]
        g = dout[i] * (one - y * y)
        dinp[i] = dinp[i] + g if accumulate else g


# ----------------------------------------------------------------------------------------------
# GELU, tanh approximation (as in GPT-2):
#     y = 0.5 x (1 + tanh(u)),   u = k (x + c x^3),   k = sqrt(2/pi),   c = 0.044715
# ----------------------------------------------------------------------------------------------

@parallel_kernel
def gelu_forward(out, inp):
    """out = 0.5 inp (1 + tanh(sqrt(2/pi) (inp + 0.044715 inp^3))). out may alias inp,
    but the backward needs the INPUT: keep it if you need gradients.

    Computed as out = x * sigmoid(2u), the same function (1 + tanh(u) = 2 sigmoid(2u)), because
    fast_exp's `sigmoid` vectorizes and math.tanh does not. The arithmetic is in the arrays'
    dtype: float32 data gets float32 math, 16 numbers per vector instead of 8, with a few ulps of
    error.

    out, inp: (n,) float32 or float64, C-contiguous, same dtype.
    """
    dt = inp.dtype.type
    k2, c = dt(2 * GELU_SCALE), dt(GELU_CUBIC)  # constants in the data's dtype
    for i in prange(inp.shape[0]):
        x = inp[i]
        out[i] = x * sigmoid(k2 * (x + c * x * x * x))


@parallel_kernel
def gelu_backward(dinp, dout, inp, accumulate):
    """dinp += dout * gelu'(inp), or dinp = dout * gelu'(inp) when not `accumulate`; from the
    forward's INPUT x.

    Forward: y = 0.5 x (1 + tanh(u)) = x s with s = sigmoid(2u), u = k (x + c x^3).
    Product rule, with sigmoid' = s (1 - s) and d(2u)/dx = 2 k (1 + 3 c x^2):
        dy/dx = s + x s (1 - s) 2 k (1 + 3 c x^2)
    (the same as 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx, since 1 + tanh u = 2 s and
    1 - tanh u = 2 (1 - s)). Arithmetic in the arrays' dtype, as in the forward.

    dinp, dout, inp: (n,) same dtype, C-contiguous. accumulate: as in relu_backward.
    """
    dt = inp.dtype.type
    k2, c, c3, one = dt(2 * GELU_SCALE), dt(GELU_CUBIC), dt(3 * GELU_CUBIC), dt(1)
    for i in prange(inp.shape[0]):
        x = inp[i]
        x2 = x * x
        s = sigmoid(k2 * (x + c * x2 * x))
        dy_dx = s + x * s * (one - s) * k2 * (one + c3 * x2)
        g = dout[i] * dy_dx
        dinp[i] = dinp[i] + g if accumulate else g


# ----------------------------------------------------------------------------------------------
# GELU, exact (as in BERT and ViT):
#     y = x Phi(x),   Phi(x) = 0.5 (1 + erf(x / sqrt(2)))   the standard normal's distribution function
# ----------------------------------------------------------------------------------------------

@parallel_kernel
def gelu_erf_forward(out, inp):
    """out = inp * Phi(inp) = 0.5 inp (1 + erf(inp / sqrt(2))). out may alias inp, but the backward
    needs the INPUT: keep it if you need gradients.

    The tanh form above approximates this one to about 1e-3; checkpoints trained with the exact
    form (ViT's "gelu") need it to reproduce their outputs to 1e-5. Phi comes from normal_cdf.py:
    vectorizable in float32 (a few 1e-7 relative error), exact in float64.

    out, inp: (n,) float32 or float64, C-contiguous, same dtype.
    """
    for i in prange(inp.shape[0]):
        x = inp[i]
        out[i] = x * normal_cdf(x)


@parallel_kernel
def gelu_erf_backward(dinp, dout, inp, accumulate):
    """dinp += dout * gelu'(inp), or dinp = dout * gelu'(inp) when not `accumulate`; from the
    forward's INPUT x.

    Forward: y = x Phi(x). Product rule, with Phi' = phi, the standard normal density
    phi(x) = exp(-x^2 / 2) / sqrt(2 pi):
        dy/dx = Phi(x) + x phi(x)

    dinp, dout, inp: (n,) same dtype, C-contiguous. accumulate: as in relu_backward.
    """
    for i in prange(inp.shape[0]):
        x = inp[i]
        g = dout[i] * (normal_cdf(x) + x * normal_pdf(x))
        dinp[i] = dinp[i] + g if accumulate else g
