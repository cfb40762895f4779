"""Any model this package runs, loaded from where it lies: a run directory, a run's checkpoint, a
Hugging Face GPT-2 directory or an llm.c file.

    loaded = load("out")        # a run directory: its best.npz (last.npz before the first best)
    loaded.model, loaded.tokenizer, loaded.kind, loaded.config, loaded.labels
    load("out-vit").model.predict(pixels)   # a vision transformer: no tokenizer (None), labels its classes
"""
from dataclasses import dataclass
from pathlib import Path

from ..models.pretrained import RUN_CHECKPOINTS, is_checkpoint_file, load_pretrained
from .saved_model import load_model

HF_CONFIG = "config.json"


@dataclass
class Loaded:
    """A model ready to run (in eval mode) and what it needs to read and write text."""
    model: object
    tokenizer: object    # None for a vision transformer
    kind: str            # "gpt", "classifier", "seq2seq" or "vit" (models/registry.py)
    config: object       # the model's config: GPTConfig, ClassifierConfig, Seq2SeqConfig or ViTConfig
    path: Path           # the checkpoint, directory or file the weights came from
    labels: list = None  # a classifier's class names (class i is labels[i]), when its run recorded them
    meta: dict = None    # a run checkpoint's description (step, training config, task); None for GPT-2's files


def load(path):
    """The model at `path`, with its tokenizer: a run directory (best.npz, or last.npz when no
    evaluation has improved yet), a checkpoint a run wrote (.npz), a Hugging Face GPT-2 directory
    (config.json, model.safetensors and the tokenizer's files) or an llm.c file with GPT-2's
    tokenizer files beside it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give a run directory, a checkpoint (.npz), a Hugging Face "
                                f"GPT-2 directory or an llm.c file")
    checkpoint = run_checkpoint(path)
    if checkpoint is None:
        model, tokenizer = load_pretrained(path)
        return Loaded(model.eval(), tokenizer, "gpt", model.config, path)
    model, tokenizer, meta = load_model(checkpoint)
    labels = (meta.get("info") or {}).get("labels")
    return Loaded(model, tokenizer, meta["kind"], model.config, checkpoint, labels, meta)


def run_checkpoint(path):
    """The run checkpoint `path` names (itself, or a run directory's best.npz or last.npz), or None
    for pretrained weights."""
    if is_checkpoint_file(path):
        return path
    if path.is_dir():
        found = [path / name for name in RUN_CHECKPOINTS if (path / name).is_file()]
        if found:
            return found[0]
        if not (path / HF_CONFIG).exists():
            raise FileNotFoundError(f"{path} holds neither a run ({' or '.join(RUN_CHECKPOINTS)}) nor a Hugging "
                                    f"Face GPT-2 ({HF_CONFIG}, model.safetensors)")
    return None
