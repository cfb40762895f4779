"""A trained model, built from a checkpoint the Trainer wrote: its kind, config, weights and tokenizer
(None for a vision transformer, which reads pixels)."""
from ..models.registry import MODELS
from .checkpoint import load_checkpoint, split_prefix
from .checkpoint_contents import saved_model_config, saved_tokenizer

PIXEL_MODELS = ("vit",)  # model kinds without a tokenizer


def load_model(path):
    """(model, tokenizer, meta) from a checkpoint written by the Trainer, in eval mode. load_checkpoint
    has checked the kind, config, tokenizer and arrays against each other before the model is built."""
    arrays, meta = load_checkpoint(path)
    reads_text = meta["kind"] not in PIXEL_MODELS
    if reads_text and not meta["tokenizer"]:
        raise ValueError(f"{path} has no tokenizer: it was not written by a Trainer given one")
    model = MODELS[meta["kind"]].model_class(saved_model_config(path, meta))
    model.load_state_dict(split_prefix(arrays, "model."))
    return model.eval(), saved_tokenizer(path, meta) if reads_text else None, meta
