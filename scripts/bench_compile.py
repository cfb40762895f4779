"""How long `transformer-jit train` waits for Numba: on an empty cache (a fresh install) and a warm one.

Each measurement runs the command as a user does, the built-in corpus and the default model
(`transformer-jit train --max-iters 1 --eval-interval 1 --eval-iters 1 --sample-tokens 0`), in a
fresh process with a NUMBA_CACHE_DIR of its own: cold, on an empty cache, where every kernel of
the training path compiles; then warm, on the cache the cold run filled. The figure is the time
from starting the process to the line of step 1 (the step and its evaluation of one batch), in
wall seconds and in CPU seconds (user + system of the command and of the compile helper it waited
for, read from /proc at that line, and of the command's own process alone: with a second core
free, the wall time follows that one), beside the import of the package alone. On a machine that
other programs load, trust the CPU seconds: the wall seconds depend on the time slices one gets.

    python scripts/bench_compile.py
    python scripts/bench_compile.py --rounds 3 --against f368602   # paired with a git revision

Paired (--against): each round runs both revisions one after the other (in alternating order),
and the medians of the per-round ratios compare them, as the machine's speed drifts.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TRAIN = ["train", "--max-iters", "1", "--eval-interval", "1", "--eval-iters", "1", "--sample-tokens", "0"]
IMPORT = ("import time; t, c = time.perf_counter(), time.process_time(); import transformer_jit.cli; "
          "print(time.perf_counter() - t, time.process_time() - c)")


def _env(cache_dir, package):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    if package:
        env["PYTHONPATH"] = os.pathsep.join([package, env.get("PYTHONPATH", "")])
    return env


def _cpu_seconds(pid):
    """User + system seconds of process `pid` itself, and of the children it has waited for (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = [int(v) / os.sysconf("SC_CLK_TCK") for v in f.read().rsplit(")", 1)[1].split()[11:15]]
    return fields[0] + fields[1], fields[2] + fields[3]


def to_first_step(cache_dir, work, package=None):
    """(wall, CPU, CPU of the command's own process) seconds from starting `transformer-jit train`
    to its line of step 1."""
    out_dir = tempfile.mkdtemp(dir=work)
    with tempfile.TemporaryFile("w+", dir=work) as errors:
        start = time.perf_counter()
        # cwd: not the repository, whose transformer_jit/ would shadow an exported revision
        proc = subprocess.Popen([sys.executable, "-m", "transformer_jit", *TRAIN, "--out-dir", out_dir], cwd=work,
                                env=_env(cache_dir, package), stdout=subprocess.PIPE, stderr=errors, text=True)
        result = None
        for line in proc.stdout:
            if result is None and line.startswith("step 1:"):
                own, helper = _cpu_seconds(proc.pid)
                result = time.perf_counter() - start, own + helper, own
        if proc.wait() != 0 or result is None:
            errors.seek(0)
            sys.exit(f"transformer-jit train failed ({package or 'working tree'}):\n{errors.read()}")
    shutil.rmtree(out_dir)
    return result


def import_time(work, package=None):
    out = subprocess.run([sys.executable, "-c", IMPORT], cwd=work, env=_env(os.path.join(work, "unused"), package),
                         capture_output=True, text=True, check=True)
    wall, cpu = (float(v) for v in out.stdout.split())
    return wall, cpu, cpu


def one_round(work, package=None):
    cache = tempfile.mkdtemp(dir=work)
    cold = to_first_step(cache, work, package)
    warm = to_first_step(cache, work, package)
    shutil.rmtree(cache)
    return {"import": import_time(work, package), "cold": cold, "warm": warm}


def show(name, rounds):
    print(f"{name}: medians of {len(rounds)} round(s)")
    print(f"  {'':<22} {'wall':>8} {'CPU':>8} {'of it, the command':>19}")
    for key, label in (("import", "import"), ("cold", "cold: to step 1"), ("warm", "warm: to step 1")):
        wall, cpu, own = (statistics.median(r[key][i] for r in rounds) for i in range(3))
        print(f"  {label:<22} {wall:7.2f}s {cpu:7.2f}s {own:18.2f}s")


def main():
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    parser.add_argument("--against", metavar="REV", help="pair each round with git revision REV")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-compile-")
    packages = {"working tree": None}
    if args.against:
        from _bench import export_revision
        packages[args.against] = export_revision(args.against, os.path.join(work, "pkg"))
    results = {name: [] for name in packages}
    for r in range(args.rounds):
        for name in (list(packages) if r % 2 == 0 else list(packages)[::-1]):
            results[name].append(one_round(work, packages[name]))
            cold = results[name][-1]["cold"]
            print(f"round {r + 1}, {name}: cold {cold[0]:.1f} s wall, {cold[1]:.1f} s CPU", flush=True)
    for name, rounds in results.items():
        show(name, rounds)
    if args.against:
        new, old = results.values()
        for i, what in enumerate(("wall", "CPU", "CPU of the command's own process")):
            ratios = [a["cold"][i] / b["cold"][i] for a, b in zip(new, old)]
            print(f"cold, to step 1, {what}: working tree / {args.against} per round: median "
                  f"{statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
