import os

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


# With TRANSFORMER_JIT_INTEROP=1 (CI's second stage, where the interop extra is installed), a test
# marked `interop` that skips, or a test module skipped whole, fails instead: no comparison with
# another library may go silently unrun.
INTEROP = os.environ.get("TRANSFORMER_JIT_INTEROP") == "1"


def _fail_skip(report):
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome, report.longrepr = "failed", f"skipped where the interop extra is installed: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if INTEROP and report.skipped and item.get_closest_marker("interop"):
        _fail_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    report = (yield).get_result()
    if INTEROP and report.skipped:
        _fail_skip(report)
