"""Arrays that start on a 64-byte boundary: one cache line, one AVX-512 vector.

NumPy aligns its allocations to 16 bytes, so a kernel's 64-byte vector loads and stores straddle
two cache lines whenever an array starts mid-line. Every buffer a model owns (parameters,
gradients, optimizer state, activations and backward temporaries) is allocated here.
"""
import numpy as np

ALIGNMENT = 64


def aligned_empty(shape, dtype):
    """np.empty(shape, dtype) whose first element sits on a 64-byte boundary (C-contiguous)."""
    dtype = np.dtype(dtype)
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    offset = -raw.ctypes.data % ALIGNMENT
    return raw[offset:offset + nbytes].view(dtype).reshape(shape)


def aligned_zeros(shape, dtype):
    """np.zeros(shape, dtype) whose first element sits on a 64-byte boundary."""
    out = aligned_empty(shape, dtype)
    out.fill(0)
    return out
