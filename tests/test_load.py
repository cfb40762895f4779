"""transformer_jit.load: a run directory, a checkpoint, a Hugging Face GPT-2 directory or an llm.c
file, each to its model (in eval mode) with its tokenizer."""
import re

import numpy as np
import pytest

import transformer_jit
from transformer_jit import GPT, BPETokenizer, CharTokenizer, GPTConfig, load
from transformer_jit.cli import main
from transformer_jit.train import load_model

TEXT = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(100))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A GPT run of 4 steps: best.npz and last.npz."""
    root = tmp_path_factory.mktemp("load")
    (root / "input.txt").write_text(TEXT)
    assert main(["train", "--data", str(root / "input.txt"), "--out-dir", str(root / "run"), "--n-layer", "1",
                 "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--max-iters", "4", "--batch-size", "2",
                 "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0"]) == 0
    return root / "run"


def test_load_is_exported():
    assert transformer_jit.load is load and "load" in transformer_jit.__all__


def test_a_run_directory_loads_its_best_checkpoint_then_its_last(run, tmp_path):
    loaded = load(run)
    best, tokenizer, meta = load_model(run / "best.npz")
    assert loaded.path == run / "best.npz" and loaded.kind == "gpt" and loaded.config == best.config
    assert isinstance(loaded.tokenizer, CharTokenizer) and loaded.tokenizer.to_dict() == tokenizer.to_dict()
    np.testing.assert_array_equal(loaded.model.params, best.params)
    assert not loaded.model.training and loaded.labels is None and loaded.meta["step"] == meta["step"]
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "last.npz").write_bytes((run / "last.npz").read_bytes())
    assert load(tmp_path / "copy").meta["step"] == 4
    assert load(run / "last.npz").path == run / "last.npz"


@pytest.mark.parametrize("fmt", ["hf", "llmc"])
def test_gpt2_files_load_with_their_tokenizer(tmp_path, fmt):
    tokenizer = BPETokenizer.train(TEXT, 280, progress=False)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16), seed=3)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model.save_llmc(tmp_path / "model.bin")
    loaded = load(tmp_path if fmt == "hf" else tmp_path / "model.bin")
    assert loaded.kind == "gpt" and loaded.meta is None and not loaded.model.training
    np.testing.assert_array_equal(loaded.model.params, model.params)
    assert loaded.tokenizer.to_dict() == tokenizer.to_dict()


@pytest.mark.parametrize("name, words", [("missing", "does not exist: give a run directory"),
                                         ("empty", "holds neither a run (best.npz or last.npz) nor")])
def test_what_holds_no_model_is_refused_by_name(tmp_path, name, words):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(words)) as e:
        load(tmp_path / name)
    assert str(tmp_path / name) in str(e.value)
