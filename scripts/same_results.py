"""Same results as another revision: small trainings and generations run through the command line in
this working tree and at a git revision, compared bit for bit.

    python scripts/same_results.py --against b7349d7               # every check
    python scripts/same_results.py --against HEAD --only gpt        # one (--only repeats)
    python scripts/same_results.py --tree HEAD --against HEAD~1     # two revisions, no working tree

A change that only reorganises code (a refactor) must leave every number as it was. Each check runs
the same `python -m transformer_jit ...` commands on both sides, in a temporary directory per side:

    gpt         train on the built-in corpus (2 layers, 64 wide, 500 steps, dropout 0)
    gpt-greedy  `sample --temperature 0` from that run
    seq2seq     train-seq2seq on dates (300 steps), then `translate`, greedy and beam search
    classifier  train-classifier on brackets (40 steps; its random position shift included),
                then `classify`
    gpt-mpi     the gpt training on 2 MPI ranks of half the batch each (skipped without mpiexec),
    seq2seq-mpi and classifier-mpi likewise

and compares, for a training: metrics.csv's train_loss and val_loss as written, every array of
last.npz and best.npz bitwise (the checkpoint's JSON description included), and the report printed
after training (held-out scores, the sample text); for a generation: all it prints. The trainings are
long enough that greedy generation is no longer a row of blanks, so that it can show a difference.

Results depend on the thread count, so both sides run with NUMBA_NUM_THREADS=2 and OMP_NUM_THREADS=2
(1 per rank under MPI) and TRANSFORMER_JIT_ADAPTIVE_THREADS=0. They also depend on whether the
process compiled a kernel or loaded it from Numba's cache: the two can differ in the last bits
(seen with layernorm_backward's dinp and with kernels/losses.py, Numba 0.68). So every command runs
twice per side: once in a warm-up directory, which compiles and caches what it needs, then in the
compared directory, where every kernel comes from the cache on both sides.

The working tree runs with PYTHONPATH at the repository root (its kernels/ comes in as
transformer_jit.kernels through the editable install); a revision is exported with `git archive` and
run with PYTHONPATH there. Before the checks, each side shows that it imports the package from where
it should.

Output: one line per check, with the seconds of each side's compared runs (compilation excluded; the
warm-up of an exported revision compiles its kernels afresh, minutes on 2 cores; a training that two
checks share runs once, counted in the first) and "identical" or "DIFFERENT: <what>". The exit
status is 1 when anything differs or a command fails (the end of its stderr is printed), 0
otherwise. Dropout runs are not compared: a refactor may draw its dropout masks differently.
"""
import argparse
import csv
import importlib.util
import itertools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from _bench import ROOT, export_revision

THREADS = 2  # per side, shared by the ranks of an MPI run
COMMAND_TIMEOUT = 1800  # seconds; a first run compiles for minutes, a hung MPI job would wait forever
CHECKPOINTS = ("last.npz", "best.npz")
GPT = ["--max-iters", "500", "--warmup-iters", "10", "--lr", "3e-3", "--eval-interval", "100", "--eval-iters", "2",
       "--n-layer", "2", "--n-embd", "64", "--n-head", "4", "--block-size", "32", "--sample-tokens", "60"]
GPT_TRAIN = ["train", "--out-dir", "gpt", *GPT, "--batch-size", "8"]
SEQ2SEQ_TRAIN = ["train-seq2seq", "--out-dir", "seq2seq", "--n-train", "3000", "--n-test", "100", "--max-iters", "300",
                 "--warmup-iters", "20", "--eval-interval", "100", "--eval-iters", "2", "--batch-size", "16"]
CLASSIFIER_TRAIN = ["train-classifier", "--out-dir", "classifier", "--n-train", "3000", "--n-test", "100",
                    "--max-iters", "40", "--eval-interval", "20", "--eval-iters", "2", "--batch-size", "16"]
DATES = ["3rd of March 2021", "12/25/99"]
BRACKETS = ["([])", "([)]"]


def half_batch(argv):
    """A training's arguments with half its --batch-size (per rank, for 2 ranks) and no --out-dir."""
    args = dict(zip(argv[1::2], argv[2::2]))
    args["--batch-size"] = str(int(args["--batch-size"]) // 2)
    del args["--out-dir"]
    return [argv[0], *[item for pair in args.items() for item in pair]]


@dataclass
class Command:
    argv: list  # after `python -m transformer_jit`
    compare: str = ""  # "run": its run directory and the report after training; "output": all it prints; "": nothing
    ranks: int = 1  # MPI ranks; 1: a plain process


CHECKS = {
    "gpt": [Command(GPT_TRAIN, "run")],
    "gpt-greedy": [Command(GPT_TRAIN),
                   Command(["sample", "--out-dir", "gpt", "--temperature", "0", "--max-new-tokens", "80",
                            "--prompt", "The "], "output")],
    "seq2seq": [Command(SEQ2SEQ_TRAIN, "run"),
                Command(["translate", "--out-dir", "seq2seq", "--beam-width", "1", *DATES], "output"),
                Command(["translate", "--out-dir", "seq2seq", "--beam-width", "4", *DATES], "output")],
    "classifier": [Command(CLASSIFIER_TRAIN, "run"),
                   Command(["classify", "--out-dir", "classifier", *BRACKETS], "output")],
    "gpt-mpi": [Command(["train", "--out-dir", "gpt-mpi", *GPT, "--batch-size", "4"], "run", ranks=2)],
    "seq2seq-mpi": [Command([*half_batch(SEQ2SEQ_TRAIN), "--out-dir", "seq2seq-mpi"], "run", ranks=2)],
    "classifier-mpi": [Command([*half_batch(CLASSIFIER_TRAIN), "--out-dir", "classifier-mpi"], "run", ranks=2)],
}


@dataclass
class Side:
    label: str  # "tree", "against", or their warm-up twins "tree-warm-up", "against-warm-up"
    package_root: str  # PYTHONPATH: the directory holding transformer_jit
    kernels_dir: str  # where transformer_jit.kernels must come from
    workdir: str  # the temporary directory its commands run in
    done: dict = field(default_factory=dict)  # command -> its stdout, for a command two checks share


class CommandFailed(Exception):
    pass


# -- running the command line -------------------------------------------------------------------------

def mpiexec():
    """mpiexec beside this Python (a virtual environment's mpich) or on PATH, and only where mpi4py is
    installed; None otherwise."""
    if importlib.util.find_spec("mpi4py") is None:
        return None
    return shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")


def side_env(side, threads):
    return dict(os.environ, PYTHONPATH=side.package_root, NUMBA_NUM_THREADS=str(threads),
                OMP_NUM_THREADS=str(threads), TRANSFORMER_JIT_ADAPTIVE_THREADS="0")


def run(side, args, ranks=1):
    """Run `python ARGS` on a side (under mpiexec when ranks > 1); return (stdout, seconds) or raise
    CommandFailed with the end of its stderr."""
    command = [sys.executable, *args]
    shown = ["python", *args]
    if ranks > 1:
        command = [mpiexec(), "-n", str(ranks), *command]
        shown = ["mpiexec", "-n", str(ranks), *shown]
    start = time.perf_counter()
    # A session of its own, so that a command that hangs is ended whole (mpiexec and its ranks).
    job = subprocess.Popen(command, cwd=side.workdir, env=side_env(side, THREADS // ranks), text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = job.communicate(timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGTERM)
        out, err = job.communicate()
        err += f"\n(stopped after {COMMAND_TIMEOUT} s)"
    seconds = time.perf_counter() - start
    if job.returncode:
        tail = "\n".join("    " + line for line in err.strip().splitlines()[-20:])
        raise CommandFailed(f"{side.label}: `{shlex.join(shown)}` exited {job.returncode} after {seconds:.0f} s; "
                            f"its stderr ends:\n{tail}")
    return out, seconds


def run_cli(side, command):
    """Run a transformer_jit command once per side; return (stdout, seconds: 0 when it had run before)."""
    key = (tuple(command.argv), command.ranks)
    if key in side.done:
        return side.done[key], 0.0
    ranks = f" on {command.ranks} ranks" if command.ranks > 1 else ""
    print(f"{side.label}: {command.argv[0]} {out_dir(command.argv)}{ranks}", file=sys.stderr, flush=True)
    out, seconds = run(side, ["-m", "transformer_jit", *command.argv], command.ranks)
    side.done[key] = out
    return out, seconds


def check_imports(side):
    """Fail unless the side imports transformer_jit and its kernels from its own tree."""
    code = "import transformer_jit, transformer_jit.kernels as k; print(transformer_jit.__file__); print(k.__file__)"
    out, _ = run(side, ["-c", code])
    package, kernels = (os.path.realpath(path) for path in out.splitlines())
    wanted = (os.path.join(side.package_root, "transformer_jit"), side.kernels_dir)
    for found, directory in zip((package, kernels), wanted):
        if os.path.dirname(found) != os.path.realpath(directory):
            raise CommandFailed(f"{side.label}: imports {found}, not from {directory}")


# -- comparing results ----------------------------------------------------------------------------------

def out_dir(argv):
    return argv[argv.index("--out-dir") + 1]


def compare_metrics(path_a, path_b):
    """Differences between two metrics.csv files in train_loss and val_loss, as written."""
    with open(path_a, newline="") as fa, open(path_b, newline="") as fb:
        rows_a, rows_b = list(csv.DictReader(fa)), list(csv.DictReader(fb))
    steps_a, steps_b = [r["step"] for r in rows_a], [r["step"] for r in rows_b]
    if steps_a != steps_b:
        return [f"metrics.csv: evaluated at steps {steps_a} vs {steps_b}"]
    differ = [f"{column} at step {a['step']}: {a[column]} vs {b[column]}"
              for a, b in zip(rows_a, rows_b) for column in ("train_loss", "val_loss") if a[column] != b[column]]
    if len(differ) > 1:
        return [f"metrics.csv: {len(differ)} of {2 * len(rows_a)} losses differ, the first {differ[0]}"]
    return differ


def meta_differences(a, b):
    """The entries in which two checkpoint descriptions (JSON as uint8 arrays) differ."""
    meta_a, meta_b = (json.loads(m.tobytes().decode("utf-8")) for m in (a, b))
    return sorted(key for key in set(meta_a) | set(meta_b) if meta_a.get(key) != meta_b.get(key))


def compare_checkpoint(path_a, path_b):
    """Differences between two .npz checkpoints: their array names, and each array bit for bit."""
    name = os.path.basename(path_a)
    with np.load(path_a, allow_pickle=False) as za, np.load(path_b, allow_pickle=False) as zb:
        arrays_a, arrays_b = dict(za), dict(zb)
    problems = []
    if set(arrays_a) != set(arrays_b):
        problems.append(f"{name}: arrays only in tree {sorted(set(arrays_a) - set(arrays_b))}, "
                        f"only in against {sorted(set(arrays_b) - set(arrays_a))}")
    common = sorted(set(arrays_a) & set(arrays_b))
    differ = [k for k in common if arrays_a[k].dtype != arrays_b[k].dtype or arrays_a[k].shape != arrays_b[k].shape
              or arrays_a[k].tobytes() != arrays_b[k].tobytes()]
    if "__meta__" in differ:
        differ.remove("__meta__")
        problems.append(f"{name} description differs in {meta_differences(arrays_a['__meta__'], arrays_b['__meta__'])}")
    if differ:
        same_shape = [k for k in differ if arrays_a[k].shape == arrays_b[k].shape]
        largest = max((np.max(np.abs(arrays_a[k].astype(np.float64) - arrays_b[k].astype(np.float64)), initial=0.0)
                       for k in same_shape), default=None)
        names = differ[:3] + ([f"and {len(differ) - 3} more"] if len(differ) > 3 else [])
        problems.append(f"{name}: {len(differ)} arrays differ: {names}"
                        + (f", largest difference {largest:.3g}" if largest is not None else ""))
    return problems


def compare_text(what, a, b):
    """The first line in which two printed texts differ, if any."""
    for number, (line_a, line_b) in enumerate(itertools.zip_longest(a.splitlines(), b.splitlines()), 1):
        if line_a != line_b:
            return [f"{what}, line {number}: {shorten(line_a)} vs {shorten(line_b)}"]
    return []


def shorten(line, width=70):
    if line is None:
        return "(no line)"
    return repr(line if len(line) <= width else line[:width] + "...")


def report_after_training(stdout):
    """What a training prints after its 'training wall time' line (scores, samples: results, no
    timings); None without that line."""
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("training wall time")]
    return "\n".join(lines[starts[-1] + 1:]) if starts else None


def compare_command(command, out_a, out_b, tree, against):
    if command.compare == "output":
        return compare_text(f"`{command.argv[0]}` output", out_a, out_b)
    if command.compare != "run":
        return []
    dir_a, dir_b = (os.path.join(side.workdir, out_dir(command.argv)) for side in (tree, against))
    problems = compare_metrics(os.path.join(dir_a, "metrics.csv"), os.path.join(dir_b, "metrics.csv"))
    for name in CHECKPOINTS:
        problems += compare_checkpoint(os.path.join(dir_a, name), os.path.join(dir_b, name))
    report_a, report_b = report_after_training(out_a), report_after_training(out_b)
    if report_a is None or report_b is None:
        return problems + [f"`{command.argv[0]}` printed no 'training wall time' line"]
    return problems + compare_text("report after training", report_a, report_b)


def run_check(name, sides, warm_ups):
    """Run a check's commands in both sides' warm-up directories, then again in their own, and compare
    the second runs; return (differences, [seconds of the second runs of each side])."""
    for command in CHECKS[name]:
        for side in warm_ups:
            run_cli(side, command)
    problems, seconds = [], [0.0, 0.0]
    for command in CHECKS[name]:
        outputs = []
        for i, side in enumerate(sides):
            out, took = run_cli(side, command)
            outputs.append(out)
            seconds[i] += took
        problems += compare_command(command, *outputs, *sides)
    return problems, seconds


# -- the two sides ----------------------------------------------------------------------------------------

def short_commit(rev):
    out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", rev], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"git rev-parse {rev}: {out.stderr.strip()}")
    return out.stdout.strip()


def make_side(label, rev, tmp):
    """A side running the working tree (rev None) or git revision `rev`, and its warm-up twin: the same
    package, each with a fresh directory to run in."""
    if rev is None:
        package_root, kernels_dir = ROOT, os.path.join(ROOT, "kernels")
    else:
        package_root = export_revision(rev, os.path.join(tmp, f"{label}-package"))
        kernels_dir = os.path.join(package_root, "transformer_jit", "kernels")
    sides = []
    for name in (label, f"{label}-warm-up"):
        os.makedirs(os.path.join(tmp, name))
        sides.append(Side(name, package_root, kernels_dir, os.path.join(tmp, name)))
    return sides


def describe(side, rev):
    return f"{side.label}: " + (f"the working tree ({ROOT})" if rev is None else
                                f"{rev} = {short_commit(rev)} (exported to {side.package_root})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--against", metavar="REV", required=True, help="the git revision to compare with")
    parser.add_argument("--tree", metavar="REV", help="run git revision REV in place of the working tree")
    parser.add_argument("--only", metavar="CHECK", action="append", choices=list(CHECKS),
                        help=f"run this check only (repeatable): {', '.join(CHECKS)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories and print where")
    args = parser.parse_args()
    names = [name for name in CHECKS if name in (args.only or CHECKS)]

    tmp = tempfile.mkdtemp(prefix="same-results-")
    try:
        return compare_sides(args, names, tmp)
    finally:
        if args.keep:
            print(f"runs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def compare_sides(args, names, tmp):
    tree, tree_warm_up = make_side("tree", args.tree, tmp)
    against, against_warm_up = make_side("against", args.against, tmp)
    print(describe(tree, args.tree))
    print(describe(against, args.against))
    print(f"NUMBA_NUM_THREADS={THREADS} (1 per rank under MPI), TRANSFORMER_JIT_ADAPTIVE_THREADS=0")
    try:
        for side in (tree, against):
            check_imports(side)
    except CommandFailed as e:
        print(f"cannot run: {e}")
        return 1

    print(f"\n{'check':14} {'tree s':>7} {'against s':>9}  result", flush=True)
    failed = False
    for name in names:
        if name.endswith("-mpi") and mpiexec() is None:
            print(f"{name:14} {'':>7} {'':>9}  skipped: mpiexec or mpi4py not found (pip install -e '.[mpi]')")
            continue
        try:
            problems, (seconds_tree, seconds_against) = run_check(name, (tree, against),
                                                                  (tree_warm_up, against_warm_up))
        except CommandFailed as e:
            print(f"{name:14} {'':>7} {'':>9}  FAILED: {e}", flush=True)
            failed = True
            continue
        result = "DIFFERENT: " + "; ".join(problems) if problems else "identical"
        print(f"{name:14} {seconds_tree:7.1f} {seconds_against:9.1f}  {result}", flush=True)
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
