"""transformer-jit: a transformer from first principles, with Numba-compiled kernels.

    from transformer_jit import GPT, GPTConfig, AdamW, CharTokenizer, Trainer
"""
from . import kernels
from .data import TextDataset, default_corpus, load_text
from .gpt import GPT, GPTConfig
from .optim import SGD, AdaGrad, Adam, AdamW, Momentum, RMSprop, warmup_cosine
from .tokenizer import CharTokenizer
from .trainer import TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "GPT", "GPTConfig", "CharTokenizer", "TextDataset", "default_corpus", "load_text",
    "SGD", "Momentum", "AdaGrad", "RMSprop", "Adam", "AdamW", "warmup_cosine",
    "Trainer", "TrainConfig", "kernels",
]
