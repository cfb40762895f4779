"""stack_empty(n, dtype): an uninitialised 1-d array of n elements, n a compile-time constant, on
the stack of the calling function (LLVM's `alloca`).

Register accumulators: once LLVM has unrolled the loops over a small stack array, it is indexed by
constants only, and LLVM keeps each element in a register. A heap array (np.empty) is allocated at
every call and stays in memory. Numba has no stack arrays, so compiled code gets an intrinsic;
interpreted code (`kernel.py_func`) gets np.empty. The array lives until the calling function
returns: never return or store it.
"""
import numpy as np
from llvmlite import ir
from numba.core import cgutils, errors, types
from numba.extending import intrinsic, overload
from numba.np.arrayobj import populate_array


def stack_empty(n, dtype):
    """Interpreted: a heap array of the same shape and dtype."""
    return np.empty(n, dtype)


@overload(stack_empty, prefer_literal=True)
def _compiled_stack_empty(n, dtype):
    return lambda n, dtype: _alloca(n, dtype)


@intrinsic
def _alloca(typingctx, n, dtype):
    if not isinstance(n, types.IntegerLiteral):
        raise errors.TypingError(f"stack_empty needs a length known when compiling (a constant), not {n}")
    if not isinstance(dtype, (types.DType, types.NumberClass)):
        return None
    count = n.literal_value
    array_type = types.Array(dtype.dtype, 1, "C")

    def codegen(context, builder, signature, args):
        item = context.get_data_type(array_type.dtype)
        itemsize = context.get_abi_sizeof(item)
        data = cgutils.alloca_once(builder, item, size=count)
        data.align = 64  # whole cache lines, as vector loads and stores prefer
        array = context.make_array(array_type)(context, builder)
        intp = context.get_value_type(types.intp)
        populate_array(array, data=data, shape=[intp(count)], strides=[intp(itemsize)],
                       itemsize=intp(itemsize), meminfo=None)
        return array._getvalue()

    return array_type(n, dtype), codegen


def tree_sum(a, n):
    """The sum of a[:n], added pairwise as a tree: a[l] + a[l + h] for l < h, h = n/2, ..., 1.
    n: a power of two known when compiling; a: a 1-d contiguous array of at least n elements (a
    stack array of length n; compiled code does not check). Interpreted code runs this."""
    v = a[:n].copy()
    while len(v) > 1:
        h = len(v) // 2
        v = v[:h] + v[h:]
    return v[0]


@overload(tree_sum, prefer_literal=True)
def _compiled_tree_sum(a, n):
    return lambda a, n: _tree_sum(a, n)


@intrinsic
def _tree_sum(typingctx, a, n):
    """The whole array loaded as one vector and halved by shuffles: LLVM sees nothing but
    full-width reads of it, so a register-held stack array stays in its register."""
    if not isinstance(n, types.IntegerLiteral):
        raise errors.TypingError(f"tree_sum needs a length known when compiling (a constant), not {n}")
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"):
        raise errors.TypingError(f"tree_sum needs a 1-d contiguous array, not {a}")
    count = n.literal_value
    if count < 1 or count & (count - 1):
        raise errors.TypingError(f"tree_sum needs a power of two, not {count}")

    def codegen(context, builder, signature, args):
        array = context.make_array(a)(context, builder, args[0])
        item = context.get_data_type(a.dtype)
        itemsize = context.get_abi_sizeof(item)  # no more alignment assumed than an element's
        vector = builder.load(builder.bitcast(array.data, ir.VectorType(item, count).as_pointer()), align=itemsize)
        width = count
        while width > 1:
            width //= 2
            low = builder.shuffle_vector(vector, vector, _lanes(0, width))
            high = builder.shuffle_vector(vector, vector, _lanes(width, width))
            vector = builder.fadd(low, high)
        return builder.extract_element(vector, ir.IntType(32)(0))

    return a.dtype(a, n), codegen


def _lanes(first, count):
    """The shuffle mask that picks lanes first, ..., first + count - 1."""
    return ir.Constant(ir.VectorType(ir.IntType(32), count), list(range(first, first + count)))
