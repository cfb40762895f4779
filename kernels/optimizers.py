"""Optimizer steps, gradient norm and gradient clipping over the whole model at once.

Every parameter of a model lives in ONE flat contiguous 1-D buffer `params`, its gradient in
`grads`, and each piece of optimizer state (momentum, Adam's m and v, AdaGrad/RMSprop squares) in
a buffer of the same length. A step is therefore one kernel call, parallel over elements: every
element's update reads and writes only index i, so there are no races.

Parameters that get weight decay come FIRST in the buffer: decay applies to params[:n_decay] and
the exempt ones (biases, layer-norm gains) follow.

Shape letter used here (not in the package legend because only optimizers need it):
    P   total number of parameters of the model (the length of every buffer below)

Preconditions shared by every kernel: all buffers are 1-D, C-contiguous, length P and of one float
dtype (float32 or float64). Hyper-parameters are Python floats; each kernel converts them to the
buffers' dtype once, before the loop, so float32 buffers are updated in float32 arithmetic.
All updates happen in place.
"""
import math

import numpy as np
from numba import prange

from ._jit import kernel, parallel_kernel

# grad_norm sums squares in fixed chunks of this many elements, in parallel, then adds the chunk
# sums serially. The chunking does not depend on the thread count, so neither does the result.
_NORM_CHUNK = 4096


@parallel_kernel
def sgd_step(params, grads, lr):
    """Plain stochastic gradient descent:  w <- w - lr * g.

    params: (P,) updated in place.  grads: (P,) same dtype.  lr: learning rate.
    """
    lr_ = params.dtype.type(lr)
    for i in prange(params.shape[0]):
        params[i] -= lr_ * grads[i]


@parallel_kernel
def momentum_step(params, grads, velocity, lr, momentum):
    """SGD with (heavy-ball) momentum, learning rate folded into the velocity:

        v <- momentum * v + lr * g
        w <- w - v

    lr is INSIDE v (Sutskever et al. 2013); PyTorch's SGD keeps it outside (v <- momentum * v + g;
    w <- w - lr * v). The steps are the same while lr is constant; under a schedule, a change of lr
    here affects only new gradients. momentum = 0 is exactly SGD.

    params: (P,) updated in place.  grads: (P,).  velocity: (P,) state, zeros before step 1,
    updated in place.  lr: learning rate.  momentum: decay of the velocity, in [0, 1).
    """
    dt = params.dtype.type
    lr_ = dt(lr)
    mu = dt(momentum)
    for i in prange(params.shape[0]):
        v = mu * velocity[i] + lr_ * grads[i]
        velocity[i] = v
        params[i] -= v


@parallel_kernel
def adagrad_step(params, grads, sum_sq, lr, eps):
    """AdaGrad (Duchi et al. 2011): a per-element learning rate that shrinks with the total
    squared gradient seen so far.

        G <- G + g^2
        w <- w - lr * g / (sqrt(G) + eps)

    params: (P,) updated in place.  grads: (P,).  sum_sq: (P,) state G, zeros before step 1 (or a
    chosen initial accumulator value), updated in place.  lr: learning rate.  eps: added to the
    denominator so an element whose gradients were all zero does not divide by zero.
    """
    dt = params.dtype.type
    lr_ = dt(lr)
    eps_ = dt(eps)
    for i in prange(params.shape[0]):
        g = grads[i]
        s = sum_sq[i] + g * g
        sum_sq[i] = s
        params[i] -= lr_ * g / (math.sqrt(s) + eps_)


@parallel_kernel
def rmsprop_step(params, grads, sq_avg, lr, alpha, eps):
    """RMSprop (Tieleman & Hinton 2012): AdaGrad with the sum replaced by an exponential moving
    average, so old gradients are forgotten and the step size does not decay to zero.

        s <- alpha * s + (1 - alpha) * g^2
        w <- w - lr * g / (sqrt(s) + eps)

    params: (P,) updated in place.  grads: (P,).  sq_avg: (P,) state s, zeros before step 1,
    updated in place.  lr: learning rate.  alpha: smoothing constant (e.g. 0.99).  eps: keeps the
    denominator away from zero.
    """
    dt = params.dtype.type
    lr_ = dt(lr)
    a = dt(alpha)
    one_minus_a = dt(1.0 - alpha)  # formed in float64, then rounded once
    eps_ = dt(eps)
    for i in prange(params.shape[0]):
        g = grads[i]
        s = a * sq_avg[i] + one_minus_a * g * g
        sq_avg[i] = s
        params[i] -= lr_ * g / (math.sqrt(s) + eps_)


@parallel_kernel
def adam_step(params, grads, m, v, lr, beta1, beta2, eps, step):
    """Adam (Kingma & Ba 2015):

        m <- beta1 * m + (1 - beta1) * g          first moment (mean of g)
        v <- beta2 * v + (1 - beta2) * g^2        second moment (mean of g^2)
        mhat = m / (1 - beta1^step)               bias corrections: m and v start at zero, so
        vhat = v / (1 - beta2^step)               early averages are too small by these factors
        w <- w - lr * mhat / (sqrt(vhat) + eps)

    At step 1, mhat = g and vhat = g^2 exactly, so every weight moves by lr * g / (|g| + eps),
    i.e. about lr * sign(g): the step size is set by lr, not by the gradient's scale.

    The bias corrections depend only on `step`, so they are computed once, in float64, before the
    loop, and folded into two constants:
        lr * mhat           = (lr / (1 - beta1^step)) * m
        sqrt(vhat)          = sqrt(v) * (1 / sqrt(1 - beta2^step))

    params: (P,) updated in place.  grads: (P,).  m, v: (P,) state, zeros before step 1, updated
    in place.  lr: learning rate.  beta1, beta2: moment decay rates (e.g. 0.9, 0.999).
    eps: keeps the denominator away from zero (e.g. 1e-8).  step: 1-based count of THIS update
    (the first call passes 1); must be >= 1.
    """
    dt = params.dtype.type
    # Bias corrections in float64 (beta2^step is close to 1 for small steps; in float32,
    # 1 - 0.999^step would keep few significant digits).
    bc1 = 1.0 - np.float64(beta1) ** step
    bc2 = 1.0 - np.float64(beta2) ** step
    step_size = dt(lr / bc1)
    inv_sqrt_bc2 = dt(1.0 / math.sqrt(bc2))
    b1 = dt(beta1)
    b2 = dt(beta2)
    one_minus_b1 = dt(1.0 - beta1)
    one_minus_b2 = dt(1.0 - beta2)
    eps_ = dt(eps)
    for i in prange(params.shape[0]):
        g = grads[i]
        mi = b1 * m[i] + one_minus_b1 * g
        vi = b2 * v[i] + one_minus_b2 * g * g
        m[i] = mi
        v[i] = vi
        params[i] -= step_size * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps_)


@parallel_kernel
def adamw_step(params, grads, m, v, lr, beta1, beta2, eps, weight_decay, step, n_decay):
    """AdamW (Loshchilov & Hutter 2019): Adam with DECOUPLED weight decay.

        for i < n_decay:  w <- w - lr * weight_decay * w     (shrink toward zero, first)
        then for all i:   the Adam update of `adam_step`, with the same m, v and bias corrections

    Decoupled: added to the gradient (L2 regularisation), weight_decay * w would be divided by
    sqrt(vhat) too, so weights with large gradients would decay less; applied to the weight, every
    decayed weight shrinks by the same factor (1 - lr * weight_decay), before the Adam update, as
    in PyTorch. Only params[:n_decay] decay (matrices first; biases and gains after). The loop
    repeats adam_step's lines rather than calling a shared core, so adamw_step.py_func runs wholly
    interpreted.

    params: (P,) updated in place.  grads: (P,).  m, v: (P,) state, zeros before step 1, updated in
    place.  lr, beta1, beta2, eps, step: as in adam_step.  weight_decay: decoupled decay
    coefficient (e.g. 0.1).  n_decay: number of leading elements that decay, 0 <= n_decay <= P.
    """
    dt = params.dtype.type
    bc1 = 1.0 - np.float64(beta1) ** step  # bias corrections in float64, as in adam_step
    bc2 = 1.0 - np.float64(beta2) ** step
    step_size = dt(lr / bc1)
    inv_sqrt_bc2 = dt(1.0 / math.sqrt(bc2))
    decay = dt(1.0 - lr * weight_decay)  # w - lr * wd * w = (1 - lr * wd) * w
    b1 = dt(beta1)
    b2 = dt(beta2)
    one_minus_b1 = dt(1.0 - beta1)
    one_minus_b2 = dt(1.0 - beta2)
    eps_ = dt(eps)
    # prange's index is unsigned: compare it with an unsigned bound, since comparing unsigned
    # with signed integers makes Numba convert both to float64 in every iteration.
    n_decay_ = np.uint64(n_decay)
    for i in prange(params.shape[0]):
        w = params[i]
        if i < n_decay_:
            w = w * decay
        g = grads[i]
        mi = b1 * m[i] + one_minus_b1 * g
        vi = b2 * v[i] + one_minus_b2 * g * g
        m[i] = mi
        v[i] = vi
        params[i] = w - step_size * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps_)


@parallel_kernel
def grad_norm(grads):
    """Global L2 norm of all gradients: sqrt(sum_i g_i^2), returned as a Python float.

    Summed in float64 even for float32 gradients: a float32 running sum of millions of squares
    drops most digits of each new square. In float64 the square of a float32 value is exact.
    Parallel over chunks of a fixed size (see _NORM_CHUNK), whose sums are added serially.

    grads: (P,) float32 or float64, C-contiguous. P may be 0 (the norm is then 0).
    """
    n = grads.shape[0]
    n_chunks = (n + _NORM_CHUNK - 1) // _NORM_CHUNK
    partial = np.empty(n_chunks, dtype=np.float64)
    for c in prange(n_chunks):
        start = c * _NORM_CHUNK
        stop = min(start + _NORM_CHUNK, n)
        chunk = grads[start:stop]  # a view indexed from 0 vectorizes (see tiles.py)
        s = np.float64(0.0)
        for i in range(chunk.shape[0]):
            g = np.float64(chunk[i])
            s += g * g
        partial[c] = s
    total = np.float64(0.0)
    for c in range(n_chunks):
        total += partial[c]
    return math.sqrt(total)


@parallel_kernel
def scale_(buf, factor):
    """buf <- factor * buf, in place.

    buf: (P,) float32 or float64, C-contiguous.  factor: Python float, converted to buf's dtype.
    """
    f = buf.dtype.type(factor)
    for i in prange(buf.shape[0]):
        buf[i] *= f


@kernel
def clip_grad_norm(grads, max_norm):
    """Clip the global gradient norm: if ||g|| > max_norm, g <- g * max_norm / (||g|| + 1e-6).

    Like torch.nn.utils.clip_grad_norm_: one norm over ALL gradients (so the direction of the
    whole update is kept, only its length is limited), the 1e-6 guards the division, and the
    value returned is the norm BEFORE clipping (what training logs want to show).
    After clipping the norm is max_norm * norm / (norm + 1e-6), i.e. max_norm to ~1e-6 relative.

    grads: (P,) float32 or float64, C-contiguous, scaled in place.  max_norm: Python float > 0.
    Returns: the pre-clip norm as a Python float.
    """
    norm = grad_norm(grads)
    if norm > max_norm:
        scale_(grads, max_norm / (norm + 1e-6))
    return norm
