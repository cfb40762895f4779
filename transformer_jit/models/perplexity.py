"""Perplexity of a language model on a text longer than its context: the context slides over it.

The recipe is Hugging Face's ("Perplexity of fixed-length models"): a window of up to block_size
tokens starts every `stride` tokens, and scores only the tokens after the end of the window before
it, each predicted from the tokens before it in its window. So every token is scored once, with at
least block_size - stride tokens of context (all that precede it, near the start). The text's first
token has nothing to be predicted from and is not scored; nor, with stride = block_size (disjoint
windows), is the first token of each window.

    loss            mean negative log-likelihood of the scored tokens (nats per token)
    perplexity      exp(loss)
    bits per byte   their total negative log-likelihood in bits over the UTF-8 bytes they stand for:
                    unlike perplexity, comparable between models with different tokenizers
"""
import math
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .generation import WEIGHTS, rounded_weights
from .gpt import IGNORE_INDEX


@dataclass
class Perplexity:
    nll: float        # total negative log-likelihood of the scored tokens, in nats
    tokens: int       # how many tokens were scored
    bytes: int = None  # the UTF-8 bytes those tokens decode to (None: not known)

    @property
    def loss(self):
        return self.nll / self.tokens

    @property
    def perplexity(self):
        return math.exp(self.loss)

    @property
    def bits_per_byte(self):
        return None if not self.bytes else self.nll / math.log(2) / self.bytes


def sliding_windows(n_tokens, block_size, stride):
    """[(begin, end, first)]: the window ids[begin:end] scores the tokens ids[first:end]."""
    windows, previous_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + block_size, n_tokens)
        windows.append((begin, end, max(previous_end, begin + 1)))
        previous_end = end
        if end == n_tokens:
            break
    return windows


def token_byte_lengths(tokenizer):
    """(vocab_size,) int64: how many UTF-8 bytes each token id stands for."""
    if hasattr(tokenizer, "token_bytes"):  # byte-level BPE: every token is a byte string
        return np.array([len(tokenizer.token_bytes(i)) for i in range(tokenizer.vocab_size)], dtype=np.int64)
    return np.array([len(ch.encode("utf-8")) for ch in tokenizer.chars], dtype=np.int64)


def evaluate_perplexity(model, ids, stride=None, batch_size=4, byte_lengths=None, progress=False, weights=None):
    """Score the token ids `ids` (1-D, any integer array, a memory map too) with `model` (a GPT),
    windows of block_size tokens sliding by `stride` (default: half a window), `batch_size` windows
    per forward, with dropout off. byte_lengths: token_byte_lengths(tokenizer), for bits per byte.
    progress: a bar over the windows on a terminal. weights: None, or "bfloat16" or "int8": score
    with the matrices rounded as generate(..., weights=...) rounds them. Returns a Perplexity."""
    block_size, vocab_size = model.config.block_size, model.config.vocab_size
    stride = max(1, block_size // 2) if stride is None else stride
    if not 1 <= stride <= block_size:
        raise ValueError(f"stride must be between 1 and the model's block_size ({block_size}), got {stride}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ids = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be a 1-D array of integer token ids, got {ids.dtype.name} {ids.shape}")
    if len(ids) < 2:
        raise ValueError(f"the text has {len(ids)} token(s): perplexity needs at least 2")
    if ids.max() >= vocab_size:
        raise ValueError(f"the text holds token id {int(ids.max())}, outside the model's vocabulary of {vocab_size}")
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    windows = sliding_windows(len(ids), block_size, stride)
    result = Perplexity(0.0, 0, 0 if byte_lengths is not None else None)
    copies = rounded_weights(model, weights)
    with model.evaluating(), tqdm(total=len(windows), desc="evaluating", unit="window", dynamic_ncols=True,
                                  disable=None if progress else True) as bar:
        for group in _same_length_groups(windows, batch_size):
            length = group[0][1] - group[0][0]
            x = np.empty((len(group), length), dtype=np.int64)
            targets = np.full((len(group), length), IGNORE_INDEX, dtype=np.int64)
            counted = 0
            for row, (begin, end, first) in enumerate(group):
                x[row] = ids[begin:end]
                # position t predicts token begin + t + 1: the scored ones are first .. end - 1
                targets[row, first - begin - 1:end - begin - 1] = ids[first:end]
                counted += end - first
                if byte_lengths is not None:
                    result.bytes += int(byte_lengths[ids[first:end]].sum())
            _, loss = model.forward(x, targets, weights=copies)
            result.nll += loss * counted  # the forward's mean over the scored tokens, back to their sum
            result.tokens += counted
            bar.update(len(group))
    return result


def _same_length_groups(windows, batch_size):
    """Runs of up to batch_size consecutive windows of one length (only the last may be shorter)."""
    group = []
    for window in windows:
        if group and (len(group) == batch_size or window[1] - window[0] != group[0][1] - group[0][0]):
            yield group
            group = []
        group.append(window)
    yield group
