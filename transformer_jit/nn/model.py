"""What every model shares: the flat parameter buffer, modes, dropout seeds and attention maps.

A model subclass declares its layers against `self.store`, calls `self._build()`, and implements
`forward(*batch) -> (output, loss)` and `backward()`. That is the whole contract the Trainer needs;
data-parallel training also asks `counted_targets()`, which reads the subclass's `loss_layer`.

A model made with allocate=False declares its parameters and allocates nothing: `num_params()`
then says how large it would be, before memory for it is asked for.
"""
from contextlib import contextmanager

import numpy as np

from .layers import Layer
from .parameters import ParameterStore


class Model(Layer):
    def __init__(self, config, seed=0, dtype=np.float32, allocate=True):
        super().__init__()
        self.config = config
        self.allocate = allocate
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.store = ParameterStore()
        self.training = True
        # Random draws of training forwards so far (one for the dropout masks, one for the position
        # shift, each when in use): with `seed`, it determines every mask and every shift.
        self.forward_count = 0
        # Which replica this is in data-parallel training: each rank draws masks of its own (0: as a
        # single process does).
        self.rank = 0
        self.loss_layer = None  # the CrossEntropy whose mean is forward's loss

    def _build(self):
        """Allocate the flat buffers once every layer has declared its parameters."""
        if self.allocate:
            self.store.build(self.dtype, np.random.default_rng(self.seed))

    @classmethod
    def for_loading(cls, config, dtype=np.float32):
        """A model whose parameters are allocated but not initialised: for weights about to be
        copied in, which then need no random numbers drawn first."""
        model = cls(config, dtype=dtype, allocate=False)
        model.store.build(model.dtype, None)
        model.allocate = True
        return model

    # -- parameters -------------------------------------------------------------------------------
    @property
    def params(self):
        """All parameters, one flat buffer (decayed ones first, `n_decay` of them)."""
        return self.store.data

    @property
    def grads(self):
        return self.store.grad

    @property
    def n_decay(self):
        return self.store.n_decay

    def num_params(self):
        return sum(p.size for p in self.store.params.values())

    def state_dict(self):
        """Copies of the weights by name, PyTorch nn.Linear layout (out_features, in_features)."""
        return self.store.state_dict()

    def load_state_dict(self, state):
        self.store.load_state_dict(state)

    def gradients(self):
        return self.store.gradients()

    def zero_grad(self):
        self.store.grad.fill(0)

    def counted_targets(self):
        """How many targets the last forward's loss is the mean over (ignored and padding targets are
        not counted): the weight of that loss, and of its gradient, where batches are combined."""
        return self.loss_layer.counted

    # -- modes ------------------------------------------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout and position shifts drawn) or, with mode=False, evaluation."""
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    @contextmanager
    def evaluating(self):
        """`with model.evaluating():` dropout off inside, the caller's mode restored after."""
        was_training = self.training
        self.eval()
        try:
            yield self
        finally:
            self.train(was_training)

    def attention_maps(self, *inputs):
        """Attention probabilities of every attention layer for one forward of `inputs`, dropout
        off: {state-dict name of the layer: (B, NH, T, S) copy}; row t is query t, column s key s."""
        with self.evaluating():
            self.forward(*inputs)
        return {name: layer.probs.copy() for name, layer in self.attention_layers()}

    def attention_layers(self):
        """(name, attention layer) pairs of the model, in order."""
        raise NotImplementedError

    # -- random draws of a training forward ---------------------------------------------------------
    def _dropout_seeds(self, n):
        """n dropout seeds for one training forward, or n Nones when dropout is off (both
        config.dropout and config.attn_dropout are 0).

        The seeds come from (model seed, forward count), so a run, and a resumed run, draws the
        same masks; every training forward with dropout advances the count.
        """
        if not (self.training and (self.config.dropout > 0.0 or self.config.attn_dropout > 0.0)):
            return [None] * n
        self.forward_count += 1
        seeds = self._draw().generate_state(n, np.uint64)
        return [int(s) >> 1 for s in seeds]  # 63-bit: numba passes Python ints as int64

    def _first_position(self, position_shift):
        """Where a training forward's positions start: uniform in [0, position_shift], drawn like
        the dropout seeds from (model seed, forward count), so a resumed run draws the same; 0
        outside training."""
        if not (self.training and position_shift > 0):
            return 0
        self.forward_count += 1
        return int(np.random.default_rng(self._draw(1)).integers(position_shift + 1))

    def _draw(self, *stream):
        """The seed of one draw, from (model seed, forward count, stream). Ranks other than 0 take
        their own spawn key, so their masks differ, and rank 0 draws exactly what a single process draws."""
        return np.random.SeedSequence([self.seed, self.forward_count, *stream],
                                      spawn_key=(self.rank,) if self.rank else ())
