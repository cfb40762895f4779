"""One flat buffer for every parameter of a model, and one for every gradient.

Layers declare their parameters (name, shape, whether weight decay applies, how to initialise);
`build()` then allocates one contiguous buffer and hands each parameter a view into it. An
optimizer step, gradient clipping and zero-grad are then each one kernel call over the whole
model, and the optimizer state (momentum, Adam's m and v, ...) is buffers of the same length.

Parameters with weight decay are placed first, so decay applies to `data[:n_decay]` and the
exempt ones (biases, layer-norm gains) follow: the exemption is just a length.

The gradient buffer is allocated on first use, so a model that only runs forward (generation
from pretrained weights) holds its weights once, not twice.
"""
import numpy as np

from .memory import aligned_zeros


class Parameter:
    """A named view into the flat buffers: `.data` holds the value, `.grad` its gradient."""

    def __init__(self, store, name, shape, decay, init):
        self.store = store
        self.name = name
        self.shape = tuple(shape)
        self.decay = decay
        self.init = init  # init(rng, shape) -> array, or a constant
        self.data = None
        self.offset = None  # where the parameter starts in the flat buffers
        self._grad = None

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def grad(self):
        if self._grad is None:
            self._grad = self.store.grad[self.offset:self.offset + self.size].reshape(self.shape)
        return self._grad


def normal(std):
    return lambda rng, shape: rng.normal(0.0, std, size=shape)


def constant(value):
    return lambda rng, shape: np.full(shape, value)


class ParameterStore:
    def __init__(self):
        self.params = {}
        self.data = None
        self._grad = None
        self.n_decay = 0

    def add(self, name, shape, decay, init):
        if name in self.params:
            raise ValueError(f"parameter {name!r} declared twice")
        p = Parameter(self, name, shape, decay, init)
        self.params[name] = p
        return p

    def build(self, dtype, rng):
        """Allocate the parameter buffer, give every parameter its view, and initialise them in
        declaration order; with rng None, leave them zero (for weights about to be loaded)."""
        ordered = [p for p in self.params.values() if p.decay] + [p for p in self.params.values() if not p.decay]
        total = sum(p.size for p in ordered)
        self.data = aligned_zeros(total, dtype)
        self.n_decay = sum(p.size for p in ordered if p.decay)
        offset = 0
        for p in ordered:
            p.data = self.data[offset:offset + p.size].reshape(p.shape)
            p.offset = offset
            offset += p.size
        if rng is not None:
            for p in self.params.values():
                p.data[...] = p.init(rng, p.shape)

    @property
    def grad(self):
        """The flat gradient buffer, laid out like `data`; zeros when first asked for."""
        if self._grad is None:
            self._grad = aligned_zeros(self.data.shape, self.data.dtype)
        return self._grad

    def __len__(self):
        return self.data.size

    def state_dict(self):
        return {name: p.data.copy() for name, p in self.params.items()}

    def gradients(self):
        return {name: p.grad.copy() for name, p in self.params.items()}

    def load_state_dict(self, state):
        """Copy values in; refuse missing, unexpected, mis-shaped, non-float or non-finite entries,
        naming them."""
        missing = sorted(set(self.params) - set(state))
        unexpected = sorted(set(state) - set(self.params))
        wrong = sorted(
            f"{k}: expected {self.params[k].shape}, got {tuple(np.shape(state[k]))}"
            for k in set(state) & set(self.params)
            if tuple(np.shape(state[k])) != self.params[k].shape
        )
        problems = []
        if missing:
            problems.append(f"missing keys {missing}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if wrong:
            problems.append(f"mis-shaped entries {wrong}")
        if problems:
            raise ValueError("load_state_dict: " + "; ".join(problems))
        for name in self.params:
            check_finite_floats(name, state[name])
        for name, p in self.params.items():
            p.data[...] = state[name]


def check_finite_floats(name, values):
    """Loaded values must be floating point (integers would be truncated weights) and finite."""
    values = np.asarray(values)
    if values.dtype.kind != "f":
        raise ValueError(f"{name} holds {values.dtype.name} values; weights must be floating point")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds {np.size(values) - np.isfinite(values).sum()} non-finite values (NaN or inf)")
