"""Run directories stay consistent: failed saves, moved runs, refused overwrites, locks, divergence,
checkpoints that are damaged or hold what weights cannot be."""
import csv
import errno
import json
import shutil
import zipfile

import numpy as np
import pytest

from transformer_jit import GPT, CharTokenizer, GPTConfig, TextDataset, TrainConfig, Trainer
from transformer_jit.cli import build_parser, main
from transformer_jit.cli.common import _train_config
from transformer_jit.train import checkpoint
from transformer_jit.train.checkpoint import load_checkpoint
from transformer_jit.train.run_dir import run_lock
from transformer_jit.train.saved_model import load_model
from transformer_jit.train.trainer import CheckpointError, TrainingDiverged

TEXT = "the quick brown fox jumps over the lazy dog. " * 40
TINY = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
        "--eval-interval", "3", "--eval-iters", "2", "--sample-tokens", "0"]


def make_trainer(out_dir, max_iters=12, **overrides):
    tok = CharTokenizer.from_text(TEXT)
    config = GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
    options = dict(batch_size=4, max_iters=max_iters, lr=3e-3, warmup_iters=2, eval_interval=4, eval_iters=2,
                   out_dir=str(out_dir))
    return Trainer(GPT(config, seed=1), TextDataset(tok.encode(TEXT), 8), TrainConfig(**{**options, **overrides}),
                   tok, log=lambda message: None)


def test_a_failed_save_keeps_the_previous_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path)
    trainer.fit(until=4)
    before = (tmp_path / "last.npz").read_bytes()

    def disk_full(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.np, "savez", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device.*intact"):
        trainer.fit(until=8)
    assert (tmp_path / "last.npz").read_bytes() == before
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name != "loss.png")  # loss.png: with matplotlib
    assert kept == [".lock", "best.npz", "last.npz", "metrics.csv"]


def test_a_moved_run_resumes_where_it_is_and_leaves_the_original_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_text(TEXT)
    assert main(["train", "--data", "input.txt", "--out-dir", "run", "--max-iters", "6", *TINY]) == 0
    original = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    shutil.copytree(tmp_path / "run", tmp_path / "elsewhere" / "copy")
    monkeypatch.chdir(tmp_path / "elsewhere")  # another working directory, too
    assert main(["train", "--resume", "--out-dir", "copy", "--max-iters", "9"]) == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == original
    _, meta = load_checkpoint(tmp_path / "elsewhere" / "copy" / "last.npz")
    assert meta["step"] == 9 and not (tmp_path / "elsewhere" / "run").exists()
    rows = list(csv.DictReader(open(tmp_path / "elsewhere" / "copy" / "metrics.csv")))
    assert [r["step"] for r in rows] == ["3", "6", "9"]


def test_an_existing_run_is_not_overwritten_without_asking(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_text(TEXT)
    assert main(["train", "--data", "input.txt", "--out-dir", "run", "--max-iters", "3", *TINY]) == 0
    trained = (tmp_path / "run" / "last.npz").read_bytes()
    capsys.readouterr()
    assert main(["train", "--data", "input.txt", "--out-dir", "run", "--max-iters", "3", *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "last.npz").read_bytes() == trained
    assert main(["train", "--data", "input.txt", "--out-dir", "run", "--max-iters", "6", "--overwrite", *TINY]) == 0
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [r["step"] for r in rows] == ["3", "6"]  # a new run: the old rows are gone


def test_two_trainers_cannot_write_one_run_directory(tmp_path):
    with run_lock(tmp_path):
        with run_lock(tmp_path):  # the same process may nest
            pass
        import subprocess
        import sys
        code = ("from transformer_jit.train.run_dir import run_lock\n"
                f"with run_lock({str(tmp_path)!r}): pass")
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode != 0 and "another training process is writing" in other.stderr


def test_a_diverging_run_stops_and_keeps_its_last_evaluated_state(tmp_path):
    make_trainer(tmp_path).fit(until=8)
    evaluated = (tmp_path / "last.npz").read_bytes()
    exploding = make_trainer(tmp_path, max_iters=40, lr=1e6, warmup_iters=0, grad_clip=0.0)
    exploding.restore(tmp_path / "last.npz")
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+: the loss is nan.*learning rate too high.*"
                                               r"holds step 8, the last evaluated state"):
        exploding.fit()
    assert (tmp_path / "last.npz").read_bytes() == evaluated
    resumed = make_trainer(tmp_path, max_iters=40, lr=1e-3)
    resumed.restore(tmp_path / "last.npz")
    resumed.fit()
    assert resumed.step == 40 and np.isfinite(resumed.model.params).all()
    with pytest.raises(TrainingDiverged, match="before the first checkpoint"):
        make_trainer(tmp_path / "new", max_iters=40, lr=1e6, warmup_iters=0, grad_clip=0.0).fit()


def test_a_crash_between_a_metrics_row_and_its_checkpoint_logs_the_row_once(tmp_path):
    straight = make_trainer(tmp_path / "straight")
    straight.fit()
    run = tmp_path / "run"
    trainer = make_trainer(run)
    trainer.fit(until=8)
    with open(run / "metrics.csv", "a") as f:  # the row of step 12 made it to disk, its checkpoint did not
        f.write("12,9.0,9.0,0.001,1.0\n")
    resumed = make_trainer(run)
    resumed.restore(run / "last.npz")
    resumed.fit()
    steps = [r["step"] for r in csv.DictReader(open(run / "metrics.csv"))]
    assert steps == ["4", "8", "12"]
    np.testing.assert_array_equal(resumed.model.params, straight.model.params)


@pytest.fixture
def saved(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.fit(until=4)
    return tmp_path / "last.npz"


def rewrite(path, change_arrays=None, change_meta=None):
    """A copy of the checkpoint with its arrays or its description changed."""
    arrays, meta = load_checkpoint(path)
    if change_arrays:
        change_arrays(arrays)
    if change_meta:
        meta = change_meta(meta)
    out = path.with_name("changed.npz")
    blob = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(out, **arrays, __meta__=blob)
    return out


@pytest.mark.parametrize("damage, message", [
    (lambda a: a.update({"model.transformer.wte.weight": np.full_like(a["model.transformer.wte.weight"], np.nan)}),
     "transformer.wte.weight holds .* non-finite"),
    (lambda a: a.update({"model.transformer.wpe.weight": a["model.transformer.wpe.weight"].astype(np.int64)}),
     "transformer.wpe.weight holds int64 values"),
    (lambda a: a.update({"optimizer.m": np.full_like(a["optimizer.m"], np.inf)}), "optimizer state 'm'"),
    (lambda a: a.pop("model.transformer.ln_f.bias"), "missing arrays.*ln_f.bias"),
])
def test_weights_that_cannot_be_resumed_are_refused_by_name(saved, damage, message):
    changed = rewrite(saved, change_arrays=damage)
    with pytest.raises(ValueError, match=message):
        make_trainer(saved.parent).restore(changed)


@pytest.mark.parametrize("change, message", [
    (lambda m: [m], "not a transformer-jit checkpoint"),
    (lambda m: {**m, "surprise": 1}, r"unknown entries \['surprise'\]"),
    (lambda m: {**m, "step": "12"}, r"wrong type \['step'\]"),
    (lambda m: {k: v for k, v in m.items() if k != "tokenizer"}, r"missing entries \['tokenizer'\]"),
    (lambda m: {**m, "tokenizer": None}, "has no tokenizer"),
    (lambda m: {**m, "tokenizer": {"type": "mystery"}}, "unknown tokenizer 'mystery'"),
    (lambda m: {**m, "model_config": {**m["model_config"], "n_head": 3}}, "n_embd must be divisible by n_head"),
    (lambda m: {**m, "model_config": {**m["model_config"], "n_layer": 1.5}}, "n_layer must be an integer"),
    (lambda m: {**m, "kind": "toaster"}, "holds a 'toaster' model"),
])
def test_damaged_descriptions_are_refused(saved, change, message):
    changed = rewrite(saved, change_meta=change)
    with pytest.raises(ValueError, match=message):
        load_model(changed)


def test_bit_flips_and_truncations_anywhere_give_a_clear_error(saved):
    data = saved.read_bytes()
    intact, intact_tokenizer, intact_meta = load_model(saved)
    rng = np.random.default_rng(0)
    for offset in sorted(rng.choice(len(data), 40, replace=False)):
        for broken in (data[:offset], data[:offset] + bytes([data[offset] ^ 0x10]) + data[offset + 1:]):
            saved.with_name("broken.npz").write_bytes(broken)
            try:
                model, tokenizer, meta = load_model(saved.with_name("broken.npz"))
            except ValueError:
                continue  # a clear error
            except zipfile.BadZipFile as e:  # pragma: no cover - must not escape
                raise AssertionError(f"offset {offset}: {e}")
            # A flip that changes nothing the format checks (zip padding, say) must still load exactly.
            assert len(broken) == len(data), f"offset {offset}: a truncated checkpoint loaded"
            np.testing.assert_array_equal(model.params, intact.params, err_msg=f"offset {offset}")
            assert tokenizer.to_dict() == intact_tokenizer.to_dict() and meta == intact_meta, f"offset {offset}"


@pytest.mark.parametrize("argv, min_lr", [
    (["train"], 1e-4),                                     # the default
    (["train", "--lr", "3e-5"], 3e-6),                     # a lower --lr alone lowers the floor with it
    (["train", "--lr", "3e-5", "--min-lr", "1e-5"], 1e-5),  # given: kept
    (["train-seq2seq", "--lr", "1e-2"], 1e-4),              # a higher --lr leaves the recipe's floor
])
def test_min_lr_follows_a_lower_lr_unless_given(argv, min_lr):
    args = build_parser().parse_args(argv)
    args.options.resolve(args)
    assert _train_config(args, None, "").min_lr == pytest.approx(min_lr)
