"""A byte-level BPE for the encoder models: their special tokens first, then the BPE's tokens.

The classifier and the seq2seq model read ids as SeqTokenizer numbers them, PAD 0, BOS 1 and
EOS 2 (models/configs.py), so each BPE token id i is i + 3 here. A BPE's own special tokens'
texts (<|endoftext|>) are plain text in the user's examples.
"""
import numpy as np

from .bpe import BPETokenizer
from .chars import SeqTokenizer


class SeqBPETokenizer:
    PAD, BOS, EOS = SeqTokenizer.PAD, SeqTokenizer.BOS, SeqTokenizer.EOS
    n_special = SeqTokenizer.n_special

    def __init__(self, bpe):
        self.bpe = bpe

    @classmethod
    def train(cls, texts, vocab_size):
        """A BPE of vocab_size tokens (its <|endoftext|> included) learned from the texts, one a line."""
        return cls(BPETokenizer.train("\n".join(texts), vocab_size))

    @property
    def vocab_size(self):
        return self.n_special + self.bpe.vocab_size

    def encode(self, text, bos=False, eos=False):
        ids = self.bpe.encode_ordinary(text).astype(np.int64) + self.n_special
        return np.concatenate([[self.BOS] * bos, ids, [self.EOS] * eos]).astype(np.int64)

    def decode(self, ids):
        """Text of `ids`, up to the first EOS, without PAD and BOS."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        ends = np.flatnonzero(ids == self.EOS)
        ids = ids[:ends[0]] if ends.size else ids
        return self.bpe.decode(ids[ids >= self.n_special] - self.n_special)

    def to_dict(self):
        return {"type": "seq_bpe", "bpe": self.bpe.to_dict()}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or d.get("type") != "seq_bpe":
            raise ValueError(f"not a sequence BPE tokenizer: {d.get('type') if isinstance(d, dict) else d!r:.40}")
        return cls(BPETokenizer.from_dict(d.get("bpe")))
