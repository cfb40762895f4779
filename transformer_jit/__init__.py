"""transformer-jit: a transformer from first principles, with Numba-compiled kernels.

    from transformer_jit import GPT, GPTConfig, AdamW, CharTokenizer, Trainer
    from transformer_jit import Seq2SeqTransformer, Seq2SeqConfig, EncoderClassifier, ClassifierConfig
"""
from . import kernels
from .classifier import EncoderClassifier
from .configs import ClassifierConfig, EncoderConfig, Seq2SeqConfig
from .data import TextDataset, default_corpus, load_text
from .decoding import beam_search, greedy_decode
from .gpt import GPT, GPTConfig
from .optim import SGD, AdaGrad, Adam, AdamW, Momentum, RMSprop, noam, warmup_cosine, warmup_rsqrt
from .seq2seq import Seq2SeqTransformer
from .stack import TransformerDecoder, TransformerEncoder, TransformerStack
from .tokenizer import CharTokenizer
from .trainer import TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "GPT", "GPTConfig", "CharTokenizer", "TextDataset", "default_corpus", "load_text",
    "EncoderConfig", "ClassifierConfig", "EncoderClassifier", "Seq2SeqConfig", "Seq2SeqTransformer",
    "TransformerEncoder", "TransformerDecoder", "TransformerStack", "greedy_decode", "beam_search",
    "SGD", "Momentum", "AdaGrad", "RMSprop", "Adam", "AdamW", "warmup_cosine", "noam", "warmup_rsqrt",
    "Trainer", "TrainConfig", "kernels",
]
