"""The packed matrix multiply behind every linear layer: against NumPy for every layout, edge tiles,
several depth slices, bias, accumulation, float32, and its interpreted loops."""
import numpy as np
import pytest

from transformer_jit.kernels._jit import interpreted
from transformer_jit.kernels.matmul import _KC as KC
from transformer_jit.kernels.matmul import matmul
from transformer_jit.kernels.tiles import MR, NR, micro_kernel

NO_BIAS = np.empty(0)  # matmul's bias when there is none

# (M, K, N): one row short of / past a tile, a column short of / past a panel, depths of one slice,
# exactly one slice and three slices (the last one partial, on 17 row tiles); 42 row tiles make 8
# blocks of 5 or 6; fewer than 16 row tiles and a depth of 256 or more make the threads split the
# depth into 4 parts (the last two shapes: parts of 65 and 64, and parts of 259 that are two
# slices each).
SHAPES = [(1, 1, 1), (MR - 1, 7, NR + 1), (MR + 1, KC, NR - 1), (16 * MR + 5, 2 * KC + 3, 3 * NR + 7), (61, 70, 96),
          (42 * MR - 5, 19, 40), (8 * MR + 1, KC + 3, 8 * NR + 5), (2 * MR + 3, 4 * KC + 9, NR + 2)]


def operands(rng, M, K, N, a_transposed, b_transposed, dtype=np.float64):
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    a = np.ascontiguousarray(A.T) if a_transposed else A
    b = np.ascontiguousarray(B.T) if b_transposed else B
    return A, B, a, b


@pytest.mark.parametrize("M,K,N", SHAPES)
@pytest.mark.parametrize("a_transposed", [False, True])
@pytest.mark.parametrize("b_transposed", [False, True])
def test_matches_numpy_for_every_layout(rng, M, K, N, a_transposed, b_transposed):
    A, B, a, b = operands(rng, M, K, N, a_transposed, b_transposed)
    out = np.full((M, N), np.nan)  # overwritten, never read
    matmul(out, a, a_transposed, b, b_transposed, NO_BIAS, False)
    np.testing.assert_allclose(out, A @ B, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("M,K,N", SHAPES[1:4] + SHAPES[-2:])
def test_bias_and_accumulate(rng, M, K, N):
    A, B, a, b = operands(rng, M, K, N, False, True)
    bias = rng.standard_normal(N)
    out = np.full((M, N), np.nan)
    matmul(out, a, False, b, True, bias, False)
    np.testing.assert_allclose(out, A @ B + bias, rtol=1e-12, atol=1e-12)
    start = rng.standard_normal((M, N))
    out = start.copy()
    matmul(out, a, False, b, True, NO_BIAS, True)
    np.testing.assert_allclose(out, start + A @ B, rtol=1e-12, atol=1e-12)
    out = start.copy()
    matmul(out, a, False, b, True, bias, True)
    np.testing.assert_allclose(out, start + A @ B + bias, rtol=1e-12, atol=1e-12)


def test_float32_stays_float32(rng):
    M, K, N = SHAPES[3]
    A, B, a, b = operands(rng, M, K, N, True, False, np.float32)
    out = np.empty((M, N), np.float32)
    matmul(out, a, True, b, False, NO_BIAS.astype(np.float32), False)
    ref = A.astype(np.float64) @ B.astype(np.float64)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


# the first K has columns past the last panel (dot products), the second splits the depth;
# both transposed or neither: every branch of the packing
@pytest.mark.parametrize("K", [9, KC + 3])
@pytest.mark.parametrize("transposed", [False, True])
def test_interpreted_matches_compiled(rng, K, transposed):
    M, N = MR + 1, NR + 3
    A, B, a, b = operands(rng, M, K, N, transposed, transposed)
    bias = rng.standard_normal(N)
    jit_out, py_out = np.empty((M, N)), np.empty((M, N))
    matmul(jit_out, a, transposed, b, transposed, bias, False)
    with interpreted(matmul) as matmul_py:  # the packing and micro-kernel interpreted too
        matmul_py(py_out, a, transposed, b, transposed, bias, False)
    np.testing.assert_allclose(py_out, jit_out, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(py_out, A @ B + bias, rtol=1e-12, atol=1e-12)


def test_micro_kernel_on_a_tile_inside_a_larger_array(rng):
    a_rows, b_panels = rng.standard_normal((2 * MR + 1, KC + 5)), rng.standard_normal((3, KC, NR))
    c = rng.standard_normal((MR + 3, NR + 4))  # the tile is c[2:2 + MR, 1:1 + NR]
    jit_c, py_c = c.copy(), c.copy()
    # A: rows MR + 1 to 2 MR and columns 8 to 12 of a_rows; B: depth 3 to 7 of panel 2
    micro_kernel(jit_c, 2, 1, a_rows, MR + 1, 5, b_panels, 2, 3, 8)
    micro_kernel.py_func(py_c, 2, 1, a_rows, MR + 1, 5, b_panels, 2, 3, 8)
    np.testing.assert_allclose(py_c, jit_c, rtol=1e-13, atol=1e-13)
    expected = c.copy()
    expected[2:2 + MR, 1:1 + NR] += a_rows[MR + 1:2 * MR + 1, 8:13] @ b_panels[2, 3:8]
    np.testing.assert_allclose(jit_c, expected, rtol=1e-13, atol=1e-13)
