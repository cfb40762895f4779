"""A check shared by the tests of generation's matrix-vector kernels."""
import numpy as np


def assert_rows_independent(matvec, x, *weight_and_bias):
    """Each row's sums are the same bits alone, in the batch, and in the batch reversed."""
    B, OC = x.shape[0], weight_and_bias[0].shape[0]
    rows, backwards, alone = np.empty((B, OC), x.dtype), np.empty((B, OC), x.dtype), np.empty((1, OC), x.dtype)
    matvec(rows, x, *weight_and_bias, False, False)
    matvec(backwards, np.ascontiguousarray(x[::-1]), *weight_and_bias, False, False)
    np.testing.assert_array_equal(backwards[::-1], rows)
    for b in range(B):
        matvec(alone, x[b:b + 1], *weight_and_bias, False, False)
        np.testing.assert_array_equal(alone[0], rows[b])
