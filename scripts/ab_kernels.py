"""Time two revisions' kernels against each other, side by side in one process.

    python scripts/ab_kernels.py HEAD~1                  # HEAD~1 against the working tree
    python scripts/ab_kernels.py b8417b9 HEAD --config large --only dW
    python scripts/ab_kernels.py HEAD~1 --rounds 21      # more rounds for a small difference
    python scripts/ab_kernels.py HEAD~1 --config decode  # generation's products (GPT-2 124M)

Each revision's `kernels/` is copied out of git (`git archive`; "." is the working tree) into
a temporary directory and imported as its own package, so both run in the same process, on the
same inputs, on a machine in the same state. A change to one kernel is measured this way, not
by comparing two benchmark runs minutes apart: on a shared machine the same code ran 1.4x
apart from one minute to the next.

For every linear layer of the GPT configs (forward; backward, both products and the bias
gradient; and the weight gradient alone) and for attention forward and backward, the two
revisions are timed in turn, A B, B A, A B, ..., for --rounds rounds. A round times each
revision for about 0.1 s and keeps the median call. Printed: the median over rounds of each
revision's time, and the median of the per-round ratios B / A (below 1: B takes less time). The
results of A and B are checked equal first.

`--config decode` times generation's matrix-vector products instead: GPT-2 124M's weights
(random, 12 layers and the lm head) read by `matvec` as float32 and as bfloat16 bits, and by
`matvec_int8` as int8 with a scale per block of 32, with 1 and with 8 rows of x. Each op is one
kind of matrix of all 12 layers (or the lm head), in as many copies as make at least 64 MB, so
that its weights stream from memory, as in a decode step, and not from the cache.

The ops are called through the kernels' public signatures (`linear_forward`, `linear_backward`,
`attention_forward`, `attention_backward`), which both revisions must share, except for attention
dropout's (rate, seed) arguments (a revision whose kernels take them runs with dropout off) and
"no bias" (None in revisions before the empty array said it).
"""
import argparse
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("rev_a", help="git revision of A")
    p.add_argument("rev_b", nargs="?", default=".", help="git revision of B (default: the working tree, '.')")
    p.add_argument("--config", choices=("baby", "large", "both", "decode"), default="both")
    p.add_argument("--rounds", type=int, default=11, help="rounds alternating A and B (default 11)")
    p.add_argument("--only", default=None, help="run only ops whose name contains this text")
    p.add_argument("--threads", type=int, default=2, help="Numba threads (default 2)")
    return p.parse_args()


ARGS = parse_args()
os.environ["NUMBA_NUM_THREADS"] = str(ARGS.threads)
os.environ["TRANSFORMER_JIT_ADAPTIVE_THREADS"] = "0"  # the same threads whatever the load (kernels/threads.py)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = tempfile.mkdtemp(prefix="ab-kernels-")  # the two packages, importable from here
sys.path.insert(0, WORK)
os.environ["NUMBA_CACHE_DIR"] = os.path.join(WORK, "numba-cache")  # cold: compile times are honest

import numpy as np  # noqa: E402  (after the environment is set)
from tqdm import tqdm  # noqa: E402

from _bench import measure, warn_if_busy  # noqa: E402
from bench_train import CONFIGS  # noqa: E402

from transformer_jit.kernels.int8 import n_blocks, quantize_int8  # noqa: E402
from transformer_jit.nn.memory import aligned_empty  # noqa: E402

V = 65  # characters of tinyshakespeare, as in the benchmarks


def checkout(rev, name):
    """Copy `kernels/` at `rev` into WORK/name and return the imported package."""
    dest = os.path.join(WORK, name)
    if rev == ".":
        shutil.copytree(os.path.join(ROOT, "kernels"), dest, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "kernels"], capture_output=True)
        if archive.returncode != 0:
            sys.exit(f"git archive {rev}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", WORK], input=archive.stdout, check=True)
        os.rename(os.path.join(WORK, "kernels"), dest)
    return __import__(name)


def filled(rng, *shape):
    x = aligned_empty(shape, np.float32)
    x[...] = rng.standard_normal(shape)
    return x


def cases(config, rng):
    """(name, make) pairs; make(pkg) returns a zero-argument callable running the op with pkg's
    kernels on inputs shared by A and B, and the output array it checks."""
    if config == "decode":
        return decode_cases(rng)
    _, n_head, C, T, B = CONFIGS[config]
    N = B * T
    found = []
    for c_in, c_out, layer in [(C, 3 * C, "qkv"), (C, C, "attn proj"), (C, 4 * C, "fc"),
                               (4 * C, C, "mlp proj"), (C, V, "lm head")]:
        x, w, dy = filled(rng, N, c_in), filled(rng, c_out, c_in), filled(rng, N, c_out)
        y, dx, dw = filled(rng, N, c_out), filled(rng, N, c_in), filled(rng, c_out, c_in)
        bias, dbias = (filled(rng, c_out), filled(rng, c_out)) if layer != "lm head" else (NO_BIAS, NO_BIAS)
        # y = x W^T + b; dx = dy W, dW += dy^T x, db += sum of dy's rows; and dW alone
        for op, kernel, args, output in [
                ("fwd", "linear_forward", (y, x, w, bias), y),
                ("bwd", "linear_backward", (dx, dw, dbias, dy, x, w, False), dx),
                ("dW", "linear_backward", (None, dw, NO_BIAS, dy, x, w, True), dw)]:
            found.append((f"{config} {layer} {op}", lambda pkg, kernel=kernel, args=args, output=output: (
                lambda: getattr(pkg, kernel)(*[no_bias(pkg) if a is NO_BIAS else a for a in args]), output)))
    # q, k, v and their gradients as the GPT passes them: thirds of one fused (B, T, 3C) buffer each
    qkv, dqkv = filled(rng, B, T, 3 * C), filled(rng, B, T, 3 * C)
    q, k, v = qkv[:, :, :C], qkv[:, :, C:2 * C], qkv[:, :, 2 * C:]
    dq, dk, dv = dqkv[:, :, :C], dqkv[:, :, C:2 * C], dqkv[:, :, 2 * C:]
    out, dout = filled(rng, B, T, C), filled(rng, B, T, C)
    probs = aligned_empty((B, n_head, T, T), np.float32)
    found.append((f"{config} attention fwd", lambda pkg: (
        lambda: pkg.attention_forward(out, probs, q, k, v, None, n_head, True, *no_dropout(pkg)), out)))
    found.append((f"{config} attention bwd", lambda pkg: (
        lambda: pkg.attention_backward(dq, dk, dv, dout, probs, q, k, v, None, n_head, True, *no_dropout(pkg), False),
        dq)))
    return found


def decode_cases(rng):
    """GPT-2 124M's products of one decode step, one kind of matrix at a time (see the docstring).
    A matrix is a tuple: (float32,), (bfloat16 bits,) or (int8, scales)."""
    C, vocab, layers = 768, 50257, 12
    found = []
    for c_in, c_out, layer, count in [(C, 3 * C, "qkv", layers), (C, C, "attn proj", layers),
                                      (C, 4 * C, "fc", layers), (4 * C, C, "mlp proj", layers),
                                      (C, vocab, "lm head", 1)]:
        weights = [filled(rng, c_out, c_in) for _ in range(count)]
        kinds = {"float32": [(w,) for w in weights],
                 "bfloat16": [((w.view(np.uint32) >> 16).astype(np.uint16),) for w in weights],
                 "int8": [int8_blocks(w) for w in weights]}
        for kind, matrices in kinds.items():
            size = sum(a.nbytes for m in matrices for a in m)
            copies = [tuple(a.copy() for a in m) for _ in range(-(-64_000_000 // size) - 1) for m in matrices]
            for rows in (1, 8):
                x, out = filled(rng, rows, c_in), filled(rng, rows, c_out)
                found.append((f"decode {layer} {kind} {rows} row{'s' * (rows > 1)}",
                              lambda pkg, ms=matrices + copies, x=x, out=out: (lambda: matvecs(pkg, out, x, ms), out)))
    return found


def int8_blocks(w):
    """(q, scales): w as int8 with one scale per block of 32 weights of a row, as generation makes
    them (the working tree's quantize_int8)."""
    q, scales = np.empty(w.shape, np.int8), np.empty((w.shape[0], n_blocks(w.shape[1])), np.float32)
    quantize_int8(q, scales, w)
    return q, scales


def matvecs(pkg, out, x, matrices):
    for m in matrices:
        if len(m) == 2:
            pkg.matvec_int8(out, x, *m, NO_BIAS_1D, False, False)
        else:
            pkg.matvec(out, x, m[0], NO_BIAS_1D, False, False)


NO_BIAS_1D = np.empty(0, np.float32)
NO_BIAS = object()  # stands for what the revision's linear kernels take as "no bias"


def no_bias(pkg):
    """"No bias" for pkg's linear kernels: an empty array, or None for revisions from before that."""
    source = inspect.getsource(getattr(pkg.linear_forward, "py_func", pkg.linear_forward))
    return None if "bias is None" in source else np.empty(0, np.float32)


def no_dropout(pkg):
    """The arguments that turn attention dropout off: (rate 0, seed 0), or none for kernels without it."""
    return (0.0, 0) if "dropout_p" in inspect.signature(pkg.attention_forward.py_func).parameters else ()


def main():
    warn_if_busy(ARGS.threads)
    packages = {}
    for label, rev in (("A", ARGS.rev_a), ("B", ARGS.rev_b)):
        packages[label] = checkout(rev, f"kernels_{label.lower()}")
    print(f"A = {ARGS.rev_a}, B = {ARGS.rev_b}; {ARGS.threads} threads, {ARGS.rounds} rounds")
    rng = np.random.default_rng(0)
    configs = ("baby", "large") if ARGS.config == "both" else (ARGS.config,)
    chosen = [(name, make) for cfg in configs for name, make in cases(cfg, rng)
              if ARGS.only is None or ARGS.only in name]
    if not chosen:
        sys.exit(f"no op matches --only {ARGS.only!r}")

    compile_s = {"A": 0.0, "B": 0.0}
    rows = []
    for name, make in tqdm(chosen, desc="ops", unit="op"):
        runs = {}
        for label in "AB":
            run, output = make(packages[label])
            output[...] = 0  # gradients accumulate: start both from the same values
            t0 = time.perf_counter()
            run()  # the first call compiles
            compile_s[label] += time.perf_counter() - t0
            runs[label] = (run, output.copy())
        a, b = runs["A"][1], runs["B"][1]
        err = float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30))
        if err > 1e-4:
            sys.exit(f"{name}: A and B differ (max relative error {err:.2e})")
        times = {"A": [], "B": []}
        ratios = []
        for r in range(ARGS.rounds):
            order = "AB" if r % 2 == 0 else "BA"  # neither always goes first
            for label in order:
                times[label].append(measure(runs[label][0], budget=0.1).median)
            ratios.append(times["B"][-1] / times["A"][-1])
        rows.append((name, statistics.median(times["A"]), statistics.median(times["B"]),
                     statistics.median(ratios)))

    width = max(len(r[0]) for r in rows)
    print(f"\n{'op':{width}}  {'A':>10}  {'B':>10}  {'B / A':>6}")
    for name, ta, tb, q in rows:
        print(f"{name:{width}}  {ta * 1e3:8.3f}ms  {tb * 1e3:8.3f}ms  {q:6.3f}")
    total_a, total_b = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'total':{width}}  {total_a * 1e3:8.3f}ms  {total_b * 1e3:8.3f}ms  {total_b / total_a:6.3f}"
          "  (ratio of the summed medians)")
    print(f"first calls, compile included: A {compile_s['A']:.1f} s, B {compile_s['B']:.1f} s"
          " (cold cache; one after the other, so not a side-by-side comparison)")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
