"""Small timing and table helpers shared by the benchmark scripts (standard library only).

`measure` returns the MEDIAN time of one call over repeated runs: the median ignores the
occasional run slowed down by another process, which the minimum would hide and the mean
would smear in. `warn_if_busy` says up front when other programs keep the cores busy that the
benchmark's threads need: then no median helps, every parallel loop waits for a time slice.
"""
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Timing:
    median: float  # seconds per call
    best: float  # fastest repeat, seconds per call
    repeats: int  # timed repeats the median is taken over
    number: int  # calls per repeat (several when one call is too short to time on its own)


def measure(fn, setup=None, budget=0.3, min_repeats=5, max_repeats=10_000, warmup=True):
    """Time `fn()` and return a Timing.

    warmup:  the first call is a warm-up (fills caches; for a jitted function, compiles it) and is
             not a sample; with warmup=False it is (for very slow functions timed once or twice).
             Either way its duration sizes the measurement.
    setup:   if given, called before EVERY call, untimed (e.g. to restore an input that fn changes
             in place); each repeat is then a single call.
    budget:  seconds to spend timing, roughly; at least min_repeats, at most max_repeats repeats.
    Without setup, calls are grouped so that one repeat lasts at least ~1 ms, which keeps timer
    overhead and resolution out of microsecond-scale results.
    """
    if setup is not None:
        setup()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-9)
    number = 1 if setup is not None else max(1, int(1e-3 / once))
    repeats = int(min(max_repeats, max(min_repeats, budget / (once * number))))
    times = [] if warmup or number > 1 else [once]
    for _ in range(repeats - len(times)):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return Timing(statistics.median(times), min(times), repeats, number)


def busy_message(cores, others_busy, load_average, threads):
    """The warning for a machine whose other programs keep `others_busy` of its `cores` busy, for a
    benchmark on `threads` threads; None when they leave it enough free cores."""
    from transformer_jit.kernels.threads import free_cores
    free = free_cores(cores, others_busy)
    if free >= threads:
        return None
    return (f"warning: the machine is busy: other programs keep {others_busy:.1f} of its {cores} cores busy (load "
            f"average {load_average:.1f}), so timings on {threads} threads measure the waiting for time slices, "
            f"not the code. Run on an idle machine, or with --threads {free}.")


def warn_if_busy(threads, seconds=0.5):
    """Print busy_message to stderr if other programs keep the cores busy, watched for `seconds` as
    the kernels' thread fitting reads it (transformer_jit/kernels/threads.py). Call it after the
    benchmark has set its thread environment: it imports the package."""
    from transformer_jit.kernels.threads import busy_seconds
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    busy, own, start = busy_seconds(cpus), time.process_time(), time.monotonic()
    time.sleep(seconds)
    busy_after = busy_seconds(cpus)
    if busy is None or busy_after is None:
        return  # no counters to read (not Linux)
    others = max(0.0, ((busy_after - busy) - (time.process_time() - own)) / (time.monotonic() - start))
    message = busy_message(len(cpus), others, os.getloadavg()[0], threads)
    if message:
        print(message, file=sys.stderr, flush=True)


def fmt_time(seconds):
    """1.23 s / 45.6 ms / 789 us / 12.3 ns style, three significant digits; '-' for None."""
    if seconds is None:
        return "-"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if abs(seconds) >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"


def fmt_num(x, suffix=""):
    """Three significant digits plus a suffix; '-' for None."""
    return "-" if x is None else f"{x:.3g}{suffix}"


def ratio(a, b):
    """a / b, or None when either is missing or b is not positive."""
    if a is None or b is None or b <= 0:
        return None
    return a / b


def table(headers, rows, align=None):
    """Format rows (lists of strings) under headers as aligned text columns.

    align: one character per column, '<' left or '>' right; by default the first two columns are
    left-aligned and the rest right-aligned. A row that is a plain string is printed as is (use
    it for group titles).
    """
    n = len(headers)
    align = align or "<<" + ">" * (n - 2)
    widths = [len(h) for h in headers]
    for row in rows:
        if not isinstance(row, str):
            widths = [max(w, len(cell)) for w, cell in zip(widths, row)]

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [row if isinstance(row, str) else line(row) for row in rows]
    return "\n".join(out)


def export_revision(rev, dest):
    """Write the package as of git revision `rev` into `dest` so that `PYTHONPATH=dest` imports it
    as `transformer_jit` (with `kernels/` as transformer_jit.kernels, as installed). Returns dest."""
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "transformer_jit", "kernels"], capture_output=True)
    if archive.returncode != 0:
        sys.exit(f"git archive {rev}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, check=True)
    shutil.move(os.path.join(dest, "kernels"), os.path.join(dest, "transformer_jit", "kernels"))
    return dest
