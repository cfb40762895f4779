"""Characters against byte-level BPE on Shakespeare, fairly: the same model, the same training
time, scored in bits per byte of the same validation text.

    python scripts/compare_tokenizers.py                        # 180 s of training each
    python scripts/compare_tokenizers.py --seconds 60 --vocab-size 1024

Both tokenizers prepare tinyshakespeare into token files whose validation split is the same text
(its last tenth, from the start of a line). Each trains the baby GPT for --seconds of training
time (after its kernels are compiled), with the step count that fits, then scores the whole
validation split: bits per byte = (total nats over its tokens) / ln 2 / (its bytes). A loss per
token cannot be compared across tokenizers (a BPE token spans several bytes); bits per byte can.
"""
import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from transformer_jit import GPT, GPTConfig, TrainConfig, Trainer
from transformer_jit.data.prepare import prepare
from transformer_jit.data.token_files import open_token_dir

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
MODEL = dict(n_layer=4, n_head=4, n_embd=128, block_size=64)


def steps_per_second(data, tokenizer, batch_size):
    """Training speed of this tokenizer's model, after compilation."""
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **MODEL))
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(model, data, TrainConfig(batch_size=batch_size, max_iters=40, eval_iters=1, out_dir=out),
                          log=lambda message: None)
        for _ in range(5):
            trainer.train_step()
        t = time.perf_counter()
        for _ in range(30):
            trainer.train_step()
        return 30 / (time.perf_counter() - t)


def bits_per_byte(model, data, tokenizer):
    """Every validation token scored once, in consecutive windows of block_size."""
    val = data.splits["val"]
    T = MODEL["block_size"]
    n = (len(val) - 1) // T
    starts = np.arange(n) * T
    ids = val.windows(starts, T + 1).astype(np.int64)
    nats = 0.0
    with model.evaluating():
        for i in range(0, n, 32):
            x, y = ids[i:i + 32, :-1], ids[i:i + 32, 1:]
            nats += model.forward(np.ascontiguousarray(x), np.ascontiguousarray(y))[1] * y.size
    text_bytes = len(tokenizer.decode(ids[:, 1:].reshape(-1)).encode("utf-8"))
    return nats / math.log(2) / text_bytes


def main():
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="training time of each model")
    parser.add_argument("--vocab-size", type=int, default=1024, help="the BPE vocabulary")
    parser.add_argument("--batch-size", type=int, default=12)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name, kind in (("characters", "char"), (f"BPE {args.vocab_size}", "bpe")):
            directory = Path(work) / kind
            prepare(SHAKESPEARE, kind, directory, vocab_size=args.vocab_size if kind == "bpe" else None,
                    progress=False)
            data, tokenizer, meta = open_token_dir(directory, MODEL["block_size"])
            steps = max(10, int(args.seconds * steps_per_second(data, tokenizer, args.batch_size)))
            model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **MODEL), seed=0)
            config = TrainConfig(batch_size=args.batch_size, max_iters=steps, lr=1e-3, min_lr=1e-4, warmup_iters=100,
                                 eval_interval=steps, eval_iters=10, out_dir=str(Path(work) / f"run-{kind}"))
            trainer = Trainer(model, data, config, tokenizer, log=lambda message: None)
            t = time.perf_counter()
            trainer.fit()
            seconds = time.perf_counter() - t
            bpb = bits_per_byte(model, data, tokenizer)
            rows.append((name, meta["tokens"]["train"], steps, seconds, bpb))
            print(f"{name}: {steps} steps in {seconds:.0f} s, {steps * args.batch_size * MODEL['block_size']:,} "
                  f"tokens seen; validation {bpb:.3f} bits per byte", flush=True)
    print(f"\n{'tokenizer':14} {'train tokens':>12} {'steps':>6} {'seconds':>8} {'bits/byte':>10}")
    for name, tokens, steps, seconds, bpb in rows:
        print(f"{name:14} {tokens:12,} {steps:6} {seconds:8.0f} {bpb:10.3f}")


if __name__ == "__main__":
    main()
