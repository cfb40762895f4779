"""Model configurations: one dataclass per model, saved as JSON beside every checkpoint.

Every config is checked on construction, here and only here, so that a bad value fails with its
name rather than deep inside a kernel. The encoder models' defaults are the ones the built-in tasks
train well with on a 2-core CPU, not the paper's (d_model 512, 6 + 6 layers, 8 heads).
"""
import math
import typing
from dataclasses import asdict, dataclass, fields

from ..nn.checks import head_size
from ..nn.layers import ACTIVATIONS, POSITIONALS

POOLINGS = ("mean", "cls")


class ModelConfig:
    """Shared by every config: conversion to and from dicts, and the checks all of them need."""

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Build from a saved dict; unknown keys are an error that names them."""
        if not isinstance(d, dict):
            raise ValueError(f"{cls.__name__} must be built from a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{cls.__name__} has no fields {unknown}")
        return cls(**d)

    def __post_init__(self):
        name = type(self).__name__
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value, kind = getattr(self, f.name), hints[f.name]
            if kind is int and not _is_int(value):
                raise ValueError(f"{name}.{f.name} must be an integer, got {value!r}")
            if kind is float and not (_is_number(value) and math.isfinite(value)):
                raise ValueError(f"{name}.{f.name} must be a finite number, got {value!r}")
            if kind in (bool, str) and not isinstance(value, kind):
                raise ValueError(f"{name}.{f.name} must be a {kind.__name__}, got {value!r}")
        for f in self.positive:
            if getattr(self, f) < 1:
                raise ValueError(f"{name}.{f} must be >= 1, got {getattr(self, f)}")
        for f in self.non_negative:
            if getattr(self, f) < 0:
                raise ValueError(f"{name}.{f} must be >= 0, got {getattr(self, f)}")
        head_size(self.n_embd, self.n_head, name)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{name}.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= getattr(self, "label_smoothing", 0.0) < 1.0:
            raise ValueError(f"{name}.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.positional not in POSITIONALS:
            raise ValueError(f"{name}.positional must be one of {POSITIONALS}, got {self.positional!r}")
        if getattr(self, "activation", "gelu") not in ACTIVATIONS:
            raise ValueError(f"{name}.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class GPTConfig(ModelConfig):
    """A GPT-2 style decoder-only language model (nanoGPT's field names)."""
    vocab_size: int = 65
    block_size: int = 64          # longest context, in tokens
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True             # biases in linear and layer-norm layers
    positional: str = "learned"   # or "sinusoidal"

    positive = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")
    non_negative = ()


@dataclass
class EncoderConfig(ModelConfig):
    """A transformer encoder: token embeddings + positions, n_layer bidirectional blocks."""
    vocab_size: int = 16
    max_len: int = 64             # longest input sequence, in tokens
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64              # d_model
    n_inner: int = 0              # feed-forward width d_ff; 0 means 4 * n_embd
    dropout: float = 0.0
    bias: bool = True
    positional: str = "sinusoidal"  # or "learned"
    norm_first: bool = True       # pre-LN; False is post-LN, as in the original paper
    activation: str = "gelu"      # or "relu", as in the original paper
    pad_id: int = 0               # padding token: masked out of attention and pooling
    label_smoothing: float = 0.0
    # Training forwards number positions from a random start in [0, position_shift], one per
    # batch (evaluation starts at 0), so that no position is tied to "the end of the string":
    # the position table has max_len + position_shift rows.
    position_shift: int = 0

    positive = ("vocab_size", "max_len", "n_layer", "n_head", "n_embd")
    non_negative = ("n_inner", "pad_id", "position_shift")

    def __post_init__(self):
        super().__post_init__()
        if self.pad_id >= self.vocab_size:
            raise ValueError(f"{type(self).__name__}.pad_id ({self.pad_id}) must be < vocab_size ({self.vocab_size})")


@dataclass
class ClassifierConfig(EncoderConfig):
    """Encoder, pooling over positions, a linear layer and softmax cross-entropy over n_classes."""
    n_classes: int = 2
    pooling: str = "mean"         # mean over non-padding positions, or "cls": a classification token
    cls_id: int = 1               # the token put in front of every sequence when pooling == "cls"

    def __post_init__(self):
        super().__post_init__()
        if self.n_classes < 2:
            raise ValueError(f"ClassifierConfig.n_classes must be >= 2, got {self.n_classes}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"ClassifierConfig.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if not 0 <= self.cls_id < self.vocab_size or self.cls_id == self.pad_id:
            raise ValueError(f"ClassifierConfig.cls_id ({self.cls_id}) must be a non-padding id < vocab_size")


@dataclass
class Seq2SeqConfig(ModelConfig):
    """Encoder-decoder transformer. Token ids follow SeqTokenizer: PAD 0, BOS 1, EOS 2."""
    src_vocab_size: int = 16
    tgt_vocab_size: int = 16
    max_src_len: int = 64         # longest source, in tokens
    max_tgt_len: int = 64         # longest decoder input (BOS + target), in tokens
    n_encoder_layer: int = 2
    n_decoder_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    n_inner: int = 0
    dropout: float = 0.0
    bias: bool = True
    positional: str = "sinusoidal"
    norm_first: bool = True
    activation: str = "gelu"
    tie_weights: bool = True      # output projection = target embedding matrix (paper, 3.4)
    label_smoothing: float = 0.0  # the paper used 0.1
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    positive = ("src_vocab_size", "tgt_vocab_size", "max_src_len", "max_tgt_len", "n_encoder_layer",
                "n_decoder_layer", "n_head", "n_embd")
    non_negative = ("n_inner", "pad_id", "bos_id", "eos_id")

    def __post_init__(self):
        super().__post_init__()
        for field in ("pad_id", "bos_id", "eos_id"):
            if getattr(self, field) >= min(self.src_vocab_size, self.tgt_vocab_size):
                raise ValueError(f"Seq2SeqConfig.{field} ({getattr(self, field)}) must be < both vocabulary sizes")
        if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
            raise ValueError("Seq2SeqConfig.pad_id, bos_id and eos_id must be distinct")
