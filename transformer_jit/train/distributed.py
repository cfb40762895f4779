"""Data-parallel training over MPI: N processes (ranks), each with a replica of the model and a slice
of every batch, that together train as one process does with N times the batch.

    mpiexec -n 2 transformer-jit train ...                    two ranks on this machine
    mpiexec -f hostfile -n 4 transformer-jit train ...        four ranks on the hosts listed

    from transformer_jit.train import Trainer
    from transformer_jit.train.distributed import Distributed
    Trainer(model, data, config, distributed=Distributed.from_environment()).fit()   # under mpiexec

A step, on every rank: draw the same global batch of N x batch_size rows from the shared seed, take
this rank's rows, forward and backward. A loss is the mean over the targets a batch counts (padding
and ignored targets are not counted), so the step's gradient is the count-weighted mean
    g = sum_r n_r g_r / n,   n = sum_r n_r
which each rank makes by scaling its gradient by n_r / n (n from one small reduction) and summing
the flat gradient buffer over the ranks in place: one allreduce. Clipping and the optimizer step
then run on every rank on the same numbers, so the replicas stay identical without sending weights.
Rank 0 alone writes files; the others only compute, and need no access to rank 0's files.

A single process (no mpiexec, or mpiexec -n 1) gets None from `from_environment()` and trains
exactly as it would without this module: mpi4py is imported only when mpiexec started several ranks.

Faults: an error on a rank prints "rank R: error: ..." and aborts every rank (MPI_Abort), so no rank
waits for a partner that is gone; a rank killed outright is noticed by mpiexec, which ends the
others. A collective that waits longer than the timeout (TRANSFORMER_JIT_MPI_TIMEOUT seconds) ends
the run the same way, with a message that names the rank and what it waited for.
"""
import hashlib
import json
import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager

import numba
import numpy as np

from .. import kernels as K
from ..util.extras import install_hint

# What process managers tell each process about the job: MPICH's hydra (and Intel MPI) set PMI_SIZE,
# Open MPI sets OMPI_COMM_WORLD_SIZE.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
TIMEOUT_VARIABLE = "TRANSFORMER_JIT_MPI_TIMEOUT"
DEFAULT_TIMEOUT = 300.0  # seconds: longer than a first step's compilation or a large checkpoint's write
ABORT_GRACE = 2.0        # seconds a failing rank other than 0 leaves rank 0 to report an error first
ABORT_DELIVERY = 0.5     # seconds between writing the error and MPI_Abort, which may end the process
                         # manager's forwarding of stderr before the message has passed through it

_world = None  # the Distributed of this process, once from_environment() has made it


class DistributedError(RuntimeError):
    """Data-parallel training cannot run as asked (no MPI library, replicas that disagree)."""


def launched_size(environ=None):
    """How many processes mpiexec started, from its environment variables; 1 outside mpiexec."""
    environ = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        if name in environ:
            try:
                return int(environ[name])
            except ValueError:
                raise DistributedError(f"{name}={environ[name]!r} is not a number of processes") from None
    return 1


def timeout_from_environment(environ=None):
    """TRANSFORMER_JIT_MPI_TIMEOUT in seconds (> 0), or the default."""
    environ = os.environ if environ is None else environ
    text = environ.get(TIMEOUT_VARIABLE, "")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be a number of seconds > 0, got {text!r}")
    return value


def threads_per_rank(ranks_here, threads=None):
    """Numba threads for each of `ranks_here` ranks on this host: given, or the host's cores divided
    among them; ranks x threads never exceed the cores (nor the threads Numba was started with)."""
    cores = os.cpu_count() or 1
    fair = max(1, min(cores // ranks_here, numba.config.NUMBA_NUM_THREADS))
    if threads is None:
        return fair
    if not 1 <= threads <= fair:
        raise ValueError(f"threads must be between 1 and {fair} with {ranks_here} ranks on this host of {cores} "
                         f"cores, got {threads}")
    return threads


def current():
    """The Distributed of this process once `Distributed.from_environment()` has made it, else None
    (a single process, or before training set MPI up)."""
    return _world


class Distributed:
    """The ranks of one data-parallel run, and the collectives training needs, each watched by a
    timeout. Make it with `from_environment()`; `Trainer(..., distributed=...)` does the rest."""

    def __init__(self, comm, timeout=DEFAULT_TIMEOUT, threads=None):
        from mpi4py import MPI

        if not timeout > 0:
            raise ValueError(f"the timeout of collectives must be a number of seconds > 0, got {timeout!r}")
        self._mpi, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.timeout = timeout
        self.collective_seconds = 0.0  # time spent in collectives, waiting for the slowest rank included
        self._waiting = None            # (what, since) while a collective runs: the watchdog reads it
        threading.Thread(target=self._watch, name="mpi-watchdog", daemon=True).start()
        here = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks that share this host's memory
        self.ranks_here = here.Get_size()
        self.hosts = int(self.sum([here.Get_rank() == 0], "counting the hosts")[0])
        here.Free()
        with self._collective("gathering the ranks' process ids"):
            self.processes = comm.allgather((os.getpid(), MPI.Get_processor_name()))
        self.threads = threads_per_rank(self.ranks_here, threads)
        numba.set_num_threads(self.threads)

    @classmethod
    def from_environment(cls, timeout=None, threads=None):
        """The ranks mpiexec started, or None in a single process (MPI is then never imported).

        timeout: seconds a collective may wait (default: TRANSFORMER_JIT_MPI_TIMEOUT, else 300);
        threads: Numba threads per rank (default: this host's cores divided among its ranks).
        The first call sets up MPI and makes an uncaught exception on any rank abort them all; later
        calls return the same object."""
        global _world
        size = launched_size()
        if size <= 1:
            return None
        if _world is None:
            timeout = timeout_from_environment() if timeout is None else timeout
            try:
                from mpi4py import MPI
            except ImportError:
                raise DistributedError(f"mpiexec started {size} processes, but mpi4py is not installed: "
                                       f"{install_hint('mpi')}") from None
            _world = cls(MPI.COMM_WORLD, timeout, threads)
            sys.excepthook = _world._abort_on_uncaught
        return _world

    def describe(self):
        """E.g. '2 ranks on 1 host, 1 thread each'."""
        return (f"{self.size} ranks on {self.hosts} host{'s' if self.hosts > 1 else ''}, "
                f"{self.threads} thread{'s' if self.threads > 1 else ''} each")

    def describe_processes(self):
        """E.g. 'rank 0: pid 4242, rank 1: pid 4243' (with ' on HOST' over several hosts): mpiexec
        reports a rank that dies by its process id and host alone."""
        return ", ".join(f"rank {rank}: pid {pid}" + (f" on {host}" if self.hosts > 1 else "")
                         for rank, (pid, host) in enumerate(self.processes))

    # -- the pieces of a step ----------------------------------------------------------------------
    def rows(self, batch):
        """This rank's rows of a global batch, a tuple of arrays of size x B rows: rows [rank B, (rank + 1) B)."""
        per_rank = len(batch[0]) // self.size
        return tuple(a[self.rank * per_rank:(self.rank + 1) * per_rank] for a in batch)

    def combine_gradients(self, grads, loss, count, stop=False):
        """Make `grads`, this rank's gradient of its mean loss over `count` targets, the gradient of
        the mean loss over every rank's targets, on every rank: g = sum_r n_r g_r / n.

        Returns (that mean loss, whether any rank asked to stop): one small reduction carries the
        counts, the losses and the stop requests, one in-place allreduce the gradients."""
        totals = self.sum([count, loss * count if count else 0.0, bool(stop)], "the step's loss and targets")
        n = totals[0]
        if n:
            K.scale_(grads, count / n)
        self.allreduce_(grads, "the gradient allreduce")
        return (totals[1] / n if n else 0.0), bool(totals[2])

    # -- collectives -------------------------------------------------------------------------------
    def allreduce_(self, buffer, what):
        """buffer <- the sum of every rank's buffer, in place (a C-contiguous array)."""
        with self._collective(what):
            self.comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)

    def sum(self, values, what):
        """The sum over ranks of a few numbers, as float64, on every rank."""
        totals = np.array(values, dtype=np.float64)
        self.allreduce_(totals, what)
        return totals

    def broadcast_(self, buffer, what):
        """buffer <- rank 0's buffer, in place."""
        with self._collective(what):
            self.comm.Bcast(buffer, root=0)

    def broadcast_json(self, value, what):
        """Rank 0's `value` (anything JSON can hold; the other ranks pass None), on every rank."""
        data = json.dumps(value).encode("utf-8") if self.rank == 0 else b""
        length = np.array([len(data)], dtype=np.int64)
        self.broadcast_(length, what)
        buffer = np.frombuffer(data, dtype=np.uint8).copy() if self.rank == 0 else np.empty(length[0], np.uint8)
        self.broadcast_(buffer, what)
        return json.loads(buffer.tobytes().decode("utf-8"))

    def broadcast_checkpoint(self, load):
        """(arrays, meta) as rank 0 reads them with `load()`, on every rank, bit for bit: the other
        ranks need no access to rank 0's files."""
        arrays, meta = load() if self.rank == 0 else ({}, None)
        layout = [[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()]
        layout, meta = self.broadcast_json([layout, meta], "the checkpoint from rank 0")
        received = {}
        for name, dtype, shape in layout:
            buffer = arrays[name].copy(order="C") if self.rank == 0 else np.empty(shape, dtype)
            self.broadcast_(buffer, f"the checkpoint array {name} from rank 0")
            received[name] = buffer
        return received, meta

    def replicate(self, model, description):
        """Start every rank from the same run: the same `description` of it (a string; ranks started
        otherwise are an error naming them) and rank 0's weights. Each rank then draws its own dropout masks."""
        digest = np.frombuffer(hashlib.sha256(description.encode("utf-8")).digest(), dtype=np.uint8)
        digests = np.empty((self.size, digest.size), dtype=np.uint8)
        with self._collective("comparing the runs of the ranks"):
            self.comm.Allgather(digest, digests)
        differ = [r for r in range(self.size) if (digests[r] != digests[0]).any()]
        if differ:
            raise DistributedError(f"rank{'s' if len(differ) > 1 else ''} {', '.join(map(str, differ))} "
                                   f"started another run than rank 0 (model, training options or parameter "
                                   f"count differ): start every rank with the same options")
        self.broadcast_(model.params, "rank 0's initial weights")
        model.rank = self.rank

    def check_replicas(self, fingerprint):
        """A DistributedError unless every rank has the same `fingerprint` of its weights (a float):
        the replicas must never drift apart, whatever the MPI library's summation order."""
        extremes = np.array([fingerprint, -fingerprint], dtype=np.float64)
        with self._collective("comparing the replicas"):
            self.comm.Allreduce(self._mpi.IN_PLACE, extremes, op=self._mpi.MAX)
        if extremes[0] != -extremes[1]:
            raise DistributedError(f"the weights of the ranks drifted apart (fingerprints {-extremes[1]!r} to "
                                   f"{extremes[0]!r}): the MPI library's sums differ between ranks")

    # -- faults ------------------------------------------------------------------------------------
    def abort(self, status, message):
        """Print `message` on stderr, each line prefixed "rank R: ", and end every rank with `status`.

        A rank other than 0 first leaves rank 0 a moment: an error that all ranks meet together (a
        diverged loss, a bad option) is then reported once, by rank 0, whose abort ends this rank."""
        if self.rank != 0:
            time.sleep(ABORT_GRACE)
        lines = message.splitlines() or [""]
        sys.stderr.write("".join(f"rank {self.rank}: {line}\n" for line in lines))
        sys.stderr.flush()
        time.sleep(ABORT_DELIVERY)
        self.comm.Abort(status)

    def _abort_on_uncaught(self, kind, error, tb):
        self.abort(1, "".join(traceback.format_exception(kind, error, tb)).rstrip())

    @contextmanager
    def _collective(self, what):
        start = time.perf_counter()
        self._waiting = (what, time.monotonic())
        try:
            yield
        finally:
            self._waiting = None
            self.collective_seconds += time.perf_counter() - start

    def _watch(self):
        """The watchdog thread: a collective that waits longer than the timeout aborts every rank.
        (mpi4py releases the GIL inside MPI calls, so this thread runs while one blocks.)"""
        period = min(1.0, self.timeout / 10)
        while True:
            time.sleep(period)
            waiting = self._waiting
            if waiting is not None and time.monotonic() - waiting[1] > self.timeout:
                self.abort(1, f"error: {waiting[0]} waited more than {self.timeout:g} s for the other ranks: one "
                              f"of them hangs or is gone ({TIMEOUT_VARIABLE} sets the timeout); stopping all ranks")


def resumed_batch_size(saved_ranks, saved_batch_size, ranks, batch_size=None):
    """The per-rank batch size that keeps a saved run's global batch (saved_ranks x saved_batch_size)
    on `ranks` ranks; a ValueError when it does not divide, or when `batch_size`, given, differs."""
    total = saved_ranks * saved_batch_size
    keep = f"the run trained on {saved_ranks} rank{'s' if saved_ranks > 1 else ''} x --batch-size " \
           f"{saved_batch_size} = {total} rows a step"
    if total % ranks:
        raise ValueError(f"{keep}, which {ranks} ranks cannot share equally: resume it on a number of ranks "
                         f"that divides {total}")
    if batch_size is not None and batch_size * ranks != total:
        raise ValueError(f"{keep}; on {ranks} rank{'s' if ranks > 1 else ''} that is --batch-size "
                         f"{total // ranks}, not {batch_size} (--batch-size is per rank)")
    return total // ranks
