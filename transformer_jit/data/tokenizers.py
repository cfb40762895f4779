"""Character-level tokenizer: one token per distinct character of the training text."""
import numpy as np


class CharTokenizer:
    def __init__(self, chars):
        chars = list(chars)
        if not chars:
            raise ValueError("a tokenizer needs at least one character")
        if len(set(chars)) != len(chars):
            raise ValueError("tokenizer characters must be distinct")
        self.chars = chars
        self.stoi = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {''.join(unknown)!r} ({len(unknown)} of them)")
        return np.array([self.stoi[ch] for ch in text], dtype=np.int64)

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in ids)

    def to_dict(self):
        return {"type": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d):
        if d.get("type") != "char":
            raise ValueError(f"not a character tokenizer: {d.get('type')!r}")
        return cls(d["chars"])
