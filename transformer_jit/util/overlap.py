"""Outputs kept apart from inputs: no command writes over, replaces or clears what it reads."""
import os
from pathlib import Path


def check_apart(label, output, inputs):
    """Refuse (ValueError), before anything is written, an output that is or contains one of the
    inputs. label and output: the output's name for the user (an option such as "--out-dir") and
    its path; inputs: (label, path) pairs, empty paths skipped. Paths are compared after resolving
    symlinks and "..", whether they exist yet or not; two existing paths that are one file (a hard
    link, a bind mount) are the same too."""
    out = Path(output).resolve()
    for input_label, path in inputs:
        if not path:
            continue
        inp = Path(path).resolve()
        same = inp == out or (inp.exists() and out.exists() and os.path.samefile(inp, out))
        if same or out in inp.parents:
            verb = "is" if same else "contains"
            raise ValueError(f"{label} {output} {verb} {input_label} {path}: writing there could destroy an input; "
                             f"choose another {label}")
