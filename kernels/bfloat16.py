"""bfloat16: the top 16 bits of a float32, kept as uint16. Half the bytes of float32 weights.

A bfloat16 number has float32's sign and 8-bit exponent and the 7 leading bits of its mantissa,
so widening it back is exact: put the 16 bits on top of a float32 and zeros below. Narrowing
rounds the float32 to the nearest bfloat16 (ties to even), a relative error of at most 2^-8.

Generation reads every weight once per token, so its speed is the weights' bytes over the memory
bandwidth; matvec.py reads bfloat16 weights directly, through `widen`.
"""
import numpy as np
from numba import prange, types
from numba.extending import overload

from ._jit import parallel_kernel
from .fast_exp import _float32_from_bits


def widen(w):
    """The float32 value of the bfloat16 bits `w` (a uint16); any other number unchanged.
    Interpreted code (a kernel's py_func) runs this; compiled code the overload below."""
    if isinstance(w, np.uint16):
        return np.array([np.uint32(w) << np.uint32(16)], np.uint32).view(np.float32)[0]
    return w


@overload(widen, inline="always")  # typed into the caller: LLVM then sees its lane loops whole
def _compiled_widen(w):
    if w == types.uint16:
        # the 16 bits shifted into the top half of a 32-bit pattern, read as a float32
        return lambda w: _float32_from_bits(np.int32(np.uint32(w) << np.uint32(16)))
    return lambda w: w


def widen_streaming(w):
    """`widen` for matvec's one-row loops, which stream the weights (interpreted: the same)."""
    return widen(w)


def _bfloat16_bits(expr, caller_info, callee_info):
    return callee_info.signature.args[0] == types.uint16


@overload(widen_streaming, inline=_bfloat16_bits)
def _compiled_widen_streaming(w):
    """Typed into the caller for bfloat16 bits; float32 weights keep a call, which LLVM inlines
    late, after splitting each vector's load in pieces. That streams rows of 768 floats faster
    than the clean loop does (docs/performance.md; why is open)."""
    return lambda w: widen(w)


@parallel_kernel
def bfloat16_from_float32(out, bits):
    """out = bits rounded to bfloat16, to the nearest, ties to even.

    out  (n,) uint16 written
    bits (n,) uint32: a float32 array viewed as its bit patterns (x.view(np.uint32))
    Finite inputs only (weights): rounding may carry into the exponent, which is right for
    finite numbers (the largest ones round to infinity, as in any narrowing) but would turn a
    NaN pattern into infinity.

    Rounding: adding 0x7FFF, plus 1 when the bit that stays lowest is 1, carries into the top 16
    bits exactly when the low 16 bits are above half (or at half and the kept part is odd).
    """
    for i in prange(bits.shape[0]):
        b = bits[i]
        out[i] = np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
