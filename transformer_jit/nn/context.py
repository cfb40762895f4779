"""What one forward call carries down to every layer: its context.

A model makes one context per forward and passes it to each layer's forward, which reads what
concerns it and nothing else:

    training      dropout and position shifts are drawn only in training
    dropout_seed  where each dropout site gets its randomness (below)
    key_mask      None or bool (B, T): the keys self-attention may attend (False at padding)
    memory        None or the Memory (an encoder's output) that cross-attention attends over
    cache         None or a KVCache: generation. The forward covers the positions after those the
                  cache holds; attention appends their keys and values and attends over the cache
    weights       None or {layer: narrower copy of its matrix}, read instead of the parameter by
                  the matrix-vector products of generation; a copy that is a matrix of the
                  parameter's dtype (rounded values, for evaluation) serves every product, and
                  a RoundedInt8 does too, its products rounding their inputs as int8's do

Randomness without counting. Every random draw of a forward comes from
    SeedSequence([model seed, forward count, *site])
where `site` is a key the drawing layer fixes at construction (the bytes of its name), and the
model advances the count once per training forward. Adding or removing a dropout site therefore
changes no other site's masks, a resumed run (which restores the count) draws what the
uninterrupted run drew, and a data-parallel rank r > 0 draws its own stream (spawn key (r,)) while
rank 0 draws what a single process draws.
"""
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

# The key of the position shift's draw (nn/layers.py PositionalEncoding): the stream it has always
# used, so that a run with a shift and no dropout resumes across versions.
SHIFT_SITE = (1,)


def site_key(name):
    """The key a random layer named `name` draws with: its name's bytes, fixed at construction."""
    return tuple(name.encode("utf-8"))


class Memory:
    """An encoder's output as the decoder's cross-attention layers read it.

    values (B, S, C); mask bool (B, S), True at real source tokens; grad None, or (B, S, C) that
    the cross-attention layers' backward passes add dL/d(values) into (the model zeroes it).
    """

    def __init__(self, values, mask):
        self.values, self.mask, self.grad = values, mask, None


class RoundedInt8(NamedTuple):
    """The values an int8 copy of a matrix stands for (W~, in the parameter's dtype), for products
    of many rows: they round their input rows as generation's int8 products do
    (kernels.round_to_int8), and so compute what those compute, up to the order of sums."""
    values: np.ndarray


@dataclass
class Context:
    training: bool = False
    seed: int = 0        # the model's seed
    count: int = 0       # the model's forward count
    rank: int = 0        # data-parallel rank
    key_mask: np.ndarray = None
    memory: Memory = None
    cache: object = None
    weights: dict = None

    def replace(self, **changes):
        """A copy with some parts changed (the decoder of an encoder-decoder: its own mask, the memory)."""
        return replace(self, **changes)

    def dropout_seed(self, site):
        """The seed of dropout site `site` (its key) for this forward, an int in [0, 2^63): what
        the dropout kernels take; None outside training."""
        if not self.training:
            return None
        return int(self._sequence(site).generate_state(1, np.uint64)[0]) >> 1  # numba passes ints as int64

    def first_position(self, shift):
        """Where a training forward's positions start: uniform in [0, shift]; 0 outside training."""
        if not self.training or shift == 0:
            return 0
        return int(np.random.default_rng(self._sequence(SHIFT_SITE)).integers(shift + 1))

    def weight(self, layer):
        """The matrix `layer`'s few-row products read: a narrower copy while generating, if one was
        made, else its parameter."""
        if self.weights is not None and layer in self.weights:
            return self.weights[layer]
        return layer.weight.data

    def dense_weight(self, layer):
        """The matrix `layer`'s products of many rows read: its copy if that is a matrix of the
        parameter's dtype, else the parameter (a bfloat16 or int8 copy serves few rows only)."""
        copy = self.weight(layer)
        if isinstance(copy, RoundedInt8):
            return copy.values
        return copy if isinstance(copy, np.ndarray) and copy.dtype == layer.weight.data.dtype else layer.weight.data

    def _sequence(self, site):
        return np.random.SeedSequence([self.seed, self.count, *site], spawn_key=(self.rank,) if self.rank else ())
