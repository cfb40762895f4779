"""The encoder models on files: a generated sentiment-like task and a generated parallel corpus,
written as TSV files and trained on through the command line, with the scores and the time.

    python scripts/example_file_tasks.py                 # in a temporary directory
    python scripts/example_file_tasks.py --keep DIR      # leave the files and runs in DIR

Sentiment: reviews of 6-14 words drawn from neutral words, with a few words that carry a feeling
("superb", "dull", ...) and sometimes "not" before one, which turns it round; the label
("positive" or "negative") is the sign of the feelings' sum, ties left out. Translation: the
dates task's pairs (a date written in one of several ways -> ISO 8601), written as source and
target columns. Each is trained with `transformer-jit train-classifier` / `train-seq2seq --data`,
then run on a few new lines with `classify` / `translate --input`.
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NEUTRAL = ("the film story actor scene plot music ending camera cast script one it was is and with a this "
           "that of to in first second hour part role").split()
FEELINGS = {"superb": 2, "moving": 1, "clever": 1, "funny": 1, "great": 2, "lovely": 1,
            "dull": -1, "awful": -2, "boring": -1, "clumsy": -1, "weak": -1, "dreadful": -2}


def review(rng):
    """(text, label) or None for a review whose feelings cancel out."""
    words = list(rng.choice(NEUTRAL, size=rng.integers(6, 15)))
    total = 0
    for _ in range(rng.integers(1, 4)):
        word = str(rng.choice(list(FEELINGS)))
        negated = rng.random() < 0.25
        total += -FEELINGS[word] if negated else FEELINGS[word]
        at = int(rng.integers(0, len(words) + 1))
        words[at:at] = ["not", word] if negated else [word]
    if total == 0:
        return None
    return " ".join(words), "positive" if total > 0 else "negative"


def sentiment_rows(n, seed):
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n:
        row = review(rng)
        if row is not None:
            rows.append(row)
    return rows


def write_tsv(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")


def run(command, cwd):
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "transformer_jit", *command], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:1])} failed: {done.stderr.strip()}")
    return done.stdout, time.perf_counter() - t0


def last_line(out, start):
    return next(line for line in reversed(out.splitlines()) if line.startswith(start))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--keep", default=None, help="a directory to keep the files and runs in")
    args = parser.parse_args()
    from transformer_jit.data.tasks import date_pairs

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        write_tsv(root / "reviews.tsv", ["text", "label"], sentiment_rows(20000, seed=0))
        write_tsv(root / "reviews-val.tsv", ["text", "label"], sentiment_rows(500, seed=1))
        (root / "new-reviews.txt").write_text("".join(t + "\n" for t, _ in sentiment_rows(5, seed=2)))
        out, seconds = run(["train-classifier", "--data", "reviews.tsv", "--val-data", "reviews-val.tsv",
                            "--text-column", "text", "--label-column", "label", "--tokenizer", "bpe",
                            "--vocab-size", "400", "--out-dir", "sentiment", "--overwrite", "--max-iters", "3000",
                            "--eval-interval", "1000"], root)
        print(f"sentiment, 20,000 reviews ({seconds:.0f} s, compile included): "
              f"{last_line(out, 'held-out')}")
        out, _ = run(["classify", "--out-dir", "sentiment", "--input", "new-reviews.txt"], root)
        print(out.rstrip())

        pairs = date_pairs(6000, seed=0, split="train")
        write_tsv(root / "dates.tsv", ["source", "target"], pairs)
        (root / "new-dates.txt").write_text("3rd of March 2021\nMonday, 14 July 1789\n")
        out, seconds = run(["train-seq2seq", "--data", "dates.tsv", "--val-fraction", "0.1",
                            "--source-column", "source", "--target-column", "target", "--out-dir", "dates",
                            "--overwrite", "--max-iters", "1500", "--eval-interval", "500"], root)
        print(f"translation, 6,000 date pairs ({seconds:.0f} s, compile included): "
              f"{last_line(out, 'held-out')}")
        out, _ = run(["translate", "--out-dir", "dates", "--input", "new-dates.txt"], root)
        print(out.rstrip())


if __name__ == "__main__":
    main()
