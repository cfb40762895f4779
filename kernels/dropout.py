"""Inverted dropout with a counter-based random number generator.

Forward (training): keep each element with probability 1 - p and scale the kept ones by
1 / (1 - p), so E[out_i] = inp_i and nothing has to change at evaluation time (where dropout is
simply skipped):

    mask_i = [u_i >= p] / (1 - p),   out_i = inp_i * mask_i,   u_i uniform in [0, 1)

Where u_i comes from: NumPy's global seed does not reach @njit code, and a sequential generator
shared by parallel threads would make the mask depend on scheduling. Instead u_i is a pure function
of (seed, i): the splitmix64 finalizer (a bijective integer hash with good avalanche) applied to a
counter. Any thread can compute any element's decision independently, the same seed always gives
the same mask for any thread count, and a different seed gives an unrelated mask. Being a pure
function, the mask can also be recomputed instead of stored: attention.py does that for the
dropout on attention probabilities, with `dropout_key`, `keep_threshold` and `kept` below.

All hash arithmetic is on np.uint64 values: mixing uint64 with a signed int in Numba gives float64,
so every constant and the counter are made uint64 explicitly. Multiplication and addition wrap
modulo 2^64, which is what the hash relies on. (Interpreted via py_func, NumPy warns about that
wrap-around unless run under np.errstate(over="ignore"); the results are the same.)
"""
import math

import numpy as np
from numba import prange

from ._jit import kernel, parallel_kernel

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, splitmix64's counter increment
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_53 = 9007199254740992.0  # 2^53


@kernel
def _mix64(z):
    """splitmix64 finalizer: uint64 -> uint64, a bijection in which every input bit flips about
    half of the output bits."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@kernel
def dropout_key(seed):
    """The generator's state for `seed` (an int or np.uint64): the seed hashed once, so that nearby
    seeds (0, 1, 2, ...) start far apart in the counter stream."""
    return _mix64(np.uint64(seed))


@kernel
def keep_threshold(p):
    """The keep test u >= p on integers. u = k / 2^53 with k the hash's top 53 bits, so
    u >= p  <=>  k >= p 2^53  <=>  k >= ceil(p 2^53); p 2^53 is exact in float64 (a power-of-two
    scaling), so this is the same decision, made without a float conversion per element."""
    return np.uint64(math.ceil(p * _TWO_53))


@kernel
def kept(key, i, threshold):
    """Element i's keep decision [u_i >= p] (probability 1 - p), from the state `key` and the
    threshold of p: u_i is splitmix64's i-th output from `key`, mix(key + (i + 1) golden), its top
    53 bits read as k / 2^53 in [0, 1)."""
    z = _mix64(key + (np.uint64(i) + np.uint64(1)) * _GOLDEN)
    return (z >> _S11) >= threshold


@parallel_kernel
def dropout_forward(out, mask, inp, p, seed):
    """Inverted dropout: mask_i = 0 (probability p) or 1 / (1 - p); out = inp * mask.

    out, mask, inp: (n,) C-contiguous, same float dtype (flatten (B, T, C) to (B*T*C,) first).
    `out` may be `inp`. p: float in [0, 1); p = 0 gives mask = 1 and out == inp exactly.
    seed: a Python int in [0, 2^63) or an np.uint64 (full 64-bit range); element i's keep decision
    depends only on (seed, i), and int(s) and np.uint64(s) give the same mask. Pass seeds >= 2^63
    as np.uint64: once an int64 specialization exists, Numba's dispatcher converts a Python int
    argument to int64 and raises OverflowError for values >= 2^63.
    `mask` is what dropout_backward needs.
    """
    # (n,), (n,), (n,)
    n = inp.shape[0]
    dt = inp.dtype.type
    scale = dt(1.0 / (1.0 - p))  # in float64, then cast: exactly 1 when p = 0
    zero = dt(0)
    key = dropout_key(seed)
    threshold = keep_threshold(p)
    for i in prange(n):  # every element is independent: no shared generator state
        # keep with probability P(u_i >= p) = 1 - p; with p = 0 every element is kept
        m = scale if kept(key, np.uint64(i), threshold) else zero
        mask[i] = m
        out[i] = inp[i] * m


@parallel_kernel
def dropout_backward(dinp, dout, mask):
    """Accumulate dinp += dout * mask.

    dinp, dout, mask: (n,) C-contiguous, same float dtype; mask from dropout_forward.
    """
    # (n,), (n,), (n,)
    # forward:  out_i = inp_i * mask_i with the mask a constant (sampled, not a function of inp)
    # backward: dout_i/dinp_i = mask_i, a diagonal Jacobian, so dL/dinp_i = dL/dout_i * mask_i
    n = dinp.shape[0]
    for i in prange(n):
        dinp[i] += dout[i] * mask[i]
