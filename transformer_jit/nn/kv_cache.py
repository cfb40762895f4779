"""The key/value cache of generation: every layer's keys and values for B sequences, W positions each.

Allocated once per generation, to the window it needs; a step writes one position per sequence
into it and allocates nothing. Sequences fill it independently: `lengths[b]` positions of
sequence b are valid, and the rest of its rows are stale.

    keys, values  (n_layer, B, NH, W, hs)   layer l, sequence b, head h: rows 0..lengths[b]-1
    probs         (n_layer, B, NH, W)       the last step's attention probabilities (attention maps)
    lengths       (B,) int64
"""
import numpy as np

from .memory import aligned_zeros


class KVCache:
    def __init__(self, n_layer, batch, n_head, window, head_size, dtype):
        self.n_head, self.head_size = n_head, head_size
        shape = (n_layer, batch, n_head, window, head_size)
        self.keys = aligned_zeros(shape, dtype)
        self.values = aligned_zeros(shape, dtype)
        self.probs = aligned_zeros(shape[:4], dtype)
        self.lengths = np.zeros(batch, dtype=np.int64)

    @property
    def window(self):
        return self.keys.shape[3]

    def store(self, layer, row, k, v):
        """Keys and values of positions 0..T-1 of sequence `row` from a forward over it: k, v (T, C)
        (views into the layer's fused qkv buffer), written as heads (NH, T, hs). A copy, no arithmetic."""
        T = k.shape[0]
        heads = (T, self.n_head, self.head_size)
        self.keys[layer, row, :, :T] = k.reshape(heads).transpose(1, 0, 2)
        self.values[layer, row, :, :T] = v.reshape(heads).transpose(1, 0, 2)
