"""Central finite differences, the yardstick every hand-written backward is measured against.

All checks run in float64: with eps = 1e-6 the truncation error of a central difference is
O(eps^2), and its rounding error is the loss's own rounding divided by eps, about 1e-16 |loss| /
1e-6. So every entry must agree to an absolute bound, a hundred times that rounding noise (and
at least 1e-8), plus RTOL of its size: a large entry is checked relatively, a small one to within
the noise, so a wrong entry of any size above the noise fails. A wrong derivative is off by order one.
"""
import numpy as np

ATOL = 1e-8
RTOL = 1e-6


class FiniteDifferences(np.ndarray):
    """A numerical gradient that carries `atol`, the rounding noise of the losses it came from."""

    def __array_finalize__(self, obj):
        self.atol = getattr(obj, "atol", ATOL)


def numerical_grad(loss_fn, x, eps=1e-6):
    """d loss_fn() / d x by central differences, perturbing `x` in place one element at a time.
    Returns a FiniteDifferences array whose `atol` is 100 x the rounding noise of the differences."""
    grad = np.zeros_like(x, dtype=np.float64)
    largest_loss = 0.0
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
        largest_loss = max(largest_loss, abs(plus), abs(minus))
    grad = grad.view(FiniteDifferences)
    grad.atol = max(ATOL, 100 * np.finfo(np.float64).eps * largest_loss / eps)
    return grad


def assert_grad_close(name, analytic, numeric):
    """Every entry within numeric.atol + RTOL (|analytic| + |numeric|)."""
    assert analytic.shape == numeric.shape, f"{name}: shape {analytic.shape} != {numeric.shape}"
    atol = getattr(numeric, "atol", ATOL)
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    diff = np.abs(analytic - numeric)
    err = float(np.max(diff / (atol + RTOL * (np.abs(analytic) + np.abs(numeric))))) if diff.size else 0.0
    print(f"gradcheck {name}: max abs error {diff.max(initial=0):.1e}, {err:.3f} of the bound (atol {atol:.0e})")
    assert err <= 1.0, f"{name}: an entry differs by {err:.2g} times the bound (atol {atol:.0e}, rtol {RTOL:.0e})"


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
    numeric_flat = numerical_grad(loss, model.params)
    model.grads[:] = numeric_flat
    numeric = model.gradients()
    assert set(analytic) == set(numeric) and len(analytic) >= min_tensors
    for name in analytic:
        entry = numeric[name].view(FiniteDifferences)
        entry.atol = numeric_flat.atol
        assert_grad_close(name, analytic[name], entry)
