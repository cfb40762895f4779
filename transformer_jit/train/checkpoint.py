"""Checkpoints: one .npz holding every array plus a JSON description, written atomically.

The JSON (model and training configuration, tokenizer, step, RNG state) is stored inside the
archive as bytes, so one file is always self-consistent, and it is loaded with
allow_pickle=False, so opening a checkpoint never executes code. This module knows the file;
checkpoint_contents.py checks what it holds against the models, and train/saved_model.py builds a
trained model from one.
"""
import json
import zipfile
from pathlib import Path

import numpy as np

from ..util.atomic import atomic_write
from ..util.json_file import parse_json
from ..util.npz import check_npz_members
from ..util.regular_file import open_regular_file
from .checkpoint_contents import check_contents

FORMAT = "transformer-jit-checkpoint"
VERSION = 1
_META = "__meta__"


# What a checkpoint's description holds, and the types each entry must have.
META_FIELDS = {
    "format": str, "version": int, "kind": str, "model_config": dict, "train_config": dict,
    "tokenizer": (dict, type(None)), "step": int, "rng_state": dict, "dropout_seed": int, "forward_count": int,
    "best_val_loss": (int, float), "evals_since_best": int, "info": dict, "world_size": int,
}
OPTIONAL_META = {"world_size"}  # ranks of a data-parallel run; checkpoints older than it trained on one


def save_checkpoint(path, arrays, meta):
    """Write arrays and meta to `path` atomically: a crash or a failed write (a full disk) leaves
    the previous file intact and no temporary file behind."""
    meta = {"format": FORMAT, "version": VERSION, **meta}
    blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays, **{_META: blob})


def load_checkpoint(path, arrays=True):
    """Return (arrays, meta), or with arrays=False ({}, meta) without reading the arrays; a missing
    or damaged file raises an error that says which. Each array's declared size is checked against
    the bytes that hold it before it is read, and the description and the arrays against each
    other (checkpoint_contents.py) before any model is built from them."""
    want_arrays = arrays
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with open_regular_file(path, "checkpoint") as f:
        try:
            check_npz_members(f, compressed=False)
            with np.load(f, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files if name != _META and want_arrays}
                meta = parse_json(archive[_META].tobytes(), "its description", non_finite=True)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
            raise ValueError(f"checkpoint {path} is damaged or not a transformer-jit checkpoint ({e})") from None
    _check_meta(path, meta)
    check_contents(path, meta, arrays if want_arrays else None)
    return arrays, meta


def _check_meta(path, meta):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a transformer-jit checkpoint")
    missing = sorted(set(META_FIELDS) - set(meta) - OPTIONAL_META)
    unknown = sorted(set(meta) - set(META_FIELDS))
    wrong = sorted(name for name, kind in META_FIELDS.items()
                   if name in meta and (not isinstance(meta[name], kind) or isinstance(meta[name], bool)))
    if missing or unknown or wrong:
        problems = [f"{what} {names}" for what, names in
                    (("missing entries", missing), ("unknown entries", unknown), ("entries of the wrong type", wrong))
                    if names]
        raise ValueError(f"checkpoint {path} has a damaged description: " + "; ".join(problems))


def split_prefix(arrays, prefix):
    """The entries whose names start with `prefix`, with the prefix removed."""
    return {name[len(prefix):]: a for name, a in arrays.items() if name.startswith(prefix)}

