"""A run directory: what one training run writes there, and the lock that keeps it to one writer.

    config.json   the resolved configuration        metrics.csv   one row per evaluation
    best.npz      lowest validation loss            last.npz      the latest state, to resume from
    loss.png      metrics.csv drawn (train/loss_plot.py), when matplotlib is installed

Everything a run writes goes into the directory it is given now, never into a path recorded
earlier, so a run directory can be moved or copied and resumed where it is.
"""
import csv
import errno
import fcntl
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path

from ..util.atomic import atomic_write

RUN_FILES = ("config.json", "metrics.csv", "best.npz", "last.npz", "loss.png")
LOCK = ".lock"

_held = {}  # resolved directory -> [lock file descriptor, depth]: the lock is re-entrant in a process


def holds_run(out_dir):
    """Whether out_dir already holds (part of) a run."""
    return any((Path(out_dir) / name).exists() for name in RUN_FILES)


def make_run_dir(out_dir):
    """Create out_dir if needed, with an error that says what is wrong with it otherwise."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"{out_dir} is a file, not a directory") from None
    except OSError as e:
        raise ValueError(f"cannot create the run directory {out_dir}: {e.strerror}") from None
    return out_dir


@contextmanager
def run_lock(out_dir):
    """Hold out_dir's lock: a second process that tries to write the same run directory gets an
    error instead of interleaving its checkpoints with this one's."""
    out_dir = make_run_dir(out_dir)
    key = out_dir.resolve()
    if key in _held:
        _held[key][1] += 1
    else:
        try:
            fd = os.open(out_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ValueError(f"cannot write to the run directory {out_dir}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise ValueError(f"another training process is writing {out_dir}") from None
            raise
        _held[key] = [fd, 1]
    try:
        yield out_dir
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            os.close(_held.pop(key)[0])


def is_being_written(out_dir):
    """Whether another process holds out_dir's lock now (a run in progress there)."""
    out_dir = Path(out_dir)
    if out_dir.resolve() in _held:
        return False
    try:
        fd = os.open(out_dir / LOCK, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False  # no lock file: no run has ever been started there
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in (errno.EWOULDBLOCK, errno.EACCES)
    finally:
        os.close(fd)  # closing also drops the lock if it was taken
    return False


def clear_run(out_dir):
    """Remove the files of the run in out_dir (and nothing else)."""
    for name in RUN_FILES:
        (Path(out_dir) / name).unlink(missing_ok=True)


def write_json(path, data):
    """Write data as JSON to path atomically."""
    with atomic_write(path) as f:
        f.write((json.dumps(data, indent=2) + "\n").encode("utf-8"))


def append_metrics(out_dir, row):
    """Append one evaluation to metrics.csv (with the header if the file is new), flushed to disk."""
    path = Path(out_dir) / "metrics.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def trim_metrics(out_dir, step):
    """Drop the rows of metrics.csv after `step`: a run that stopped between writing a row and its
    checkpoint, and resumes from the checkpoint before, must not log those evaluations twice."""
    path = Path(out_dir) / "metrics.csv"
    if not path.exists():
        return
    text = path.read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    kept = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= step]
    if len(kept) < len(rows):
        out = io.StringIO(newline="")
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
        with atomic_write(path) as f:
            f.write(out.getvalue().encode("utf-8"))
