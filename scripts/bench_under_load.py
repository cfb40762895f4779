"""Training speed beside a competing program: the baby GPT and the dates task, each alone and with
one busy-looping process on the machine, side by side.

    python scripts/bench_under_load.py                    # the defaults, 5 rounds
    python scripts/bench_under_load.py --env OMP_WAIT_POLICY=ACTIVE --env OMP_WAIT_POLICY=PASSIVE

Each measurement is a fresh process that builds the model, runs warm-up steps, then times
`--steps` training steps (forward, backward, clipping, AdamW) and prints its median ms/step. In
each round every workload runs alone, then with a competitor (`while True: pass` in another
Python process, started before the workload and killed after it), so a drift of the machine's load
hits both alike. The table gives medians over rounds, and the slowdown: the median of the
per-round ratios loaded / alone.

--env NAME=VALUE runs every measurement again with that variable set (repeat it to compare
several settings, e.g. the OpenMP wait policy); `--env default` is the environment as it is.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench_train import CONFIGS

WORKLOADS = ("baby", "dates")


def worker(name, steps, warmup):
    import numba
    import numpy as np

    from transformer_jit import GPT, GPTConfig, Seq2SeqConfig, Seq2SeqTransformer, TrainConfig, Trainer
    from transformer_jit.data import TextDataset, default_corpus, seq2seq_task
    from transformer_jit.data.tokenizers import CharTokenizer
    from transformer_jit.train import recipe

    out_dir = tempfile.mkdtemp(prefix="bench-under-load-")
    if name == "baby":  # the first command of the README: train on the built-in corpus
        text = default_corpus()
        tokenizer = CharTokenizer.from_text(text)
        n_layer, n_head, n_embd, block_size, batch_size = CONFIGS["baby"]
        data = TextDataset(tokenizer.encode(text), block_size=block_size)
        model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=block_size, n_layer=n_layer,
                              n_head=n_head, n_embd=n_embd))
        config = TrainConfig(batch_size=batch_size, out_dir=out_dir)
        tokens = batch_size * block_size
    else:
        r = recipe("dates")
        task = seq2seq_task("dates", {**r["data"], "n_train": 5_000})
        tok, d = task.tokenizer, r["data"]
        config = Seq2SeqConfig(src_vocab_size=tok.src.vocab_size, tgt_vocab_size=tok.tgt.vocab_size,
                               max_src_len=d["max_src_len"], max_tgt_len=d["max_tgt_len"], **r["model"])
        model, data = Seq2SeqTransformer(config), task.dataset
        config = TrainConfig(**{**r["train"], "out_dir": out_dir})
        tokens = config.batch_size * (r["data"]["max_src_len"] + r["data"]["max_tgt_len"])
    trainer = Trainer(model, data, config)
    for _ in range(warmup):
        trainer.train_step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1e3
    print(json.dumps({"ms": ms, "tok_s": tokens / ms * 1e3, "threads": numba.get_num_threads(),
                      "layer": numba.threading_layer(), "dtype": str(np.dtype(model.dtype))}))


def measure(name, env, steps, warmup, loaded):
    competitor = None
    if loaded:
        competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)
    try:
        command = [sys.executable, __file__, "--worker", name, "--steps", str(steps), "--warmup", str(warmup)]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    return json.loads(out.strip().splitlines()[-1])


def environment(setting):
    env = dict(os.environ)
    if setting != "default":
        name, _, value = setting.partition("=")
        env[name] = value
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--env", action="append", default=None, metavar="NAME=VALUE",
                        help="a setting to measure (repeatable); 'default' for the environment as it is")
    parser.add_argument("--workload", choices=WORKLOADS, action="append", default=None)
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, args.warmup)

    settings = args.env or ["default"]
    workloads = args.workload or list(WORKLOADS)
    results = {(s, w): {"alone": [], "loaded": [], "ratio": []} for s in settings for w in workloads}
    print(f"{os.cpu_count()} cores; {args.rounds} rounds of {args.steps} timed steps; "
          f"competitor: one busy Python process")
    for r in range(args.rounds):
        for s in settings:
            for w in workloads:
                alone = measure(w, environment(s), args.steps, args.warmup, loaded=False)
                loaded = measure(w, environment(s), args.steps, args.warmup, loaded=True)
                entry = results[(s, w)]
                entry["alone"].append(alone["ms"])
                entry["loaded"].append(loaded["ms"])
                entry["ratio"].append(loaded["ms"] / alone["ms"])
                entry["info"] = alone
                print(f"round {r + 1}: {s:<28} {w:<6} alone {alone['ms']:7.2f} ms  loaded {loaded['ms']:7.2f} ms  "
                      f"x{loaded['ms'] / alone['ms']:.2f}", flush=True)
    print()
    print(f"{'setting':<28} {'task':<6} {'threads':>7} {'alone ms/step':>14} {'loaded ms/step':>15} {'slowdown':>9}")
    for (s, w), e in results.items():
        print(f"{s:<28} {w:<6} {e['info']['threads']:>7} {statistics.median(e['alone']):>14.2f} "
              f"{statistics.median(e['loaded']):>15.2f} {statistics.median(e['ratio']):>8.2f}x")


if __name__ == "__main__":
    main()
