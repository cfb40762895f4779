"""train-classifier and train-seq2seq on the user's files, end to end: labels by name, the
validation split scored, resume, and classify/translate reading arguments, --input or stdin and
writing --output; bad command lines refused."""
import io
import json
import random
import sys

import pytest

from refusals import assert_refused
from transformer_jit.cli import main
from transformer_jit.data.task_data import classifier_task
from transformer_jit.train.recipes import recipe

TINY = ["--n-embd", "16", "--n-head", "2", "--batch-size", "8", "--eval-interval", "3", "--eval-iters", "2"]


def sentiment_tsv(path, n, seed):
    """Texts of filler words and one word that carries the label."""
    rng = random.Random(seed)
    words = {"positive": ["good", "great"], "negative": ["bad", "dull"]}
    rows = ["text\tlabel"]
    for _ in range(n):
        label = rng.choice(sorted(words))
        rows.append(f"the film was {rng.choice(words[label])}\t{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


def run(argv, capsys, stdin=""):
    sys.stdin = io.StringIO(stdin)
    try:
        code = main([str(a) for a in argv])
    finally:
        sys.stdin = sys.__stdin__
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_classifier_on_a_file_names_its_labels_end_to_end(tmp_path, capsys, monkeypatch):
    data = sentiment_tsv(tmp_path / "train.tsv", 40, 0)
    out = run(["train-classifier", "--data", data, "--out-dir", tmp_path / "run", "--n-layer", "1",
               "--max-iters", "6", *TINY], capsys)
    assert out.count("val accuracy: ") == 2 and "macro-F1" in out  # at steps 3 and 6
    assert "held-out accuracy: " in out and "on the validation split" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"]["labels"] == ["negative", "positive"] and config["task"]["task"] == "files"

    out = run(["classify", "--out-dir", tmp_path / "run", "the film was good", "bad"], capsys)
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].split(" -> ")[1] in ("negative", "positive")

    (tmp_path / "in.txt").write_text("the film was good\nthe film was dull\ngreat\n")
    out = run(["classify", "--out-dir", tmp_path / "run", "--input", tmp_path / "in.txt", "--output",
               tmp_path / "labels.txt"], capsys)
    assert "wrote 3 lines" in out
    written = (tmp_path / "labels.txt").read_text().splitlines()
    assert len(written) == 3 and set(written) <= {"negative", "positive"}

    out = run(["classify", "--out-dir", tmp_path / "run"], capsys, stdin="great\ndull\n")
    assert [line.split(" -> ")[0] for line in out.splitlines()] == ["great", "dull"]

    out = run(["train-classifier", "--resume", "--out-dir", tmp_path / "run", "--max-iters", "9"], capsys)
    assert "at step 6" in out and "val accuracy: " in out

    sentiment_tsv(data, 40, 1)  # another file where the run's was
    assert_refused(["train-classifier", "--resume", "--out-dir", str(tmp_path / "run"), "--max-iters", "12"],
                   "is not the file the run in", tmp_path, capsys, monkeypatch)


def test_seq2seq_on_a_json_lines_file_translates_input_files(tmp_path, capsys):
    rng = random.Random(0)
    words = ["cat", "dog", "sun", "tree"]
    with open(tmp_path / "pairs.jsonl", "w") as f:
        for _ in range(40):
            source = " ".join(rng.choice(words) for _ in range(3))
            f.write(json.dumps({"source": source, "target": source[::-1]}) + "\n")
    out = run(["train-seq2seq", "--data", tmp_path / "pairs.jsonl", "--out-dir", tmp_path / "run", "--shared-vocab",
               "--n-encoder-layer", "1", "--n-decoder-layer", "1", "--max-iters", "3", *TINY], capsys)
    assert "val exact match: " in out and "chrF" in out and "on the validation split" in out
    (tmp_path / "in.txt").write_text("cat dog sun\ntree tree cat\n")
    run(["translate", "--out-dir", tmp_path / "run", "--input", tmp_path / "in.txt", "--output",
         tmp_path / "out.txt", "--beam-width", "1"], capsys)
    assert len((tmp_path / "out.txt").read_text().split("\n")) == 3  # two lines and the final newline


def test_the_builtin_task_names_its_labels():
    data = recipe("brackets")["data"]
    assert classifier_task("brackets", {**data, "n_train": 20, "n_test": 4}).labels == ["unbalanced", "balanced"]


@pytest.mark.parametrize("argv, message", [
    (["train-classifier", "--data", "{root}/train.tsv", "--task", "brackets"],
     "--data trains on a file: --task is for the built-in task"),
    (["train-classifier", "--val-fraction", "0.2"], "--val-fraction is for the user's files: give --data FILE"),
    (["train-classifier", "--data", "{root}/train.tsv", "--val-data", "{root}/train.tsv", "--val-fraction", "0.2"],
     "--val-data is the validation split: leave out --val-fraction"),
    (["train-classifier", "--data", "{root}/train.tsv", "--vocab-size", "300"],
     "--vocab-size is the size of a new BPE: give it with --tokenizer bpe"),
    (["train-classifier", "--data", "{root}/train.tsv", "--label-column", "sentiment"],
     "no column named 'sentiment' (--label-column)"),
    (["train-classifier", "--data", "{root}/missing.tsv"], "--data not found: {root}/missing.tsv"),
    (["train-seq2seq", "--data", "{root}/train.tsv"], "no column named 'source' (--source-column)"),
    (["classify", "--out-dir", "{root}", "--input", "{root}/in.txt", "--output", "{root}/in.txt"],
     "--output {root}/in.txt is --input {root}/in.txt"),
    (["classify", "--out-dir", "{root}", "--input", "{root}/in.txt", "text"],
     "give texts as arguments or --input FILE, not both"),
    (["classify", "--out-dir", "{root}", "--input", "{root}/bad.txt"], "--input {root}/bad.txt line 2 is not UTF-8"),
])
def test_bad_command_lines_are_refused(tmp_path, capsys, monkeypatch, argv, message):
    sentiment_tsv(tmp_path / "train.tsv", 10, 0)
    (tmp_path / "in.txt").write_text("good\n")
    (tmp_path / "bad.txt").write_bytes(b"good\nd\xe9j\xe0\n")
    argv = [a.format(root=tmp_path) for a in argv] + ["--out-dir", str(tmp_path / "run")] * (argv[0] != "classify")
    assert_refused(argv, message.format(root=tmp_path), tmp_path, capsys, monkeypatch)
