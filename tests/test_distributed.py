"""Data-parallel training under `mpiexec -n 2`: equal to one process with twice the batch, rank 0 alone
writes, every stop resumes, every fault ends all ranks quickly with a message naming the rank.

The runs use tiny models. Rank 1 runs in a directory of its own (`mpiexec -n 1 -wdir A ... : -n 1
-wdir B ...`), with the same relative --out-dir as rank 0: B must stay empty, and a resumed rank 1
has no checkpoint of its own to read. The tests that need MPI skip without mpi4py and mpiexec
(`pip install -e '.[mpi]'`)."""
import csv
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import pytest
from mpi_worker import seq2seq_trainer

from transformer_jit.cli import main
from transformer_jit.models import GPTConfig
from transformer_jit.models import GPT as GPTModel  # GPT names the command line below
from transformer_jit.nn.layers import Dropout
from transformer_jit.train.checkpoint import load_checkpoint, save_checkpoint
from transformer_jit.train.distributed import (
    TIMEOUT_VARIABLE, Distributed, launched_size, resumed_batch_size, threads_per_rank, timeout_from_environment,
)

TESTS = Path(__file__).resolve().parent
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                               reason="mpi4py and mpiexec are not installed: pip install -e '.[mpi]'")

# 400 steps of a GPT of 3,712 parameters: a few ms a step, long enough to stop in the middle.
GPT = ["train", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--no-bias",
       "--max-iters", "400", "--eval-interval", "25", "--eval-iters", "2", "--lr", "1e-2", "--warmup-iters", "2",
       "--sample-tokens", "0"]
TEXT = "the quick brown fox jumps over the lazy dog. " * 60
# Seconds a job may take to end after the event that ends it (a rank killed, an error written): far
# more than it needs, so that only a hang fails on a busy machine. Start-up is never timed.
FAR = 30.0


# -- helpers ---------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def one_thread():
    """Runs in this process (the one-process references) on one thread, like each rank: a tiny
    model's steps are much faster so on a busy machine than on threads that wait for each other."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(threads)


def two_ranks(cwd, *args):
    """Start `transformer-jit args` on two ranks, rank 0 in cwd/A and rank 1 in cwd/B, each rank's
    stdout and stderr in cwd/out.R and cwd/err.R; a session of its own, so it can be killed whole."""
    command = [sys.executable, "-m", "transformer_jit", *args]
    for rank in "AB":
        (cwd / rank).mkdir(exist_ok=True)
    return subprocess.Popen([MPIEXEC, f"-outfile-pattern={cwd}/out.%r", f"-errfile-pattern={cwd}/err.%r",
                             "-n", "1", "-wdir", str(cwd / "A"), *command, ":",
                             "-n", "1", "-wdir", str(cwd / "B"), *command],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc, timeout=300):  # only a hang runs this long, however busy the machine
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def seconds_since_written(path):
    """How long ago `path` was last written: called as a job ends, the time from its last line to the end."""
    return time.time() - path.stat().st_mtime


def output(cwd, stream, rank):
    path = cwd / f"{stream}.{rank}"
    return path.read_text() if path.exists() else ""


def weights(run_dir):
    arrays, _ = load_checkpoint(run_dir / "last.npz")
    return {k: v for k, v in arrays.items() if k.startswith("model.")}


def relative_difference(a, b):
    """||a - b|| / ||b|| over all the weights together."""
    x = np.concatenate([a[k].ravel() for k in sorted(a)]).astype(np.float64)
    y = np.concatenate([b[k].ravel() for k in sorted(b)]).astype(np.float64)
    return np.linalg.norm(x - y) / np.linalg.norm(y)


def losses(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [(int(r["step"]), float(r["train_loss"]), float(r["val_loss"])) for r in csv.DictReader(f)]


def evaluations(run_dir):
    try:
        return len((run_dir / "metrics.csv").read_text().splitlines()) - 1
    except FileNotFoundError:
        return 0


def stop_after_evaluations(proc, run_dir, n):
    while evaluations(run_dir) < n:
        assert proc.poll() is None, "the run ended before it could be stopped"
        time.sleep(0.002)


def rank_1_pid(cwd):
    """The process of rank 1: python, working in cwd/B."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd") == str(cwd / "B") and \
                    (entry / "cmdline").read_bytes().startswith(sys.executable.encode()):
                return int(entry.name)
        except OSError:
            continue
    raise AssertionError("rank 1 not found")


def assert_same_run(got, expected):
    """Bit for bit: every weight and every logged loss."""
    a, b = weights(got), weights(expected)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert losses(got) == losses(expected)


def assert_close_run(got, expected):
    """Equal to float rounding: 1e-5 relative on the weights, the logged losses to their 6 decimals."""
    assert relative_difference(weights(got), weights(expected)) < 1e-5
    np.testing.assert_allclose(losses(got), losses(expected), rtol=0, atol=2e-6)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted run on two ranks with --batch-size 2."""
    cwd = tmp_path_factory.mktemp("straight")
    (cwd / "input.txt").write_text(TEXT)
    code, out = finish(two_ranks(cwd, *GPT, "--data", str(cwd / "input.txt"), "--batch-size", "2", "--out-dir", "run"))
    assert code == 0, out + output(cwd, "err", 0) + output(cwd, "err", 1)
    return cwd


# -- equivalence and files ------------------------------------------------------------------------
@needs_mpi
def test_two_ranks_equal_one_process_with_twice_the_batch(straight, tmp_path, capsys):
    assert main([*GPT, "--data", str(straight / "input.txt"), "--batch-size", "4", "--out-dir", str(tmp_path)]) == 0
    assert_close_run(straight / "A" / "run", tmp_path)


@needs_mpi
def test_rank_0_alone_writes_and_prints(straight):
    written = sorted(p.name for p in (straight / "A" / "run").iterdir() if p.name != "loss.png")  # with matplotlib
    assert written == [".lock", "best.npz", "config.json", "last.npz", "metrics.csv"]
    assert list((straight / "B").iterdir()) == []
    out = output(straight, "out", 0)
    assert out.count("2 ranks on 1 host, 1 thread each; global batch 2 x 2") == 1
    assert out.count("step 400: train loss") == 1
    assert output(straight, "out", 1) == "" and output(straight, "err", 1) == ""
    assert load_checkpoint(straight / "A" / "run" / "last.npz", arrays=False)[1]["world_size"] == 2


# -- stops and resumes ----------------------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize("how", ["ctrl-c", "sigkill-job"])
def test_a_stopped_job_resumes_bit_for_bit(straight, tmp_path, how):
    """Ctrl-C (mpiexec passes SIGINT to every rank: they agree on the step, rank 0 saves) or SIGKILL
    of every process at once; then the run resumes on two ranks, rank 1 without any file of its own."""
    (tmp_path / "input.txt").write_text(TEXT)
    proc = two_ranks(tmp_path, *GPT, "--data", str(tmp_path / "input.txt"), "--batch-size", "2", "--out-dir", "run")
    stop_after_evaluations(proc, tmp_path / "A" / "run", 2)
    if how == "ctrl-c":
        proc.send_signal(signal.SIGINT)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
    code, out = finish(proc)
    if how == "ctrl-c":
        assert code == 130, out
        stopped = output(tmp_path, "out", 0)
        assert "SIGINT: stopped after step" in stopped and "--resume" in stopped
        step = int(stopped.split("stopped after step ")[1].split(";")[0])
        assert load_checkpoint(tmp_path / "A" / "run" / "last.npz", arrays=False)[1]["step"] == step
    code, out = finish(two_ranks(tmp_path, "train", "--resume", "--out-dir", "run"))
    assert code == 0, out + output(tmp_path, "err", 0)
    assert_same_run(tmp_path / "A" / "run", straight / "A" / "run")
    assert list((tmp_path / "B").iterdir()) == []


@needs_mpi
def test_a_rank_that_dies_ends_the_job_and_the_run_resumes_on_one_process(straight, tmp_path, capsys):
    """SIGKILL of rank 1: mpiexec ends rank 0 at once. One process then resumes with the same global
    batch (--batch-size 4, found by itself), and refuses a --batch-size that would change it."""
    (tmp_path / "input.txt").write_text(TEXT)
    proc = two_ranks(tmp_path, *GPT, "--data", str(tmp_path / "input.txt"), "--batch-size", "2", "--out-dir", "run")
    stop_after_evaluations(proc, tmp_path / "A" / "run", 2)
    pid = rank_1_pid(tmp_path)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    code, out = finish(proc)
    assert code != 0 and time.monotonic() - killed < FAR, out
    # mpiexec names a process that ended by its pid; rank 0's first lines say which rank each pid is
    processes = output(tmp_path, "out", 0)
    assert f"rank 1: pid {pid}" in processes
    reported = re.findall(r"PID (\d+)", out)
    assert reported and all(f": pid {p}" in processes for p in reported), (reported, processes)
    run = tmp_path / "A" / "run"
    assert main(["train", "--resume", "--out-dir", str(run), "--batch-size", "2"]) == 2
    assert "on 1 rank that is --batch-size 4, not 2 (--batch-size is per rank)" in capsys.readouterr().err
    assert main(["train", "--resume", "--out-dir", str(run)]) == 0
    assert '"batch_size": 4' in capsys.readouterr().out
    assert_close_run(run, straight / "A" / "run")


@needs_mpi
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                    reason="two hosts as network namespaces need root and the ip command")
def test_two_hosts_over_tcp_equal_two_ranks_on_one(straight, tmp_path):
    """scripts/multihost_netns.sh: one rank in each of two network namespaces, over TCP on a veth."""
    proc = subprocess.Popen([str(TESTS.parent / "scripts" / "multihost_netns.sh"), sys.executable, "-m",
                             "transformer_jit", *GPT, "--data", str(straight / "input.txt"), "--batch-size", "2",
                             "--out-dir", str(tmp_path / "run")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            env={**os.environ, "NUMBA_NUM_THREADS": "1", "MPIEXEC": MPIEXEC})
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:  # the script's trap removes the namespaces on SIGTERM
            os.killpg(proc.pid, signal.SIGTERM)
            proc.communicate()
    if proc.returncode == 77:
        pytest.skip(err.strip())
    assert proc.returncode == 0, err
    assert "2 ranks on 2 hosts, 1 thread each" in out
    assert_close_run(tmp_path / "run", straight / "A" / "run")
    received = int(err.split("host 0 received ")[1].split()[0])
    assert received >= 400 * 3712 * 4  # every step's gradients (3,712 floats) crossed the veth


# -- faults ---------------------------------------------------------------------------------------
@needs_mpi
def test_an_error_on_rank_0_ends_every_rank_with_one_line(tmp_path):
    (tmp_path / "A" / "run").mkdir(parents=True)
    (tmp_path / "A" / "run" / "metrics.csv").write_text("step\n")  # a run is there: rank 0 refuses it
    (tmp_path / "input.txt").write_text(TEXT)
    code, out = finish(two_ranks(tmp_path, *GPT, "--data", str(tmp_path / "input.txt"), "--batch-size", "2",
                                 "--out-dir", "run"))
    assert code == 2 and seconds_since_written(tmp_path / "err.0") < FAR, out
    assert output(tmp_path, "err", 0).startswith("rank 0: error: run already holds a run: continue it with --resume")
    assert output(tmp_path, "err", 1) == ""


@needs_mpi
def test_library_seq2seq_equals_one_process_then_a_raising_rank_ends_every_rank(tmp_path):
    """Through Trainer(..., distributed=Distributed.from_environment()): an encoder-decoder on pairs
    whose padding gives the ranks different counts of targets (so the gradients must be weighted by
    them); then rank 1 raises, and every rank ends within seconds."""
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, str(TESTS / "mpi_worker.py"), "train-then-raise",
                             str(tmp_path / "ranks")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seq2seq_trainer(tmp_path / "one", batch_size=4).fit()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert "rank 1: RuntimeError: injected failure" in err and "rank 0:" not in err
    assert relative_difference(weights(tmp_path / "ranks"), weights(tmp_path / "one")) < 1e-5
    np.testing.assert_allclose(losses(tmp_path / "ranks"), losses(tmp_path / "one"), rtol=0, atol=2e-6)


@needs_mpi
def test_a_collective_that_hangs_times_out_naming_the_rank(tmp_path):
    """Rank 1 sleeps instead of joining a collective: after the timeout rank 0 names it and ends the
    job (a hang would run into communicate's limit). The worker lines the ranks up before the
    timeout applies, so a rank that starts late on a busy machine is not what times out."""
    proc = subprocess.Popen([MPIEXEC, f"-errfile-pattern={tmp_path}/err.%r", "-n", "2", sys.executable,
                             str(TESTS / "mpi_worker.py"), "hang"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, TIMEOUT_VARIABLE: "5"})
    code, out = finish(proc)
    err = output(tmp_path, "err", 0)
    assert code == 1 and seconds_since_written(tmp_path / "err.0") < FAR, out + err
    assert "rank 0: error: the test collective waited more than 5 s for the other ranks" in err, err


# -- without MPI ----------------------------------------------------------------------------------
def test_a_single_process_imports_nothing_of_mpi(monkeypatch):
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # importing it now would raise
    assert Distributed.from_environment() is None
    assert launched_size({"PMI_SIZE": "1"}) == 1 and launched_size({"OMPI_COMM_WORLD_SIZE": "4"}) == 4


@pytest.mark.parametrize("saved_ranks, saved_batch, ranks, given, expected", [
    (2, 2, 1, None, 4), (2, 2, 4, None, 1), (1, 6, 3, 2, 2),
    (2, 3, 4, None, "which 4 ranks cannot share equally"),
    (2, 2, 1, 2, "on 1 rank that is --batch-size 4, not 2"),
])
def test_a_resumed_run_keeps_its_global_batch(saved_ranks, saved_batch, ranks, given, expected):
    if isinstance(expected, int):
        assert resumed_batch_size(saved_ranks, saved_batch, ranks, given) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            resumed_batch_size(saved_ranks, saved_batch, ranks, given)


def test_threads_and_timeout_settings():
    cores = os.cpu_count()
    assert threads_per_rank(cores) == 1 and threads_per_rank(2 * cores) == 1
    with pytest.raises(ValueError, match="threads must be between 1 and 1"):
        threads_per_rank(cores, threads=2)
    assert timeout_from_environment({TIMEOUT_VARIABLE: "2.5"}) == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(ValueError, match=TIMEOUT_VARIABLE):
            timeout_from_environment({TIMEOUT_VARIABLE: bad})


def test_each_rank_draws_its_own_dropout_masks_and_rank_0_those_of_one_process():
    """Two training forwards per replica: a rank's masks repeat with the same seed, differ between
    forwards and between ranks as independent draws do, and rank 0's are a single process's."""
    p = 0.5
    x = np.random.default_rng(0).integers(0, 64, (4, 16))

    def masks(rank=None):
        model = GPTModel(GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=32, dropout=p), seed=7)
        if rank is not None:  # a single process never sets it
            model.rank = rank
        drawn = []
        for _ in range(2):
            model.forward(x)
            drawn.append(np.concatenate([layer.mask.ravel() != 0 for layer in model.modules()
                                           if isinstance(layer, Dropout)]))
        return drawn

    single, rank_0, rank_1, rank_2 = masks(), masks(0), masks(1), masks(2)
    for a, b in zip(single, rank_0):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(rank_1, masks(1)):
        np.testing.assert_array_equal(a, b)
    # independent masks agree on p^2 + (1 - p)^2 = 1/2 of the elements, within 5 standard deviations
    pairs = [(single[0], single[1]), (single[0], rank_1[0]), (single[1], rank_1[1]), (rank_1[0], rank_2[0]),
             (single[0], rank_2[0])]
    for a, b in pairs:
        assert abs(np.mean(a == b) - 0.5) < 5 * np.sqrt(0.25 / a.size)


def test_checkpoints_from_before_world_size_load(tmp_path):
    meta = {"kind": "gpt", "model_config": {}, "train_config": {}, "tokenizer": None, "step": 3, "rng_state": {},
            "dropout_seed": 0, "forward_count": 0, "best_val_loss": 1.0, "evals_since_best": 0, "info": {}}
    save_checkpoint(tmp_path / "old.npz", {}, meta)
    assert "world_size" not in load_checkpoint(tmp_path / "old.npz", arrays=False)[1]
