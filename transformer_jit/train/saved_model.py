"""A trained model, built from a checkpoint the Trainer wrote: its kind, config, weights and tokenizer."""
from ..data.tokenizers import tokenizer_from_dict
from ..models.registry import MODELS
from .checkpoint import load_checkpoint, split_prefix


def load_model(path):
    """(model, tokenizer, meta) from a checkpoint written by the Trainer, in eval mode."""
    arrays, meta = load_checkpoint(path)
    kind = meta.get("kind")
    if kind not in MODELS:
        raise ValueError(f"{path} holds a {kind!r} model, not one of {sorted(MODELS)}")
    if not meta.get("tokenizer"):
        raise ValueError(f"{path} has no tokenizer: it was not written by a Trainer given one")
    model_cls, config_cls = MODELS[kind]
    model = model_cls(config_cls.from_dict(meta["model_config"]))
    model.load_state_dict(split_prefix(arrays, "model."))
    return model.eval(), tokenizer_from_dict(meta["tokenizer"]), meta
