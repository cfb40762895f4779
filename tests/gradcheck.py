"""Central finite differences, the yardstick every hand-written backward is measured against.

All checks run in float64: with eps = 1e-6 the truncation error of a central difference is
O(eps^2) and the rounding error O(1e-16 / eps), so agreement to ~1e-7 relative is expected and a
wrong derivative is off by order one.
"""
import numpy as np


def numerical_grad(loss_fn, x, eps=1e-6):
    """d loss_fn() / d x by central differences, perturbing `x` in place one element at a time."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat_x = x.reshape(-1)  # a view: x must be contiguous
    assert np.shares_memory(flat_x, x)
    flat_g = grad.reshape(-1)
    for i in range(flat_x.size):
        old = flat_x[i]
        flat_x[i] = old + eps
        plus = loss_fn()
        flat_x[i] = old - eps
        minus = loss_fn()
        flat_x[i] = old
        flat_g[i] = (plus - minus) / (2 * eps)
    return grad


def rel_error(analytic, numeric):
    """Worst-case relative error, with a floor so entries near zero compare absolutely."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    scale = np.maximum(np.abs(analytic) + np.abs(numeric), 1.0)
    return float(np.max(np.abs(analytic - numeric) / scale)) if analytic.size else 0.0


def assert_grad_close(name, analytic, numeric, tol=1e-6):
    err = rel_error(analytic, numeric)
    print(f"gradcheck {name}: max relative error {err:.2e}")
    assert analytic.shape == numeric.shape, f"{name}: shape {analytic.shape} != {numeric.shape}"
    assert err < tol, f"{name}: max relative error {err:.2e} exceeds {tol:.0e}"


def check_model_gradients(model, batch, min_tensors=1):
    """Whole-model check: backward() against finite differences of the loss, parameter by parameter.

    `model` must be float64; dropout masks are held fixed by resetting the model's forward counter
    before every evaluation.
    """
    def loss():
        model.forward_count = 0  # the same dropout masks on every evaluation
        return model.forward(*batch)[1]

    loss()
    model.zero_grad()
    model.backward()
    analytic = model.gradients()
    # The numeric gradient is laid out like the flat buffer: put it there to read it back by name.
    model.grads[:] = numerical_grad(loss, model.params)
    numeric = model.gradients()
    assert set(analytic) == set(numeric) and len(analytic) >= min_tensors
    for name in analytic:
        assert_grad_close(name, analytic[name], numeric[name])
