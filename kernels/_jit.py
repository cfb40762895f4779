"""The one place that sets how kernels are compiled.

Every kernel is decorated with `kernel` (serial), `parallel_kernel` (uses `prange`) or
`slp_kernel` (the matrix multiply), so the compile policy is decided here and
nowhere else:

- cache=True: compiled machine code is written next to the source (or to NUMBA_CACHE_DIR) and
  reused by later processes, so only the first run pays the compile time.
- fastmath: the subset that lets LLVM reorder and fuse floating-point arithmetic (which is what
  lets reductions vectorize) but keeps the no-NaN/no-inf assumptions OFF, so `isinf`/`isnan`
  guards survive. Masking never relies on -inf anyway: masked positions are skipped by loop
  bounds.
- error_model="numpy": division by zero gives inf/nan like NumPy instead of raising, which
  removes a branch from every division in a hot loop.
- One compiled version per argument TYPE, not per constant value. When a kernel calls another
  with a constant (`pack_a(..., False, 0, ...)`), Numba types the constant as a literal value and
  compiles the callee once for every combination of values it is called with. Kernels take flags
  and offsets as plain data, so `_Dispatcher` types such arguments by their type alone: linear's
  products had been four compiled matrix multiplies instead of two (about 5 s of cold compile
  each), and the micro-kernel was compiled once for the matmul and again for attention.

Two settings exist for the matrix multiply (see matmul.py):

- 512-bit vectors. On AVX-512 machines LLVM's tuning for most Intel cores prefers 256-bit
  vectors, which halves the multiply-adds per instruction. Unless NUMBA_CPU_NAME or
  NUMBA_CPU_FEATURES is already set, importing this module sets NUMBA_CPU_FEATURES to the host's
  features plus "-prefer-256-bit". That is process-wide (it changes the vector width LLVM picks
  for all Numba code, never what the code computes) and has no effect if Numba compiled anything
  before this import: the kernels are then correct, but the matrix multiply runs at about half
  speed. `vector_bits()` reports which case holds.
- The SLP vectorizer, which packs the micro-kernel's independent scalar multiply-adds into vector
  instructions. Numba switches it off by default (it miscompiled code in some LLVM versions), so
  it is switched on only while an `slp_kernel` compiles; the matmul tests cover those kernels.
"""
import os

import llvmlite.binding as llvm
import numba
from numba.core import config as _numba_config
from numba.core import types
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import CPUDispatcher


def _prefer_512_bit_vectors():
    if "NUMBA_CPU_NAME" in os.environ or "NUMBA_CPU_FEATURES" in os.environ:
        return
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        os.environ["NUMBA_CPU_FEATURES"] = features.flatten() + ",-prefer-256-bit"
        # Numba read its environment when first imported, which may have been before now.
        _numba_config.CPU_FEATURES = os.environ["NUMBA_CPU_FEATURES"]


_prefer_512_bit_vectors()

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


class _Dispatcher(CPUDispatcher):
    """A Numba dispatcher that, called from compiled code, compiles for the arguments' types
    without their literal values (see the module docstring)."""

    def get_call_template(self, args, kws):
        return super().get_call_template([types.unliteral(a) for a in args],
                                         {k: types.unliteral(v) for k, v in kws.items()})


def _compile(fn, dispatcher, parallel=False, fastmath=FASTMATH):
    options = dict(nopython=True, parallel=parallel, fastmath=fastmath, error_model="numpy")
    compiled = dispatcher(py_func=fn, locals={}, targetoptions=options)
    compiled.enable_caching()
    return compiled


def kernel(fn):
    """Compile `fn` as a serial kernel."""
    return _compile(fn, _Dispatcher)


def parallel_kernel(fn):
    """Compile `fn` as a kernel whose outer `prange` loop runs on all threads."""
    return _compile(fn, _Dispatcher, parallel=True)


class _SLPDispatcher(_Dispatcher):
    """A Numba dispatcher that compiles with LLVM's SLP vectorizer on (read per compilation)."""

    def compile(self, sig):
        with global_compiler_lock:
            before = _numba_config.SLP_VECTORIZE
            _numba_config.SLP_VECTORIZE = 1
            try:
                return super().compile(sig)
            finally:
                _numba_config.SLP_VECTORIZE = before


def slp_kernel(fn=None, *, parallel=False, reassociate=True):
    """Compile `fn` with the SLP vectorizer on, as a serial or a parallel kernel.

    reassociate=False drops "reassoc" from the fast-math flags: the micro-kernel needs that, or
    LLVM's loop vectorizer treats every accumulator as a reduction over the loop and vectorizes
    across iterations (gathering strided operands) instead of across the accumulators."""
    if fn is None:
        return lambda fn: slp_kernel(fn, parallel=parallel, reassociate=reassociate)
    return _compile(fn, _SLPDispatcher, parallel, FASTMATH if reassociate else FASTMATH - {"reassoc"})


def vector_bits():
    """The widest vectors LLVM prefers for this process's Numba code: 512 or less."""
    from numba.core.registry import cpu_target
    features = cpu_target.target_context.codegen()._tm_features
    if not isinstance(features, str):
        features = features.flatten()
    return 512 if "+avx512f" in features and "-prefer-256-bit" in features else 256
