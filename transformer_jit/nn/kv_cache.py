"""The key/value cache of generation: every attention layer's keys and values for B sequences of up
to W positions each.

A forward with a cache (nn/context.py) covers the positions after those the cache holds: each
self-attention layer writes its new keys and values there and attends over the cache, and the
stack then advances `lengths`. Sequences fill it independently: `lengths[b]` positions of
sequence b are valid, the rest of its rows are stale.

    keys, values  (B, NH, W, hs) per attention layer, allocated by its first forward
    lengths       (B,) int64

A layer with an attention window of w positions gets min(W, w) rows: a ring where position s
lives in row s % rows (kernels.kv_attention_forward), so that its memory stays that of w
positions however long the text; `lengths` still count positions up to W.

`rows(b)` is sequence b alone, sharing the storage: a prompt is run through the model one
sequence at a time, each filling its own rows. `rows(0, n)` is the first n sequences, for a step
over only the rows a server has in use.
"""
import copy

import numpy as np

from .memory import aligned_zeros


class KVCache:
    def __init__(self, batch, window, dtype):
        self.batch, self.window, self.dtype = batch, window, np.dtype(dtype)
        self.lengths = np.zeros(batch, dtype=np.int64)
        self._tensors = {}       # attention layer -> (keys, values) of every sequence
        self._rows = slice(None)  # the sequences this view covers

    def rows(self, start, stop=None):
        """Sequences start..stop-1 (start alone by default): a view of this cache, whose writes land
        in this cache's storage."""
        stop = start + 1 if stop is None else stop
        view = copy.copy(self)  # shares _tensors, and so the storage allocated later
        view._rows = slice(start, stop)
        view.lengths = self.lengths[start:stop]
        return view

    def layer(self, attention):
        """(keys, values), each (B, NH, W, hs), of one attention layer; zeros at its first use."""
        tensors = self._tensors.get(attention)
        if tensors is None:
            rows = min(self.window, attention.window) if attention.window else self.window
            shape = (self.batch, attention.n_head, rows, attention.n_embd // attention.n_head)
            tensors = self._tensors[attention] = (aligned_zeros(shape, self.dtype), aligned_zeros(shape, self.dtype))
        return tensors[0][self._rows], tensors[1][self._rows]

    def store(self, attention, k, v):
        """The keys and values of positions 0..T-1 from a forward over them: k, v (B, T, C), views
        into the layer's fused qkv buffer, written as heads (B, NH, T, hs). A copy, no arithmetic.
        A ring of fewer rows than T keeps the last positions, position s in row s % rows."""
        keys, values = self.layer(attention)
        B, T, C = k.shape
        rows = keys.shape[2]
        first = max(0, T - rows)
        where = slice(0, T) if first == 0 else np.arange(first, T) % rows
        heads = (B, T - first, attention.n_head, C // attention.n_head)
        keys[:, :, where] = k[:, first:].reshape(heads).transpose(0, 2, 1, 3)
        values[:, :, where] = v[:, first:].reshape(heads).transpose(0, 2, 1, 3)
