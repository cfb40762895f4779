"""GPT-2's weights from the command line: fine-tune from them, sample from them, export a run back."""
import numpy as np
import pytest

from transformer_jit import GPT, GPTConfig
from transformer_jit.cli import main
from transformer_jit.data.tokenizers.bpe import BPETokenizer
from transformer_jit.train.saved_model import load_model

TEXT = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(200))
TRAIN = ["--batch-size", "4", "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "4"]


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A tiny 'pretrained' GPT-2 in Hugging Face's layout, with its tokenizer beside it."""
    root = tmp_path_factory.mktemp("gpt2")
    tokenizer = BPETokenizer.train(TEXT, 300, progress=False)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16), seed=5)
    model.save_pretrained(root / "hf")
    tokenizer.save_pretrained(root / "hf")
    (root / "input.txt").write_text(TEXT)
    return root


def test_fine_tuning_starts_from_the_pretrained_weights(gpt2_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pretrained = GPT.from_pretrained(gpt2_dir / "hf")
    assert main(["train", "--init-from", str(gpt2_dir / "hf"), "--data", str(gpt2_dir / "input.txt"),
                 "--out-dir", "run", "--max-iters", "2", "--lr", "1e-9", "--min-lr", "0", "--warmup-iters", "0",
                 "--attn-dropout", "0.1", *TRAIN]) == 0
    model, tokenizer, meta = load_model(tmp_path / "run" / "last.npz")
    assert isinstance(tokenizer, BPETokenizer) and meta["model_config"]["n_embd"] == 16
    assert meta["model_config"]["attn_dropout"] == 0.1
    np.testing.assert_allclose(model.params, pretrained.params, atol=1e-6)  # lr 1e-9: barely moved
    assert main(["train", "--resume", "--out-dir", "run", "--max-iters", "4"]) == 0


def test_fine_tuning_refuses_a_new_shape_or_other_token_files(gpt2_dir, tmp_path, capsys):
    base = ["train", "--init-from", str(gpt2_dir / "hf"), "--out-dir", str(tmp_path / "run")]
    assert main([*base, "--data", str(gpt2_dir / "input.txt"), "--n-layer", "3"]) == 2
    assert "leave out --n-layer" in capsys.readouterr().err
    assert main(["prepare", "--data", str(gpt2_dir / "input.txt"), "--out-dir", str(tmp_path / "chars")]) == 0
    assert main([*base, "--data", str(tmp_path / "chars")]) == 2
    assert "made with another tokenizer" in capsys.readouterr().err
    assert main(["prepare", "--data", str(gpt2_dir / "input.txt"), "--tokenizer", str(gpt2_dir / "hf"),
                 "--out-dir", str(tmp_path / "gpt2-tokens")]) == 0
    assert main([*base, "--data", str(tmp_path / "gpt2-tokens"), "--max-iters", "2", *TRAIN]) == 0


def test_sample_from_pretrained_weights(gpt2_dir, capsys):
    argv = ["sample", "--pretrained", str(gpt2_dir / "hf"), "--prompt", "Line 7:", "--max-new-tokens", "6"]
    assert main([*argv, "--temperature", "0"]) == 0
    greedy = capsys.readouterr().out
    model, tokenizer = GPT.from_pretrained(gpt2_dir / "hf"), BPETokenizer.from_pretrained(gpt2_dir / "hf")
    expected = model.generate(tokenizer.encode("Line 7:")[None], 6, temperature=0, stop_token=tokenizer.eot_token)
    assert greedy == tokenizer.decode(expected[0]) + "\n"
    assert main([*argv, "--temperature", "0"]) == 0 and capsys.readouterr().out == greedy
    assert main(["sample", "--pretrained", str(gpt2_dir / "missing")]) == 2
    assert "pretrained model not found" in capsys.readouterr().err


@pytest.mark.parametrize("fmt, dest", [("hf", "exported"), ("llmc", "model.bin")])
def test_export_then_load_is_exact(gpt2_dir, tmp_path, monkeypatch, fmt, dest):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", str(gpt2_dir / "input.txt"), "--tokenizer", "bpe", "--vocab-size", "280",
                 "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--out-dir", "run",
                 "--max-iters", "2", *TRAIN]) == 0
    assert main(["export", "--out-dir", "run", "--format", fmt, dest]) == 0
    trained, tokenizer, _ = load_model(tmp_path / "run" / "best.npz")
    loaded = GPT.from_pretrained(tmp_path / dest) if fmt == "hf" else GPT.from_llmc(tmp_path / dest)
    np.testing.assert_array_equal(loaded.params, trained.params)
    if fmt == "hf":
        assert BPETokenizer.from_pretrained(tmp_path / dest).to_dict() == tokenizer.to_dict()
