"""The one place that sets how kernels are compiled.

Every kernel is decorated with `kernel` (serial) or `parallel_kernel` (uses `prange`), so the
compile policy is decided here and nowhere else:

- cache=True: compiled machine code is written next to the source (or to NUMBA_CACHE_DIR) and
  reused by later processes, so only the first run pays the compile time.
- fastmath: the subset that lets LLVM reorder and fuse floating-point arithmetic (which is what
  lets reductions vectorize) but keeps the no-NaN/no-inf assumptions OFF, so `isinf`/`isnan`
  guards survive. Masking never relies on -inf anyway: masked positions are skipped by loop
  bounds.
- error_model="numpy": division by zero gives inf/nan like NumPy instead of raising, which
  removes a branch from every division in a hot loop.
"""
import numba

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def kernel(fn):
    """Compile `fn` as a serial kernel."""
    return numba.njit(cache=True, fastmath=FASTMATH, error_model="numpy")(fn)


def parallel_kernel(fn):
    """Compile `fn` as a kernel whose outer `prange` loop runs on all threads."""
    return numba.njit(cache=True, fastmath=FASTMATH, error_model="numpy", parallel=True)(fn)
