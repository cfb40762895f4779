"""Training speed beside a competing program: the baby GPT and the dates task, each alone and with
one busy-looping process on the machine (or a second run of the same training), side by side.

    python scripts/bench_under_load.py                    # the defaults, 5 rounds
    python scripts/bench_under_load.py --env default --env TRANSFORMER_JIT_ADAPTIVE_THREADS=0
    python scripts/bench_under_load.py --competitor same --workload dates
    python scripts/bench_under_load.py --idle-ab 20 --steps 20     # alone: the cost of fitting the threads
    python scripts/bench_under_load.py --env "TRANSFORMER_JIT_ADAPTIVE_THREADS=0 OMP_WAIT_POLICY=PASSIVE"

Each measurement is a fresh process that builds the model, runs warm-up steps, then times
`--steps` training steps (forward, backward, clipping, AdamW) and prints its median ms/step. In
each round every workload runs alone, then with a competitor (`while True: pass` in another
Python process, or with `--competitor same` a second run of the same training in the same setting,
started before the workload and killed after it), so a drift of the machine's load hits both
alike; the settings take turns in an order that reverses every round. The table gives
medians over rounds, the slowdown (the median of the per-round ratios loaded / alone), and each
setting's speed alone against the first one's (the median of the per-round ratios of their times
alone: above 1 is slower).

--env "NAME=VALUE ..." runs every measurement again with those variables set (repeat it to compare
several settings); `--env default` is the environment as it is. The threads column gives the
Numba thread counts seen after the timed steps, alone / loaded: by default the kernels use
the cores that other programs leave free (kernels/threads.py); TRANSFORMER_JIT_ADAPTIVE_THREADS=0
keeps every thread busy whatever the load.

--idle-ab measures what fitting the count costs on an idle machine: one process per task
alternates blocks of steps with the fitting on and off (set_adaptive_threads), and prints the
median of the per-round ratios of their median step times.
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


def build(name):
    """A Trainer for the workload, and the tokens in one of its batches."""
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
    return Trainer(model, data, config), tokens


def timed_steps(trainer, steps):
    """The median ms of `steps` training steps, and the thread counts seen after them."""
    import numba

    times, counts = [], set()
    for _ in range(steps):
        start = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - start)
        counts.add(numba.get_num_threads())
    return statistics.median(times) * 1e3, "-".join(str(n) for n in sorted(counts))


def worker(name, steps, warmup, idle_ab):
    trainer, tokens = build(name)
    for _ in range(warmup):
        trainer.train_step()
    if not idle_ab:
        ms, threads = timed_steps(trainer, steps)
        print(json.dumps({"ms": ms, "tok_s": tokens / ms * 1e3, "threads": threads}))
        return
    from transformer_jit.kernels import set_adaptive_threads

    ms = {True: [], False: []}  # fitted to the load, fixed
    for r in range(idle_ab):
        for fitted in (True, False) if r % 2 == 0 else (False, True):
            set_adaptive_threads(fitted)
            ms[fitted].append(timed_steps(trainer, steps)[0])
    ratios = [a / b for a, b in zip(ms[True], ms[False])]
    print(json.dumps({"fitted": statistics.median(ms[True]), "fixed": statistics.median(ms[False]),
                      "ratio": statistics.median(ratios), "low": min(ratios), "high": max(ratios)}))


def measure(name, env, steps, warmup, loaded, competitor):
    command = [sys.executable, __file__, "--worker", name, "--steps", str(steps), "--warmup", str(warmup)]
    if loaded:
        if competitor == "busy":
            competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        else:  # the same training, in the same setting, for longer than the measurement
            competitor = subprocess.Popen(command[:4] + ["--steps", "1000000"], env=env, stdout=subprocess.DEVNULL)
        time.sleep(0.2)
    try:
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    finally:
        if loaded:
            competitor.kill()
            competitor.wait()
    return json.loads(out.strip().splitlines()[-1])


def idle_ab(workloads, args):
    print(f"{os.cpu_count()} cores, alone; {args.idle_ab} rounds of {args.steps} steps fitted to the load and "
          f"{args.steps} on a fixed thread count, in one process, the order alternating")
    print(f"{'task':<6} {'fitted ms/step':>15} {'fixed ms/step':>14} {'fitted / fixed':>15} {'range':>13}")
    for w in workloads:
        command = [sys.executable, __file__, "--worker", w, "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--idle-ab", str(args.idle_ab)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{w:<6} {r['fitted']:>15.2f} {r['fixed']:>14.2f} {r['ratio']:>14.3f}x "
              f"{r['low']:>6.3f}-{r['high']:.3f}", flush=True)


def environment(setting):
    env = dict(os.environ)
    if setting != "default":
        for assignment in setting.split():
            name, _, value = assignment.partition("=")
            env[name] = value
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--env", action="append", default=None, metavar="NAME=VALUE",
                        help="a setting to measure (repeatable); 'default' for the environment as it is")
    parser.add_argument("--workload", choices=WORKLOADS, action="append", default=None)
    parser.add_argument("--competitor", choices=("busy", "same"), default="busy",
                        help="busy: a busy-looping process; same: a second run of the same training")
    parser.add_argument("--idle-ab", type=int, metavar="ROUNDS",
                        help="instead: on an idle machine, blocks of --steps steps with the thread count fitted "
                             "to the load and fixed, alternating in one process for ROUNDS rounds")
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, args.warmup, args.idle_ab)
    workloads = args.workload or list(WORKLOADS)
    if args.idle_ab:
        return idle_ab(workloads, args)

    settings = args.env or ["default"]
    results = {(s, w): {"alone": [], "loaded": [], "ratio": [], "threads": set()} for s in settings for w in workloads}
    print(f"{os.cpu_count()} cores; {args.rounds} rounds of {args.steps} timed steps; "
          f"competitor: {'one busy Python process' if args.competitor == 'busy' else 'the same training'}")
    for r in range(args.rounds):
        for s in settings if r % 2 == 0 else settings[::-1]:
            for w in workloads:
                alone = measure(w, environment(s), args.steps, args.warmup, False, args.competitor)
                loaded = measure(w, environment(s), args.steps, args.warmup, True, args.competitor)
                entry = results[(s, w)]
                entry["alone"].append(alone["ms"])
                entry["loaded"].append(loaded["ms"])
                entry["ratio"].append(loaded["ms"] / alone["ms"])
                entry["threads"].add(f"{alone['threads']}/{loaded['threads']}")
                print(f"round {r + 1}: {s} {w:<6} alone {alone['ms']:7.2f} ms  loaded {loaded['ms']:7.2f} ms  "
                      f"x{loaded['ms'] / alone['ms']:.2f}", flush=True)
    print()
    width = max(len(s) for s in settings)
    print(f"{'setting':<{width}} {'task':<6} {'threads':>8} {'alone ms/step':>14} {'loaded ms/step':>15} "
          f"{'slowdown':>9} {'alone vs first':>15}")
    for (s, w), e in results.items():
        first = results[(settings[0], w)]["alone"]
        vs_first = statistics.median(a / b for a, b in zip(e["alone"], first))
        print(f"{s:<{width}} {w:<6} {','.join(sorted(e['threads'])):>8} {statistics.median(e['alone']):>14.2f} "
              f"{statistics.median(e['loaded']):>15.2f} {statistics.median(e['ratio']):>8.2f}x {vs_first:>14.3f}x")


if __name__ == "__main__":
    main()
