import numba
import numpy as np
import pytest

from transformer_jit.kernels import set_adaptive_threads


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def fixed_threads():
    """numba.set_num_threads, held whatever the machine's load: fitting the count to the load
    (kernels/threads.py) is off until the test ends, when the count is given back."""
    before = numba.get_num_threads()
    was_adaptive = set_adaptive_threads(False)
    yield numba.set_num_threads
    numba.set_num_threads(before)
    set_adaptive_threads(was_adaptive)
