"""vectors(a, i, n, width): row i of a C-contiguous 2-d array, its first n * width elements viewed as
n rows of `width` (a compile-time constant): row k is a[i, k * width:(k + 1) * width].

A loop over the vectors of a row reads `v = view[k]; ... v[l] ...`, indices from 0 that LLVM
vectorizes (tiles.py says why a runtime offset does not). Numba's a[i, :n * width].reshape(n, width)
gives the same view, but at run time it counts a reference to `a` and calls a C function to
reshape, and a dot product of a few hundred floats cannot pay for that at every row. Compiled code
gets an intrinsic that only fills in the view's pointer, shape and strides; like a stack array it
owns nothing, so it must not outlive `a`. Interpreted code gets the reshape.
"""
from numba.core import errors, types
from numba.extending import intrinsic, overload
from numba.np.arrayobj import make_array, populate_array


def vectors(a, i, n, width):
    """Interpreted: a reshaped view."""
    return a[i, :n * width].reshape(n, width)


@overload(vectors, prefer_literal=True)
def _compiled_vectors(a, i, n, width):
    return lambda a, i, n, width: _view(a, i, n, width)


@intrinsic
def _view(typingctx, a, i, n, width):
    if not isinstance(width, types.IntegerLiteral):
        raise errors.TypingError(f"vectors needs a width known when compiling (a constant), not {width}")
    if not (isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"
            and isinstance(i, types.Integer) and isinstance(n, types.Integer)):
        return None
    view_type = types.Array(a.dtype, 2, "C")

    def codegen(context, builder, signature, args):
        array = make_array(a)(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        row, rows = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:3], signature.args[1:3]))
        itemsize = context.get_abi_sizeof(context.get_data_type(a.dtype))
        columns = builder.extract_value(array.shape, 1)
        data = builder.gep(array.data, [builder.mul(row, columns)])  # &a[i, 0]
        view = make_array(view_type)(context, builder)
        populate_array(view, data=data, shape=[rows, intp(width.literal_value)],
                       strides=[intp(itemsize * width.literal_value), intp(itemsize)],
                       itemsize=intp(itemsize), meminfo=None)
        return view._getvalue()

    return view_type(a, i, n, width), codegen
