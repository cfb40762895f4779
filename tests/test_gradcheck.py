"""The gradient checker itself: it must catch a wrong entry however small, and pass a right one."""
import numpy as np
import pytest

from gradcheck import assert_grad_close, numerical_grad


def test_numerical_grad_of_a_known_function():
    x = np.array([0.3, -1.2, 2.0])
    grad = numerical_grad(lambda: float(np.sum(np.sin(x) * x ** 2)), x)
    assert_grad_close("sin(x) x^2", np.cos(x) * x ** 2 + 2 * x * np.sin(x), grad)


# A wrong entry of size 3e-6 is off by 6e-7: under a bound with an absolute floor of 1e-6 it
# would pass; the noise of this loss (about 14) allows 3e-7.
@pytest.mark.parametrize("size", [1.0, 1e-3, 3e-6])
def test_a_wrong_entry_fails_at_any_size_above_the_noise(size):
    x = np.array([1.0, 2.0, 3.0])
    scale = np.array([size, 1.0, 1.0])
    numeric = numerical_grad(lambda: float(np.sum(scale * x ** 2)), x)  # true gradient 2 scale x
    right = 2 * scale * x
    assert_grad_close("right", right, numeric)
    wrong = right.copy()
    wrong[0] *= 1.1  # the smallest entry 10% off
    with pytest.raises(AssertionError, match="differs"):
        assert_grad_close("wrong", wrong, numeric)
