"""The encoder models' commands, end to end in subprocesses: train, resume, score, translate, classify."""
import json
import os
import subprocess
import sys

import pytest

TINY_MODEL = ["--n-embd", "16", "--n-head", "2", "--batch-size", "8", "--eval-interval", "3", "--eval-iters", "2"]


def run_cli(*args, cwd, stdin=None):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "transformer_jit", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=600)


def test_train_seq2seq_resume_and_translate(tmp_path):
    common = ["--out-dir", "dates", "--n-train", "300", "--n-test", "10", "--n-encoder-layer", "1",
              "--n-decoder-layer", "1", *TINY_MODEL]
    result = run_cli("train-seq2seq", "--task", "dates", "--max-iters", "6", "--schedule", "noam", *common,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "model config:" in out and "training config:" in out and "task config:" in out
    assert "training wall time:" in out and "for 6 steps" in out
    assert "held-out exact match:" in out and "(10 of" not in out and "/10)" in out
    saved = json.loads((tmp_path / "dates" / "config.json").read_text())
    assert saved["task"]["task"] == "dates" and saved["model"]["n_embd"] == 16
    assert saved["training"]["schedule"] == "noam"

    result = run_cli("train-seq2seq", "--resume", "--out-dir", "dates", "--max-iters", "9", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "at step 6" in result.stdout and "for 3 steps" in result.stdout

    result = run_cli("translate", "--out-dir", "dates", "3rd of March 2021", "Mar 3, 21", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("3rd of March 2021 -> ")
    result = run_cli("translate", "--out-dir", "dates", "--beam-width", "1", cwd=tmp_path, stdin="1 May 1999\n")
    assert result.returncode == 0 and result.stdout.startswith("1 May 1999 -> ")

    result = run_cli("translate", "--out-dir", "dates", "3rd of March 2021 €", cwd=tmp_path)
    assert result.returncode == 2 and "not in the vocabulary: '€'" in result.stderr
    result = run_cli("translate", "--out-dir", "dates", "1" * 40, cwd=tmp_path)
    assert result.returncode == 2 and "at most 32" in result.stderr
    result = run_cli("classify", "--out-dir", "dates", "([])", cwd=tmp_path)
    assert result.returncode == 2 and "use translate" in result.stderr


def test_train_classifier_and_classify(tmp_path):
    result = run_cli("train-classifier", "--task", "brackets", "--out-dir", "br", "--n-train", "300", "--n-test", "10",
                     "--n-layer", "1", "--pooling", "cls", "--max-iters", "6", *TINY_MODEL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "held-out accuracy:" in result.stdout and "/10)" in result.stdout
    assert "training wall time:" in result.stdout
    result = run_cli("classify", "--out-dir", "br", "([])", "([)]", "", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[1].startswith("([)] -> ")
    assert lines[1].split(" -> ")[1] in ("balanced", "unbalanced")
    result = run_cli("classify", "--out-dir", "br", "(x)", cwd=tmp_path)
    assert result.returncode == 2 and "not in the vocabulary: 'x'" in result.stderr


@pytest.mark.parametrize("command", ["train-seq2seq", "train-classifier"])
def test_bad_options_get_clear_errors(tmp_path, command):
    result = run_cli(command, "--out-dir", "x", "--n-embd", "10", "--n-head", "3", cwd=tmp_path)
    assert result.returncode == 2 and "divisible" in result.stderr
    result = run_cli(command, "--resume", "--out-dir", "nowhere", cwd=tmp_path)
    assert result.returncode == 2 and "no last.npz to resume from" in result.stderr
