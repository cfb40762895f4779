"""Crafted and damaged files: every file the package reads is untrusted. Each case is refused with
one error that names the file, quickly (sizes are checked before anything is allocated or looped
over), without hanging on a pipe where a file belongs, and (on the command line) without changing
any file."""
import io
import json
import os
import shutil
import signal
import time
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest
from refusals import assert_refused

from transformer_jit import GPT, GPTConfig
from transformer_jit.cli import main
from transformer_jit.data.image_files import read_images
from transformer_jit.data.tokenizers import BPETokenizer
from transformer_jit.data.token_files import open_token_dir
from transformer_jit.formats import LlmcGPT2, SafetensorsFile
from transformer_jit.models.pretrained import load_pretrained
from transformer_jit.train.checkpoint import load_checkpoint, save_checkpoint
from transformer_jit.train.saved_model import load_model

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40
GPT_FLAGS = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
             "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0"]
DEEP = "[" * 100_000
HUGE_INT = "9" * 5000


@contextmanager
def quickly(seconds=5):
    """Fail, instead of hanging, if the block takes longer than `seconds` (a read blocked on a
    pipe, a loop over a crafted size)."""
    def expired(signum, frame):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refused(call, *words, error=ValueError):
    """call() raises `error` quickly, and its message holds every word."""
    with quickly(), pytest.raises(error) as e:
        call()
    for word in words:
        assert word in str(e.value), (word, str(e.value))
    return str(e.value)


def fifo_at(path):
    path.unlink(missing_ok=True)
    os.mkfifo(path)


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A trained GPT run, a Hugging Face GPT-2 directory with its tokenizer, and token files."""
    root = tmp_path_factory.mktemp("crafted")
    (root / "input.txt").write_text(TEXT)
    assert main(["train", "--data", str(root / "input.txt"), "--out-dir", str(root / "gpt"), "--max-iters", "2",
                 *GPT_FLAGS]) == 0
    tokenizer = BPETokenizer.train(TEXT * 3, 280, progress=False)
    GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=2, n_head=2, n_embd=16)).save_pretrained(
        root / "hf")
    tokenizer.save_pretrained(root / "hf")
    assert main(["prepare", "--data", str(root / "input.txt"), "--out-dir", str(root / "tokens")]) == 0
    return root


@pytest.fixture
def copy(place, tmp_path):
    """copy(name): a fresh copy of place/name to damage."""
    def make(name):
        return shutil.copytree(place / name, tmp_path / name)
    return make


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# -- Hugging Face directories: config.json against model.safetensors ----------------------------------
@pytest.mark.parametrize("changes, words", [
    (dict(n_layer=1_000_000_000), ["config.json says n_layer 1000000000", "tensors of 2 layers"]),
    (dict(n_embd=1 << 40, n_head=1), ["do not match config.json", "n_embd 1099511627776"]),
    (dict(vocab_size=1 << 40), ["do not match config.json", "vocab_size 1099511627776"]),
    (dict(n_positions=1 << 40), ["do not match config.json", "n_positions 1099511627776"]),
    (dict(n_layer="2"), ["config.json", "n_layer must be a positive integer, got '2'"]),
    (dict(n_layer=2.0), ["config.json", "n_layer must be a positive integer, got 2.0"]),
    (dict(n_layer=True), ["config.json", "n_layer must be a positive integer, got True"]),
    (dict(n_head=0), ["config.json", "n_head must be a positive integer, got 0"]),
    (dict(n_inner=[1]), ["config.json", "n_inner is [1]"]),
    (dict(activation_function={"x": 1}), ["config.json", "activation_function is {'x': 1}"]),
])
def test_a_config_that_disagrees_with_the_weights_is_refused_before_building(copy, changes, words):
    directory = copy("hf")
    edit_json(directory / "config.json", **changes)
    refused(lambda: GPT.from_pretrained(directory), *words)
    refused(lambda: load_pretrained(directory), *words)


@pytest.mark.parametrize("text, words", [
    (f'{{"n_layer": {HUGE_INT}}}', ["config.json is not valid JSON", "5,000 digits"]),
    (DEEP, ["config.json is not valid JSON", "nested too deeply"]),
    ('{"n_layer": NaN}', ["config.json is not valid JSON", "NaN"]),
    ('{"layer_norm_epsilon": 1e999}', ["config.json is not valid JSON", "too large"]),
    ("[1, 2]", ["config.json must hold a JSON object, got list"]),
    ('"gpt2"', ["config.json must hold a JSON object, got str"]),
    ("\xff", ["config.json is not valid JSON"]),
])
def test_config_json_python_cannot_read_sanely_is_named(copy, text, words):
    directory = copy("hf")
    (directory / "config.json").write_text(text, encoding="latin-1")
    refused(lambda: GPT.from_pretrained(directory), *words)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "vocab.json", "merges.txt"])
def test_a_pipe_where_a_file_belongs_is_refused_without_waiting(copy, name):
    directory = copy("hf")
    fifo_at(directory / name)
    refused(lambda: load_pretrained(directory), name, "is not a regular file")


def test_a_safetensors_header_with_crafted_numbers_is_named(tmp_path):
    for header, words in [
        (f'{{"a": {{"dtype": "F32", "shape": [{HUGE_INT}], "data_offsets": [0, 4]}}}}', ["5,000 digits"]),
        ('{"a": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}}', ["too large"]),
        ('{"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}}', ["needs"]),
        ('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}', ["names ['a'] twice"]),
        (DEEP, ["nested too deeply"]),
    ]:
        blob = header.encode()
        (tmp_path / "x.safetensors").write_bytes(len(blob).to_bytes(8, "little") + blob + bytes(4))
        refused(lambda: SafetensorsFile(tmp_path / "x.safetensors"), "x.safetensors", *words)


def test_an_llmc_header_is_checked_against_the_file_size_before_reading(tmp_path):
    header = np.zeros(256, "<i4")
    header[:8] = [20240326, 3, 1024, 50257, 2**31 - 1, 12, 768, 50304]
    (tmp_path / "model.bin").write_bytes(header.tobytes() + bytes(64))
    refused(lambda: LlmcGPT2(tmp_path / "model.bin"), "model.bin", "n_layer 2147483647", "truncated")
    fifo_at(tmp_path / "pipe.bin")
    refused(lambda: LlmcGPT2(tmp_path / "pipe.bin"), "pipe.bin is not a regular file")


# -- tokenizer files that do not agree --------------------------------------------------------------
def test_merges_that_lost_lines_are_refused_not_turned_into_special_tokens(copy):
    directory = copy("hf")
    merges = (directory / "merges.txt").read_text().splitlines()
    (directory / "merges.txt").write_text("\n".join(merges[:-1]) + "\n")
    refused(lambda: BPETokenizer.from_pretrained(directory), "vocab.json", "1 entries, such as",
            "nor made by a line of merges.txt")
    (directory / "merges.txt").write_text(merges[0] + "\n")  # the header alone
    message = refused(lambda: BPETokenizer.from_pretrained(directory), "vocab.json", "nor special tokens")
    assert f"{len(merges) - 1} entries" in message


@pytest.mark.parametrize("entry", ["", "<pad>", "plainword", "<|with space|>"])
def test_an_undeclared_entry_is_not_a_special_token(copy, entry):
    directory = copy("hf")
    vocab = json.loads((directory / "vocab.json").read_text())
    vocab[entry] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    refused(lambda: BPETokenizer.from_pretrained(directory), "vocab.json", f"such as {entry!r}")


def test_added_tokens_json_declares_special_tokens(copy):
    directory = copy("hf")
    vocab = json.loads((directory / "vocab.json").read_text())
    vocab["<pad>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "added_tokens.json").write_text(json.dumps({"<pad>": len(vocab) - 1}))
    assert BPETokenizer.from_pretrained(directory).special_tokens["<pad>"] == len(vocab) - 1
    (directory / "added_tokens.json").write_text("[]")
    refused(lambda: BPETokenizer.from_pretrained(directory), "added_tokens.json must hold a JSON object")


@pytest.mark.parametrize("text, words", [
    ('{"a": %s}' % HUGE_INT, ["vocab.json is not valid JSON", "digits, more than"]),
    (DEEP, ["vocab.json is not valid JSON", "nested too deeply"]),
    ('["a", "b"]', ["vocab.json must hold a JSON object"]),
    ('{"a": "0"}', ["vocab.json", "the id of 'a' is '0', not an integer"]),
])
def test_vocab_json_python_cannot_read_sanely_is_named(copy, text, words):
    directory = copy("hf")
    (directory / "vocab.json").write_text(text)
    refused(lambda: BPETokenizer.from_pretrained(directory), *words)


# -- token directories ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, content, words", [
    ("tokenizer.json", {"type": "char"}, ["tokenizer.json is damaged", "needs 'chars'"]),
    ("tokenizer.json", {"type": "char", "chars": ["a", "b"]}, ["tokenizer.json is damaged", "needs 'chars'"]),
    ("tokenizer.json", {"type": ["char"]}, ["tokenizer.json is damaged", "unknown tokenizer"]),
    ("tokenizer.json", [], ["tokenizer.json is damaged", "unknown tokenizer 'list'"]),
    ("tokenizer.json", {"type": "bpe", "tokens": [], "merges": []}, ["tokenizer.json is damaged", "special_tokens"]),
    ("tokenizer.json", {"type": "bpe", "tokens": ["a"], "merges": [], "special_tokens": {"x": "0"}},
     ["tokenizer.json is damaged", "int ids"]),
    ("tokenizer.json", {"type": "pair", "src": 3}, ["tokenizer.json is damaged", "not a sequence tokenizer"]),
    ("meta.json", {"format": "transformer-jit-tokens", "dtype": "uint16", "vocab_size": "20"},
     ["meta.json has no valid dtype"]),
    ("meta.json", {"format": "transformer-jit-tokens", "dtype": ["uint16"], "vocab_size": 20},
     ["meta.json has no valid dtype"]),
])
def test_token_files_of_the_wrong_shape_are_named(copy, name, content, words):
    directory = copy("tokens")
    (directory / name).write_text(json.dumps(content))
    refused(lambda: open_token_dir(directory, 8), *words)


@pytest.mark.parametrize("name, text, words", [
    ("meta.json", DEEP, ["meta.json is not valid JSON", "nested too deeply"]),
    ("meta.json", '{"vocab_size": %s}' % HUGE_INT, ["meta.json is not valid JSON", "digits, more than"]),
    ("tokenizer.json", DEEP, ["tokenizer.json is not valid JSON", "nested too deeply"]),
])
def test_token_files_python_cannot_read_sanely_are_named(copy, name, text, words):
    directory = copy("tokens")
    (directory / name).write_text(text)
    refused(lambda: open_token_dir(directory, 8), *words)


@pytest.mark.parametrize("name", ["meta.json", "tokenizer.json", "train.bin", "val.bin"])
def test_a_pipe_in_a_token_directory_is_refused_without_waiting(copy, name, capsys, monkeypatch):
    directory = copy("tokens")
    fifo_at(directory / name)
    with quickly():
        assert_refused(["train", "--data", str(directory), "--out-dir", str(directory.parent / "run")],
                       f"{name} is not a regular file", directory.parent, capsys, monkeypatch)


# -- checkpoints ------------------------------------------------------------------------------------
def rewrite_checkpoint(path, change_meta=None, change_arrays=None):
    """Write `path` again with its description and arrays changed, as a crafted file would be."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays.pop("__meta__").tobytes())
    if change_meta:
        change_meta(meta)
    if change_arrays:
        change_arrays(arrays)
    blob = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    np.savez(path, **arrays, __meta__=np.frombuffer(blob, np.uint8))


def checkpoint_cases():
    def config(**changes):
        return lambda m: m["model_config"].update(changes)

    def tokenizer(**changes):
        return lambda m: m["tokenizer"].update(changes)

    def pop_layer(arrays):
        arrays.pop(next(name for name in arrays if name.startswith("model.") and ".h.0." in name))

    return [
        (config(n_layer="1"), None, ["has a damaged model config", "GPTConfig.n_layer must be an integer, got '1'"]),
        (config(n_layer=1_000_000_000), None, ["says n_layer 1000000000 but holds"]),
        (config(vocab_size=1 << 40), None, ["has a damaged tokenizer", "the model's 1099511627776"]),
        (config(n_embd=1 << 20, n_head=1), None, ["does not match its model config", "mis-shaped arrays"]),
        (config(dropout=2.0), None, ["has a damaged model config", "dropout must be in [0.0, 1.0)"]),
        (config(unknown=1), None, ["has a damaged model config", "no fields ['unknown']"]),
        (lambda m: m.update(model_config=[]), None, ["entries of the wrong type ['model_config']"]),
        (tokenizer(chars="abcde"), None, ["has a damaged tokenizer", "has 5 tokens, the model's"]),
        (tokenizer(chars=""), None, ["has a damaged tokenizer", "needs 'chars'"]),
        (tokenizer(type="bpe"), None, ["has a damaged tokenizer", "BPE tokenizer dict"]),
        (lambda m: m.update(tokenizer="char"), None, ["entries of the wrong type ['tokenizer']"]),
        (None, pop_layer, ["does not match its model config", "missing arrays"]),
        (None, lambda a: a.update({"model.extra": np.zeros(3, np.float32)}), ["unexpected arrays [extra]"]),
    ]


@pytest.mark.parametrize("change_meta, change_arrays, words", checkpoint_cases())
def test_a_damaged_checkpoint_is_named_not_reported_as_a_flag(copy, capsys, monkeypatch, change_meta, change_arrays,
                                                               words):
    run = copy("gpt")
    rewrite_checkpoint(run / "best.npz", change_meta, change_arrays)
    refused(lambda: load_model(run / "best.npz"), "best.npz", *words)
    err = assert_refused(["sample", "--out-dir", str(run), "--max-new-tokens", "3"], words[-1], run, capsys,
                         monkeypatch)
    assert "--" not in err.split("best.npz", 1)[1], err  # no flag the user never gave


def test_a_damaged_training_config_is_the_checkpoints_not_a_flag(copy, capsys, monkeypatch):
    run = copy("gpt")
    rewrite_checkpoint(run / "last.npz", lambda m: m["train_config"].update(lr="0.1"))
    err = assert_refused(["train", "--resume", "--out-dir", str(run), "--max-iters", "9"],
                         "last.npz has a damaged training config", run, capsys, monkeypatch)
    assert "--lr" not in err, err


def test_init_from_a_directory_holding_a_pipe_is_refused_without_waiting(copy, capsys, monkeypatch):
    directory = copy("hf")
    fifo_at(directory / "model.safetensors")
    with quickly():
        assert_refused(["train", "--init-from", str(directory), "--out-dir", str(directory.parent / "run")],
                       "model.safetensors is not a regular file", directory.parent, capsys, monkeypatch)


def test_a_checkpoint_member_with_a_crafted_shape_is_refused_before_allocation(copy):
    run = copy("gpt")
    path = run / "best.npz"
    with zipfile.ZipFile(path, "a") as archive, archive.open("model.huge.npy", "w") as member:
        np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": (1 << 40,)})
        member.write(bytes(16))
    refused(lambda: load_checkpoint(path), "best.npz is damaged", "'model.huge.npy'", "more than its")


def test_a_compressed_checkpoint_member_is_refused(copy):
    run = copy("gpt")
    with zipfile.ZipFile(run / "best.npz", "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.extra.npy", bytes(100))
    refused(lambda: load_checkpoint(run / "best.npz"), "best.npz is damaged", "compressed")


@pytest.mark.parametrize("blob, words", [
    (b'{"step": %s}' % HUGE_INT.encode(), ["digits, more than"]),
    (DEEP.encode(), ["nested too deeply"]),
    (b"\xff\xfe", ["not UTF-8"]),
])
def test_a_checkpoint_description_python_cannot_read_sanely_is_named(copy, blob, words):
    run = copy("gpt")
    rewrite_checkpoint(run / "best.npz", lambda m: None)
    with np.load(run / "best.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    np.savez(run / "best.npz", **{**arrays, "__meta__": np.frombuffer(blob, np.uint8)})
    refused(lambda: load_checkpoint(run / "best.npz"), "best.npz is damaged", *words)


def test_a_checkpoint_saved_before_any_evaluation_still_loads(tmp_path):
    meta = {"kind": "gpt", "model_config": {}, "train_config": {}, "tokenizer": None, "step": 0, "rng_state": {},
            "dropout_seed": 0, "forward_count": 0, "best_val_loss": float("inf"), "evals_since_best": 0, "info": {}}
    save_checkpoint(tmp_path / "first.npz", {}, meta)  # Python's json writes the loss as Infinity
    assert load_checkpoint(tmp_path / "first.npz", arrays=False)[1]["best_val_loss"] == float("inf")


def test_a_pipe_named_like_a_checkpoint_is_refused_without_waiting(copy, capsys, monkeypatch):
    run = copy("gpt")
    fifo_at(run / "best.npz")
    with quickly():
        assert_refused(["sample", "--out-dir", str(run)], "best.npz is not a regular file", run, capsys, monkeypatch)


# -- pretrained paths and dtypes ------------------------------------------------------------------------
def test_pretrained_paths_that_hold_no_pretrained_model_say_what_to_give(place, capsys, monkeypatch):
    for path, message in [
        ("openai-community/gpt2", "nothing is downloaded"),
        (place / "nowhere", "pretrained model not found"),
        (place / "gpt" / "best.npz", "is a training run's checkpoint, not a pretrained model"),
        (place / "gpt", "is a training run's directory"),
    ]:
        err = assert_refused(["sample", "--pretrained", str(path)], message, place, capsys, monkeypatch)
        assert "huggingface.co" in err or "--out-dir" in err, err


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.bool_, np.complex64])
def test_from_pretrained_refuses_dtypes_that_are_not_floating_point(place, dtype):
    refused(lambda: GPT.from_pretrained(place / "hf", dtype=dtype), "dtype must be float32 or float64")


def test_the_intact_files_still_load(place):
    start = time.perf_counter()
    model, tokenizer = load_pretrained(place / "hf")
    assert model.config.n_layer == 2 and tokenizer.vocab_size == model.config.vocab_size
    assert load_model(place / "gpt" / "best.npz")[0].config.n_layer == 1
    assert open_token_dir(place / "tokens", 8)[1].vocab_size > 0
    assert time.perf_counter() - start < 30


def _images_npz(path, shape, compression=zipfile.ZIP_STORED, file_size=None):
    """An .npz whose 'images' member holds 256 bytes behind a header declaring `shape`."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("images.npy", header.getvalue() + bytes(256))
    return path


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_an_image_npz_with_a_crafted_shape_is_refused_before_allocation(tmp_path, compression):
    path = _images_npz(tmp_path / "images.npz", (1 << 20, 1 << 20, 8), compression)
    with pytest.raises(ValueError, match=r"--data .*images.npz is a damaged .npz \(member 'images.npy' declares "
                                         r"a uint8 array of shape \(1048576, 1048576, 8\), more than its"):
        read_images(path, "--data")


def test_an_image_npz_member_claiming_more_than_deflate_can_hold_is_refused(tmp_path):
    path = _images_npz(tmp_path / "images.npz", (4, 8, 8), zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    entry = data.rindex(b"PK\x01\x02")  # the central directory's record of the member
    data[entry + 24:entry + 28] = (0xF000_0000).to_bytes(4, "little")  # its uncompressed size: 4 GB
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="member 'images.npy' claims 4,026,531,840 bytes, more than its storage"):
        read_images(path, "--data")


def test_a_compressed_image_npz_as_savez_compressed_writes_still_loads(tmp_path):
    np.savez_compressed(tmp_path / "d.npz", images=np.full((3, 4, 4), 9, np.uint8), labels=np.array([0, 1, 0]))
    got = read_images(tmp_path / "d.npz", "--data")
    assert got.images.shape == (3, 4, 4, 1) and (got.images == 9).all()
