"""Losses: softmax cross-entropy (with ignore_index and label smoothing) and mean squared error.

Cross-entropy, for one row of logits x (length V) with target class t:

    p   = softmax(x)                                   (stored for backward)
    q   = (1 - eps) onehot(t) + eps / V                (target distribution; eps = label smoothing)
    L_i = -sum_j q_j log p_j

log p_j is computed as x_j - lse(x), lse(x) = m + log sum_k exp(x_k - m), never as log(p_j): a
probability that underflows to 0 would give log(0) = -inf. Since sum_j q_j = 1,

    L_i = -sum_j q_j (x_j - lse) = lse - sum_j q_j x_j
        = (1 - eps)(lse - x_t) + eps (lse - mean_j x_j)

which needs no log of anything but the row sum. The code writes it with the shifted logits
z_j = x_j - m (lse - x_j = log s - z_j, s = sum_k exp(z_k)), so no large number is formed and
cancelled again. Precision: fastmath's `reassoc` lets LLVM regroup log s - (x_t - m) as
(log s + m) - x_t anyway, so a float32 loss can be off by float32's spacing at the largest logit,
the rounding the logits already carry; probs and the gradient p - q are not affected.
"""
import numpy as np
from numba import prange

from ._jit import kernel, parallel_kernel


@parallel_kernel
def cross_entropy_forward(losses, probs, logits, targets, ignore_index, label_smoothing):
    """Softmax cross-entropy per row, and its mean over the rows that count.

    losses: (N,) written with each row's loss (0 for rows whose target == ignore_index).
    probs: (N, V) written with softmax(logits) for every row (what backward needs).
    logits: (N, V) C-contiguous, same float dtype as losses and probs.
    targets: (N,) int64, each in [0, V) or equal to ignore_index.
    ignore_index: int; label_smoothing: float eps in [0, 1).
    Returns the mean loss over counted rows as a float (accumulated in float64), 0.0 if none.
    """
    # (N,), (N, V), (N, V), (N,) -> scalar
    N, V = logits.shape
    dt = logits.dtype.type
    one = dt(1)
    eps = dt(label_smoothing)
    inv_V = one / dt(V)
    for i in prange(N):  # rows are independent: each writes only its own probs row and loss
        x = logits[i]
        p = probs[i]
        m = x[0]
        for j in range(1, V):
            m = max(m, x[j])
        s = dt(0)  # sum_j exp(z_j), z_j = x_j - m <= 0; s >= 1 because the max term is exp(0)
        zsum = dt(0)  # sum_j z_j, for the label-smoothing term
        for j in range(V):
            z = x[j] - m
            e = np.exp(z)
            p[j] = e
            s += e
            zsum += z
        inv_s = one / s
        for j in range(V):
            p[j] *= inv_s
        t = targets[i]
        if t == ignore_index:
            losses[i] = dt(0)
        else:
            log_s = np.log(s)
            # L_i = (1 - eps)(lse - x_t) + eps (lse - mean_j x_j), with lse - x_j = log s - z_j
            losses[i] = (one - eps) * (log_s - (x[t] - m)) + eps * (log_s - zsum * inv_V)
    # The mean is a reduction across rows: done serially after the parallel loop, in float64 on
    # purpose (N terms, once per step; the reported loss should not depend on float32 rounding).
    total = 0.0
    count = 0
    for i in range(N):
        if targets[i] != ignore_index:
            total += losses[i]
            count += 1
    if count == 0:
        return 0.0
    return total / count


@parallel_kernel
def cross_entropy_backward(dlogits, probs, targets, ignore_index, label_smoothing, dloss):
    """Accumulate dlogits += dloss * (p - q) for each counted row; ignored rows get nothing.

    dlogits, probs: (N, V) C-contiguous, same float dtype; probs from cross_entropy_forward.
    targets: (N,) int64; ignore_index: int; label_smoothing: float eps.
    dloss: float, dL/dL_i for every counted row (1 / count_targets(...) for a mean loss).
    """
    # (N, V), (N, V), (N,)
    # forward:  L_i = -sum_j q_j log p_j,  log p_j = x_j - lse(x),  d lse/dx_k = p_k
    # so        dL_i/dx_k = -sum_j q_j ([j == k] - p_k) = -q_k + p_k sum_j q_j = p_k - q_k
    # (sum_j q_j = 1). Softmax and cross-entropy together collapse to "prediction minus target":
    # the softmax Jacobian never has to be applied. With q = (1 - eps) onehot(t) + eps / V:
    #           dL_i/dx_k = p_k - eps / V - (1 - eps) [k == t]
    N, V = probs.shape
    dt = probs.dtype.type
    g = dt(dloss)
    eps = dt(label_smoothing)
    smooth = eps / dt(V)
    for i in prange(N):
        t = targets[i]
        if t == ignore_index:
            continue
        p = probs[i]
        dx = dlogits[i]
        for j in range(V):
            dx[j] += g * (p[j] - smooth)
        dx[t] -= g * (dt(1) - eps)


@kernel
def count_targets(targets, ignore_index):
    """Number of rows whose target != ignore_index. targets: (N,) int64; returns int."""
    # (N,) -> scalar
    count = 0
    for i in range(targets.shape[0]):
        if targets[i] != ignore_index:
            count += 1
    return count


@kernel
def mse_forward(pred, target):
    """Mean squared error: mean_i (pred_i - target_i)^2.

    pred, target: (n,) same float dtype, n >= 1. Returns a float (accumulated in float64 on
    purpose: one scalar per step, and it should not depend on float32 rounding).
    """
    # (n,), (n,) -> scalar
    n = pred.shape[0]
    total = 0.0
    for i in range(n):
        d = pred[i] - target[i]
        total += d * d
    return total / n


@parallel_kernel
def mse_backward(dpred, pred, target, dloss):
    """Accumulate dpred += dloss * 2 (pred - target) / n.

    dpred, pred, target: (n,) same float dtype; dloss: float, dL/d(mse).
    """
    # (n,), (n,), (n,)
    # forward:  mse = (1/n) sum_i (pred_i - target_i)^2
    # backward: d mse/d pred_i = 2 (pred_i - target_i) / n
    n = pred.shape[0]
    scale = pred.dtype.type(2.0 * dloss / n)  # computed once in float64, then cast
    for i in prange(n):
        dpred[i] += scale * (pred[i] - target[i])
