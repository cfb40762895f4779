"""Pooling kernel: masked mean over positions (mean pooling and classification-token pooling)."""
import numpy as np

from gradcheck import assert_grad_close, numerical_grad
from transformer_jit.kernels.pooling import mean_pool_backward, mean_pool_forward

# three sequences: two real tokens then padding; all real; only position 0 selected (CLS pooling)
MASK = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)


def np_mean_pool(x, mask):
    return (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1)[:, None]


def test_forward_matches_numpy_and_ignores_unselected_positions(rng):
    x = rng.standard_normal((3, 4, 5))
    out = np.full((3, 5), np.nan)
    mean_pool_forward(out, x, MASK)
    np.testing.assert_allclose(out, np_mean_pool(x, MASK), rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(out[2], x[2, 0])  # CLS pooling: the first position itself
    changed = x.copy()
    changed[~MASK] = 1e6  # whatever sits in padding does not matter
    out2 = np.empty_like(out)
    mean_pool_forward(out2, changed, MASK)
    np.testing.assert_array_equal(out, out2)


def test_backward_matches_finite_differences_and_accumulates(rng):
    x = rng.standard_normal((3, 4, 5))
    R = rng.standard_normal((3, 5))
    out = np.empty((3, 5))

    def loss():
        mean_pool_forward(out, x, MASK)
        return float(np.sum(out * R))

    start = rng.standard_normal(x.shape)
    dx = start.copy()
    mean_pool_backward(dx, R, MASK)
    assert_grad_close("mean_pool dinp", dx - start, numerical_grad(loss, x))
    np.testing.assert_array_equal(dx[~MASK], start[~MASK])  # padding gets exactly nothing


def test_empty_selection_gives_zero_and_no_gradient():
    x = np.ones((1, 3, 2))
    mask = np.zeros((1, 3), dtype=bool)
    out = np.full((1, 2), np.nan)
    mean_pool_forward(out, x, mask)
    np.testing.assert_array_equal(out, 0.0)
    dx = np.zeros_like(x)
    mean_pool_backward(dx, np.ones((1, 2)), mask)
    np.testing.assert_array_equal(dx, 0.0)


def test_float32_stays_float32_and_py_func_agrees(rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    R = rng.standard_normal((3, 5)).astype(np.float32)
    out, out_py = np.empty((3, 5), np.float32), np.empty((3, 5), np.float32)
    mean_pool_forward(out, x, MASK)
    mean_pool_forward.py_func(out_py, x, MASK)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np_mean_pool(x.astype(np.float64), MASK), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out, out_py, rtol=1e-6, atol=1e-7)
    dx, dx_py = np.zeros_like(x), np.zeros_like(x)
    mean_pool_backward(dx, R, MASK)
    mean_pool_backward.py_func(dx_py, R, MASK)
    np.testing.assert_allclose(dx, dx_py, rtol=1e-6, atol=1e-7)
