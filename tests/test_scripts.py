"""The example scripts in scripts/ run: each trains a few steps, scores and uses what it trained, and
show_attention.py renders the maps of those runs (the benchmarks are left to their own runs)."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from transformer_jit.cli import main

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def script(name, *args, cwd):
    result = subprocess.run([sys.executable, str(SCRIPTS / name), *args], cwd=cwd, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The run directories the translator and classifier scripts wrote, two steps each."""
    root = tmp_path_factory.mktemp("scripts")
    out = script("train_translator.py", "--max-iters", "2", "--out-dir", "dates", cwd=root)
    assert "held-out exact match:" in out and "3rd of March 2021 -> " in out
    out = script("train_classifier.py", "--max-iters", "2", "--out-dir", "brackets", cwd=root)
    assert "held-out accuracy:" in out and "([)] -> " in out
    return root


def test_train_char_lm_trains_on_the_built_in_corpus_and_samples(tmp_path):
    out = script("train_char_lm.py", "--max-iters", "2", "--out-dir", "lm", cwd=tmp_path)
    assert "parameters, vocabulary of" in out
    assert (tmp_path / "lm" / "best.npz").exists() and (tmp_path / "lm" / "last.npz").exists()
    sample = out[out.index("step 2: train loss"):].split("\n", 1)[1]  # what follows the last evaluation
    skipped = "drawing loss curves needs matplotlib"  # said once where matplotlib is not installed
    if sample.startswith(skipped):
        sample = sample.split("\n", 1)[1]
    assert len(sample) == len("\n") + 300 + len("\n")  # the prompt, 300 characters, print's newline


def test_the_example_runs_load_from_the_command_line(runs, capsys):
    assert main(["translate", "--out-dir", str(runs / "dates"), "3rd of March 2021"]) == 0
    assert main(["classify", "--out-dir", str(runs / "brackets"), "([])"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "3rd of March 2021" in lines[0] and "([])" in lines[1], lines


@pytest.mark.parametrize("run, text, args, layer, heads", [
    ("dates", "3rd of March 2021", [], "decoder.layers.1.cross_attn", [0, 1, 2, 3]),
    ("dates", "3rd of March 2021", ["--map", "encoder", "--layer", "0", "--head", "2"], "encoder.layers.0.self_attn",
     [2]),
    ("brackets", "([()])", [], "layers.2.self_attn", list(range(8))),
])
def test_show_attention_prints_text_heatmaps(runs, run, text, args, layer, heads):
    out = script("show_attention.py", "--out-dir", run, text, *args, cwd=runs)
    assert out.startswith(f"{text} -> ")
    titles = [line for line in out.splitlines() if ", head " in line]
    assert [t.split(", head ")[0].endswith(layer) for t in titles] == [True] * len(heads), titles
    assert [int(t.split(", head ")[1]) for t in titles] == heads
    columns = len(text) + (run == "brackets")  # the input's characters, after the classification token
    assert f" x {columns}; " in out.rstrip("\n").split("\n")[-1]  # the legend: rows x columns


def test_show_attention_png_without_matplotlib_fails_before_any_output(runs, tmp_path):
    blocked = tmp_path / "blocked" / "matplotlib"  # an import of matplotlib fails, installed or not
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('blocked')\n")
    result = subprocess.run([sys.executable, str(SCRIPTS / "show_attention.py"), "--out-dir", "brackets", "([()])",
                             "--png", str(tmp_path / "maps.png")], cwd=runs, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONPATH": str(blocked.parent)})
    assert result.returncode == 1 and result.stdout == ""  # no text maps first
    assert re.fullmatch(r"error: --png needs matplotlib: pip install .*\[plot\]'\n", result.stderr)
    assert not (tmp_path / "maps.png").exists()


@pytest.mark.interop
def test_show_attention_saves_a_png(runs, tmp_path):
    pytest.importorskip("matplotlib")
    out = script("show_attention.py", "--out-dir", "brackets", "([()])", "--png", str(tmp_path / "maps.png"), cwd=runs)
    assert f"saved {tmp_path / 'maps.png'}" in out
    assert (tmp_path / "maps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_vit_trains_and_show_attention_draws_its_class_token(tmp_path):
    out = script("train_vit.py", "--max-iters", "2", "--out-dir", "vit", cwd=tmp_path)
    assert "18,001 training images of 16 x 16 x 1" in out and "held-out accuracy:" in out
    out = script("show_attention.py", "--out-dir", "vit", "held-out", "--index", "2", cwd=tmp_path)
    assert out.startswith("#2 -> ") and "(labelled " in out.splitlines()[0]
    grids = out.split("\n\n")[1:]
    assert len(grids) == 3  # a 4 x 4 grid of patches per layer, in percent, summing to about 100 less the token's own
    for grid in grids:
        cells = [[int(v) for v in row.split()] for row in grid.strip().splitlines()[1:]]
        assert [len(row) for row in cells] == [4] * 4 and 0 < sum(map(sum, cells)) <= 102
    if importlib.util.find_spec("PIL") is not None:
        out = script("show_attention.py", "--out-dir", "vit", "held-out", "--png", "maps.png", cwd=tmp_path)
        assert (tmp_path / "maps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_linear_baseline_scores_the_same_split(tmp_path):
    out = script("linear_baseline.py", "--steps", "100", cwd=tmp_path)
    assert "marks: linear classifier on 256 pixels, 18,001 training images" in out
    assert "held-out accuracy: " in out and "(1,000 images, the held-out test split)" in out
