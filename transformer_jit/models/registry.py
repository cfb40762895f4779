"""The model registry: every model kind by the name a checkpoint's "kind" and the command line use.

    MODELS["gpt"].model_class(MODELS["gpt"].config_class.from_dict(d))

Training (checkpoints, memory estimates) and the command line look models up here, so a new model
is added in one place.
"""
from typing import NamedTuple

from .classifier import EncoderClassifier
from .configs import ClassifierConfig, GPTConfig, Seq2SeqConfig, ViTConfig
from .gpt import GPT
from .seq2seq import Seq2SeqTransformer
from .vit import VisionTransformer


class ModelKind(NamedTuple):
    """A model class and the config dataclass it is built from."""
    model_class: type
    config_class: type


MODELS = {
    "gpt": ModelKind(GPT, GPTConfig),
    "seq2seq": ModelKind(Seq2SeqTransformer, Seq2SeqConfig),
    "classifier": ModelKind(EncoderClassifier, ClassifierConfig),
    "vit": ModelKind(VisionTransformer, ViTConfig),
}
