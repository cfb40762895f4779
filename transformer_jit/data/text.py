"""Text in, (B, T) batches of token ids out."""
from pathlib import Path

import numpy as np

from ..util.regular_file import read_regular_file


def load_text(path):
    """Read a UTF-8 text file, with errors that say what is wrong with it."""
    path = Path(path)
    raw = read_regular_file(path, "data file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def short(text, limit=60):
    """repr(text), cut to about `limit` characters: error messages quote inputs, not whole files."""
    text = str(text)
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"


def default_corpus():
    """The built-in corpus: the reference text of Python's own help() topics (about 450k
    characters of English prose and code), shipped with every Python installation, so training
    needs no download."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


class TextDataset:
    """Token ids split into train (first 90%) and validation (last 10%), sampled as random windows.
    The ids keep their integer type (uint8 or uint16 from a tokenizer, or memory-mapped token
    files): only a batch is made int64, so memory is the ids, not eight bytes each."""

    def __init__(self, tokens, block_size, val_fraction=0.1):
        tokens = _check_ids("tokens", tokens)
        n_val = int(len(tokens) * val_fraction)
        self._set_splits({"train": tokens[:len(tokens) - n_val], "val": tokens[len(tokens) - n_val:]}, block_size)

    @classmethod
    def from_splits(cls, train, val, block_size):
        """A dataset of two token sequences given apart: arrays, or token files (train.bin, val.bin),
        anything with len() and windows(starts, length)."""
        dataset = cls.__new__(cls)
        dataset._set_splits({"train": train, "val": val}, block_size)
        return dataset

    def _set_splits(self, splits, block_size):
        self.splits, self.block_size = splits, block_size
        for name, data in splits.items():
            if len(data) < block_size + 1:
                raise ValueError(f"the {name} split has {len(data):,} tokens; it needs at least "
                                 f"block_size + 1 = {block_size + 1}. Use more text or a smaller block size.")

    def batch(self, split, batch_size, rng):
        """x, y of shape (batch_size, block_size); y is x shifted left by one token."""
        data = self.splits[split]
        starts = rng.integers(0, len(data) - self.block_size, size=batch_size)
        if isinstance(data, np.ndarray):
            windows = data[starts[:, None] + np.arange(self.block_size + 1)]
        else:
            windows = data.windows(starts, self.block_size + 1)
        windows = windows.astype(np.int64)
        return np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, 1:])


def _check_ids(name, tokens):
    tokens = tokens if isinstance(tokens, np.ndarray) else np.asarray(tokens)
    if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-D array of integer ids, got {tokens.dtype.name} {tokens.shape}")
    return tokens
