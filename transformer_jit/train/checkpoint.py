"""Checkpoints: one .npz holding every array plus a JSON description, written atomically.

The JSON (model and training configuration, tokenizer, step, RNG state) is stored inside the
archive as bytes, so one file is always self-consistent, and it is loaded with
allow_pickle=False, so opening a checkpoint never executes code.
"""
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..data.tokenizers import tokenizer_from_dict
from ..models import GPT, ClassifierConfig, EncoderClassifier, GPTConfig, Seq2SeqConfig, Seq2SeqTransformer

FORMAT = "transformer-jit-checkpoint"
VERSION = 1
_META = "__meta__"


def save_checkpoint(path, arrays, meta):
    """Write arrays and meta to `path` atomically: a crash leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "version": VERSION, **meta}
    blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays, **{_META: blob})
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path):
    """Return (arrays, meta); a missing or damaged file raises an error that says which."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files if name != _META}
            meta = json.loads(archive[_META].tobytes().decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
        raise ValueError(f"checkpoint {path} is damaged or not a transformer-jit checkpoint ({e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a transformer-jit checkpoint")
    return arrays, meta


def split_prefix(arrays, prefix):
    """The entries whose names start with `prefix`, with the prefix removed."""
    return {name[len(prefix):]: a for name, a in arrays.items() if name.startswith(prefix)}


# What a checkpoint's "kind" names: the model class and its config class.
MODEL_KINDS = {"gpt": (GPT, GPTConfig), "seq2seq": (Seq2SeqTransformer, Seq2SeqConfig),
               "classifier": (EncoderClassifier, ClassifierConfig)}


def load_model(path):
    """(model, tokenizer, meta) from a checkpoint written by the Trainer, in eval mode."""
    arrays, meta = load_checkpoint(path)
    kind = meta.get("kind")
    if kind not in MODEL_KINDS:
        raise ValueError(f"{path} holds a {kind!r} model, not one of {sorted(MODEL_KINDS)}")
    if not meta.get("tokenizer"):
        raise ValueError(f"{path} has no tokenizer: it was not written by a Trainer given one")
    model_cls, config_cls = MODEL_KINDS[kind]
    model = model_cls(config_cls.from_dict(meta["model_config"]))
    model.load_state_dict(split_prefix(arrays, "model."))
    return model.eval(), tokenizer_from_dict(meta["tokenizer"]), meta
