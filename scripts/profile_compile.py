"""Where a cold compile goes: every compilation Numba runs, timed and summed by kernel.

    python scripts/profile_compile.py train                          # the default `transformer-jit train`
    python scripts/profile_compile.py pytest -q tests/test_gpt.py    # tests (any pytest arguments)

Runs in this process on an empty Numba cache (a temporary NUMBA_CACHE_DIR), with the compile
helper off (kernels/compile_ahead.py), so that every compilation happens here and is seen: a
listener of Numba's "numba:compile" events times each one. A kernel's compile includes those of
the kernels it calls that were not compiled yet; the table gives each its own share (exclusive
seconds), its number of compiled versions, and, for pytest, the seconds by test file. Compilations
in other processes (tests that start commands) are not counted.
"""
import collections
import os
import shutil
import sys
import tempfile
import time

CACHE = os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="profile-compile-")  # before Numba reads it

from numba.core import event  # noqa: E402

from transformer_jit.kernels import compile_ahead  # noqa: E402

TRAIN = ["train", "--max-iters", "1", "--eval-interval", "1", "--eval-iters", "1", "--sample-tokens", "0"]


class Compilations(event.Listener):
    """(where, kernel, exclusive seconds) of every compilation, `where` the current test if any."""

    def __init__(self):
        self.where, self.open, self.done = "", [], []

    def on_start(self, ev):
        fn = ev.data["dispatcher"].py_func
        self.open.append([f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__qualname__}", time.perf_counter(), 0.0])

    def on_end(self, ev):
        name, start, inner = self.open.pop()
        seconds = time.perf_counter() - start
        if self.open:
            self.open[-1][2] += seconds
        self.done.append((self.where, name, seconds - inner))

    def pytest_runtest_setup(self, item):  # a pytest hook: the plugin is this object
        self.where = item.nodeid.split("::")[0]


def report(done, wall):
    total = sum(s for _, _, s in done)
    print(f"\n{len(done)} compilations, {total:.1f} s of {wall:.1f} s wall")
    by_kernel = collections.defaultdict(list)
    for _, name, seconds in done:
        by_kernel[name].append(seconds)
    print(f"{'seconds':>8} {'versions':>8}  kernel (its own share; the kernels it calls are listed apart)")
    for name, times in sorted(by_kernel.items(), key=lambda kv: -sum(kv[1]))[:25]:
        print(f"{sum(times):8.2f} {len(times):8d}  {name}")
    by_file = collections.defaultdict(float)
    for where, _, seconds in done:
        by_file[where] += seconds
    if len(by_file) > 1:
        print(f"\n{'seconds':>8}  test file")
        for where, seconds in sorted(by_file.items(), key=lambda kv: -kv[1])[:20]:
            print(f"{seconds:8.2f}  {where or '(before the first test)'}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return
    if len(sys.argv) < 2 or sys.argv[1] not in ("train", "pytest"):
        sys.exit(__doc__)
    compile_ahead._can_help = lambda: False  # no helper process: every compilation happens here
    listener = Compilations()
    event.register("numba:compile", listener)
    start = time.perf_counter()
    if sys.argv[1] == "pytest":
        import pytest
        code = pytest.main(sys.argv[2:], plugins=[listener])
    else:
        from transformer_jit.cli import main as cli
        try:
            cli([*TRAIN, "--out-dir", os.path.join(CACHE, "run"), *sys.argv[2:]])
            code = 0
        except SystemExit as stop:
            code = stop.code
    report(listener.done, time.perf_counter() - start)
    sys.exit(code)


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(CACHE, ignore_errors=True)
