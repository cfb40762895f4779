"""exp(y) from multiplications and additions only, so that loops calling it vectorize.

Numba compiles `math.exp` and `math.tanh` to calls into the C math library, one element at a
time (the pip wheels have no Intel SVML), so loops calling them do not vectorize. Written as
plain arithmetic, the same loop becomes SIMD code.

Method: exp(y) = exp(y / 2^9)^(2^9). The argument r = y / 512 is small (|r| <= 40/512 = 0.078
after clamping y to [-40, 40]), so a degree-8 Taylor polynomial gives exp(r) to 3e-16 relative
error; nine squarings then raise it to the 512th power, which multiplies the relative error by
512, to ~2e-13. The work is done in float64 whatever the caller's dtype: in float32 the squarings
would magnify float32 rounding the same way (to ~3e-5).

`exp64` clamps its argument, so it is only for uses where that is harmless: `sigmoid64` (at
|z| = 40 the sigmoid is already 1 or 4e-18, and past -40 it returns exactly 0) and the softmax in
attention, whose arguments a - max(a) are <= 0, where the clamp changes a weight of at most 4e-18
relative to the largest.

`exp32` is the float32 counterpart, for float32 data, where 16 numbers fit in a vector instead of
8: the classic reduction exp(y) = 2^n exp(r) with n = round(y / ln 2) and |r| <= ln(2) / 2, a
degree-7 Taylor polynomial for exp(r) (error r^8 / 8! <= 6e-9, below float32 rounding), and 2^n
made by writing n + 127 into the exponent bits of a float32. Its relative error is a few float32
ulps (~3e-7); its clamp at -87 leaves a softmax weight of at most 1.6e-38 relative to the
largest. `exp` and `sigmoid` pick the float32 or the float64 version by the type of their
argument.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ._jit import kernel

CLAMP = 40.0


@kernel
def exp64(y):
    """exp(y) for a float64 y, clamped to [-40, 40]; relative error ~2e-13; branch-free."""
    y = -CLAMP if y < -CLAMP else y
    y = CLAMP if y > CLAMP else y
    r = y * (1.0 / 512.0)
    # Taylor series of exp(r) to degree 8, in Horner form
    p = 1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
        1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320))))))))
    # (exp(r))^512 by nine squarings; written out because a loop here stops the caller vectorizing
    p = p * p; p = p * p; p = p * p; p = p * p; p = p * p; p = p * p; p = p * p; p = p * p; p = p * p
    return p


@kernel
def sigmoid64(z):
    """1 / (1 + exp(-z)) for a float64 z, vectorizable; exactly 0 below z = -40, 1 above ~37."""
    s = 1.0 / (1.0 + exp64(-z))
    return 0.0 if z < -CLAMP else s


# float32 constants, so that float32 arithmetic stays float32 (a Python float would promote it)
CLAMP32 = np.float32(87.0)          # 2^n of |y| <= 87 stays a normal float32 (>= 2^-126)
LOG2E = np.float32(1.4426950408889634)
LN2_HI = np.float32(0.693359375)    # ln 2 in two parts (Cody and Waite): n * LN2_HI is exact for
LN2_LO = np.float32(-2.12194440e-4)  # |n| < 2^11, so r = y - n ln 2 loses nothing to rounding
C2, C3, C4, C5, C6, C7 = (np.float32(1 / 2), np.float32(1 / 6), np.float32(1 / 24), np.float32(1 / 120),
                          np.float32(1 / 720), np.float32(1 / 5040))
ONE32 = np.float32(1)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE 754 bit pattern is the int32 `bits`."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@kernel
def exp32(y):
    """exp(y) for a float32 y, clamped to [-87, 87]; relative error ~3e-7; branch-free."""
    y = -CLAMP32 if y < -CLAMP32 else y
    y = CLAMP32 if y > CLAMP32 else y
    n = np.floor(y * LOG2E + np.float32(0.5))
    r = (y - n * LN2_HI) - n * LN2_LO
    p = ONE32 + r * (ONE32 + r * (C2 + r * (C3 + r * (C4 + r * (C5 + r * (C6 + r * C7))))))
    # 2^n: the biased exponent n + 127 in bits 23-30 of a float32 (sign 0, mantissa 0)
    two_n = _float32_from_bits(np.int32((np.int64(n) + 127) << 23))
    return p * two_n


@kernel
def sigmoid32(z):
    """1 / (1 + exp(-z)) for a float32 z, vectorizable; ~1.6e-38 below z = -87, 1 above ~17."""
    return ONE32 / (ONE32 + exp32(-z))


# exp and sigmoid in the precision of their argument. Compiled code makes the choice once, by
# type, through the overloads; interpreted code (a kernel's py_func) calls the Python functions.
def exp(y):
    """exp32(y) for a float32 y, exp64(y) otherwise."""
    return exp32(y) if isinstance(y, np.float32) else exp64(y)


def sigmoid(z):
    """1 / (1 + exp(-z)): sigmoid32 for a float32 z, sigmoid64 otherwise."""
    return sigmoid32(z) if isinstance(z, np.float32) else sigmoid64(z)


@overload(exp)
def _exp_for_type(y):
    if y == types.float32:
        return lambda y: exp32(y)
    return lambda y: exp64(y)


@overload(sigmoid)
def _sigmoid_for_type(z):
    if z == types.float32:
        return lambda z: sigmoid32(z)
    return lambda z: sigmoid64(z)
