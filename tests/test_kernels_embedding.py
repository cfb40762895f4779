"""Embedding kernels: token lookup, positional add, sinusoidal table."""
import numpy as np
import pytest

from gradcheck import assert_grad_close, numerical_grad
from transformer_jit.kernels.embedding import (
    embedding_backward,
    embedding_forward,
    positional_backward,
    positional_forward,
    sinusoidal_table,
)

REPEATED = np.array([3, 0, 3, 3, 1, 0, 4, 3], dtype=np.int64)  # token 3 four times, 0 twice, 2 never


def np_sinusoidal(T_max, C):
    pos = np.arange(T_max, dtype=np.float64)[:, None]
    two_i = (np.arange(C) // 2 * 2).astype(np.float64)[None, :]
    angle = pos / np.power(10000.0, two_i / C)
    return np.where(np.arange(C) % 2 == 0, np.sin(angle), np.cos(angle))


# ---------------------------------------------------------------------------------------------
# token embedding
# ---------------------------------------------------------------------------------------------

def test_embedding_forward_matches_numpy(rng):
    weight = rng.standard_normal((5, 6))
    out = np.full((len(REPEATED), 6), np.nan)
    embedding_forward(out, REPEATED, weight)
    np.testing.assert_array_equal(out, weight[REPEATED])


def test_embedding_backward_repeated_indices(rng):
    V, C = 5, 6
    dout = rng.standard_normal((len(REPEATED), C))
    start = rng.standard_normal((V, C))
    dweight = start.copy()
    embedding_backward(dweight, dout, REPEATED)
    expected = start.copy()
    np.add.at(expected, REPEATED, dout)  # unbuffered scatter-add: repeats add up
    np.testing.assert_allclose(dweight, expected, rtol=1e-14, atol=1e-14)
    np.testing.assert_array_equal(dweight[2], start[2])  # unused token: untouched
    np.testing.assert_allclose(dweight[3] - start[3], dout[REPEATED == 3].sum(axis=0), rtol=1e-13)


def test_embedding_backward_finite_differences(rng):
    V, C = 5, 3
    weight = rng.standard_normal((V, C))
    R = rng.standard_normal((len(REPEATED), C))
    out = np.empty((len(REPEATED), C))

    def loss():
        embedding_forward(out, REPEATED, weight)
        return float(np.sum(out * R))

    dweight = np.zeros_like(weight)
    embedding_backward(dweight, R, REPEATED)
    assert_grad_close("embedding dweight", dweight, numerical_grad(loss, weight))


def test_embedding_float32(rng):
    weight = rng.standard_normal((5, 7)).astype(np.float32)
    dout = rng.standard_normal((len(REPEATED), 7))
    out = np.empty((len(REPEATED), 7), np.float32)
    embedding_forward(out, REPEATED, weight)
    np.testing.assert_array_equal(out, weight[REPEATED])
    d32 = np.zeros((5, 7), np.float32)
    embedding_backward(d32, dout.astype(np.float32), REPEATED)
    d64 = np.zeros((5, 7))
    embedding_backward(d64, dout, REPEATED)
    assert d32.dtype == np.float32
    np.testing.assert_allclose(d32, d64, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# positional embedding
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("B,T,T_max", [(2, 3, 5), (1, 4, 4), (3, 1, 2)])
def test_positional_forward_matches_numpy(rng, B, T, T_max):
    C = 6
    x = rng.standard_normal((B, T, C))
    table = rng.standard_normal((T_max, C))
    out = np.full_like(x, np.nan)
    positional_forward(out, x, table)
    np.testing.assert_array_equal(out, x + table[None, :T])


def test_positional_forward_in_place(rng):
    x = rng.standard_normal((2, 3, 4))
    table = rng.standard_normal((5, 4))
    expected = x + table[None, :3]
    positional_forward(x, x, table)  # out aliases inp
    np.testing.assert_array_equal(x, expected)


def test_positional_backward_finite_differences(rng):
    B, T, T_max, C = 3, 4, 6, 5
    x = rng.standard_normal((B, T, C))
    table = rng.standard_normal((T_max, C))
    R = rng.standard_normal((B, T, C))
    out = np.empty_like(x)

    def loss():
        positional_forward(out, x, table)
        return float(np.sum(out * R))

    start = rng.standard_normal((T_max, C))
    dtable = start.copy()
    positional_backward(dtable, R)
    assert_grad_close("positional dtable", dtable - start, numerical_grad(loss, table))
    np.testing.assert_array_equal(dtable[T:], start[T:])  # rows past T: untouched
    np.testing.assert_allclose(dtable[:T], start[:T] + R.sum(axis=0), rtol=1e-13, atol=1e-13)
    # the input's gradient is dout itself (passed through by the caller): check that claim too
    np.testing.assert_allclose(R, numerical_grad(loss, x), rtol=1e-7, atol=1e-7)


def test_positional_float32(rng):
    x = rng.standard_normal((2, 3, 4))
    table = rng.standard_normal((5, 4))
    out32 = np.empty((2, 3, 4), np.float32)
    positional_forward(out32, x.astype(np.float32), table.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, x + table[None, :3], rtol=1e-6, atol=1e-6)
    d32 = np.zeros((5, 4), np.float32)
    positional_backward(d32, x.astype(np.float32))
    np.testing.assert_allclose(d32[:3], x.sum(axis=0), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# sinusoidal table
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("T_max,C", [(1, 1), (7, 4), (50, 9), (1024, 16)])
def test_sinusoidal_matches_numpy(T_max, C):
    out = np.full((T_max, C), np.nan)
    sinusoidal_table(out)
    np.testing.assert_allclose(out, np_sinusoidal(T_max, C), rtol=0, atol=1e-12)


def test_sinusoidal_known_properties():
    T_max, C = 64, 9  # odd C: last column is a sin without its cos
    pe = np.empty((T_max, C))
    sinusoidal_table(pe)
    np.testing.assert_array_equal(pe[0], [0, 1, 0, 1, 0, 1, 0, 1, 0])
    # first pair turns at 1 radian per position
    np.testing.assert_allclose(pe[:, 0], np.sin(np.arange(T_max)), atol=1e-14)
    np.testing.assert_allclose(pe[:, 1], np.cos(np.arange(T_max)), atol=1e-14)
    # every (sin, cos) pair lies on the unit circle
    np.testing.assert_allclose(pe[:, 0:8:2] ** 2 + pe[:, 1:8:2] ** 2, 1.0, atol=1e-14)
    # odd C: the last column is sin(pos / 10000^(8/9))
    np.testing.assert_allclose(pe[:, 8], np.sin(np.arange(T_max) / 10000.0 ** (8 / 9)), atol=1e-14)
    # a shift by k positions is the same rotation of each pair for every pos
    k = 5
    for i in range(4):
        s, c = pe[:, 2 * i], pe[:, 2 * i + 1]
        sk, ck = pe[k, 2 * i], pe[k, 2 * i + 1]  # sin(k w), cos(k w)
        np.testing.assert_allclose(pe[k:, 2 * i], s[:-k] * ck + c[:-k] * sk, atol=1e-12)
        np.testing.assert_allclose(pe[k:, 2 * i + 1], c[:-k] * ck - s[:-k] * sk, atol=1e-12)


def test_sinusoidal_float32():
    out32 = np.empty((300, 10), np.float32)
    sinusoidal_table(out32)
    # angles are computed in float64, so only the final rounding to float32 is lost
    np.testing.assert_allclose(out32, np_sinusoidal(300, 10), rtol=0, atol=6e-8)


# ---------------------------------------------------------------------------------------------
# interpreted == compiled
# ---------------------------------------------------------------------------------------------

def test_interpreted_matches_compiled(rng):
    weight = rng.standard_normal((5, 3))
    dout = rng.standard_normal((len(REPEATED), 3))
    jit, py = np.empty((len(REPEATED), 3)), np.empty((len(REPEATED), 3))
    embedding_forward(jit, REPEATED, weight)
    embedding_forward.py_func(py, REPEATED, weight)
    np.testing.assert_array_equal(py, jit)
    jit, py = np.zeros((5, 3)), np.zeros((5, 3))
    embedding_backward(jit, dout, REPEATED)
    embedding_backward.py_func(py, dout, REPEATED)
    np.testing.assert_allclose(py, jit, rtol=1e-14, atol=1e-15)

    x = rng.standard_normal((2, 3, 4))
    table = rng.standard_normal((4, 4))
    jit, py = np.empty_like(x), np.empty_like(x)
    positional_forward(jit, x, table)
    positional_forward.py_func(py, x, table)
    np.testing.assert_array_equal(py, jit)
    jit, py = np.zeros((4, 4)), np.zeros((4, 4))
    positional_backward(jit, x)
    positional_backward.py_func(py, x)
    np.testing.assert_allclose(py, jit, rtol=1e-14, atol=1e-15)

    jit, py = np.empty((6, 5)), np.empty((6, 5))
    sinusoidal_table(jit)
    sinusoidal_table.py_func(py)
    np.testing.assert_allclose(py, jit, rtol=0, atol=1e-14)
