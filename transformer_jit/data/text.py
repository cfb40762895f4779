"""Text in, (B, T) batches of token ids out."""
from pathlib import Path

import numpy as np


def load_text(path):
    """Read a UTF-8 text file, with errors that say what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def default_corpus():
    """The built-in corpus: the reference text of Python's own help() topics (about 450k
    characters of English prose and code), shipped with every Python installation, so training
    needs no download."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


class TextDataset:
    """Token ids split into train (first 90%) and validation (last 10%), sampled as random windows."""

    def __init__(self, tokens, block_size, val_fraction=0.1):
        tokens = np.asarray(tokens, dtype=np.int64)
        n_val = int(len(tokens) * val_fraction)
        self.splits = {"train": tokens[:len(tokens) - n_val], "val": tokens[len(tokens) - n_val:]}
        self.block_size = block_size
        for name, data in self.splits.items():
            if len(data) < block_size + 1:
                raise ValueError(f"the {name} split has {len(data)} tokens; it needs at least "
                                 f"block_size + 1 = {block_size + 1}. Use more text or a smaller block size.")

    def batch(self, split, batch_size, rng):
        """x, y of shape (batch_size, block_size); y is x shifted left by one token."""
        data = self.splits[split]
        starts = rng.integers(0, len(data) - self.block_size, size=batch_size)
        offsets = np.arange(self.block_size)
        x = data[starts[:, None] + offsets]
        y = data[starts[:, None] + offsets + 1]
        return x, y
