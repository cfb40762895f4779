"""Token files: prepare streams a text into train.bin/val.bin that decode back to it, training reads
them a batch at a time, and every inconsistency is an error naming the file."""
import json
import shutil

import numpy as np
import pytest

from transformer_jit.cli import main
from transformer_jit.data import prepare as prepare_module
from transformer_jit.data.tokenizers.bpe import BPETokenizer
from transformer_jit.data.prepare import prepare
from transformer_jit.data.token_files import open_token_dir
from transformer_jit.train.saved_model import load_model

TEXT = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog, café {i * 7} ✓\n" for i in range(300))
TINY = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
        "--eval-interval", "3", "--eval-iters", "1", "--sample-tokens", "5"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_prepared_files_decode_back_to_the_text_in_any_chunk_size(tmp_path, text_file, monkeypatch, tokenizer):
    vocab = 300 if tokenizer == "bpe" else None
    meta = prepare(text_file, tokenizer, tmp_path / "big", vocab_size=vocab, progress=False)
    monkeypatch.setattr(prepare_module, "CHUNK", 777)  # chunks that cut lines and characters anywhere
    prepare(text_file, tokenizer, tmp_path / "small", vocab_size=vocab, progress=False)
    for name in ("train.bin", "val.bin", "tokenizer.json"):
        assert (tmp_path / "big" / name).read_bytes() == (tmp_path / "small" / name).read_bytes(), name
    data, tok, files = open_token_dir(tmp_path / "big", 8)
    ids = {s: np.fromfile(tmp_path / "big" / f"{s}.bin", dtype=files["dtype"]) for s in ("train", "val")}
    assert tok.decode(ids["train"]) + tok.decode(ids["val"]) == TEXT
    assert tok.decode(ids["val"]).startswith("Line 271:")  # the last tenth, from the start of a line
    assert files == meta and meta["tokens"] == {s: len(v) for s, v in ids.items()}
    assert meta["source"]["bytes"] == len(TEXT.encode()) and len(meta["source"]["sha256"]) == 64
    x, y = data.batch("train", 3, np.random.default_rng(0))
    assert x.shape == (3, 8) and x.dtype == np.int64 and np.array_equal(x[:, 1:], y[:, :-1])


def test_prepare_train_and_sample_from_the_command_line(tmp_path, text_file, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--data", str(text_file), "--tokenizer", "bpe", "--vocab-size", "300",
                 "--out-dir", "data"]) == 0
    assert main(["train", "--data", "data", "--out-dir", "run", "--max-iters", "3", *TINY]) == 0
    model, tokenizer, meta = load_model(tmp_path / "run" / "last.npz")
    assert isinstance(tokenizer, BPETokenizer) and tokenizer.vocab_size == 300
    assert meta["train_config"]["data"] == str(tmp_path / "data")
    assert main(["train", "--resume", "--out-dir", "run", "--max-iters", "6"]) == 0
    capsys.readouterr()
    assert main(["sample", "--out-dir", "run", "--prompt", "Line 5: ✓", "--max-new-tokens", "4", "--seed", "0"]) == 0
    model, tokenizer, _ = load_model(tmp_path / "run" / "best.npz")
    expected = model.generate(tokenizer.encode("Line 5: ✓")[None], 4, temperature=0.8, seed=0,
                              stop_token=tokenizer.eot_token)[0]
    assert capsys.readouterr().out == tokenizer.decode(expected) + "\n"
    # one step from a text file: the BPE trained, then used, and recorded in the checkpoint
    assert main(["train", "--data", str(text_file), "--tokenizer", "bpe", "--vocab-size", "280", "--out-dir",
                 "run2", "--max-iters", "3", *TINY]) == 0
    assert load_model(tmp_path / "run2" / "last.npz")[1].vocab_size == 280


def damaged(tmp_path, text_file, change):
    prepare(text_file, "char", tmp_path / "data", progress=False)
    change(tmp_path / "data")
    return tmp_path / "data"


def edit_meta(path, **changes):
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, **changes}))


@pytest.mark.parametrize("change, message", [
    (lambda d: (d / "train.bin").write_bytes((d / "train.bin").read_bytes() + b"\x01"), "train.bin holds .* bytes, not a "
     "whole number of uint16 ids"),
    (lambda d: (d / "val.bin").write_bytes(b""), "val.bin holds 0 tokens but meta.json says"),
    (lambda d: edit_meta(d, tokens={"train": 5, "val": 5}), "train.bin holds .* tokens but meta.json says 5"),
    (lambda d: edit_meta(d, dtype="float32"), "meta.json has no valid dtype"),
    (lambda d: edit_meta(d, vocab_size=7), "tokenizer.json has .* tokens but meta.json says 7"),
    (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json not found"),
    (lambda d: (d / "meta.json").write_text("{"), "meta.json is not valid JSON"),
    (lambda d: (d / "meta.json").unlink(), "meta.json not found"),
    (lambda d: (d / "val.bin").unlink(), "token file not found: .*val.bin"),
])
def test_damaged_token_files_are_named(tmp_path, text_file, change, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        open_token_dir(damaged(tmp_path, text_file, change), 8)


def test_ids_past_the_vocabulary_are_an_error_naming_the_file(tmp_path, text_file):
    def corrupt(d):
        ids = np.fromfile(d / "train.bin", dtype="<u2")
        ids[:] = 60000
        ids.tofile(d / "train.bin")

    data, _, _ = open_token_dir(damaged(tmp_path, text_file, corrupt), 8)
    with pytest.raises(ValueError, match="train.bin holds token id 60000, outside the vocabulary"):
        data.batch("train", 2, np.random.default_rng(0))


@pytest.mark.parametrize("argv, message", [
    (["--tokenizer", "{tmp}/no-tokenizer"], "vocab.json"),
    (["--tokenizer", "bpe"], "needs a vocabulary size"),
    (["--tokenizer", "bpe", "--vocab-size", "100"], "--vocab-size: the vocabulary size must be at least 257"),
    (["--tokenizer", "char", "--vocab-size", "300"], "--vocab-size is for a new BPE"),
    (["--tokenizer", "wordpiece"], "must be 'char', 'bpe' or a directory"),
])
def test_prepare_refuses_bad_options_in_one_line(tmp_path, text_file, capsys, argv, message):
    (tmp_path / "no-tokenizer").mkdir()
    argv = [a.format(tmp=tmp_path) for a in argv]
    try:
        status = main(["prepare", "--data", str(text_file), "--out-dir", str(tmp_path / "out"), *argv])
    except SystemExit as e:  # argparse's usage errors
        status = e.code
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and message in err, err


def test_prepare_does_not_overwrite_token_files_unasked(tmp_path, text_file, capsys):
    assert main(["prepare", "--data", str(text_file), "--out-dir", str(tmp_path / "out")]) == 0
    assert main(["prepare", "--data", str(text_file), "--out-dir", str(tmp_path / "out")]) == 2
    assert "already holds token files" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "out")
