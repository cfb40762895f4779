"""Phi(x), the standard normal distribution function, and phi(x), its density, for the exact GELU.

    Phi(x) = 0.5 (1 + erf(x / sqrt(2))) = 0.5 erfc(-x / sqrt(2)),    phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

float32 (training): from multiplications, one division and fast_exp's exp32 only, so loops calling
them vectorize (math.erf is a call into the C library, one element at a time). erfc comes from
the Chebyshev fit of Numerical Recipes' erfcc: for z >= 0 and t = 1 / (1 + z / 2),
    erfc(z) = t exp(-z^2 - 1.26551223 + t (1.00002368 + ... + t 0.17087277))    relative error < 1.2e-7
and with z = |x| / sqrt(2), Phi(x) = erfc(z) / 2 for x < 0 and 1 - erfc(z) / 2 for x >= 0: the
negative tail keeps its relative precision, not computed as 1 minus a number close to 1.

float64 (gradient checks, references): math.erfc and math.exp, exact to rounding.

Compiled code picks the version by the argument's type (overloads, as fast_exp does); interpreted
code calls the Python functions.
"""
import math

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import kernel
from .fast_exp import exp32

# erfcc's coefficients, in float32 so that float32 arithmetic stays float32
C0, C1, C2, C3, C4, C5, C6, C7, C8, C9 = (np.float32(c) for c in (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
    -0.82215223, 0.17087277))
INV_SQRT2_32 = np.float32(1 / math.sqrt(2.0))
INV_SQRT2PI_32 = np.float32(1 / math.sqrt(2 * math.pi))
HALF32, ONE32, ZERO32 = np.float32(0.5), np.float32(1), np.float32(0)


@kernel
def normal_cdf32(x):
    """Phi(x) for a float32 x, relative error a few 1e-7; branch-free."""
    z = abs(x) * INV_SQRT2_32
    t = ONE32 / (ONE32 + HALF32 * z)
    poly = C0 + t * (C1 + t * (C2 + t * (C3 + t * (C4 + t * (C5 + t * (C6 + t * (C7 + t * (C8 + t * C9))))))))
    half_erfc = HALF32 * t * exp32(poly - z * z)
    return ONE32 - half_erfc if x >= ZERO32 else half_erfc


@kernel
def normal_pdf32(x):
    """phi(x) for a float32 x, vectorizable."""
    return INV_SQRT2PI_32 * exp32(-HALF32 * x * x)


@kernel
def normal_cdf64(x):
    """Phi(x) for a float64 x, through the C library's erfc (accurate in both tails)."""
    return 0.5 * math.erfc(-x * (1 / math.sqrt(2.0)))


@kernel
def normal_pdf64(x):
    """phi(x) for a float64 x."""
    return math.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))


def normal_cdf(x):
    """Phi(x) in the precision of x: normal_cdf32 for a float32, else normal_cdf64."""
    return normal_cdf32(x) if isinstance(x, np.float32) else normal_cdf64(x)


def normal_pdf(x):
    """phi(x) in the precision of x: normal_pdf32 for a float32, else normal_pdf64."""
    return normal_pdf32(x) if isinstance(x, np.float32) else normal_pdf64(x)


@overload(normal_cdf)
def _normal_cdf_for_type(x):
    if x == types.float32:
        return lambda x: normal_cdf32(x)
    return lambda x: normal_cdf64(x)


@overload(normal_pdf)
def _normal_pdf_for_type(x):
    if x == types.float32:
        return lambda x: normal_pdf32(x)
    return lambda x: normal_pdf64(x)
