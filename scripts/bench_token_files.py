"""Training memory on a corpus larger than memory: a token file of several GB, read a batch at a time.

    python scripts/bench_token_files.py                 # a 2.1 GB train.bin, 20 steps of the baby GPT
    python scripts/bench_token_files.py --gb 4 --steps 50

Writes token files of random character ids (generated on the fly into a temporary directory,
removed at the end), trains the baby GPT on them for a few steps in a child process, and prints
the child's peak resident memory next to the size of the files: memory is the model and a batch,
not the corpus.
"""
import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from transformer_jit.data.token_files import write_token_dir
from transformer_jit.data.tokenizers import CharTokenizer

CHUNK = 1 << 26  # tokens generated and written at a time


def main():
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    parser.add_argument("--gb", type=float, default=2.1, help="size of train.bin in GB (default 2.1)")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="token-files-"))
    try:
        tokenizer = CharTokenizer([chr(c) for c in range(32, 97)])  # 65 symbols, like tinyshakespeare
        n_train = int(args.gb * 1e9) // 2
        rng = np.random.default_rng(0)

        def ids(n):
            for start in range(0, n, CHUNK):
                yield rng.integers(0, tokenizer.vocab_size, min(CHUNK, n - start), dtype=np.uint16)

        t0 = time.perf_counter()
        write_token_dir(work / "data", tokenizer, {"train": ids(n_train), "val": ids(n_train // 100)},
                        lambda: {"name": "random", "bytes": 0, "sha256": ""})
        size = sum(f.stat().st_size for f in (work / "data").glob("*.bin"))
        print(f"wrote {size / 1e9:.2f} GB of token files in {time.perf_counter() - t0:.0f} s")
        cmd = [sys.executable, "-m", "transformer_jit", "train", "--data", str(work / "data"), "--out-dir",
               str(work / "run"), "--max-iters", str(args.steps), "--eval-interval", str(args.steps),
               "--eval-iters", "5", "--sample-tokens", "0"]
        t0 = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"training failed:\n{result.stderr}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        saved = json.loads((work / "run" / "config.json").read_text())["model"]
        print(f"trained the GPT ({saved['n_layer']} layers, C {saved['n_embd']}) for {args.steps} steps in "
              f"{time.perf_counter() - t0:.0f} s; peak resident memory {peak_mb:,.0f} MB for "
              f"{size / 1e9:.2f} GB of tokens ({'under' if peak_mb < 1024 else 'OVER'} 1 GB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
