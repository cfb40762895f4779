"""int8 weights with one scale per block of 32: a quarter of float32's bytes, for generation.

Generating a token reads every weight matrix once, so its time is the weights' bytes over the
memory bandwidth. Kept as 8-bit integers, a matrix W (OC, C) is

    q[o, c]        = round(W[o, c] / scale[o, k])     int8 in [-127, 127], k = c // QBLOCK
    scale[o, k]    = max_{c in block k} |W[o, c]| / 127
    W~[o, c]       = scale[o, k] q[o, c]               what the products read

each block of QBLOCK = 32 consecutive weights of a row (along the input dimension) sharing one
scale, as llama.cpp's Q8_0 does (it keeps the scale in float16; here it has the activations'
dtype). Rounding is to the nearest, halves away from zero, so |W - W~| <= scale / 2 per weight:
the largest weight of a block is exact, and a block's error is relative to its own largest weight,
not the matrix's. A last block shorter than QBLOCK (C not a multiple of it) has its own scale.

matvec.py's `matvec_int8` multiplies such a matrix by a few vectors, widening and scaling each
vector of weights in registers: the int8 bytes cross the memory bus once per product, whatever the
number of rows. The activations stay floating point: only the weights are rounded.
"""
import math

import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import errors, types
from numba.extending import intrinsic, overload

from ._jit import kernel, parallel_kernel
from .stack_alloc import stack_empty

QBLOCK = 32  # weights per scale, along a row


def n_blocks(C):
    """Scales per weight row: ceil(C / QBLOCK)."""
    return (C + QBLOCK - 1) // QBLOCK


@parallel_kernel
def quantize_int8(q, scales, weight):
    """q, scales = the int8 form of `weight` (formulas above).

    q      (OC, C) int8 written
    scales (OC, n_blocks(C)) written, float32 or float64: the dtype the products will run in
    weight (OC, C) float32 or float64, finite
    All C-contiguous. Parallel over rows.
    """
    OC, C = weight.shape
    dt = scales.dtype.type
    zero, half, top = dt(0), dt(0.5), dt(127)
    for o in prange(OC):
        w, qo, so = weight[o], q[o], scales[o]
        m = stack_empty(QBLOCK, scales.dtype)
        for k in range(scales.shape[1]):
            c0, n = k * QBLOCK, min(QBLOCK, C - k * QBLOCK)  # a last block may be shorter
            for c in range(QBLOCK):  # |w| over the block (zeros past a shorter one)
                m[c] = abs(dt(w[c0 + c])) if c < n else zero
            # its largest as a tree of pairs, not a chain of 32 dependent maxima (exact in any order)
            for c in range(QBLOCK // 2):
                m[c] = _max_nan(m[c], m[c + QBLOCK // 2])
            for c in range(QBLOCK // 4):
                m[c] = _max_nan(m[c], m[c + QBLOCK // 4])
            for c in range(QBLOCK // 8):
                m[c] = _max_nan(m[c], m[c + QBLOCK // 8])
            for c in range(QBLOCK // 16):
                m[c] = _max_nan(m[c], m[c + QBLOCK // 16])
            scale = _max_nan(m[0], m[1]) / top
            so[k] = scale
            for c in range(n):
                v = dt(w[c0 + c]) / scale if scale > zero else zero
                r = min(dt(math.floor(abs(v) + half)), top)  # |v| <= 127 up to rounding of the division
                qo[c0 + c] = np.int8(r if v >= zero else -r)


@kernel
def _max_nan(a, b):
    """max(a, b), or NaN if either is: a NaN weight makes its block's scale NaN, and so reaches
    the logits, where generation reports it, instead of rounding to a 0."""
    return a if a > b or a != a else b


@parallel_kernel
def dequantize_int8(weight, q, scales):
    """weight = W~, the values the int8 form stands for: weight[o, c] = scales[o, c // QBLOCK] q[o, c].

    weight (OC, C) written, the dtype of scales; q (OC, C) int8; scales (OC, n_blocks(C)).
    """
    OC, C = q.shape
    for o in prange(OC):
        _widen_row(weight[o], q[o], scales[o], C)


@kernel
def _widen_row(w, qo, so, C):
    """w[c] = so[c // QBLOCK] qo[c] for c < C: one row of W~."""
    full = C // QBLOCK
    for k in range(full):
        widen_scaled(w[k * QBLOCK:(k + 1) * QBLOCK], qo[k * QBLOCK:(k + 1) * QBLOCK], so[k], QBLOCK)
    for c in range(full * QBLOCK, C):  # the last, shorter block
        w[c] = so[full] * w.dtype.type(qo[c])


def widen_scaled(v, a, scale, width):
    """v[l] = scale a[l] for l < width, int8 numbers widened to v's float dtype and scaled: W~'s
    values for `width` weights of one block. Interpreted code runs this loop; compiled code an
    intrinsic that does it as a few vector instructions (load, widen, convert, multiply, store),
    where LLVM's vectorizer, left to itself, keeps the conversions scalar in some callers and not
    in others. width must be a compile-time constant; v and a C-contiguous, at least width long."""
    for l in range(width):
        v[l] = scale * v.dtype.type(a[l])


@overload(widen_scaled, prefer_literal=True)
def _compiled_widen_scaled(v, a, scale, width):
    return lambda v, a, scale, width: _widen_scaled(v, a, scale, width)


@intrinsic
def _widen_scaled(typingctx, v, a, scale, width):
    if not isinstance(width, types.IntegerLiteral):
        raise errors.TypingError(f"widen_scaled needs a width known when compiling (a constant), not {width}")
    if not (isinstance(v, types.Array) and isinstance(v.dtype, types.Float) and v.ndim == 1
            and isinstance(a, types.Array) and a.dtype == types.int8 and a.ndim == 1
            and v.layout == a.layout == "C" and isinstance(scale, types.Float)):
        return None
    n = width.literal_value

    def codegen(context, builder, signature, args):
        dst, src = context.make_array(v)(context, builder, args[0]), context.make_array(a)(context, builder, args[1])
        floats = ir.VectorType(context.get_data_type(v.dtype), n)
        bytes_ = ir.VectorType(ir.IntType(8), n)
        loaded = builder.load(_vector_pointer(builder, src.data, bytes_), align=1, typ=bytes_)
        widened = builder.sitofp(builder.sext(loaded, ir.VectorType(ir.IntType(32), n)), floats)
        one = builder.insert_element(ir.Constant(floats, ir.Undefined),
                                     context.cast(builder, args[2], signature.args[2], v.dtype), ir.IntType(32)(0))
        splat = builder.shuffle_vector(one, ir.Constant(floats, ir.Undefined),
                                       ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))
        builder.store(builder.fmul(splat, widened), _vector_pointer(builder, dst.data, floats),
                      align=context.get_abi_sizeof(floats.element))
        return context.get_dummy_value()

    return types.void(v, a, scale, width), codegen


def _vector_pointer(builder, pointer, vector_type):
    """The address of an array's data as a pointer to a vector (a no-op with opaque pointers)."""
    if getattr(pointer.type, "is_opaque", False):
        return pointer
    return builder.bitcast(pointer, vector_type.as_pointer())
