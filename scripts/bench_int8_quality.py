"""What rounding the weights costs: validation loss and logits of a GPT trained here (byte-level
BPE, Shakespeare) with its float32 weights, bfloat16 copies and int8 copies (a scale per 32).

    python scripts/bench_int8_quality.py                          # trains a small model first (minutes)
    python scripts/bench_int8_quality.py --run out-shakespeare    # a run's best.npz, BPE or characters
    python scripts/bench_int8_quality.py --iters 100 --windows 4  # a quick check that it works

Without --run it trains `transformer-jit train --tokenizer bpe` on ../shared/data/tinyshakespeare.txt
(`--data` for another text) into a temporary directory: 4 layers, 4 heads, 128 channels, context
128, a 1024-token BPE, `--iters` steps. The validation text is the last 10% of the tokens, the split
training held out. Each kind of weights is scored there with evaluate_perplexity(..., weights=...):
the forward over whole windows with every matrix rounded as generate(..., weights=...) rounds it
(models/generation.py rounded_weights; the embeddings stay float32, as in generation). The loss of
each is compared with float32's (the target for int8: within 0.5%), and the logits of `--windows`
windows of the validation text with float32's: the largest and the mean absolute difference,
beside the float32 logits' standard deviation for scale.
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
KINDS = {None: "float32", "bfloat16": "bfloat16", "int8": "int8 (32 per scale)"}
INT8_TARGET = 0.005  # int8's validation loss within 0.5% of float32's


def train(data, out_dir, iters):
    from transformer_jit.cli import main as cli

    argv = ["train", "--data", str(data), "--tokenizer", "bpe", "--vocab-size", "1024", "--out-dir", str(out_dir),
            "--n-layer", "4", "--n-head", "4", "--n-embd", "128", "--block-size", "128", "--batch-size", "16",
            "--max-iters", str(iters), "--eval-interval", str(max(1, iters // 4)), "--eval-iters", "10",
            "--sample-tokens", "0"]
    if cli(argv) != 0:
        sys.exit("training failed")


def validation_ids(tokenizer, text):
    """The last 10% of the text's tokens: the split a Trainer holds out (data/text.py)."""
    from transformer_jit.data.tokenizers import encode_text

    ids = encode_text(tokenizer, text)
    return ids[len(ids) - int(len(ids) * 0.1):]


def logit_errors(model, ids, weights, windows):
    """(max |d|, mean |d|, float32 logits' std) over `windows` windows of block_size tokens, d the
    difference of the logits with rounded weights from those with float32 weights."""
    from transformer_jit.models.generation import rounded_weights

    T = model.config.block_size
    starts = np.linspace(0, len(ids) - T, windows).astype(np.int64)
    x = np.stack([ids[s:s + T] for s in starts])
    with model.evaluating():
        exact = model.forward(x)[0].astype(np.float64)
        rounded = model.forward(x, weights=rounded_weights(model, weights))[0].astype(np.float64)
    d = np.abs(rounded - exact)
    return float(d.max()), float(d.mean()), float(exact.std())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--run", help="a run directory (its best.npz); default: train one")
    parser.add_argument("--data", default=str(SHAKESPEARE), help="the text (default: tinyshakespeare.txt)")
    parser.add_argument("--iters", type=int, default=1000, help="training steps without --run (default: 1000)")
    parser.add_argument("--windows", type=int, default=16, help="windows of the logits comparison (default: 16)")
    args = parser.parse_args()
    from transformer_jit import evaluate_perplexity
    from transformer_jit.train.saved_model import load_model

    if not os.path.isfile(args.data):
        sys.exit(f"--data {args.data}: no such file")
    with tempfile.TemporaryDirectory(prefix="int8-quality-") as tmp:
        run = Path(args.run) if args.run else Path(tmp) / "run"
        if not args.run:
            train(args.data, run, args.iters)
        model, tokenizer, _ = load_model(run / "best.npz")
    ids = validation_ids(tokenizer, Path(args.data).read_text(encoding="utf-8"))
    print(f"model: {model.num_params():,} parameters, context {model.config.block_size}, vocabulary "
          f"{model.config.vocab_size}; validation: {len(ids):,} tokens")
    losses = {}
    print(f"\n{'weights':22} {'val loss':>9} {'vs float32':>10} {'max |dlogit|':>12} {'mean |dlogit|':>13}")
    for weights, name in KINDS.items():
        losses[weights] = evaluate_perplexity(model, ids, weights=weights, progress=True).loss
        change = losses[weights] / losses[None] - 1
        if weights is None:
            print(f"{name:22} {losses[weights]:9.4f}")
            continue
        largest, mean, std = logit_errors(model, ids, weights, args.windows)
        print(f"{name:22} {losses[weights]:9.4f} {change:+10.3%} {largest:12.3g} {mean:13.3g}")
    print(f"\nfloat32 logits' standard deviation: {std:.3g} (logits of {args.windows} windows of "
          f"{model.config.block_size} tokens)")
    within = abs(losses["int8"] / losses[None] - 1) <= INT8_TARGET
    print(f"int8's validation loss within {INT8_TARGET:.1%} of float32's: {'yes' if within else 'NO'}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
