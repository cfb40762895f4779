"""Messages and behaviours at the edges of the options: flags are never abbreviated, a resumed run
keeps its schedule, a run in progress is named as such, tiny temperatures are greedy, bad ids
are named."""
import argparse
import csv
import fcntl
import json
import os

import numpy as np
import pytest

from transformer_jit import GPT, CharTokenizer, GPTConfig
from transformer_jit.cli import build_parser, main

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40
GPT_OPTIONS = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
               "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0", "--warmup-iters", "1"]


def parsers(parser):
    """The parser and every subcommand's parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def test_no_command_accepts_an_abbreviated_flag():
    every = list(parsers(build_parser()))
    assert len(every) > 8 and all(not p.allow_abbrev for p in every)


def metrics(run):
    with open(run / "metrics.csv") as f:
        return [(int(r["step"]), r["train_loss"], r["val_loss"], float(r["lr"])) for r in csv.DictReader(f)]


def test_a_longer_resumed_run_keeps_the_schedule_it_was_on(tmp_path, capsys):
    """Resuming a 4-step run to 8 steps equals one 8-step run whose cosine ends at step 4."""
    (tmp_path / "input.txt").write_text(TEXT)
    data = ["--data", str(tmp_path / "input.txt")]
    assert main(["train", *data, "--out-dir", str(tmp_path / "resumed"), "--max-iters", "4", *GPT_OPTIONS]) == 0
    assert main(["train", "--resume", "--out-dir", str(tmp_path / "resumed"), "--max-iters", "8"]) == 0
    assert "keeps its cosine decay to --min-lr at step 4" in capsys.readouterr().out
    assert main(["train", *data, "--out-dir", str(tmp_path / "straight"), "--max-iters", "8",
                 "--lr-decay-iters", "4", *GPT_OPTIONS]) == 0
    resumed = metrics(tmp_path / "resumed")
    assert resumed == metrics(tmp_path / "straight")
    assert [lr for step, *_, lr in resumed if step > 4] == [1e-4, 1e-4]  # the default --min-lr
    saved = json.loads((tmp_path / "resumed" / "config.json").read_text())["training"]
    assert saved["lr_decay_iters"] == 4 and saved["max_iters"] == 8

    assert main(["train", "--resume", "--out-dir", str(tmp_path / "resumed"), "--max-iters", "10",
                 "--lr-decay-iters", "10"]) == 0  # a horizon given on resume is the one used
    assert metrics(tmp_path / "resumed")[-1][3] > 1e-4 and "keeps its cosine" not in capsys.readouterr().out


def test_resuming_a_run_in_progress_without_a_checkpoint_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process's training holds the lock
        assert main(["train", "--resume", "--out-dir", str(run)]) == 2
        assert "is in progress in another process and has saved no checkpoint yet" in capsys.readouterr().err
    finally:
        os.close(fd)
    assert main(["train", "--resume", "--out-dir", str(run)]) == 2  # the lock is free: nothing to resume
    assert "has no last.npz to resume from" in capsys.readouterr().err


@pytest.mark.parametrize("temperature", [5e-324, 1e-300, 1e-7])
def test_a_temperature_too_small_to_divide_by_is_greedy(temperature):
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16), seed=0)
    prompt = np.array([[1, 2, 3]])
    greedy = model.generate(prompt, 6, temperature=0)
    assert np.array_equal(model.generate(prompt, 6, temperature=temperature, seed=1), greedy)


def test_decoding_an_id_outside_the_vocabulary_names_it():
    with pytest.raises(ValueError, match=r"token id 7 \(at index 1\) is outside the vocabulary \(size 3\)"):
        CharTokenizer(list("abc")).decode([0, 7])
    with pytest.raises(ValueError, match=r"token id -1 \(at index 0\)"):
        CharTokenizer(list("abc")).decode(np.array([[-1, 0]]))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_an_empty_text_is_classified_by_its_cls_token_or_named(tmp_path, capsys, pooling):
    assert main(["train-classifier", "--out-dir", str(tmp_path), "--pooling", pooling, "--max-iters", "2",
                 "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--batch-size", "8", "--eval-interval", "2",
                 "--eval-iters", "1", "--n-train", "200", "--n-test", "4"]) == 0
    capsys.readouterr()
    status = main(["classify", "--out-dir", str(tmp_path), "()", ""])
    out, err = capsys.readouterr()
    if pooling == "mean":
        assert status == 2 and "input 2 of 2 is empty: this classifier averages over the tokens" in err
    else:
        assert status == 0 and out.splitlines()[1].startswith(" -> ")
        assert main(["classify", "--out-dir", str(tmp_path), ""]) == 0  # empty texts alone: the CLS token alone
