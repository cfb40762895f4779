"""Local against global attention in a trained GPT: the same character-level GPT (the README's baby
Shakespeare model, 4 layers, 4 heads, 128 channels, batch 12, lr 1e-3) trained twice on the same
text, for the same steps from the same seed, once with global attention and once with a window
(`--attn-window`); prints both validation losses and training speeds.

    python scripts/compare_attention_window.py                       # tinyshakespeare, block 256, W 64
    python scripts/compare_attention_window.py --max-iters 4 --block-size 32 --window 8 --eval-iters 2

Each run is `transformer-jit train` into OUT_DIR/global and OUT_DIR/window-W (the run directories
stay, with their metrics.csv and checkpoints: sample from them with `transformer-jit sample`).
Validation loss: the best of the run's evaluations (the checkpoint best.npz keeps); tokens/s: the
median of the rates the run logged at its evaluations. Options after `--` go to both runs as they are.
"""
import argparse
import csv
import statistics
import sys
from pathlib import Path

from transformer_jit.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


def train(out_dir, args, window, extra):
    argv = ["train", "--data", args.data, "--out-dir", str(out_dir), "--block-size", str(args.block_size),
            "--max-iters", str(args.max_iters), "--eval-iters", str(args.eval_iters),
            "--eval-interval", str(args.eval_interval), "--seed", str(args.seed), "--attn-window", str(window),
            "--batch-size", "12", "--lr", "1e-3", "--sample-tokens", "0", *extra]
    if (out_dir / "last.npz").exists():
        argv.append("--overwrite")
    status = cli(argv)
    if status != 0:
        raise SystemExit(status)
    with open(out_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return min(float(r["val_loss"]) for r in rows), statistics.median(float(r["tokens_per_s"]) for r in rows)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"))
    parser.add_argument("--out-dir", default="out-window")
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--max-iters", type=int, default=2000)
    parser.add_argument("--eval-interval", type=int, default=250)
    parser.add_argument("--eval-iters", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        parser.error(f"--data {args.data} is not a file")
    out = Path(args.out_dir)
    results = {"global": train(out / "global", args, 0, extra),
               f"window {args.window}": train(out / f"window-{args.window}", args, args.window, extra)}
    print(f"\n{args.max_iters} steps, block size {args.block_size}, seed {args.seed}")
    for name, (val_loss, tokens_per_s) in results.items():
        print(f"{name:12s} best validation loss {val_loss:.4f}   {tokens_per_s:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
