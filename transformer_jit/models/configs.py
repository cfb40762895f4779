"""Model configurations: one dataclass per model, saved as JSON beside every checkpoint.

Every config is checked on construction, here and only here, so that a bad value fails with its
name rather than deep inside a kernel. The encoder models' defaults are the ones the built-in tasks
train well with on a 2-core CPU, not the paper's (d_model 512, 6 + 6 layers, 8 heads).
"""
import typing
from dataclasses import asdict, dataclass

from ..nn.checks import head_size
from ..nn.layers import ACTIVATIONS, POSITIONALS
from ..util.config import (ConfigError, check_fields, check_range, config_from_dict, is_int, is_per_channel,
                           per_channel_wanted)

POOLINGS = ("mean", "cls")
GELUS = {"erf": "gelu_erf", "tanh": "gelu"}  # ViTConfig.gelu -> the activation's name (nn/layers.py)


class ModelConfig:
    """Shared by every config: conversion to and from dicts, and the checks all of them need.
    Subclasses list `at_least` ({field: lowest value}) and add checks of their own."""

    at_least = {}

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Build from a saved dict; unknown keys are an error that names them."""
        return config_from_dict(cls, d)

    def __post_init__(self):
        choices = {"positional": POSITIONALS} if hasattr(self, "positional") else {}
        if hasattr(self, "activation"):
            choices["activation"] = ACTIVATIONS
        check_fields(self, self.at_least, choices)
        head_size(self.n_embd, self.n_head, type(self).__name__)
        check_range(self, "dropout", 0.0, 1.0)
        check_range(self, "attn_dropout", 0.0, 1.0)
        if hasattr(self, "label_smoothing"):
            check_range(self, "label_smoothing", 0.0, 1.0)


@dataclass
class GPTConfig(ModelConfig):
    """A GPT-2 style decoder-only language model (nanoGPT's field names)."""
    vocab_size: int = 65
    block_size: int = 64          # longest context, in tokens
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0          # on the embeddings and residual branches (resid_pdrop, embd_pdrop)
    attn_dropout: float = 0.0     # on attention probabilities (GPT-2's attn_pdrop)
    bias: bool = True             # biases in linear and layer-norm layers
    positional: str = "learned"   # or "sinusoidal"
    attn_window: int = 0          # W > 0: each position attends to the last W positions only; 0: all

    at_least = {"vocab_size": 1, "block_size": 1, "n_layer": 1, "n_head": 1, "n_embd": 1, "attn_window": 0}


@dataclass
class EncoderConfig(ModelConfig):
    """A transformer encoder: token embeddings + positions, n_layer bidirectional blocks."""
    vocab_size: int = 16
    max_len: int = 64             # longest input sequence, in tokens
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64              # d_model
    n_inner: int = 0              # feed-forward width d_ff; 0 means 4 * n_embd
    dropout: float = 0.0          # on the embeddings and residual branches
    attn_dropout: float = 0.0     # on attention probabilities
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
    attn_window: int = 0          # W > 0: each position attends to positions within W of it; 0: all

    at_least = {"vocab_size": 1, "max_len": 1, "n_layer": 1, "n_head": 1, "n_embd": 1, "n_inner": 0, "pad_id": 0,
                "position_shift": 0, "attn_window": 0}

    def __post_init__(self):
        super().__post_init__()
        if self.pad_id >= self.vocab_size:
            raise ConfigError(type(self).__name__, "pad_id", f"must be < vocab_size ({self.vocab_size})", self.pad_id)


@dataclass
class ClassifierConfig(EncoderConfig):
    """Encoder, pooling over positions, a linear layer and softmax cross-entropy over n_classes."""
    n_classes: int = 2
    pooling: str = "mean"         # mean over non-padding positions, or "cls": a classification token
    cls_id: int = 1               # the token put in front of every sequence when pooling == "cls"

    at_least = {**EncoderConfig.at_least, "n_classes": 2}

    def __post_init__(self):
        super().__post_init__()
        if self.pooling not in POOLINGS:
            raise ConfigError("ClassifierConfig", "pooling", f"must be one of {list(POOLINGS)}", self.pooling)
        if not 0 <= self.cls_id < self.vocab_size or self.cls_id == self.pad_id:
            raise ConfigError("ClassifierConfig", "cls_id", f"must be a non-padding id < vocab_size ({self.vocab_size})",
                              self.cls_id)


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
    dropout: float = 0.0          # on the embeddings and residual branches
    attn_dropout: float = 0.0     # on attention probabilities (self- and cross-attention)
    bias: bool = True
    positional: str = "sinusoidal"
    norm_first: bool = True
    activation: str = "gelu"
    tie_weights: bool = True      # output projection = target embedding matrix (paper, 3.4)
    label_smoothing: float = 0.0  # the paper used 0.1
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    # W > 0: self-attention within a window (the encoder's: W on each side; the decoder's: the last
    # W positions); cross-attention always sees the whole source
    attn_window: int = 0

    at_least = {"src_vocab_size": 1, "tgt_vocab_size": 1, "max_src_len": 1, "max_tgt_len": 1, "n_encoder_layer": 1,
                "n_decoder_layer": 1, "n_head": 1, "n_embd": 1, "n_inner": 0, "pad_id": 0, "bos_id": 0, "eos_id": 0,
                "attn_window": 0}

    def __post_init__(self):
        super().__post_init__()
        for field in ("pad_id", "bos_id", "eos_id"):
            if getattr(self, field) >= min(self.src_vocab_size, self.tgt_vocab_size):
                raise ConfigError("Seq2SeqConfig", field, "must be < both vocabulary sizes", getattr(self, field))
        if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
            raise ConfigError("Seq2SeqConfig", "eos_id", "must differ from pad_id and bos_id", self.eos_id)


# How a ViT's pixels are normalised unless its config says (ViTImageProcessor's defaults): [0, 255] -> [-1, 1].
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5


@dataclass
class ViTConfig(ModelConfig):
    """A vision transformer (Dosovitskiy et al. 2020): the image cut into patch_size x patch_size
    patches, each projected to n_embd, a class token in front, learned positions, a bidirectional
    pre-LN encoder, a final layer norm and a linear classifier on the class token. The defaults of
    the computation (layer_norm_eps, the exact GELU) are Hugging Face's ViTConfig's."""
    image_size: typing.Union[int, list] = 32  # side of a square image, or [height, width]
    patch_size: int = 4
    num_channels: int = 3         # 1 (grey) or 3 (RGB)
    n_classes: int = 10
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    n_inner: int = 0              # MLP width; 0 means 4 * n_embd
    dropout: float = 0.0          # on the patch embeddings and residual branches
    attn_dropout: float = 0.0     # on attention probabilities
    layer_norm_eps: float = 1e-12
    gelu: str = "erf"             # exact GELU, x Phi(x), as ViT checkpoints; or "tanh", its approximation
    attn_window: int = 0          # always 0: a window over the patches in reading order would cut the class token off
    label_names: typing.Optional[list] = None  # a name per class, or None
    # pixel = (value / 255 - image_mean[c]) / image_std[c] per channel; None: 0.5 for every channel
    image_mean: typing.Optional[list] = None
    image_std: typing.Optional[list] = None

    at_least = {"patch_size": 1, "n_classes": 2, "n_layer": 1, "n_head": 1, "n_embd": 1, "n_inner": 0,
                "attn_window": 0}

    def __post_init__(self):
        if isinstance(self.image_size, tuple):
            self.image_size = list(self.image_size)  # as JSON gives it back
        if is_int(self.image_size):
            self.image_size = int(self.image_size)  # a NumPy integer would not go into a checkpoint's JSON
        super().__post_init__()
        size = self.image_size
        if not (is_int(size) or (isinstance(size, list) and len(size) == 2 and all(map(is_int, size)))):
            raise ConfigError("ViTConfig", "image_size", "must be an integer or [height, width]", size)
        if min(self.height_width) < 1 or any(side % self.patch_size for side in self.height_width):
            raise ConfigError("ViTConfig", "image_size",
                              f"must be positive multiples of patch_size ({self.patch_size})", size)
        if self.num_channels not in (1, 3):
            raise ConfigError("ViTConfig", "num_channels", "must be 1 (grey) or 3 (RGB)", self.num_channels)
        if self.gelu not in GELUS:
            raise ConfigError("ViTConfig", "gelu", f"must be one of {list(GELUS)}", self.gelu)
        if not (self.layer_norm_eps > 0):
            raise ConfigError("ViTConfig", "layer_norm_eps", "must be > 0", self.layer_norm_eps)
        if self.attn_window != 0:
            raise ConfigError("ViTConfig", "attn_window", "must be 0: the class token attends to every patch",
                              self.attn_window)
        for field in ("image_mean", "image_std"):
            value = getattr(self, field)
            if isinstance(value, tuple):
                setattr(self, field, value := list(value))
            positive = field == "image_std"
            if value is not None and not is_per_channel(value, self.num_channels, positive):
                raise ConfigError("ViTConfig", field,
                                  f"must be None or {per_channel_wanted(self.num_channels, positive)}", value)
        names = self.label_names
        if names is not None and not (isinstance(names, list) and len(names) == self.n_classes
                                      and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)):
            raise ConfigError("ViTConfig", "label_names", f"must be None or {self.n_classes} distinct strings "
                                                          f"(one per class)", names)

    @property
    def height_width(self):
        """(H, W) in pixels."""
        return (self.image_size, self.image_size) if is_int(self.image_size) else tuple(self.image_size)

    @property
    def normalisation(self):
        """(image_mean, image_std): a number per channel, IMAGE_MEAN and IMAGE_STD where None."""
        C = self.num_channels
        return ([float(v) for v in self.image_mean or [IMAGE_MEAN] * C],
                [float(v) for v in self.image_std or [IMAGE_STD] * C])

    @property
    def n_patches(self):
        """NP = (H / P)(W / P)."""
        H, W = self.height_width
        return (H // self.patch_size) * (W // self.patch_size)
