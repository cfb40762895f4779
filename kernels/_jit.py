"""The one place that sets how kernels are compiled, and `interpreted`, which runs them uncompiled.

Every kernel is decorated with `kernel` (serial), `parallel_kernel` (uses `prange`) or
`slp_kernel` (the tiled products), so the compile policy is decided here and nowhere else:

- cache=True: compiled code is written next to the source (or to NUMBA_CACHE_DIR) and reused by
  later processes, so only the first run pays the compile time.
- fastmath: the flags that let LLVM reorder and fuse floating-point arithmetic (so reductions
  vectorize), without the no-NaN/no-inf ones, so `isinf`/`isnan` guards survive. Masking never
  relies on -inf anyway: masked positions are skipped by loop bounds.
- error_model="numpy": division by zero gives inf/nan like NumPy instead of raising, which
  removes a branch from every division in a hot loop.
- A cache that several processes may fill at once: Numba's index of a kernel's compiled versions
  is read, extended and rewritten by each process that saves one, so two processes saving two
  versions of one kernel could lose one, or point one at the other's file. `_SharedCache` holds a
  lock on the cache directory (a file beside the cache files) while it reads or writes them.
- One compiled version per argument TYPE: Numba types a constant argument of a call between
  kernels (`pack_a(..., False, 0, ...)`) by its value and would compile the callee once per
  combination of values; `_Dispatcher` types it by its type alone, as every compiled version of
  a large kernel adds to the cold compile.
- One compiled version for contiguous arrays and views alike, where a kernel says so
  (`any_layout`): Numba compiles a version for each combination of C-contiguous and strided
  arrays it is given, and attention's inputs are either, depending on the layer that calls it.

How many threads. A kernel called from Python first sets the thread count to the cores
that other programs leave free (threads.py, read at most four times a second). Threads then keep
OpenMP's default wait, spinning between parallel loops so that the next one starts at once: on an
idle machine that is the fastest, and beside a busy program the count has dropped to the cores it
leaves free, where nothing else competes for them.

Two settings exist for the tiled products (see tiles.py):

- 512-bit vectors. On AVX-512 machines LLVM's tuning for most Intel cores prefers 256-bit
  vectors, half the multiply-adds per instruction. Unless NUMBA_CPU_NAME or NUMBA_CPU_FEATURES is
  set, importing this module sets NUMBA_CPU_FEATURES to the host's features plus
  "-prefer-256-bit", for all Numba code in the process (the width, never the results). It has no
  effect if Numba compiled anything before this import; `vector_bits()` reports which case holds.
- The SLP vectorizer, which packs the micro-kernel's independent scalar multiply-adds into vector
  instructions. Numba switches it off by default (it miscompiled code in some LLVM versions), so
  it is on only while an `slp_kernel` compiles; the matmul and attention tests cover those.
"""
import contextlib
import functools
import os
import re

try:
    import fcntl
except ImportError:  # not POSIX: one process at a time fills the cache
    fcntl = None

import llvmlite.binding as llvm
import numpy as np
from numba.core import config as _numba_config
from numba.core import types
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import CPUDispatcher

from .threads import fit_threads_to_load


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
_call_compiled = CPUDispatcher.__call__


@contextlib.contextmanager
def _cache_lock(directory):
    """An exclusive lock on a cache directory, held by one process at a time; none where the
    directory cannot hold the lock file (a read-only cache is only read)."""
    try:
        fd = os.open(os.path.join(directory, "cache.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        fd = None
    try:
        if fd is not None and fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing releases the lock


class _SharedIndexDataCacheFile(IndexDataCacheFile):
    """Numba's index and data files of one kernel, read and written under the directory's lock."""

    def save(self, key, data):
        with _cache_lock(self._cache_path):
            super().save(key, data)

    def load(self, key):
        with _cache_lock(self._cache_path):
            return super().load(key)

    def holds(self, key):
        with _cache_lock(self._cache_path):
            return key in self._load_index()


class _SharedCache(FunctionCache):
    """Numba's cache of compiled functions, safe to fill from several processes at once, and
    dropped when any kernel's source changes (sources_stamp)."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = _SharedIndexDataCacheFile(cache_path=self._cache_path,
                                                     filename_base=self._impl.filename_base,
                                                     source_stamp=sources_stamp(os.path.dirname(__file__)))


@functools.cache
def sources_stamp(directory):
    """(the newest modification time, the total size) of the .py files in `directory`. A kernel's
    compiled code holds the kernels it calls, from any file; Numba's own stamp, its file's, would
    keep serving a kernel compiled with the old code of a callee edited in another file."""
    stats = [os.stat(entry.path) for entry in os.scandir(directory) if entry.name.endswith(".py")]
    return max(s.st_mtime for s in stats), sum(s.st_size for s in stats)


_recording = None  # while `recording_calls` runs: the list it fills


class _Dispatcher(CPUDispatcher):
    """A Numba dispatcher that, called from Python, first fits the thread count to the load, and
    called from compiled code compiles for the arguments' types without their literal values (see
    the module docstring)."""

    def __call__(self, *args, **kws):
        if _recording is not None:
            _recording.append((self, tuple(self.typeof_pyval(a) for a in args)))
            return 1
        fit_threads_to_load()
        return _call_compiled(self, *args, **kws)

    any_layout = frozenset()  # positions of the array arguments compiled for any layout

    def enable_caching(self):
        self._cache = _SharedCache(self.py_func)

    def compile(self, sig):
        if not self.any_layout or not isinstance(sig, tuple):
            return super().compile(sig)
        widened = self._widened(sig)
        entry = super().compile(widened)
        if widened != sig:  # a call from Python with `sig`'s types now finds that version at once
            self._insert([t._code for t in sig], entry, False)
        return entry

    def _widened(self, signature):
        """`signature` with the arrays at the `any_layout` positions typed for any layout ('A')."""
        return tuple(t.copy(layout="A") if i in self.any_layout and isinstance(t, types.Array) else t
                     for i, t in enumerate(signature))

    def is_cached(self, signature):
        """Whether the cache holds a compiled version for `signature` (a tuple of Numba types)."""
        cache = self._cache
        if not isinstance(cache, _SharedCache):
            return False
        return cache._cache_file.holds(cache._index_key(self._widened(signature), self.targetctx.codegen()))

    def get_call_template(self, args, kws):
        return super().get_call_template([types.unliteral(a) for a in args],
                                         {k: types.unliteral(v) for k, v in kws.items()})


def _compile(fn, dispatcher, parallel=False, fastmath=FASTMATH, any_layout=(), inline=False):
    """any_layout: names of array arguments compiled for any layout, so that one version serves
    C-contiguous arrays and strided views alike (for arguments the kernel reads through views anyway).
    inline: Numba puts the kernel's code into each compiled caller, where it takes the caller's
    fast-math flags, instead of calling it."""
    options = dict(nopython=True, parallel=parallel, fastmath=fastmath, error_model="numpy",
                   inline="always" if inline else "never")
    compiled = dispatcher(py_func=fn, locals={}, targetoptions=options)
    names = fn.__code__.co_varnames[:fn.__code__.co_argcount]
    compiled.any_layout = frozenset(names.index(name) for name in any_layout)
    compiled.enable_caching()
    return compiled


def kernel(fn=None, *, exact_division=False, inline=False):
    """Compile `fn` as a serial kernel.

    exact_division=True drops "arcp" from the fast-math flags: with it LLVM may turn x / y into
    x (1 / y), or not, depending on the code the kernel is inlined into, and a result rounded
    from the quotient (int8.quantize_row) would then change with its caller.
    inline=True: compiled callers get the kernel's code instead of a call (see `_compile`); for
    small kernels called in hot loops, where a call's reference counting of its array arguments
    costs more than the work."""
    if fn is None:
        return lambda fn: kernel(fn, exact_division=exact_division, inline=inline)
    return _compile(fn, _Dispatcher, fastmath=FASTMATH - {"arcp"} if exact_division else FASTMATH, inline=inline)


def parallel_kernel(fn):
    """Compile `fn` as a kernel whose outer `prange` loop runs on the free cores (threads.py)."""
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


def slp_kernel(fn=None, *, parallel=False, reassociate=True, any_layout=()):
    """Compile `fn` with the SLP vectorizer on, as a serial or a parallel kernel (any_layout: see
    `_compile`).

    reassociate=False drops "reassoc" from the fast-math flags: the micro-kernel needs that, or
    LLVM's loop vectorizer treats every accumulator as a reduction over the loop and vectorizes
    across iterations (gathering strided operands) instead of across the accumulators."""
    if fn is None:
        return lambda fn: slp_kernel(fn, parallel=parallel, reassociate=reassociate, any_layout=any_layout)
    return _compile(fn, _SLPDispatcher, parallel, FASTMATH if reassociate else FASTMATH - {"reassoc"}, any_layout)


def vector_bits():
    """The widest vectors LLVM prefers for this process's Numba code: 512 or less."""
    features = _feature_list()
    return 512 if "+avx512f" in features and "-prefer-256-bit" in features else 256


@functools.cache
def cpu_features():
    """The instruction sets this process's Numba code is compiled for, as LLVM names them
    ("avx2", "avx512vnni", ...). Numba gives LLVM the host's list, or NUMBA_CPU_FEATURES. Given an
    empty one with a NUMBA_CPU_NAME (the way to compile for another CPU, such as AVX2's "haswell":
    with the host's list, LLVM would still use every instruction the host has), LLVM takes the
    named CPU's own features, which llvmlite cannot list; then only "avx2" is known, read from
    the instruction LLVM chooses for a product of two vectors of 8 int32."""
    features = _feature_list()
    if features:
        return frozenset(f[1:] for f in features if f.startswith("+"))
    from numba.core.registry import cpu_target
    cpu = cpu_target.target_context.codegen()._get_host_cpu_name()
    if not llvm.get_process_triple().startswith("x86_64"):
        return frozenset()
    probe = llvm.parse_assembly(
        "define <8 x i32> @f(<8 x i32> %a, <8 x i32> %b) {\n %p = mul <8 x i32> %a, %b\n ret <8 x i32> %p\n}")
    machine = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(cpu=cpu, features="")
    return frozenset({"avx2"}) if re.search(r"vpmulld\s+%ymm", machine.emit_assembly(probe)) else frozenset()


def _feature_list():
    from numba.core.registry import cpu_target
    features = cpu_target.target_context.codegen()._tm_features
    if not isinstance(features, str):
        features = features.flatten()
    return [f for f in features.split(",") if f]


@contextlib.contextmanager
def recording_calls():
    """Within the block, a kernel called from Python neither compiles nor runs: the call is
    appended to the list this yields, as (kernel, the Numba types of its arguments), and returns 1
    (a stand-in for the count, loss or norm some kernels return). Run what a command is about to
    do on throwaway buffers to learn which compiled versions it needs (compile_ahead.py). Their
    contents are whatever memory held, so NumPy's floating-point warnings (a cast that overflows)
    are off in the block. Not while other threads call kernels."""
    global _recording
    outer, _recording = _recording, []
    try:
        with np.errstate(all="ignore"):
            yield _recording
    finally:
        _recording = outer


@contextlib.contextmanager
def interpreted(kernel):
    """kernel.py_func, with every compiled kernel it calls (directly or through other kernels)
    swapped for its py_func too while the block runs, so that the whole call runs interpreted:
    `with interpreted(matmul) as f: f(out, ...)`. A plain Python function that calls kernels
    (linear_forward) is given back as it is, with the kernels it calls swapped. Plain Python
    functions that compiled code replaces by an overload (stack_empty, prefetch_for_write,
    fast_exp's exp and sigmoid) run as they are, and the kernels they call (exp32, sigmoid64)
    stay compiled. Call only after the compiled versions exist (Numba reads the globals swapped
    here when it compiles), and not while other threads call the kernels."""
    swapped = []

    def swap(fn):
        for name in fn.__code__.co_names:
            callee = fn.__globals__.get(name)
            if hasattr(callee, "py_func"):
                swapped.append((fn.__globals__, name, callee))
                fn.__globals__[name] = callee.py_func
                swap(callee.py_func)

    fn = getattr(kernel, "py_func", kernel)
    swap(fn)
    try:
        yield fn
    finally:
        for namespace, name, callee in reversed(swapped):
            namespace[name] = callee
