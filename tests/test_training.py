"""Training end to end: it learns, it resumes exactly, and the command line works."""
import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from transformer_jit import GPT, CharTokenizer, GPTConfig, TextDataset, TrainConfig, Trainer, load_text
from transformer_jit.train.checkpoint import load_checkpoint
from transformer_jit.train.saved_model import load_model

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def make_trainer(tmp_path, max_iters, dropout=0.1, seed=3, model_seed=3, **overrides):
    tokenizer = CharTokenizer.from_text(TEXT)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=dropout)
    data = TextDataset(tokenizer.encode(TEXT), config.block_size)
    options = dict(batch_size=8, max_iters=max_iters, lr=3e-3, warmup_iters=10, eval_interval=10, eval_iters=2,
                   seed=seed, out_dir=str(tmp_path))
    train = TrainConfig(**{**options, **overrides})
    return Trainer(GPT(config, seed=model_seed), data, train, tokenizer, log=lambda msg: None)


def test_training_drives_loss_far_below_uniform(tmp_path):
    trainer = make_trainer(tmp_path, max_iters=200, dropout=0.0, eval_interval=100)
    start = trainer.evaluate()["train"]
    trainer.fit()
    end = trainer.evaluate()
    vocab = trainer.tokenizer.vocab_size
    assert abs(start - np.log(vocab)) < 0.3  # starts near chance
    assert end["train"] < 0.3 * np.log(vocab) and end["val"] < 0.3 * np.log(vocab)
    assert (tmp_path / "best.npz").exists() and (tmp_path / "last.npz").exists()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,train_loss,val_loss") and len(rows) == 3


def test_resume_continues_exactly(tmp_path):
    straight = make_trainer(tmp_path / "straight", max_iters=30)
    straight.fit()

    first = make_trainer(tmp_path / "resumed", max_iters=30)
    first.fit(until=20)
    # fresh objects, initialised differently: everything that matters must come from the checkpoint
    second = make_trainer(tmp_path / "resumed", max_iters=30, model_seed=99)
    second.restore(tmp_path / "resumed" / "last.npz")
    assert second.step == 20
    second.fit()

    np.testing.assert_array_equal(second.model.params, straight.model.params)
    np.testing.assert_array_equal(second.optimizer.m, straight.optimizer.m)
    def losses(path):  # every evaluation of the run, without the (timing-dependent) throughput column
        rows = list(csv.DictReader(open(path / "metrics.csv")))
        return [(r["step"], r["train_loss"], r["val_loss"], r["lr"]) for r in rows]

    assert len(losses(tmp_path / "straight")) == 3
    assert losses(tmp_path / "resumed") == losses(tmp_path / "straight")


def test_early_stopping_stops(tmp_path):
    trainer = make_trainer(tmp_path, max_iters=200, lr=0.0, min_lr=0.0, patience=2, dropout=0.0)
    trainer.fit()  # lr 0: validation never improves after the first evaluation
    assert trainer.step == 30


def test_ctrl_c_finishes_the_step_then_saves_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch):
    straight = make_trainer(tmp_path / "straight", max_iters=30)
    straight.fit()

    trainer = make_trainer(tmp_path / "run", max_iters=30)
    real_backward = trainer.model.backward

    def backward_hit_by_ctrl_c():  # the signal arrives in the middle of step 8
        if trainer.step == 7:
            os.kill(os.getpid(), signal.SIGINT)
        real_backward()

    monkeypatch.setattr(trainer.model, "backward", backward_hit_by_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    _, meta = load_checkpoint(tmp_path / "run" / "last.npz")
    assert meta["step"] == 8  # the interrupted step was finished, not cut in half
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back

    resumed = make_trainer(tmp_path / "run", max_iters=30, model_seed=99)
    resumed.restore(tmp_path / "run" / "last.npz")
    resumed.fit()
    np.testing.assert_array_equal(resumed.model.params, straight.model.params)


def test_bad_data_files_and_checkpoints_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_text(tmp_path / "latin1.txt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="damaged"):
        load_checkpoint(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match="not in the vocabulary: 'Z'"):
        CharTokenizer.from_text("abc").encode("abZ")
    with pytest.raises(ValueError, match="block_size"):
        TextDataset(np.arange(5), block_size=8)


def run_cli(*args, cwd):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "transformer_jit", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_trains_resumes_and_samples(tmp_path):
    (tmp_path / "input.txt").write_text(TEXT)
    common = ["--out-dir", "run", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8",
              "--batch-size", "4", "--eval-interval", "3", "--eval-iters", "2", "--sample-tokens", "20"]
    result = run_cli("train", "--data", "input.txt", "--max-iters", "6", *common, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "training config:" in result.stdout and "--- sample ---" in result.stdout
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["n_embd"] == 16 and saved["training"]["max_iters"] == 6

    result = run_cli("train", "--resume", "--out-dir", "run", "--max-iters", "9", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resumed from" in result.stdout and "at step 6" in result.stdout

    result = run_cli("sample", "--out-dir", "run", "--prompt", "the ", "--max-new-tokens", "15", "--seed", "1",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model, tokenizer, _ = load_model(tmp_path / "run" / "best.npz")
    expected = model.generate(tokenizer.encode("the ")[None], 15, temperature=0.8, seed=1)[0]  # sample's default
    assert result.stdout == tokenizer.decode(expected) + "\n"

    result = run_cli("sample", "--out-dir", "run", "--prompt", "QQ", cwd=tmp_path)
    assert result.returncode == 2 and "not in the vocabulary: 'Q'" in result.stderr
    result = run_cli("sample", "--out-dir", "nowhere", cwd=tmp_path)
    assert result.returncode == 2 and "run directory not found: nowhere" in result.stderr
