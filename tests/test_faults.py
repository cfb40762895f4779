"""Fault injection: a training process killed (SIGKILL) or interrupted (SIGINT, SIGTERM) at seeded
random moments resumes to exactly the weights and the metrics of an uninterrupted run, dropout on.

A moment is a random number of evaluations into the run (0 to 12 of 16) plus a random delay of up
to 20 ms. A run that ends before its signal lands (on a busy machine this process can wait long for
its turn) proves nothing and is started again: three runs must be cut short."""
import csv
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from transformer_jit.train.checkpoint import load_checkpoint

TRAIN = ["train", "--data", "input.txt", "--out-dir", "run", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
         "--block-size", "8", "--batch-size", "4", "--dropout", "0.1", "--max-iters", "400", "--eval-interval", "25",
         "--eval-iters", "2", "--sample-tokens", "0"]


def start(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "transformer_jit", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def outcome(run_dir):
    """The final weights, and every evaluation without its (timing-dependent) throughput."""
    arrays, meta = load_checkpoint(run_dir / "last.npz")
    with open(run_dir / "metrics.csv") as f:
        rows = [(r["step"], r["train_loss"], r["val_loss"], r["lr"]) for r in csv.DictReader(f)]
    return meta["step"], arrays, rows


def evaluations(run_dir):
    try:
        return max(0, len((run_dir / "metrics.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted run."""
    cwd = tmp_path_factory.mktemp("straight")
    (cwd / "input.txt").write_text("the quick brown fox jumps over the lazy dog. " * 60)
    code, _, err = finish(start(*TRAIN, cwd=cwd))
    assert code == 0, err
    return cwd, outcome(cwd / "run")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_interrupted_runs_resume_bit_for_bit(straight, tmp_path, signum):
    base, (steps, weights, rows) = straight
    (tmp_path / "input.txt").write_text((base / "input.txt").read_text())
    rng = random.Random(signum)
    interrupted = attempts = 0
    while interrupted < 3:
        attempts += 1
        assert attempts <= 10, f"only {interrupted} of 10 runs were cut short by their signal"
        run_dir = tmp_path / f"trial{attempts}"
        run_dir.mkdir()
        (run_dir / "input.txt").write_text((base / "input.txt").read_text())
        proc = start(*TRAIN, cwd=run_dir)
        wait_for = rng.randint(0, 12)
        while not ((run_dir / "run" / "config.json").exists() and evaluations(run_dir / "run") >= wait_for):
            assert proc.poll() is None, "the run ended before the signal"
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.02))
        proc.send_signal(signum)
        code, out, err = finish(proc)
        last = run_dir / "run" / "last.npz"
        if code == 0 or (last.exists() and load_checkpoint(last, arrays=False)[1]["step"] == steps):
            continue  # training had finished before the signal: nothing to resume
        interrupted += 1
        assert "Traceback" not in err
        if signum != signal.SIGKILL:
            assert code == 130 and "interrupted" in out + err, err
        if last.exists():
            code, _, err = finish(start("train", "--resume", "--out-dir", "run", cwd=run_dir))
        else:  # killed before the first checkpoint: start again
            code, _, err = finish(start(*TRAIN, "--overwrite", cwd=run_dir))
        assert code == 0, err
        got_steps, got_weights, got_rows = outcome(run_dir / "run")
        assert got_steps == steps and got_rows == rows
        for name in weights:
            np.testing.assert_array_equal(got_weights[name], weights[name], err_msg=name)
