"""transformer-jit: a transformer from first principles, with Numba-compiled kernels.

    from transformer_jit import GPT, GPTConfig, AdamW, CharTokenizer, Trainer
    from transformer_jit import Seq2SeqTransformer, Seq2SeqConfig, EncoderClassifier, ClassifierConfig
    from transformer_jit import evaluate_perplexity, token_byte_lengths
    from transformer_jit import load        # load("out"): a run's model and tokenizer, or GPT-2's

The layers, from the bottom: kernels (every hot loop, compiled), util (atomic writes, config
checks), then nn (parameters and layers), data (tokenizers and datasets) and formats (other
projects' files), which do not import each other; models (GPT, the encoder models, the model
registry, generation, translation), train (the training loop, optimizers, checkpoints), cli (the
command line). Each imports only from the ones before it.
"""
from ._checkout import find_kernels

find_kernels()
from . import kernels  # noqa: E402
from .data import BPETokenizer, CharTokenizer, TextDataset, default_corpus, load_text
from .models import (GPT, ClassifierConfig, EncoderClassifier, EncoderConfig, GPTConfig, Seq2SeqConfig,
                     Seq2SeqTransformer, beam_search, classify, evaluate_perplexity, greedy_decode,
                     token_byte_lengths, translate)
from .nn import TransformerDecoder, TransformerEncoder, TransformerStack
from .train import (SGD, AdaGrad, Adam, AdamW, Loaded, Momentum, RMSprop, TrainConfig, Trainer, load, noam,
                    warmup_cosine, warmup_rsqrt)

__version__ = "0.1.0"

__all__ = [
    "GPT", "GPTConfig", "CharTokenizer", "BPETokenizer", "TextDataset", "default_corpus", "load_text",
    "EncoderConfig", "ClassifierConfig", "EncoderClassifier", "Seq2SeqConfig", "Seq2SeqTransformer",
    "TransformerEncoder", "TransformerDecoder", "TransformerStack", "greedy_decode", "beam_search",
    "translate", "classify", "evaluate_perplexity", "token_byte_lengths",
    "SGD", "Momentum", "AdaGrad", "RMSprop", "Adam", "AdamW", "warmup_cosine", "noam", "warmup_rsqrt",
    "Trainer", "TrainConfig", "load", "Loaded", "kernels",
]
