"""Configurations of the encoder models: the classifier and the encoder-decoder (seq2seq).

Each is a dataclass saved as JSON beside every checkpoint (`to_dict()`), checked on construction
so that a bad value fails here, with its name, rather than deep inside a kernel. The defaults are
the ones the built-in tasks train well with on a 2-core CPU, not the paper's (d_model 512, 6 + 6
layers, 8 heads), which would be far too slow there.
"""
from dataclasses import asdict, dataclass, fields

POSITIONALS = ("sinusoidal", "learned")
ACTIVATIONS = ("gelu", "relu")
POOLINGS = ("mean", "cls")


class _Config:
    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Build from a saved dict; unknown keys are an error that names them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{cls.__name__} has no fields {unknown}")
        return cls(**d)

    def _check(self, positive=(), non_negative=()):
        name = type(self).__name__
        for field in positive:
            value = getattr(self, field)
            if int(value) != value or value < 1:
                raise ValueError(f"{name}.{field} must be a positive integer, got {value}")
        for field in non_negative:
            value = getattr(self, field)
            if int(value) != value or value < 0:
                raise ValueError(f"{name}.{field} must be a non-negative integer, got {value}")
        if self.n_embd % self.n_head:
            raise ValueError(f"{name}.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{name}.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"{name}.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.positional not in POSITIONALS:
            raise ValueError(f"{name}.positional must be one of {POSITIONALS}, got {self.positional!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"{name}.activation must be one of {ACTIVATIONS}, got {self.activation!r}")

    @property
    def hidden(self):
        """Feed-forward width: n_inner, or 4 * n_embd when n_inner is 0 (the paper's ratio, 2048 / 512)."""
        return self.n_inner or 4 * self.n_embd


@dataclass
class EncoderConfig(_Config):
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

    def __post_init__(self):
        self._check(positive=("vocab_size", "max_len", "n_layer", "n_head", "n_embd"),
                    non_negative=("n_inner", "pad_id", "position_shift"))
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
        if int(self.n_classes) != self.n_classes or self.n_classes < 2:
            raise ValueError(f"ClassifierConfig.n_classes must be an integer >= 2, got {self.n_classes}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"ClassifierConfig.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if not 0 <= self.cls_id < self.vocab_size or self.cls_id == self.pad_id:
            raise ValueError(f"ClassifierConfig.cls_id ({self.cls_id}) must be a non-padding id < vocab_size")


@dataclass
class Seq2SeqConfig(_Config):
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

    def __post_init__(self):
        self._check(positive=("src_vocab_size", "tgt_vocab_size", "max_src_len", "max_tgt_len",
                              "n_encoder_layer", "n_decoder_layer", "n_head", "n_embd"),
                    non_negative=("n_inner", "pad_id", "bos_id", "eos_id"))
        for field in ("pad_id", "bos_id", "eos_id"):
            if getattr(self, field) >= min(self.src_vocab_size, self.tgt_vocab_size):
                raise ValueError(f"Seq2SeqConfig.{field} ({getattr(self, field)}) must be < both vocabulary sizes")
        if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
            raise ValueError("Seq2SeqConfig.pad_id, bos_id and eos_id must be distinct")
