"""Nothing lost: token files and exports are replaced in one step. An error, Ctrl-C or SIGTERM at any
stage leaves what was there byte-identical and no temporary behind; no command writes over what it
reads."""
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from refusals import snapshot

from transformer_jit.cli import main
from transformer_jit.data import prepare as prepare_module
from transformer_jit.data.token_files import open_token_dir
from transformer_jit.data.tokenizers import BPETokenizer, CharTokenizer
from transformer_jit.formats import llmc
from transformer_jit.models import GPT
from transformer_jit.util import atomic
from transformer_jit.util.atomic import atomic_write, replaced_directory
from transformer_jit.util.overlap import check_apart
from transformer_jit.util.signals import HeldInterrupts

NAMES = ("a", "b", "c")


def interrupt(signum=signal.SIGINT):
    """A real signal to this process, handled as it would be from a terminal or `kill`."""
    os.kill(os.getpid(), signum)


def then(real, action):
    """`real`, followed by `action()` once it has done its work."""
    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        action()
        return result
    return wrapped


def raise_(error):
    def action():
        raise error
    return action


@pytest.fixture
def sigterm_stops():
    """SIGTERM raises KeyboardInterrupt, as the command line makes it, instead of ending pytest."""
    def stop(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, stop)
    yield
    signal.signal(signal.SIGTERM, previous)


def old_directory(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "a").write_text("old a")
    (directory / "b").write_text("old b")
    return directory


# -- atomic_write ---------------------------------------------------------------------------------
def test_an_interrupt_right_after_the_temporary_is_created_leaves_nothing_behind(tmp_path, monkeypatch):
    path = tmp_path / "file"
    path.write_bytes(b"old")
    monkeypatch.setattr(atomic, "open", then(open, interrupt), raising=False)
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path) as f:
            f.write(b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file"]


def test_atomic_write_names_the_callers_path_not_its_temporary(tmp_path):
    (tmp_path / "dir").mkdir()
    for path in (tmp_path / "dir", tmp_path / "missing" / "file"):
        with pytest.raises(OSError) as caught:
            with atomic_write(path) as f:
                f.write(b"x")
        assert caught.value.filename == str(path)
    assert sorted(os.listdir(tmp_path)) == ["dir"] and os.listdir(tmp_path / "dir") == []


# -- replaced_directory ---------------------------------------------------------------------------
def test_a_directory_is_replaced_whole_and_nothing_else_is_left(tmp_path):
    directory = old_directory(tmp_path)
    directory.chmod(0o750)
    with replaced_directory(directory, NAMES, "test files") as staging:
        assert staging.parent == tmp_path and os.listdir(staging) == []
        (staging / "c").write_text("new c")
        assert (directory / "a").read_text() == "old a"  # a reader still sees the old directory
    assert os.listdir(directory) == ["c"] and (directory / "c").read_text() == "new c"
    assert os.listdir(tmp_path) == ["d"]
    assert directory.stat().st_mode & 0o777 == 0o750


@pytest.mark.parametrize("failure", [
    raise_(ValueError("a bad input")),
    raise_(OSError(errno.ENOSPC, "No space left on device")),
    raise_(KeyboardInterrupt()),
    interrupt,
    lambda: interrupt(signal.SIGTERM),
], ids=["error", "disk full", "KeyboardInterrupt", "SIGINT", "SIGTERM"])
def test_a_failure_while_building_leaves_the_old_directory_and_no_temporary(tmp_path, sigterm_stops, failure):
    old_directory(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises((ValueError, OSError, KeyboardInterrupt)):
        with replaced_directory(tmp_path / "d", NAMES, "test files") as staging:
            (staging / "a").write_text("new a")
            failure()
            (staging / "b").write_text("new b")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("exchange", [True, False], ids=["exchanged", "moved aside"])
def test_an_interrupt_during_the_switch_waits_until_it_is_done(tmp_path, monkeypatch, exchange):
    directory = old_directory(tmp_path)
    real = atomic._exchange if exchange else (lambda a, b: False)
    monkeypatch.setattr(atomic, "_exchange", then(real, interrupt))
    with pytest.raises(KeyboardInterrupt):
        with replaced_directory(directory, NAMES, "test files") as staging:
            (staging / "c").write_text("new c")
    assert os.listdir(directory) == ["c"] and os.listdir(tmp_path) == ["d"]


def test_without_an_exchange_a_failed_move_puts_the_old_directory_back(tmp_path, monkeypatch):
    directory = old_directory(tmp_path)
    before = snapshot(tmp_path)
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    real_rename, calls = os.rename, []

    def rename(src, dst):
        calls.append(dst)
        if Path(dst) == directory and len(calls) == 2:  # the new directory moving in
            raise OSError(errno.EIO, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(atomic.os, "rename", rename)
    with pytest.raises(OSError, match="Input/output error"):
        with replaced_directory(directory, NAMES, "test files") as staging:
            (staging / "c").write_text("new c")
    assert snapshot(tmp_path) == before and len(calls) == 3


def test_files_that_are_not_part_of_it_are_never_deleted(tmp_path):
    directory = old_directory(tmp_path)
    (directory / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"d holds files that are not test files \(notes.txt\)"):
        with replaced_directory(directory, NAMES, "test files"):
            pass
    assert snapshot(tmp_path) == before
    (directory / "notes.txt").unlink()
    with pytest.raises(ValueError, match=r"not test files \(late.txt\)"):  # one that arrives while it is built
        with replaced_directory(directory, NAMES, "test files") as staging:
            (staging / "c").write_text("new c")
            (directory / "late.txt").write_text("mine too")
    assert sorted(os.listdir(directory)) == ["a", "b", "late.txt"] and (directory / "a").read_text() == "old a"
    assert os.listdir(tmp_path) == ["d"]


@pytest.mark.parametrize("path, message", [
    ("/", "/ is a mount point, which cannot be replaced in one step"),
    (".", ". is the current directory, which cannot be replaced"),
])
def test_a_directory_that_cannot_move_is_refused_before_anything_is_written(tmp_path, monkeypatch, path, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        with replaced_directory(path, NAMES, "test files"):
            pass
    assert os.listdir(tmp_path) == []


def test_a_new_directory_gets_its_parents_and_a_failure_removes_them(tmp_path):
    with pytest.raises(ValueError):
        with replaced_directory(tmp_path / "x" / "y" / "d", NAMES, "test files") as staging:
            (staging / "a").write_text("new a")
            raise ValueError("failed")
    assert os.listdir(tmp_path) == []
    with replaced_directory(tmp_path / "x" / "y" / "d", NAMES, "test files") as staging:
        (staging / "a").write_text("new a")
    assert os.listdir(tmp_path / "x" / "y" / "d") == ["a"] and os.listdir(tmp_path / "x" / "y") == ["d"]


def test_a_symlink_keeps_pointing_at_the_replaced_directory(tmp_path):
    directory = old_directory(tmp_path)
    (tmp_path / "link").symlink_to(directory)
    with replaced_directory(tmp_path / "link", NAMES, "test files") as staging:
        assert staging.parent == tmp_path
        (staging / "c").write_text("new c")
    assert (tmp_path / "link").is_symlink() and os.listdir(directory) == ["c"]
    assert sorted(os.listdir(tmp_path)) == ["d", "link"]


# -- HeldInterrupts -------------------------------------------------------------------------------
def test_held_interrupts_act_when_the_block_ends_and_released_ones_at_once():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with HeldInterrupts():
            interrupt()
            done.append("held")
    assert done == ["held"]
    with pytest.raises(KeyboardInterrupt):
        with HeldInterrupts() as held:
            with held.released():
                interrupt()
                done.append("released")
    assert done == ["held"]


def test_held_sigterm_reaches_the_handler_that_was_there():
    received = []

    def handler(signum, frame):
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with HeldInterrupts():
            interrupt(signal.SIGTERM)
            assert received == []
        assert received == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- check_apart ----------------------------------------------------------------------------------
@pytest.mark.parametrize("output, input_, verb", [
    ("d", "d", "is"),
    ("d", "d/in.txt", "contains"),
    ("d/sub/..", "d/in.txt", "contains"),
    ("link", "d/in.txt", "contains"),       # link -> d
    ("d/new/out", "d/new/out/x", "contains"),  # neither exists yet
    ("hard.txt", "d/in.txt", "is"),         # a hard link to it
    (".", "d", "contains"),
    ("d/out", "d", None),                   # writing inside an input directory replaces nothing of it
    ("e", "d/in.txt", None),
    ("d", "", None),
])
def test_an_output_that_is_or_holds_an_input_is_refused(tmp_path, monkeypatch, output, input_, verb):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "in.txt").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "d")
    os.link(tmp_path / "d" / "in.txt", tmp_path / "hard.txt")
    if verb is None:
        check_apart("--out-dir", output, [("--data", input_)])
        return
    with pytest.raises(ValueError, match=f"^--out-dir {output} {verb} --data {input_}: writing there could destroy"):
        check_apart("--out-dir", output, [("--data", input_)])


@pytest.mark.parametrize("input_, refused", [
    ("d", "is --data d"),                       # the directory the files go into
    ("d/config.json", "is the config.json that --out-dir d gets"),
    ("d/../d/last.npz", "is the last.npz that --out-dir d gets"),
    ("d/in.txt", None),                         # beside the files written: untouched
    ("d/sub/config.json", None),
])
def test_an_output_directory_that_gets_some_files_refuses_only_those(tmp_path, monkeypatch, input_, refused):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    if refused is None:
        check_apart("--out-dir", "d", [("--data", input_)], writes=("config.json", "last.npz"))
        return
    with pytest.raises(ValueError, match=refused):
        check_apart("--out-dir", "d", [("--data", input_)], writes=("config.json", "last.npz"))


def test_a_run_trains_on_data_kept_in_its_own_directory(tmp_path):
    (tmp_path / "input.txt").write_text(OLD_TEXT)
    assert main(["train", "--data", str(tmp_path / "input.txt"), "--out-dir", str(tmp_path), "--max-iters", "2",
                 "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "2",
                 "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0"]) == 0
    assert (tmp_path / "input.txt").read_text() == OLD_TEXT and (tmp_path / "last.npz").is_file()


# -- prepare --------------------------------------------------------------------------------------
OLD_TEXT = "an old corpus, line by line.\n" * 60
NEW_TEXT = "A NEW ONE: OTHER CHARACTERS!\n" * 80


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    """tmp_path with old.txt prepared into d/, and new.txt beside it."""
    monkeypatch.chdir(tmp_path)
    Path("old.txt").write_text(OLD_TEXT)
    Path("new.txt").write_text(NEW_TEXT)
    assert main(["prepare", "--data", "old.txt", "--out-dir", "d"]) == 0
    return tmp_path


def read_text_then(action, split):
    """prepare's reader of the text, doing `action()` after the first chunk of `split`."""
    real = prepare_module._read_text

    def read(path, start, end, digest, bar):
        for i, text in enumerate(real(path, start, end, digest, bar)):
            yield text
            if i == 0 and (start > 0) == (split == "val") and digest is not None:
                action()
    return read


class BrokenDigest:
    """A hash that fails when meta.json asks for it, after both token files are written."""

    def update(self, data):
        pass

    def hexdigest(self):
        raise KeyboardInterrupt


@pytest.mark.parametrize("stage, status", [
    ("not UTF-8 at the end", 2),
    ("Ctrl-C in train.bin", 130),
    ("SIGTERM in val.bin", 130),
    ("disk full in val.bin", 1),
    ("Ctrl-C in tokenizer.json", 130),
    ("Ctrl-C before meta.json", 130),
])
def test_a_failed_prepare_leaves_the_old_token_files_byte_identical(dataset, monkeypatch, capsys, stage, status):
    monkeypatch.setattr(prepare_module, "CHUNK", 256)
    options = []
    if stage == "not UTF-8 at the end":  # found while encoding: the BPE is trained on the start only
        Path("new.txt").write_bytes(NEW_TEXT.encode() + b"\xff\n")
        monkeypatch.setattr(prepare_module, "BPE_SAMPLE", 1024)
        options = ["--tokenizer", "bpe", "--vocab-size", "260"]
    elif stage == "Ctrl-C in train.bin":
        monkeypatch.setattr(prepare_module, "_read_text", read_text_then(interrupt, "train"))
    elif stage == "SIGTERM in val.bin":
        monkeypatch.setattr(prepare_module, "_read_text", read_text_then(lambda: interrupt(signal.SIGTERM), "val"))
    elif stage == "disk full in val.bin":
        monkeypatch.setattr(prepare_module, "_read_text",
                            read_text_then(raise_(OSError(errno.ENOSPC, "No space left on device")), "val"))
    elif stage == "Ctrl-C in tokenizer.json":
        monkeypatch.setattr(CharTokenizer, "to_dict", then(CharTokenizer.to_dict, interrupt))
    else:
        monkeypatch.setattr(prepare_module, "hashlib", SimpleNamespace(sha256=BrokenDigest))
    before = snapshot(dataset)
    capsys.readouterr()
    assert main(["prepare", "--data", "new.txt", "--out-dir", "d", "--overwrite", *options]) == status
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert snapshot(dataset) == before


def test_a_signal_during_the_switch_lets_it_finish_with_the_new_token_files(dataset, monkeypatch, capsys):
    monkeypatch.setattr(atomic, "_exchange", then(atomic._exchange, lambda: interrupt(signal.SIGTERM)))
    assert main(["prepare", "--data", "new.txt", "--out-dir", "d", "--overwrite"]) == 130
    assert json.loads(Path("d/meta.json").read_text())["source"]["name"] == "new.txt"
    assert sorted(os.listdir(dataset)) == ["d", "new.txt", "old.txt"]


@pytest.mark.parametrize("signum, seed", [(signal.SIGINT, 0), (signal.SIGINT, 1), (signal.SIGTERM, 2),
                                           (signal.SIGKILL, 3), (signal.SIGKILL, 4)])
def test_a_prepare_stopped_at_a_random_moment_leaves_the_old_token_files_or_the_new_ones(dataset, signum, seed):
    rng = random.Random(seed)
    texts = {"old.txt": OLD_TEXT,
             "new.txt": "".join(" ".join(rng.choices(["alpha", "beta", "gamma"], k=12)) + "\n" for _ in range(60_000))}
    Path("new.txt").write_text(texts["new.txt"])
    proc = subprocess.Popen([sys.executable, "-m", "transformer_jit", "prepare", "--data", "new.txt", "--out-dir", "d",
                             "--overwrite"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while proc.poll() is None and not any(name.startswith(".d.") for name in os.listdir(dataset)):
        time.sleep(0.001)  # until the new directory is being written
    time.sleep(rng.uniform(0, 0.3))  # then anywhere from writing train.bin to after the switch
    proc.send_signal(signum)
    proc.communicate(timeout=120)
    _, tokenizer, meta = open_token_dir("d", 8)
    ids = [np.fromfile(Path("d") / f"{split}.bin", dtype=meta["dtype"]) for split in ("train", "val")]
    assert tokenizer.decode(np.concatenate(ids)) == texts[meta["source"]["name"]]
    if signum != signal.SIGKILL:  # only a kill leaves its temporary behind
        assert sorted(os.listdir(dataset)) == ["d", "new.txt", "old.txt"]


TINY = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
        "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0", "--max-iters", "2"]


def test_prepare_overwrite_replaces_the_token_files_and_training_reads_the_new_ones(dataset, capsys):
    assert main(["prepare", "--data", "new.txt", "--out-dir", "d", "--overwrite"]) == 0
    meta = json.loads(Path("d/meta.json").read_text())
    assert meta["source"]["name"] == "new.txt" and sorted(os.listdir("d")) == [
        "meta.json", "tokenizer.json", "train.bin", "val.bin"]
    assert sorted(os.listdir(dataset)) == ["d", "new.txt", "old.txt"]
    capsys.readouterr()
    assert main(["train", "--data", "d", "--out-dir", "run", *TINY]) == 0
    out = capsys.readouterr().out
    assert f"({meta['tokens']['train']:,} + {meta['tokens']['val']:,} tokens, vocabulary {meta['vocab_size']} " in out


def test_a_first_prepare_fills_an_empty_directory_and_keeps_its_permissions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("new.txt").write_text(NEW_TEXT)
    Path("empty").mkdir(mode=0o700)
    assert main(["prepare", "--data", "new.txt", "--out-dir", "empty"]) == 0
    assert len(os.listdir("empty")) == 4 and Path("empty").stat().st_mode & 0o777 == 0o700
    assert sorted(os.listdir(tmp_path)) == ["empty", "new.txt"]


# -- export ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small trained GPT with a byte-level BPE tokenizer."""
    root = tmp_path_factory.mktemp("export")
    (root / "input.txt").write_text(OLD_TEXT)
    assert main(["train", "--data", str(root / "input.txt"), "--tokenizer", "bpe", "--vocab-size", "260",
                 "--out-dir", str(root / "run"), *TINY]) == 0
    return root / "run"


@pytest.fixture
def exported(run, tmp_path, monkeypatch):
    """tmp_path with an hf export in hf/ and an llm.c one in model.bin, each marked as older than
    what exporting the run writes now."""
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--out-dir", str(run), "--format", "hf", "hf"]) == 0
    assert main(["export", "--out-dir", str(run), "--format", "llmc", "model.bin"]) == 0
    config = json.loads(Path("hf/config.json").read_text())
    Path("hf/config.json").write_text(json.dumps({**config, "old": True}))
    with open("model.bin", "ab") as f:
        f.write(b"old")
    return tmp_path


def test_an_existing_export_is_replaced_only_with_overwrite(run, exported, capsys):
    for fmt, dest, message in (("hf", "hf", "hf already holds an export: replace it with --overwrite"),
                               ("llmc", "model.bin", "model.bin already exists: replace it with --overwrite")):
        before = snapshot(exported)
        capsys.readouterr()
        assert main(["export", "--out-dir", str(run), "--format", fmt, dest]) == 2
        assert capsys.readouterr().err.strip() == f"error: {message}"
        assert snapshot(exported) == before
        assert main(["export", "--out-dir", str(run), "--format", fmt, dest, "--overwrite"]) == 0
    assert "old" not in json.loads(Path("hf/config.json").read_text())
    assert not Path("model.bin").read_bytes().endswith(b"old")
    assert sorted(os.listdir("hf")) == ["config.json", "merges.txt", "model.safetensors", "vocab.json"]
    assert sorted(os.listdir(exported)) == ["hf", "model.bin"]


@pytest.mark.parametrize("fmt, where, failure, status", [
    ("hf", (GPT, "save_pretrained"), raise_(OSError(errno.ENOSPC, "No space left on device")), 1),
    ("hf", (BPETokenizer, "save_pretrained"), interrupt, 130),
    ("hf", (BPETokenizer, "save_pretrained"), lambda: interrupt(signal.SIGTERM), 130),
    ("llmc", (llmc, "file_layout"), interrupt, 130),
    ("llmc", (llmc, "file_layout"), raise_(OSError(errno.ENOSPC, "No space left on device")), 1),
], ids=["hf weights, disk full", "hf tokenizer, Ctrl-C", "hf tokenizer, SIGTERM", "llmc, Ctrl-C",
        "llmc, disk full"])
def test_a_failed_export_keeps_the_old_one_byte_identical(run, exported, monkeypatch, capsys, fmt, where, failure,
                                                          status):
    owner, name = where
    monkeypatch.setattr(owner, name, then(getattr(owner, name), failure))
    before = snapshot(exported)
    capsys.readouterr()
    dest = "hf" if fmt == "hf" else "model.bin"
    assert main(["export", "--out-dir", str(run), "--format", fmt, dest, "--overwrite"]) == status
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert snapshot(exported) == before
