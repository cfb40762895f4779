"""Compiling the kernels a command is about to use, two processes at once.

Numba compiles one kernel at a time, on one core, the first time each is called. A command that
knows which compiled versions it will need (its calls, recorded by `_jit.recording_calls` on
throwaway buffers) can compile them first, on two cores: this process takes them from the first,
a helper process from the last, and each claims a version before compiling it, by creating a file
named after it in a directory they share (O_EXCL: only one creation succeeds), until they meet.
The helper's versions reach this process through the cache (`_jit._SharedCache`, which both fill
safely), where the command's own first call finds them.

`compile_in_background` starts such a helper and returns at once (the test suite's start: its
first tests compile what they need themselves, and later ones load what the helper compiled).

The helper only saves time: if it cannot start or fails, the command compiles what is missing
itself, as it would without any of this.
"""
import importlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile

from . import _jit


def compile_ahead(calls):
    """Compile every (kernel, argument types) in `calls` that is neither loaded nor cached, with
    a helper process when there are two or more and a second core. Returns how many there were."""
    missing = _missing(calls)
    if not missing:
        return 0
    claims = tempfile.mkdtemp(prefix="transformer-jit-compile-")
    helper = None
    try:
        if len(missing) > 1 and _can_help():
            helper = _start_helper(missing, claims)
        for number, (kernel, signature) in enumerate(missing):
            if _claim(claims, number):
                kernel.compile(signature)
        if helper is not None:
            helper.wait()
    finally:
        if helper is not None and helper.poll() is None:  # interrupted: the helper's work is lost anyway
            helper.kill()
            helper.wait()
        shutil.rmtree(claims, ignore_errors=True)
    return len(missing)


def compile_in_background(calls):
    """Start a helper process that compiles, from the last, what `calls` lack in the cache, and
    return a function that ends it and cleans up (call it when done), or None if nothing is
    missing or no helper can run (`_can_help`)."""
    missing = _missing(calls)
    if not missing or not _can_help():
        return None
    claims = tempfile.mkdtemp(prefix="transformer-jit-compile-")
    helper = _start_helper(missing, claims)

    def stop():
        if helper is not None and helper.poll() is None:
            helper.kill()
            helper.wait()
        shutil.rmtree(claims, ignore_errors=True)
    return stop


def _missing(calls):
    """The (kernel, argument types) of `calls` neither loaded nor cached, in order, each once."""
    return [(kernel, signature) for kernel, signature in dict.fromkeys(calls)
            if signature not in kernel.overloads and not kernel.is_cached(signature)]


def _claim(claims, number):
    """Whether this process is the first to claim version `number` (then it compiles it)."""
    try:
        os.close(os.open(os.path.join(claims, str(number)), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def _can_help():
    """A helper needs a second core, and the cache's lock (POSIX) to fill the cache beside this process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores > 1 and _jit.fcntl is not None


def _start_helper(missing, claims):
    """A Python process that compiles `missing` from the last (see `_help`); None if it cannot start."""
    work = [(kernel.py_func.__module__, kernel.py_func.__name__, signature) for kernel, signature in missing]
    try:
        helper = subprocess.Popen([sys.executable, "-m", __name__, claims], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        helper.stdin.write(pickle.dumps(work))
        helper.stdin.close()
    except OSError:
        return None
    return helper


def _help(claims):
    """The helper: read the work from stdin (pickled by the parent process), and compile what it
    claims first, from the last, unless the cache has it by then."""
    work = pickle.loads(sys.stdin.buffer.read())
    for number in reversed(range(len(work))):
        module, name, signature = work[number]
        kernel = getattr(importlib.import_module(module), name)
        if _claim(claims, number) and not kernel.is_cached(signature):
            kernel.compile(signature)


if __name__ == "__main__":
    _help(sys.argv[1])
