"""GPT-2 at a shorter context: the first N learned positions kept (nanoGPT's crop_block_size), from
Python and from `train --init-from DIR --block-size N`, recorded in the run and its exports."""
import json

import numpy as np
import pytest

from refusals import assert_refused
from transformer_jit import GPT, GPTConfig
from transformer_jit.cli import main
from transformer_jit.data.tokenizers.bpe import BPETokenizer
from transformer_jit.train import TrainConfig
from transformer_jit.train.memory import training_memory
from transformer_jit.train.saved_model import load_model

TEXT = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(200))
POSITIONS, CROP = 16, 6


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny 'pretrained' GPT-2 of 16 positions: a Hugging Face directory with its tokenizer, an
    llm.c file beside it, and a text to fine-tune on."""
    root = tmp_path_factory.mktemp("gpt2")
    tokenizer = BPETokenizer.train(TEXT, 300, progress=False)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=POSITIONS, n_layer=2, n_head=2, n_embd=16),
                seed=5)
    model.save_pretrained(root / "hf")
    tokenizer.save_pretrained(root / "hf")
    model.save_llmc(root / "hf" / "model.bin")
    (root / "input.txt").write_text(TEXT)
    return root


def load(root, fmt, **options):
    return GPT.from_pretrained(root / "hf", **options) if fmt == "hf" else GPT.from_llmc(root / "hf" / "model.bin",
                                                                                         **options)


@pytest.mark.parametrize("fmt", ["hf", "llmc"])
def test_a_cropped_model_computes_the_first_positions_of_the_whole_one(pretrained, fmt):
    whole, cropped = load(pretrained, fmt), load(pretrained, fmt, block_size=CROP)
    assert cropped.config.block_size == CROP
    full, short = whole.state_dict(), cropped.state_dict()
    np.testing.assert_array_equal(short.pop("transformer.wpe.weight"), full.pop("transformer.wpe.weight")[:CROP])
    assert all(np.array_equal(short[name], full[name]) for name in full)
    idx = np.random.default_rng(0).integers(0, whole.config.vocab_size, (2, CROP))
    np.testing.assert_array_equal(cropped.forward(idx)[0], whole.forward(idx)[0])
    assert load(pretrained, fmt, block_size=POSITIONS).config == whole.config


@pytest.mark.parametrize("block_size", [0, POSITIONS + 1, -3, True, 2.5])
def test_a_context_the_weights_have_not_learned_is_refused(pretrained, block_size):
    for fmt in ("hf", "llmc"):
        with pytest.raises(ValueError, match=f"have learned {POSITIONS} positions; give 1 to {POSITIONS}"):
            load(pretrained, fmt, block_size=block_size)


def fine_tune(pretrained, out_dir, *options):
    return main(["train", "--init-from", str(pretrained / "hf"), "--data", str(pretrained / "input.txt"),
                 "--out-dir", str(out_dir), "--max-iters", "2", "--lr", "1e-9", "--min-lr", "0", "--warmup-iters", "0",
                 "--batch-size", "4", "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "4", *options])


def test_fine_tuning_at_a_shorter_context_records_it_in_the_run_and_its_exports(pretrained, tmp_path):
    assert fine_tune(pretrained, tmp_path / "run", "--block-size", str(CROP)) == 0
    model, _, meta = load_model(tmp_path / "run" / "last.npz")
    assert meta["model_config"]["block_size"] == CROP
    np.testing.assert_allclose(model.params, load(pretrained, "hf", block_size=CROP).params, atol=1e-6)
    assert main(["export", "--out-dir", str(tmp_path / "run"), "--format", "hf", str(tmp_path / "hf")]) == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["n_positions"] == CROP
    assert main(["export", "--out-dir", str(tmp_path / "run"), "--format", "llmc", str(tmp_path / "m.bin")]) == 0
    for exported in (GPT.from_pretrained(tmp_path / "hf"), GPT.from_llmc(tmp_path / "m.bin")):
        assert exported.config.block_size == CROP
    assert main(["train", "--resume", "--out-dir", str(tmp_path / "run"), "--max-iters", "4"]) == 0


def test_the_memory_estimate_is_of_the_cropped_context(pretrained, tmp_path, monkeypatch, capsys):
    """With memory for the cropped run but not for the whole context, the one runs and the other is refused."""
    whole = load(pretrained, "hf").config
    train = TrainConfig(batch_size=4)
    needs = {n: sum(training_memory(GPTConfig(**{**whole.to_dict(), "block_size": n}), "gpt", train))
             for n in (CROP, POSITIONS)}
    monkeypatch.setattr("transformer_jit.cli.common.available_memory", lambda: (needs[CROP] + needs[POSITIONS]) // 2)
    assert fine_tune(pretrained, tmp_path / "whole") == 2
    assert "make the model or the batch smaller" in capsys.readouterr().err
    assert fine_tune(pretrained, tmp_path / "cropped", "--block-size", str(CROP)) == 0


@pytest.mark.parametrize("block_size", ["0", str(POSITIONS + 1)])
def test_the_command_line_refuses_a_context_beyond_the_learned_positions(pretrained, tmp_path, capsys, monkeypatch,
                                                                         block_size):
    argv = ["train", "--init-from", str(pretrained / "hf"), "--data", str(pretrained / "input.txt"),
            "--out-dir", str(tmp_path / "run"), "--block-size", block_size]
    assert_refused(argv, f"block_size {block_size}: the weights in {pretrained / 'hf'} have learned {POSITIONS} "
                   f"positions; give 1 to {POSITIONS}", tmp_path, capsys, monkeypatch)
    assert not (tmp_path / "run").exists()


@pytest.mark.interop
def test_transformers_computes_the_cropped_export_as_the_original_on_its_first_positions(pretrained, tmp_path):
    torch = pytest.importorskip("torch", reason="torch (bench extra) is not installed")
    transformers = pytest.importorskip("transformers", reason="transformers (bench extra) is not installed")
    ours = load(pretrained, "hf", block_size=CROP)
    ours.save_pretrained(tmp_path / "cropped")
    original = transformers.GPT2LMHeadModel.from_pretrained(pretrained / "hf").eval()
    cropped = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "cropped").eval()
    assert cropped.config.n_positions == CROP
    idx = np.random.default_rng(1).integers(0, ours.config.vocab_size, (2, CROP))
    with torch.no_grad():
        theirs = [model(torch.as_tensor(idx)).logits.numpy() for model in (original, cropped)]
    for logits in theirs:
        np.testing.assert_allclose(ours.forward(idx)[0], logits, rtol=1e-5, atol=1e-5)
