"""What a checkpoint holds, checked against the model it describes before one is built: the model
config (types, ranges), the tokenizer, and the names and shapes of the model's arrays.

The values come from a file, not from an option the user gave, so every problem is a ValueError
that names the checkpoint (a config's ConfigError would otherwise be reported as a flag).
"""
from ..data.tokenizers import tokenizer_from_dict
from ..models.registry import MODELS

MODEL_PREFIX = "model."


def check_contents(path, meta, arrays=None):
    """Check the description `meta` of checkpoint `path`, and with `arrays` ({name: array}) the
    model's arrays against its config."""
    if meta["kind"] not in MODELS:
        raise ValueError(f"checkpoint {path} holds a {meta['kind']!r} model, not one of {sorted(MODELS)}")
    config = saved_model_config(path, meta)
    if meta["tokenizer"] is not None:
        _check_vocabularies(path, config, saved_tokenizer(path, meta))
    if arrays is not None:
        _check_arrays(path, meta["kind"], config,
                      {name[len(MODEL_PREFIX):]: a for name, a in arrays.items() if name.startswith(MODEL_PREFIX)})


def saved_model_config(path, meta):
    """The model config a checkpoint's description holds."""
    try:
        return MODELS[meta["kind"]].config_class.from_dict(meta["model_config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path} has a damaged model config: {e}") from None


def saved_tokenizer(path, meta):
    """The tokenizer a checkpoint's description holds."""
    try:
        return tokenizer_from_dict(meta["tokenizer"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path} has a damaged tokenizer: {e}") from None


def _check_vocabularies(path, config, tokenizer):
    """Each vocabulary of the tokenizer must be as large as the model's: a smaller one could not
    decode what the model generates, a larger one encodes ids the model has no row for."""
    if hasattr(config, "src_vocab_size"):
        sides = {"source ": (config.src_vocab_size, getattr(tokenizer, "src", None)),
                 "target ": (config.tgt_vocab_size, getattr(tokenizer, "tgt", None))}
    else:
        sides = {"": (config.vocab_size, tokenizer)}
    for side, (size, side_tokenizer) in sides.items():
        found = getattr(side_tokenizer, "vocab_size", None)
        if found != size:
            raise ValueError(f"checkpoint {path} has a damaged tokenizer: its {side}vocabulary has {found} tokens, "
                             f"the model's {size}")


def _check_arrays(path, kind, config, arrays):
    """The arrays must be exactly the model's parameters, shapes included. Layer counts are
    bounded by the number of arrays first, so a crafted n_layer is refused before a billion
    layers are declared."""
    for field, value in vars(config).items():
        if "layer" in field and value > len(arrays):
            raise ValueError(f"checkpoint {path} says {field} {value} but holds {len(arrays)} model arrays")
    expected = {name: p.shape for name, p in MODELS[kind].model_class(config, allocate=False).store.params.items()}
    missing, unexpected = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    wrong = [f"{name} {arrays[name].shape} (expected {shape})" for name, shape in expected.items()
             if name in arrays and arrays[name].shape != shape]
    problems = [f"{what} {_some(names)}" for what, names in
                (("missing arrays", missing), ("unexpected arrays", unexpected), ("mis-shaped arrays", wrong)) if names]
    if problems:
        raise ValueError(f"checkpoint {path} does not match its model config: " + "; ".join(problems))


def _some(names, limit=4):
    return "[" + ", ".join(names[:limit]) + (f", ... {len(names) - limit} more]" if len(names) > limit else "]")
