"""How many threads the parallel kernels use: the cores that other programs leave free.

A parallel loop ends when its slowest thread does. Beside a program that keeps a core busy, a
thread of ours on that core runs only in its time slices, so every parallel loop of a step waits
for one; and OpenMP's idle threads, which spin between loops to start the next one at once, take
time slices from the threads that have work. A training step opens a hundred parallel loops or
more: beside one busy program it ran slower on two threads than on one (docs/performance.md).
So before a kernel called from Python runs, the
calling thread's Numba thread count is set to the cores that other programs leave free, and on an
idle machine the threads keep OpenMP's fast, spinning waits.

The load is read at most every INTERVAL seconds: the busy time of the cores this process may run
on, from the kernel's counters (/proc/stat, Linux), less this process's own CPU time, is what
other programs used. A core counts as taken when they used more than IDLE_SHARE of one.

The count never exceeds the one in effect before (NUMBA_NUM_THREADS, or `numba.set_num_threads`
called by the user), and no kernel's result depends on it: every kernel splits its work the same
way whatever the count, so a run keeps bit-identical results while its count changes.
TRANSFORMER_JIT_ADAPTIVE_THREADS=0, or `set_adaptive_threads(False)`, turns this off: the
benchmarks that compare implementations at one thread count do.
"""
import math
import os
import threading
import time

import numba

INTERVAL = 0.25  # seconds between two readings of the load
IDLE_SHARE = 0.25  # a core busy with other programs for less than this share of the time counts as free


def adaptive_by_default():
    """False where TRANSFORMER_JIT_ADAPTIVE_THREADS is 0, false, no or off (any case)."""
    value = os.environ.get("TRANSFORMER_JIT_ADAPTIVE_THREADS", "1")
    return value.strip().lower() not in ("0", "false", "no", "off")


_enabled = adaptive_by_default()
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_seconds(cpus, stat_path="/proc/stat"):
    """CPU seconds that the cores numbered in `cpus` have been busy since boot, all programs
    together, or None where the counters cannot be read.

    A line of /proc/stat reads `cpuN user nice system idle iowait irq softirq steal ...` in clock
    ticks; busy is all but idle and iowait (steal, time the hypervisor ran something else, counts
    as busy: it is not ours either)."""
    try:
        with open(stat_path, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines[1:]:  # the first line sums all cores
        if not line.startswith(b"cpu"):
            break  # the cores' lines come first; the rest (interrupt counts, thousands of them) is not needed
        fields = line.split()
        if len(fields) >= 9 and int(fields[0][3:]) in cpus:
            counts = [int(x) for x in fields[1:9]]
            ticks += sum(counts) - counts[3] - counts[4]
    return ticks / _TICKS_PER_SECOND


def free_cores(n_cores, others_busy):
    """Cores left for this process when other programs keep `others_busy` cores busy on average
    (at least one: a process always has the core it runs on)."""
    taken = max(0, math.ceil(others_busy - IDLE_SHARE))
    return max(1, n_cores - taken)


class _LoadWatch(threading.local):
    """Per calling thread (Numba's thread count is a per-thread setting): the last reading, and
    the count this thread had before the watch first changed it."""

    def __init__(self):
        self.cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
        self.read_at = None
        self.busy = self.own = 0.0
        self.ceiling = self.applied = None

    def update(self):
        now = time.monotonic()
        if self.read_at is None or now - self.read_at >= INTERVAL:
            self.observe(now, busy_seconds(self.cpus), time.process_time())

    def observe(self, now, busy, own):
        """Fit the thread count to the load since the last reading: `busy` seconds of the cores all
        programs together, `own` seconds of this process's CPU time, at time `now`."""
        if busy is None:
            self.read_at = math.inf  # no counters to read: the count stays as it is
            return
        if self.read_at is not None:
            others = ((busy - self.busy) - (own - self.own)) / (now - self.read_at)
            current = numba.get_num_threads()
            if current != self.applied:  # set from outside (or the first reading): the new ceiling
                self.ceiling = current
            self.applied = min(self.ceiling, free_cores(len(self.cpus), others))
            if self.applied != current:
                numba.set_num_threads(self.applied)
        self.read_at, self.busy, self.own = now, busy, own

    def reset(self):
        """Give back the count this watch changed, and forget the readings."""
        if self.applied is not None and numba.get_num_threads() == self.applied:
            numba.set_num_threads(self.ceiling)
        self.__init__()


_watch = _LoadWatch()


def fit_threads_to_load():
    """Set the calling thread's Numba thread count to the cores other programs leave free (at
    most every INTERVAL seconds; otherwise this returns at once)."""
    if _enabled:
        _watch.update()


def set_adaptive_threads(enabled):
    """Turn the fitting on or off for the whole process, and return whether it was on. The
    calling thread gets back the count it had before the fitting changed it."""
    global _enabled
    was, _enabled = _enabled, bool(enabled)
    _watch.reset()
    return was
