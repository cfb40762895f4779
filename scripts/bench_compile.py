"""How long Numba's compilation costs: a cold start (empty cache) and a warm one (cache hit).

Each measurement runs in a fresh Python process with its own NUMBA_CACHE_DIR, timing the import and
the first training step of a GPT (which compiles every kernel on the training path: embedding,
layer norm, linear, attention, GELU, residual, cross-entropy, gradient clipping, AdamW), then a
second step, which shows the steady state.

    python scripts/bench_compile.py
    python scripts/bench_compile.py --against HEAD~1 --rounds 4   # cold compile, two revisions paired

Paired (--against): compilation runs on one core, and this machine's speed drifts from minute to
minute, so each round compiles both revisions at the same time, one per core (pinned with
taskset, one Numba thread each, swapping cores every round), and the median of the per-round
ratios is what compares them.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
from transformer_jit import GPT, GPTConfig, AdamW, kernels as K
t_import = time.perf_counter() - t0

def step():
    model.zero_grad()
    model.forward(x, y)
    model.backward()
    K.clip_grad_norm(model.grads, 1.0)
    opt.step()

model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128))
opt = AdamW(model, lr=1e-3)
rng = np.random.default_rng(0)
x, y = rng.integers(0, 65, (12, 64)), rng.integers(0, 65, (12, 64))
t1 = time.perf_counter(); step(); t_first = time.perf_counter() - t1
t2 = time.perf_counter(); step(); t_second = time.perf_counter() - t2
print(json.dumps({"import": t_import, "first_step": t_first, "second_step": t_second,
                  "to_first_step": time.perf_counter() - t0 - t_second}))
"""


def run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def paired(rev, rounds):
    """Cold compiles of the working tree and of `rev`, side by side, one core each."""
    from _bench import export_revision

    work = tempfile.mkdtemp(prefix="bench-compile-")
    packages = {"working tree": None, rev: export_revision(rev, os.path.join(work, "pkg"))}
    times = {name: [] for name in packages}
    for r in range(rounds):
        procs = {}
        for core, (name, path) in enumerate(packages.items()):
            cache = tempfile.mkdtemp(dir=work)
            env = dict(os.environ, NUMBA_CACHE_DIR=cache, NUMBA_NUM_THREADS="1")
            if path:
                env["PYTHONPATH"] = os.pathsep.join([path, env.get("PYTHONPATH", "")])
            cmd = ["taskset", "-c", str((core + r) % 2), sys.executable, "-c", CHILD]
            # cwd: not the repository, whose transformer_jit/ would shadow the exported revision
            procs[name] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=work)
        for name, proc in procs.items():
            out, _ = proc.communicate()
            if proc.returncode:
                sys.exit(f"the cold compile of {name} failed")
            times[name].append(json.loads(out.strip().splitlines()[-1])["to_first_step"])
        print(f"round {r + 1}: " + ", ".join(f"{n} {t[-1]:.1f} s" for n, t in times.items()), flush=True)
    new, old = times.values()
    ratio = statistics.median(a / b for a, b in zip(new, old))
    print(f"cold compile to the first step: working tree {statistics.median(new):.1f} s, {rev} "
          f"{statistics.median(old):.1f} s (medians); per-round ratio working tree / {rev}: median {ratio:.3f}, "
          f"range {min(a / b for a, b in zip(new, old)):.3f}-{max(a / b for a, b in zip(new, old)):.3f}")


def main():
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    parser.add_argument("--against", metavar="REV", help="pair cold compiles with git revision REV")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.against:
        return paired(args.against, args.rounds)
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = run(cache_dir)
        warm = run(cache_dir)
    print(f"{'':>6} {'import':>8} {'1st step':>9} {'to 1st step':>12} {'2nd step':>9}")
    for name, r in (("cold", cold), ("warm", warm)):
        print(f"{name:>6} {r['import']:7.2f}s {r['first_step']:8.2f}s {r['to_first_step']:11.2f}s "
              f"{r['second_step'] * 1000:7.1f}ms")


if __name__ == "__main__":
    main()
