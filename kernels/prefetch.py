"""prefetch_for_write(array, i): ask the CPU to bring the cache line holding array[i] into cache,
ready to be written, without waiting for it (LLVM's `llvm.prefetch`, a PREFETCHW on x86);
prefetch_for_read(array, i) the same, for reading (PREFETCHT0).

The micro-kernel (tiles.py) adds its finished tile into C only after thousands of multiply-adds;
prefetched when it starts, the tile's cache lines have arrived by then. matvec.py reads two weight
rows at a time, short streams that the hardware prefetcher picks up only after a few misses, so it
asks for the rows it will read next while it works on these. Numba has no prefetch of
its own, so compiled code gets a Numba intrinsic, a function whose body is LLVM IR; the
interpreted kernels (`kernel.py_func`) call the plain Python function, which does nothing.
`array` is any 1-d array, `i` an index into it (not checked: a prefetch never faults).
"""
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, overload


def prefetch_for_write(array, i):
    """Interpreted: nothing to do (a prefetch changes no value)."""


def prefetch_for_read(array, i):
    """Interpreted: nothing to do."""


@overload(prefetch_for_write)
def _compiled_prefetch_for_write(array, i):
    return lambda array, i: _prefetch(array, i, 1)


@overload(prefetch_for_read)
def _compiled_prefetch_for_read(array, i):
    return lambda array, i: _prefetch(array, i, 0)


@intrinsic
def _prefetch(typingctx, array, i, write):
    if not (isinstance(array, types.Array) and array.ndim == 1 and isinstance(i, types.Integer)
            and isinstance(write, types.IntegerLiteral)):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        data = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, data, [args[1]], wraparound=False)
        if getattr(pointer.type, "is_opaque", False):  # LLVM with opaque pointers (llvmlite >= 0.45)
            name = "llvm.prefetch.p0"
        else:
            pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
            name = "llvm.prefetch.p0i8"
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32]), name)
        # arguments: address, 1 = for a write (0: a read), 3 = keep in all cache levels, 1 = data
        builder.call(function, [pointer, i32(write.literal_value), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, i, write), codegen
