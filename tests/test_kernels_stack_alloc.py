"""stack_empty: a constant-length array on the stack, compiled and interpreted; tree_sum over one."""
import functools

import numba
import numpy as np
import pytest

from transformer_jit.kernels.stack_alloc import stack_empty, tree_sum


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


@numba.njit
def tree_sum_of_16(x):
    s = stack_empty(16, x.dtype)
    for i in range(16):
        s[i] = x[i]
    return tree_sum(s, 16)


def pairwise(x):
    """The tree's order spelled out: a[l] + a[l + h] for l < h, h = n/2, ..., 1, in x's dtype."""
    a = list(x)
    while len(a) > 1:
        h = len(a) // 2
        a = [a[i] + a[i + h] for i in range(h)]
    return a[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tree_sum_adds_pairwise(dtype):
    rng = np.random.default_rng(25)  # magnitudes far apart, chosen so that other orders round differently:
    x = (rng.standard_normal(16) * 10.0 ** rng.integers(-6, 7, 16)).astype(dtype)
    in_turn = functools.reduce(lambda s, v: s + v, x)
    neighbours_first = pairwise(x.reshape(8, 2).T.ravel())
    assert pairwise(x) != in_turn and pairwise(x) != neighbours_first
    assert tree_sum_of_16(x) == tree_sum_of_16.py_func(x) == pairwise(x)
    assert abs(tree_sum_of_16(x) - x.astype(np.float64).sum()) <= 1e-6 * np.abs(x).sum()


def test_tree_sum_length_must_be_a_power_of_two():
    @numba.njit
    def sum_of_12(x):
        s = stack_empty(12, x.dtype)
        s[:] = x[:12]
        return tree_sum(s, 12)

    with pytest.raises(numba.core.errors.TypingError, match="tree_sum needs a power of two, not 12"):
        sum_of_12(np.ones(12))


def test_tree_sum_wants_a_one_dimensional_array():
    @numba.njit
    def sum_of_rows(x):
        return tree_sum(x, 4)

    with pytest.raises(numba.core.errors.TypingError, match="tree_sum needs a 1-d contiguous array"):
        sum_of_rows(np.ones((2, 4)))
