"""What every model shares: the flat parameter buffer, modes, the context of a forward, attention maps.

A model subclass declares its layers against `self.store`, calls `self._build()`, and implements
`forward(*batch) -> (output, loss)`, which starts with `ctx = self.context(...)` and passes ctx down
its layers, and `backward()`. That is the whole contract the Trainer needs; data-parallel training
also asks `counted_targets()`, which reads the subclass's `loss` (a CrossEntropy).

A model made with allocate=False declares its parameters and allocates nothing: `num_params()`
then says how large it would be, before memory for it is asked for.
"""
from contextlib import contextmanager

import numpy as np

from .context import Context
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
        # Training forwards that drew random numbers so far: with `seed`, it determines every dropout
        # mask and every position shift (nn/context.py).
        self.forward_count = 0
        # Which replica this is in data-parallel training: each rank draws masks of its own (0: as a
        # single process does).
        self.rank = 0
        self.loss = None  # the CrossEntropy whose mean is forward's loss

    def _build(self):
        """Allocate the flat buffers once every layer has declared its parameters."""
        self.draws = any(layer.draws for layer in self.modules())
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
        return self.loss.counted

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
        return {name: layer.attention_map() for name, layer in self.attention_layers()}

    def attention_layers(self):
        """(name, attention layer) pairs of the model, in order."""
        raise NotImplementedError

    def tokens_in(self, inputs):
        """The positions a batch of `inputs` (the forward's first argument) gives the model: what
        training's tok/s counts. Token ids (B, T): B T."""
        return int(inputs.size)

    # -- the context of a forward ----------------------------------------------------------------
    def context(self, **parts):
        """The context one forward passes down its layers (nn/context.py): the mode, and the seed
        and forward count every random draw derives from. A training forward of a model that draws
        (dropout or a position shift) advances the count; `parts` are the rest (key_mask, memory,
        cache, weights)."""
        if self.training and self.draws:
            self.forward_count += 1
        return Context(self.training, self.seed, self.forward_count, self.rank, **parts)
