"""Tokenizers: text to token ids and back, and back again from the dict saved in a checkpoint.

    CharTokenizer    one token per distinct character of the training text (the GPT's)
    SeqTokenizer     characters plus three special tokens, PAD=0, BOS=1, EOS=2 (the encoder models')
    TokenizerPair    a seq2seq model's source and target tokenizers, saved together
    BPETokenizer     GPT-2's byte-level BPE (bpe.py), registered here as "bpe"
    tokenizer_from_dict(d)   whichever of these `to_dict()` wrote
"""
import numpy as np



class CharTokenizer:
    """One token per character; ids in the order the characters are given (sorted, from text)."""

    n_special = 0  # ids below this are special tokens, not characters

    def __init__(self, chars):
        chars = list(chars)
        if not chars:
            raise ValueError("a tokenizer needs at least one character")
        bad = [c for c in chars if not (isinstance(c, str) and len(c) == 1)]
        if bad:
            raise ValueError(f"tokenizer characters must be single-character strings, got {bad[:5]!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("tokenizer characters must be distinct")
        self.chars = chars
        self.stoi = {ch: i + self.n_special for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return self.n_special + len(self.chars)

    def _ids(self, text):
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            shown = "".join(unknown[:20]) + ("..." if len(unknown) > 20 else "")
            raise ValueError(f"characters not in the vocabulary: {shown!r} ({len(unknown)} of them)")
        return [self.stoi[ch] for ch in text]

    @property
    def dtype(self):
        """The smallest unsigned integer type that holds every id."""
        return np.uint8 if self.vocab_size <= 256 else np.uint16 if self.vocab_size <= 65536 else np.uint32

    def encode(self, text, chunk=1 << 20):
        """Token ids of `text` in `self.dtype`. Long texts go through in chunks of code points, so
        the memory is the ids plus one chunk, not a Python list of the whole text."""
        if not isinstance(text, str):
            raise TypeError(f"encode needs a str, got {type(text).__name__}")
        codes = np.array(sorted(ord(ch) for ch in self.stoi), dtype=np.uint32)
        ids = np.array([self.stoi[chr(c)] for c in codes], dtype=self.dtype)
        out = np.empty(len(text), dtype=self.dtype)
        for start in range(0, len(text), chunk):
            part = np.frombuffer(text[start:start + chunk].encode("utf-32-le"), dtype=np.uint32)
            at = np.minimum(np.searchsorted(codes, part), len(codes) - 1)
            unknown = codes[at] != part
            if unknown.any():
                self._ids(text[start:start + chunk])  # raises, naming the characters
            out[start:start + len(part)] = ids[at]
        return out

    def decode(self, ids):
        ids = np.asarray(ids).reshape(-1)
        if ids.size and ids.dtype.kind not in "iu":
            raise ValueError(f"token ids must be integers, got {ids.dtype}")
        outside = np.flatnonzero((ids < 0) | (ids >= self.vocab_size))
        if outside.size:
            at = int(outside[0])
            raise ValueError(f"token id {int(ids[at])} (at index {at}) is outside the vocabulary (size "
                             f"{self.vocab_size})")
        return "".join(self.chars[int(i)] for i in ids)

    def to_dict(self):
        return {"type": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d):
        return cls(_saved_chars(d, "char", "character tokenizer"))


class SeqTokenizer(CharTokenizer):
    """Character-level tokenizer with special tokens for sequence-to-sequence work.

    Ids 0, 1, 2 are PAD (filler after the end of a shorter sequence), BOS (start of a target; also
    used as the CLS token of a classifier) and EOS (end of a target); characters get ids from 3 on,
    in the order given.
    """

    PAD, BOS, EOS = 0, 1, 2
    SPECIALS = ("<pad>", "<bos>", "<eos>")
    n_special = len(SPECIALS)

    @classmethod
    def from_texts(cls, texts):
        """A tokenizer for every character that occurs in `texts`, in sorted order."""
        return cls(sorted(set().union(*map(set, texts))))

    def encode(self, text, bos=False, eos=False):
        if not isinstance(text, str):
            raise TypeError(f"encode needs a str, got {type(text).__name__}")
        return np.array([self.BOS] * bos + self._ids(text) + [self.EOS] * eos, dtype=np.int64)

    def decode(self, ids):
        """Text of `ids`: stops at the first EOS (what a model generates after it is noise) and
        skips PAD and BOS."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
            if i == self.EOS:
                break
            if i >= self.n_special:
                out.append(self.chars[i - self.n_special])
        return "".join(out)

    def to_dict(self):
        return {"type": "seq", "chars": "".join(self.chars), "specials": list(self.SPECIALS)}

    @classmethod
    def from_dict(cls, d):
        return cls(_saved_chars(d, "seq", "sequence tokenizer"))


class TokenizerPair:
    """The source and target tokenizers of a seq2seq model, saved together in its checkpoints."""

    def __init__(self, src, tgt):
        self.src, self.tgt = src, tgt

    def to_dict(self):
        return {"type": "pair", "src": self.src.to_dict(), "tgt": self.tgt.to_dict()}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or d.get("type") != "pair":
            raise ValueError(f"not a tokenizer pair: {_type_of(d)!r}")
        from . import tokenizer_from_dict  # either side may be characters or a BPE (seq_bpe.py)
        for side in ("src", "tgt"):
            if _type_of(d.get(side)) not in ("seq", "seq_bpe"):
                raise ValueError(f"not a sequence tokenizer: {_type_of(d.get(side))!r} ({side})")
        return cls(tokenizer_from_dict(d["src"]), tokenizer_from_dict(d["tgt"]))


def _saved_chars(d, kind, what):
    """The characters of a saved tokenizer dict of type `kind`: a non-empty string."""
    if not isinstance(d, dict) or d.get("type") != kind:
        raise ValueError(f"not a {what}: {_type_of(d)!r}")
    if not isinstance(d.get("chars"), str) or not d["chars"]:
        raise ValueError(f"a saved {what} needs 'chars', a non-empty string, got {d.get('chars')!r:.60}")
    return d["chars"]


def _type_of(d):
    return d.get("type") if isinstance(d, dict) else type(d).__name__
