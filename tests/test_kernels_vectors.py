"""vectors: a row of a 2-d array seen as rows of a constant width, compiled and interpreted."""
import numba
import numpy as np
import pytest

from transformer_jit.kernels.vectors import vectors


@numba.njit
def weighted_vectors(a, i, n):
    """sum_k (k + 1) * (v[k, 0] - v[k, 2]) over v = vectors(a, i, n, 3), and v's shape."""
    v = vectors(a, i, n, 3)
    total = a.dtype.type(0)
    for k in range(v.shape[0]):
        row = v[k]
        total += (k + 1) * (row[0] - row[2])
    return total, v.shape[0], v.shape[1]


@pytest.mark.parametrize("dtype", [np.float32, np.int8])
def test_compiled_and_interpreted_agree(dtype):
    a = np.arange(4 * 11).reshape(4, 11).astype(dtype)  # rows of 11: 3 vectors of 3 and 2 left over
    v = a[2, :9].reshape(3, 3)
    expected = (sum((k + 1) * (v[k, 0] - v[k, 2]) for k in range(3)), 3, 3)
    assert weighted_vectors(a, 2, 3) == expected
    assert weighted_vectors.py_func(a, 2, 3) == expected


def test_width_must_be_a_constant():
    @numba.njit
    def variable_width(a, width):
        return vectors(a, 0, 1, width)[0, 0]

    with pytest.raises(numba.core.errors.TypingError, match="vectors needs a width known when compiling"):
        variable_width(np.zeros((2, 4)), 2)
