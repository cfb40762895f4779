"""stack_empty: a constant-length array on the stack, compiled and interpreted."""
import numba
import numpy as np
import pytest

from transformer_jit.kernels.stack_alloc import stack_empty


@numba.njit
def cumulative_squares(x):
    """(x[0]^2, x[0]^2 + x[1]^2, ...) for the first 5 numbers of x, through a stack array."""
    s = stack_empty(5, x.dtype)
    total = x.dtype.type(0)
    for i in range(5):
        total += x[i] * x[i]
        s[i] = total
    return s.sum(), s[4]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_and_interpreted_agree(dtype):
    x = np.arange(1, 8, dtype=dtype)
    expected = (1 + 5 + 14 + 30 + 55, 55)
    assert cumulative_squares(x) == expected
    assert cumulative_squares.py_func(x) == expected


def test_length_must_be_a_constant():
    @numba.njit
    def variable_length(n):
        return stack_empty(n, np.float64)[0]

    with pytest.raises(numba.core.errors.TypingError, match="stack_empty needs a length known when compiling"):
        variable_length(3)
