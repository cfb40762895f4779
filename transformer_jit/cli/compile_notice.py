"""Saying so while Numba compiles: the kernels are compiled for this CPU on first use and cached
(cache=True), so a fresh install's first command would otherwise sit silent for a minute.

Numba broadcasts a "numba:compile" event around every real compilation, never around a load from
its cache, so a warm run prints nothing. The first compilation of a burst prints a line; on a
terminal a status line then counts the kernels and the seconds; when no compilation has run for
QUIET seconds, one line says how many kernels took how long. The command line turns this on
(`CompileNotice` as a context manager); the library itself stays quiet.
"""
import sys
import threading
import time

from numba.core import event
from tqdm.auto import tqdm

QUIET = 1.0  # seconds without a compilation that end a burst of them
TICK = 0.5  # seconds between two redraws of the terminal's status line


class CompileNotice(event.Listener):
    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.lock = threading.Lock()
        self.depth = 0  # compilations in progress: a kernel compiles the kernels it calls inside its own
        self.in_burst, self.bursts = False, 0
        self.kernels, self.seconds = 0, 0.0  # of the current burst
        self.outer_start = self.last_end = None
        self.status = self.watcher = None
        self.stopping = threading.Event()

    def __enter__(self):
        event.register("numba:compile", self)
        return self

    def __exit__(self, *exc):
        event.unregister("numba:compile", self)
        self.stopping.set()
        watcher = self.watcher
        if watcher is not None:
            watcher.join()
        with self.lock:
            if self.in_burst:
                self._finish()

    def on_start(self, ev):
        with self.lock:
            if self.depth == 0:
                if not self.in_burst:
                    self._begin()
                self.outer_start = time.perf_counter()
            self.depth += 1

    def on_end(self, ev):
        with self.lock:
            self.depth -= 1
            self.kernels += 1
            if self.depth == 0:
                self.last_end = time.perf_counter()
                self.seconds += self.last_end - self.outer_start
            if self.status is not None:
                self.status.update(1)

    def _begin(self):
        self.in_burst, self.last_end = True, time.perf_counter()
        more = "more " if self.bursts else ""
        tqdm.write(f"compiling {more}kernels for this CPU (first run only: later runs load them from the cache)",
                   file=self.stream)
        if _is_terminal(self.stream):
            self.status = tqdm(desc="compiling", file=self.stream, leave=False,
                               bar_format="{desc}: {n} kernels, {elapsed}")
        self.watcher = threading.Thread(target=self._watch, name="compile-notice", daemon=True)
        self.watcher.start()

    def _watch(self):
        """Redraw the status line, and end the burst once compilations have paused for QUIET seconds."""
        while not self.stopping.wait(TICK):
            with self.lock:
                if self.depth == 0 and time.perf_counter() - self.last_end >= QUIET:
                    self._finish()
                    return
                if self.status is not None:
                    self.status.refresh()

    def _finish(self):
        if self.status is not None:
            self.status.close()
            self.status = None
        plural = "" if self.kernels == 1 else "s"
        tqdm.write(f"compiled {self.kernels} kernel{plural} in {self.seconds:.1f} s", file=self.stream)
        self.in_burst, self.bursts = False, self.bursts + 1
        self.kernels, self.seconds = 0, 0.0
        self.watcher = None


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
