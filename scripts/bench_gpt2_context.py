"""Fine-tuning GPT-2 124M at several contexts: time per step and peak memory of the README's command.

    python scripts/bench_gpt2_context.py                              # B 4 at T 128, 256, 1024
    python scripts/bench_gpt2_context.py --block-sizes 64 512 --steps 4

GPT-2's weights cannot be downloaded here, so the model is a random one of GPT-2 124M's shape
(`GPT(...).save_pretrained`) with GPT-2's tokenizer files beside it (encoder.json and vocab.bpe,
see fetch_gpt2_files.py): the same sizes, so the same time and memory. For each context N a fresh
process runs

    transformer-jit train --init-from DIR --block-size N --batch-size 4 --max-iters STEPS ...

on the built-in corpus, evaluating (one batch) and saving at half-way and at the end, and reports
its peak resident memory (the whole command: loading, training, evaluating, saving). The time per
step is of the second half's steps, from metrics.csv's tokens/s: the first half holds the first
touches of memory and any compilation. Beside them, the estimate that `train` checks before a run.
The kernels run on --threads threads whatever the machine's load (TRANSFORMER_JIT_ADAPTIVE_THREADS=0,
see kernels/threads.py), so that a busy machine shows in the times, with a warning, not in fewer threads.
"""
import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import table, warn_if_busy  # noqa: E402
from fetch_gpt2_files import gpt2_files  # noqa: E402

GPT2_124M = dict(vocab_size=50257, n_layer=12, n_head=12, n_embd=768)
POSITIONS = 1024
BATCH = 4
GB = 1024 ** 3


def make_gpt2(directory, tokenizer_files):
    """A random GPT-2 124M in Hugging Face's layout, with GPT-2's tokenizer files."""
    from transformer_jit import GPT, GPTConfig

    GPT(GPTConfig(**GPT2_124M, block_size=POSITIONS), seed=0).save_pretrained(directory)
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(tokenizer_files / name, directory / name)


def child(gpt2_dir, out_dir, block_size, steps):
    """Run the fine-tuning command in this process; print its seconds per step and peak memory."""
    from transformer_jit.cli import main

    half = steps // 2
    status = main(["train", "--init-from", gpt2_dir, "--block-size", str(block_size), "--out-dir", out_dir,
                   "--batch-size", str(BATCH), "--max-iters", str(steps), "--eval-interval", str(half),
                   "--eval-iters", "1", "--lr", "3e-5", "--sample-tokens", "0"])
    if status != 0:
        raise SystemExit(status)
    with open(Path(out_dir) / "metrics.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    print(json.dumps({"s_per_step": BATCH * block_size / float(last["tokens_per_s"]),
                      "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def estimate(block_size):
    """The bytes `train` expects this run to need (train/memory.py)."""
    from transformer_jit import GPTConfig, TrainConfig
    from transformer_jit.train.memory import training_memory

    return sum(training_memory(GPTConfig(**GPT2_124M, block_size=block_size), "gpt", TrainConfig(batch_size=BATCH)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block-sizes", type=int, nargs="+", default=[128, 256, 1024])
    parser.add_argument("--steps", type=int, default=4, help="training steps per context, an even number >= 2")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--tokenizer", default=None, help="a directory with GPT-2's encoder.json and vocab.bpe "
                        "(default: fetched into ~/.cache/transformer-jit/gpt2/)")
    parser.add_argument("--child", nargs=3, metavar=("GPT2_DIR", "OUT_DIR", "BLOCK_SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]), args.steps)
    if args.steps < 2 or args.steps % 2:
        parser.error("--steps must be an even number >= 2")
    tokenizer_files = gpt2_files(args.tokenizer)
    if tokenizer_files is None:
        return 1
    env = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads), TRANSFORMER_JIT_ADAPTIVE_THREADS="0")
    warn_if_busy(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        make_gpt2(Path(tmp) / "gpt2", tokenizer_files)
        for n in args.block_sizes:
            done = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--child",
                                   str(Path(tmp) / "gpt2"), str(Path(tmp) / f"run{n}"), str(n)],
                                  capture_output=True, text=True, env=env)
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
                return 1
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append([str(BATCH), str(n), f"{result['s_per_step']:.2f}", f"{result['peak_bytes'] / GB:.1f}",
                         f"{estimate(n) / GB:.1f}"])
            shutil.rmtree(Path(tmp) / f"run{n}")
    print(table(["B", "T", "s/step", "peak GB", "estimate GB"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
