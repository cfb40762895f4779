"""Outputs kept apart from inputs: no command writes over, replaces or clears what it reads."""
import os
from pathlib import Path


def check_apart(label, output, inputs, writes=None):
    """Refuse (ValueError), before anything is written, an output that would destroy an input.
    label and output: the output's name for the user (an option such as "--out-dir") and its path;
    inputs: (label, path) pairs, empty paths skipped. writes: None when the output is replaced as
    a whole (no input may be it or lie inside it), else the names of the files the command writes
    or deletes in the output directory (no input may be the directory or one of those files).
    Paths are compared after resolving symlinks and "..", whether they exist yet or not; two
    existing paths that are one file (a hard link, a bind mount) are the same too."""
    out = Path(output).resolve()
    for input_label, path in inputs:
        if not path:
            continue
        inp = Path(path).resolve()
        if _same(inp, out):
            raise ValueError(f"{label} {output} is {input_label} {path}: writing there could destroy an input; "
                             f"choose another {label}")
        if writes is None and out in inp.parents:
            raise ValueError(f"{label} {output} contains {input_label} {path}: writing there could destroy an "
                             f"input; choose another {label}")
        written = next((name for name in writes or () if _same(inp, out / name)), None)
        if written is not None:
            raise ValueError(f"{input_label} {path} is the {written} that {label} {output} gets: writing there "
                             f"would destroy an input; choose another {label}")


def _same(a, b):
    return a == b or (a.exists() and b.exists() and os.path.samefile(a, b))
