"""Data-parallel training speed: tokens/s of one process and of two MPI ranks, one thread each.

    python scripts/bench_ddp.py                            # baby and large, 3 rounds
    python scripts/bench_ddp.py --config baby --rounds 5 --steps 40
    python scripts/bench_ddp.py --hosts netns              # the 2 ranks on two namespace hosts (root)

Every measurement is a fresh job with NUMBA_NUM_THREADS=1: "1 rank" is one plain process, "2 ranks"
runs under `mpiexec -n 2` (or, with --hosts netns, one rank in each of two network namespaces over
TCP, through scripts/multihost_netns.sh). A job trains the GPT of a config of scripts/bench_train.py
on tinyshakespeare through the Trainer, --batch-size per rank (two ranks do twice the tokens of a
step), and after warm-up steps times --steps steps. It reports the median step, the part of it
spent in collectives (the small reduction of losses and counts, and the gradient allreduce, waiting
for the slower rank included), and, after training, the allreduce of the gradient buffer alone
(after a barrier, median of 20).

"2 ranks, buckets" tries the alternative to one allreduce after the backward pass: one bucket per
transformer block, each reduced without blocking (MPI_Iallreduce) as soon as the backward pass has
finished that block and progressed between blocks, the rest (embeddings, final norm) at the end.
"2 single, no MPI" runs two 1-rank jobs at the same time and adds their tokens/s: what two ranks
could reach on this machine at that moment without exchanging anything (on a busy 2-core machine,
a job that needs both cores loses more to other processes than one that needs one core).

The variants run in alternating order round by round, so that drifts in machine load hit them all.
efficiency = tokens/s(2 ranks) / (2 x tokens/s(1 rank)), from the medians over rounds and as the
median of the per-round ratios.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_train import CONFIGS, VOCAB, load_tokens

ROOT = Path(__file__).resolve().parents[1]
STEPS = {"baby": 30, "large": 6, "gpt2": 6}  # timed steps per job, unless --steps
VARIANTS = ["1 rank", "2 ranks", "2 ranks, buckets", "2 single, no MPI"]
JOB_TIMEOUT = 600  # seconds


# -- one job (every rank of it) -----------------------------------------------------------------------
def worker(name, steps, warmup, buckets):
    import numpy as np

    from transformer_jit import GPT, GPTConfig
    from transformer_jit.data.text import TextDataset
    from transformer_jit.train import TrainConfig, Trainer
    from transformer_jit.train.distributed import Distributed

    world = Distributed.from_environment()
    n_layer, n_head, n_embd, block_size, batch_size = CONFIGS[name]
    if name in VOCAB:
        vocab_size = VOCAB[name]
        tokens = np.random.default_rng(0).integers(0, vocab_size, 1 << 20).astype(np.uint16)
    else:
        tokens, vocab_size = load_tokens()
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd), seed=0)
    config = TrainConfig(batch_size=batch_size, max_iters=warmup + steps, warmup_iters=0, eval_iters=1,
                         out_dir=tempfile.mkdtemp(prefix="bench-ddp-"))
    trainer = Trainer(model, TextDataset(tokens, block_size), config, distributed=world)
    if buckets:
        reduce_in_buckets(trainer)
    times, waits = [], []
    for i in range(warmup + steps):
        waited = world.collective_seconds if world else 0.0
        start = time.perf_counter()
        trainer.train_step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            waits.append(world.collective_seconds - waited if world else 0.0)
    alone = []
    if world:
        for _ in range(20):
            world.comm.Barrier()
            start = time.perf_counter()
            world.allreduce_(model.grads, "the timed allreduce")
            alone.append(time.perf_counter() - start)
    if world is None or world.rank == 0:
        ms = 1000 * statistics.median(times)
        print(json.dumps({"ms": ms, "tok_s": (world.size if world else 1) * batch_size * block_size / ms * 1000,
                          "collectives_ms": 1000 * statistics.median(waits),
                          "alone_ms": 1000 * statistics.median(alone) if alone else 0.0,
                          "params": model.num_params(), "hosts": world.hosts if world else 1}))


def reduce_in_buckets(trainer):
    """The "buckets" variant: the gradient of each block is scaled and reduced (MPI_Iallreduce) as
    soon as the backward pass leaves that block; what remains at the end, then all are waited for.
    The weights n_r / n come from the losses' reduction, moved to between forward and backward."""
    from transformer_jit import kernels as K

    world, model = trainer.distributed, trainer.model
    MPI, grads = world._mpi, model.grads
    blocks = model.transformer.layers
    spans = [_merged([(p.offset, p.offset + p.size) for name, p in model.store.params.items()
                      if name.startswith(f"transformer.h.{i}.")]) for i in range(len(blocks))]
    rest = _gaps([span for block in spans for span in block], grads.size)
    state = {"pending": [], "factor": 1.0, "loss": 0.0}

    def timed(fn):
        start = time.perf_counter()
        result = fn()
        world.collective_seconds += time.perf_counter() - start
        return result

    def start(lo, hi):
        view = grads[lo:hi]
        K.scale_(view, state["factor"])
        state["pending"].append((view, timed(lambda: world.comm.Iallreduce(MPI.IN_PLACE, view, op=MPI.SUM))))

    def progress():
        timed(lambda: MPI.Request.Testall([request for _, request in state["pending"]]))

    forward = model.forward

    def forward_then_weigh(*batch):
        out, loss = forward(*batch)
        count = model.counted_targets()
        totals = world.sum([count, loss * count], "the step's loss and targets")
        state["factor"], state["loss"] = count / totals[0], totals[1] / totals[0]
        return out, loss

    for block, block_spans in zip(blocks, spans):
        def backward(*args, _backward=block.backward, _spans=block_spans):
            _backward(*args)
            for lo, hi in _spans:
                start(lo, hi)
            progress()
        block.backward = backward

    def finish(*_):  # in place of combine_gradients(grads, loss, count, stop)
        for lo, hi in rest:
            start(lo, hi)
        timed(lambda: MPI.Request.Waitall([request for _, request in state["pending"]]))
        state["pending"].clear()
        return state["loss"], False

    model.forward = forward_then_weigh
    world.combine_gradients = finish


def _merged(spans):
    spans = sorted(spans)
    out = [list(spans[0])]
    for lo, hi in spans[1:]:
        if lo == out[-1][1]:
            out[-1][1] = hi
        else:
            out.append([lo, hi])
    return [tuple(s) for s in out]


def _gaps(spans, size):
    """The parts of [0, size) outside the spans."""
    gaps, at = [], 0
    for lo, hi in _merged(spans):
        if lo > at:
            gaps.append((at, lo))
        at = hi
    return gaps + ([(at, size)] if at < size else [])


# -- the parent: alternate the variants, summarise ----------------------------------------------------
def launch(variant, name, steps, warmup, hosts):
    me = [sys.executable, __file__, "--worker", name, "--steps", str(steps), "--warmup", str(warmup)]
    if variant.endswith("buckets"):
        me.append("--buckets")
    if variant == "2 single, no MPI":  # the same machine's share for two ranks, without their exchanges
        a, b = (run_job(variant, command) for command in [start_job(me), start_job(me)])
        return {**a, "ms": (a["ms"] + b["ms"]) / 2, "tok_s": a["tok_s"] + b["tok_s"]}
    if variant == "1 rank":
        command = me
    elif hosts == "netns":
        command = [str(ROOT / "scripts" / "multihost_netns.sh"), *me]
    else:
        command = [mpiexec(), "-n", "2", *me]
    return run_job(variant, start_job(command))


def start_job(command):
    # A session of its own: a job that hangs is ended whole (mpiexec, its ranks, the namespaces' script).
    return subprocess.Popen(command, env=dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def run_job(variant, job):
    try:
        out, err = job.communicate(timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGTERM)
        out, err = job.communicate()
        sys.exit(f"{variant} run took over {JOB_TIMEOUT} s ({' '.join(job.args)}):\n{err}")
    if job.returncode:
        sys.exit(f"{variant} run failed ({' '.join(job.args)}):\n{err}")
    return json.loads(out.strip().splitlines()[-1])


def mpiexec():
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if not found:
        sys.exit("mpiexec not found: pip install -e '.[mpi]'")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all", help="all: baby and large")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help=f"timed steps per job (default: {STEPS})")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--hosts", choices=["one", "netns"], default="one",
                        help="netns: the two ranks on two network-namespace hosts over TCP (root)")
    parser.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--buckets", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, args.warmup, args.buckets)

    from tqdm.auto import tqdm

    names = ["baby", "large"] if args.config == "all" else [args.config]
    print(f"{os.cpu_count()} cores; every rank on 1 thread; ranks on "
          f"{'two network-namespace hosts over TCP' if args.hosts == 'netns' else 'this host'}; "
          f"load average before: {os.getloadavg()[0]:.1f}")
    bar = tqdm(total=len(names) * args.rounds * len(VARIANTS), desc="benchmark jobs", file=sys.stderr)
    print(f"\n{'config':6} {'variant':17} {'tokens/s':>9} {'ms/step':>8} {'compute':>8} {'collectives':>11} "
          f"{'allreduce':>9} {'efficiency':>10}  runs (tokens/s)")
    print(f"{'':6} {'':17} {'':>9} {'':>8} {'ms/step':>8} {'ms/step':>11} {'alone ms':>9}")
    for name in names:
        steps = args.steps or STEPS[name]
        runs = {v: [] for v in VARIANTS}
        for round_ in range(args.rounds):
            for variant in VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]:
                runs[variant].append(launch(variant, name, steps, args.warmup, args.hosts))
                bar.update(1)
        one = statistics.median(r["tok_s"] for r in runs["1 rank"])
        for variant in VARIANTS:
            rs = runs[variant]
            tok_s = statistics.median(r["tok_s"] for r in rs)
            efficiency = ""
            if variant != "1 rank":
                per_round = statistics.median(r["tok_s"] / (2 * b["tok_s"]) for r, b in zip(rs, runs["1 rank"]))
                efficiency = f"{tok_s / (2 * one):.1%} ({per_round:.1%})"
            tqdm.write(f"{name:6} {variant:17} {tok_s:9,.0f} {statistics.median(r['ms'] for r in rs):8.1f} "
                       f"{statistics.median(r['ms'] - r['collectives_ms'] for r in rs):8.1f} "
                       f"{statistics.median(r['collectives_ms'] for r in rs):11.2f} "
                       f"{statistics.median(r['alone_ms'] for r in rs):9.2f} {efficiency:>10}  "
                       f"{[round(r['tok_s']) for r in rs]}")
        together = statistics.median(r["tok_s"] / a["tok_s"] for r, a in zip(runs["2 ranks"], runs[VARIANTS[-1]]))
        tqdm.write(f"{name}: {rs[0]['params']:,} parameters ({4 * rs[0]['params'] / 1e6:.1f} MB of float32 "
                   f"gradients); efficiency in brackets: median of the per-round ratios; 2 ranks reach "
                   f"{together:.1%} of the tokens/s of two single processes at the same time (median per round)")
    bar.close()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
