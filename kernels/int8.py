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

matvec_int8.py multiplies such a matrix by a few vectors rounded the same way (quantize_row, per
row of x), in integer dot products of blocks (add_block_dot): the int8 bytes cross the memory bus
once per product, whatever the number of rows. round_to_int8 gives the rows it makes of x, so that
an evaluation can compute what it computes.
"""
import math

import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import cgutils, errors, types
from numba.extending import intrinsic, overload, register_jitable

from ._jit import cpu_features, kernel, parallel_kernel
from .stack_alloc import stack_empty

QBLOCK = 32  # weights per scale, along a row


@register_jitable
def n_blocks(C):
    """Scales per weight row: ceil(C / QBLOCK). Python and compiled code alike call it."""
    return (C + QBLOCK - 1) // QBLOCK


@parallel_kernel
def quantize_int8(q, scales, weight):
    """q, scales = the int8 form of `weight` (formulas above).

    q      (OC, C) int8 written
    scales (OC, n_blocks(C)) written, float32 or float64: the dtype the products will run in
    weight (OC, C) float32 or float64, finite
    All C-contiguous. Parallel over rows.
    """
    for o in prange(weight.shape[0]):
        quantize_row(q[o], scales[o], weight[o])


@kernel(exact_division=True)
def quantize_row(qo, so, w):
    """qo, so = the int8 form of one row w (C,): qo (C,) int8, so (n_blocks(C),) its scales."""
    C = w.shape[0]
    dt = so.dtype.type
    zero, half, top = dt(0), dt(0.5), dt(127)
    m = stack_empty(QBLOCK, so.dtype)
    for k in range(so.shape[0]):
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
        splat = _splat(builder, context.cast(builder, args[2], signature.args[2], v.dtype), floats)
        builder.store(builder.fmul(splat, widened), _vector_pointer(builder, dst.data, floats),
                      align=context.get_abi_sizeof(floats.element))
        return context.get_dummy_value()

    return types.void(v, a, scale, width), codegen


@parallel_kernel
def round_to_int8(out, x):
    """out = x~: each row of x rounded to int8 numbers with a scale per block (quantize_row) and
    back, what matvec_int8 makes of the rows it is given. A product of many rows over x~ computes
    what matvec_int8 computes, up to the order of sums (evaluation). out, x (B, C); parallel over rows."""
    B, C = x.shape
    q = np.empty((B, C), np.int8)
    scales = np.empty((B, n_blocks(C)), out.dtype)
    for b in prange(B):
        quantize_row(q[b], scales[b], x[b])
        _widen_row(out[b], q[b], scales[b], C)


def add_block_dot(s, a, y, scale):
    """s[l] += scale D[l] for l < QBLOCK / 4, D[l] = a[4l] y[4l] + ... + a[4l + 3] y[4l + 3]: the
    dot product of two blocks of QBLOCK int8 numbers as 8 exact integer sums of 4 products each,
    scaled into 8 float lanes. a in [-128, 127], y in [-127, 127]; s float32 or float64; all
    C-contiguous. Interpreted code runs this loop; compiled code an intrinsic (_add_block_dot),
    which rounds scale D[l] + s[l] once (a fused multiply-add)."""
    for l in range(QBLOCK // 4):
        s[l] += scale * s.dtype.type(sum(int(a[4 * l + j]) * int(y[4 * l + j]) for j in range(4)))


@overload(add_block_dot)
def _compiled_add_block_dot(s, a, y, scale):
    return lambda s, a, y, scale: _add_block_dot(s, a, y, scale)


@intrinsic
def _add_block_dot(typingctx, s, a, y, scale):
    """The integer sums with the instructions each CPU has for them (Q8_0's in llama.cpp are the
    same idea): the product of an unsigned and a signed byte, summed in fours, needs a >= 0, so it
    multiplies |a| by y with a's sign (|a| <= 128, |y| <= 127: no sum of two products reaches the
    int16 limit at which AVX2's VPMADDUBSW saturates).
        AVX-512 VNNI or AVX-VNNI   VPABSB, VPSIGNB, VPDPBUSD (a lane's four products summed)
        AVX2                       VPABSB, VPSIGNB, VPMADDUBSW (pairs, int16), VPMADDWD by 1s (fours)
        other CPUs                 widen to int32, multiply, add the fours (LLVM picks the instructions)
    All three give the same exact sums; then a conversion and one multiply-add, 8 lanes wide."""
    if not (isinstance(s, types.Array) and isinstance(s.dtype, types.Float) and isinstance(scale, types.Float)
            and all(isinstance(t, types.Array) and t.dtype == types.int8 for t in (a, y))
            and s.ndim == a.ndim == y.ndim == 1 and s.layout == a.layout == y.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        lanes, left, right = (context.make_array(t)(context, builder, v) for t, v in zip((s, a, y), args))
        bytes_ = ir.VectorType(ir.IntType(8), QBLOCK)
        sums = _block_sums(builder, *(builder.load(_vector_pointer(builder, v.data, bytes_), align=1, typ=bytes_)
                                      for v in (left, right)))
        floats = ir.VectorType(context.get_data_type(s.dtype), QBLOCK // 4)
        pointer = _vector_pointer(builder, lanes.data, floats)
        align = context.get_abi_sizeof(floats.element)
        fma = f"llvm.fma.v{QBLOCK // 4}{'f32' if s.dtype == types.float32 else 'f64'}"
        splat = _splat(builder, context.cast(builder, args[3], scale, s.dtype), floats)
        total = _call(builder, fma, floats, [splat, builder.sitofp(sums, floats), builder.load(pointer, align=align)])
        builder.store(total, pointer, align=align)
        return context.get_dummy_value()

    return types.void(s, a, y, scale), codegen


def _block_sums(builder, w, x):
    """<8 x i32>: lane l = w[4l] x[4l] + ... + w[4l + 3] x[4l + 3], w and x <32 x i8>."""
    i16, i32 = ir.IntType(16), ir.IntType(32)
    ints = ir.VectorType(i32, QBLOCK // 4)
    features = cpu_features()
    if "avx2" not in features:
        wide = ir.VectorType(i32, QBLOCK)
        products = builder.mul(builder.sext(w, wide), builder.sext(x, wide))
        fours = [builder.shuffle_vector(products, ir.Constant(wide, None),
                                        ir.Constant(ints, [4 * l + j for l in range(QBLOCK // 4)])) for j in range(4)]
        return builder.add(builder.add(fours[0], fours[1]), builder.add(fours[2], fours[3]))
    magnitude = _call(builder, "llvm.abs.v32i8", w.type, [w, ir.IntType(1)(0)])
    signed = _call(builder, "llvm.x86.avx2.psign.b", w.type, [x, w])  # x with w's sign
    if "avxvnni" in features or {"avx512vnni", "avx512vl"} <= features:
        return _call(builder, "llvm.x86.avx512.vpdpbusd.256", ints,
                     [ir.Constant(ints, None), builder.bitcast(magnitude, ints), builder.bitcast(signed, ints)])
    shorts = ir.VectorType(i16, QBLOCK // 2)
    pairs = _call(builder, "llvm.x86.avx2.pmadd.ub.sw", shorts, [magnitude, signed])
    return _call(builder, "llvm.x86.avx2.pmadd.wd", ints, [pairs, ir.Constant(shorts, [1] * (QBLOCK // 2))])


def _splat(builder, value, vector_type):
    """A vector of `vector_type` with `value` in every lane."""
    n = vector_type.count
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.IntType(32)(0))
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))


def _call(builder, name, return_type, args):
    """A call of the LLVM intrinsic `name`, declared in this module on first use."""
    function_type = ir.FunctionType(return_type, [v.type for v in args])
    return builder.call(cgutils.get_or_insert_function(builder.module, function_type, name), args)


def _vector_pointer(builder, pointer, vector_type):
    """The address of an array's data as a pointer to a vector (a no-op with opaque pointers)."""
    if getattr(pointer.type, "is_opaque", False):
        return pointer
    return builder.bitcast(pointer, vector_type.as_pointer())
