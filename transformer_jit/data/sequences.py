"""Data for models that read whole sequences: (source, target) pairs and (text, label) examples.

    pad_batch           list of id sequences -> (B, L) array padded with PAD
    in_batches          a list in slices of batch_size, under a progress bar (inference over many texts)
    PairDataset         (source, target) text pairs  -> batches (src, tgt_in, tgt_out)
    LabelledDataset     (text, label) examples       -> batches (ids, labels)

Every example is encoded once, at construction, into one PAD-filled matrix per split, so a batch
is a single fancy-index copy: pick rows, keep the columns up to the longest picked sequence.
"""
import numpy as np
from tqdm.auto import tqdm

from .tokenizers import SeqTokenizer


def pad_batch(seqs, max_len=None, min_len=0):
    """Stack 1-D id sequences into ids (B, L) int64, L = the longest (at least min_len), padded on
    the right with PAD."""
    seqs = [np.asarray(s, dtype=np.int64) for s in seqs]
    if not seqs:
        raise ValueError("pad_batch needs at least one sequence")
    for i, s in enumerate(seqs):
        if s.ndim != 1:
            raise ValueError(f"sequence {i} has shape {s.shape}; expected a 1-D sequence of ids")
        if max_len is not None and len(s) > max_len:
            raise ValueError(f"sequence {i} has length {len(s)}, more than max_len={max_len}")
    lengths = np.array([len(s) for s in seqs])
    ids = np.full((len(seqs), max(lengths.max(), min_len)), SeqTokenizer.PAD, dtype=np.int64)
    # One vectorised copy: the mask is True exactly where a sequence has a token, and boolean
    # assignment fills those cells in row-major order, which is the order of the concatenation.
    ids[np.arange(ids.shape[1]) < lengths[:, None]] = np.concatenate(seqs)
    return ids


def in_batches(items, batch_size, desc, progress):
    """items in slices of batch_size, under a tqdm bar named `desc` when `progress` (disable=None:
    shown on a terminal, quiet when output is redirected)."""
    starts = range(0, len(items), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", leave=False, disable=None if progress else True):
        yield items[start:start + batch_size]


# -- shared by both datasets -------------------------------------------------------------------
def _n_train(n, val_fraction):
    """How many leading examples are "train"; the rest are "val"."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = round(n * val_fraction)
    if val_fraction > 0:
        n_val = max(n_val, 1)  # asking for a validation split should never silently give none
    if n - n_val < 1:
        raise ValueError(f"{n} examples leave none for training with val_fraction={val_fraction}")
    return n - n_val


class _Split:
    """One split, pre-encoded: sequences padded to the split's longest, and each one's length."""

    def __init__(self, seqs):
        self.ids = pad_batch(seqs) if seqs else np.zeros((0, 0), dtype=np.int64)
        self.lengths = np.array([len(s) for s in seqs], dtype=np.int64)

    def take(self, idx):
        # (B, L) with L the longest chosen sequence; the copy is contiguous, as kernels want
        return self.ids[idx, :self.lengths[idx].max()]


def _sample(n, split, batch_size, rng):
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n == 0:
        raise ValueError(f"the {split!r} split is empty (val_fraction=0?)")
    return rng.integers(0, n, size=int(batch_size))  # uniform, with replacement


def _check_split(split, splits):
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; choose from {sorted(splits)}")


class PairDataset:
    """(source text, target text) pairs for an encoder-decoder model.

    A batch is (src (B, S), tgt_in (B, T), tgt_out (B, T)), all int64 and padded with PAD:
        src     = the source characters
        tgt_in  = [BOS] + target      what the decoder reads (teacher forcing)
        tgt_out = target + [EOS]      what it must predict at each position
    S and T are the longest in the batch. The decoder sees len(target) + 1 positions, so
    `max_tgt_len` bounds that number (target characters + 1) and `max_src_len` bounds the source
    characters: size the model's positions by them and every example fits. PAD positions of
    tgt_out are not targets: a loss must leave them out.

    The last `val_fraction` of the pairs (in the given order) is the "val" split, the rest "train".
    """

    def __init__(self, pairs, src_tok, tgt_tok, max_src_len, max_tgt_len, val_fraction=0.1):
        pairs = [tuple(p) for p in pairs]
        if not pairs:
            raise ValueError("PairDataset needs at least one pair")
        self.src_tok, self.tgt_tok = src_tok, tgt_tok
        self.max_src_len, self.max_tgt_len = int(max_src_len), int(max_tgt_len)
        src, tgt_in, tgt_out = [], [], []
        for i, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(f"pair {i} has {len(pair)} items; expected (source, target)")
            s, t = pair
            try:
                s_ids, t_ids = src_tok.encode(s), tgt_tok.encode(t)
            except ValueError as e:
                raise ValueError(f"pair {i} ({s!r} -> {t!r}): {e}") from None
            if not 1 <= len(s_ids) <= self.max_src_len:
                raise ValueError(f"pair {i} ({s!r} -> {t!r}): the source has {len(s_ids)} tokens; "
                                 f"it needs 1 to max_src_len={self.max_src_len}")
            if len(t_ids) + 1 > self.max_tgt_len:
                raise ValueError(f"pair {i} ({s!r} -> {t!r}): the target has {len(t_ids)} tokens, so the "
                                 f"decoder sees {len(t_ids) + 1} with BOS/EOS, more than max_tgt_len={self.max_tgt_len}")
            src.append(s_ids)
            tgt_in.append(np.concatenate([[SeqTokenizer.BOS], t_ids]))
            tgt_out.append(np.concatenate([t_ids, [SeqTokenizer.EOS]]))
        cut = _n_train(len(pairs), val_fraction)
        self._pairs = {"train": pairs[:cut], "val": pairs[cut:]}
        self._data = {name: tuple(_Split(seqs[part]) for seqs in (src, tgt_in, tgt_out))
                      for name, part in (("train", slice(None, cut)), ("val", slice(cut, None)))}

    def batch(self, split, batch_size, rng):
        """(src (B, S), tgt_in (B, T), tgt_out (B, T)) int64 for batch_size pairs drawn with `rng`."""
        _check_split(split, self._data)
        src, tgt_in, tgt_out = self._data[split]
        idx = _sample(len(src.lengths), split, batch_size, rng)
        # tgt_in and tgt_out have equal lengths row by row, so they slice to the same T
        return src.take(idx), tgt_in.take(idx), tgt_out.take(idx)

    def examples(self, split):
        """The (source, target) texts of a split, in order: for evaluation."""
        _check_split(split, self._pairs)
        return list(self._pairs[split])

    def __len__(self):
        return sum(len(p) for p in self._pairs.values())


class LabelledDataset:
    """(text, label) examples for a sequence classifier.

    A batch is (ids (B, L), labels (B,)), int64, ids padded with PAD to the longest in the batch.
    Labels are integers 0 .. num_classes - 1 (num_classes = 1 + the largest label).

    cls=True puts a classification token in front of every text; the tokenizer's BOS id serves
    as that CLS token (it never occurs inside a text, so the model can tell it apart), and a
    classifier reads its output at position 0. `max_len` bounds the ids the model sees, CLS
    included.

    The last `val_fraction` of the examples (in the given order) is "val", the rest "train".
    """

    def __init__(self, examples, tok, max_len, val_fraction=0.1, cls=False):
        examples = [tuple(e) for e in examples]
        if not examples:
            raise ValueError("LabelledDataset needs at least one example")
        self.tok, self.max_len, self.cls = tok, int(max_len), bool(cls)
        seqs, labels = [], []
        for i, example in enumerate(examples):
            if len(example) != 2:
                raise ValueError(f"example {i} has {len(example)} items; expected (text, label)")
            text, label = example
            if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
                raise ValueError(f"example {i} ({text!r}): label must be an integer >= 0, got {label!r}")
            try:
                ids = tok.encode(text, bos=self.cls)
            except ValueError as e:
                raise ValueError(f"example {i} ({text!r}): {e}") from None
            if not 1 <= len(ids) <= self.max_len:
                raise ValueError(f"example {i} ({text!r}): {len(ids)} tokens"
                                 f"{' with CLS' if self.cls else ''}; it needs 1 to max_len={self.max_len}")
            seqs.append(ids)
            labels.append(int(label))
        self.num_classes = max(labels) + 1
        cut = _n_train(len(examples), val_fraction)
        self._examples = {"train": examples[:cut], "val": examples[cut:]}
        labels = np.array(labels, dtype=np.int64)
        self._data = {"train": (_Split(seqs[:cut]), labels[:cut]), "val": (_Split(seqs[cut:]), labels[cut:])}

    def batch(self, split, batch_size, rng):
        """(ids (B, L), labels (B,)) int64 for batch_size examples drawn with `rng`."""
        _check_split(split, self._data)
        ids, labels = self._data[split]
        idx = _sample(len(labels), split, batch_size, rng)
        return ids.take(idx), labels[idx]

    def examples(self, split):
        """The (text, label) examples of a split, in order: for evaluation."""
        _check_split(split, self._examples)
        return list(self._examples[split])

    def __len__(self):
        return sum(len(e) for e in self._examples.values())
