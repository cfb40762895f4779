"""One flat buffer for every parameter of a model, and one for every gradient.

Layers declare their parameters (name, shape, whether weight decay applies, how to initialise);
`build()` then allocates one contiguous buffer and hands each parameter a view into it. An
optimizer step, gradient clipping and zero-grad are then each one kernel call over the whole
model, and the optimizer state (momentum, Adam's m and v, ...) is buffers of the same length.

Parameters with weight decay are placed first, so decay applies to `data[:n_decay]` and the
exempt ones (biases, layer-norm gains) follow: the exemption is just a length.
"""
import numpy as np

from .memory import aligned_zeros


class Parameter:
    """A named view into the flat buffers: `.data` holds the value, `.grad` its gradient."""

    def __init__(self, name, shape, decay, init):
        self.name = name
        self.shape = tuple(shape)
        self.decay = decay
        self.init = init  # init(rng, shape) -> array, or a constant
        self.data = None
        self.grad = None

    @property
    def size(self):
        return int(np.prod(self.shape))


def normal(std):
    return lambda rng, shape: rng.normal(0.0, std, size=shape)


def constant(value):
    return lambda rng, shape: np.full(shape, value)


class ParameterStore:
    def __init__(self):
        self.params = {}
        self.data = None
        self.grad = None
        self.n_decay = 0

    def add(self, name, shape, decay, init):
        if name in self.params:
            raise ValueError(f"parameter {name!r} declared twice")
        p = Parameter(name, shape, decay, init)
        self.params[name] = p
        return p

    def build(self, dtype, rng):
        """Allocate the buffers, give every parameter its views, and initialise in declaration order."""
        ordered = [p for p in self.params.values() if p.decay] + [p for p in self.params.values() if not p.decay]
        total = sum(p.size for p in ordered)
        self.data = aligned_zeros(total, dtype)
        self.grad = aligned_zeros(total, dtype)
        self.n_decay = sum(p.size for p in ordered if p.decay)
        offset = 0
        for p in ordered:
            p.data = self.data[offset:offset + p.size].reshape(p.shape)
            p.grad = self.grad[offset:offset + p.size].reshape(p.shape)
            offset += p.size
        for p in self.params.values():
            p.data[...] = p.init(rng, p.shape)

    def __len__(self):
        return self.data.size

    def state_dict(self):
        return {name: p.data.copy() for name, p in self.params.items()}

    def gradients(self):
        return {name: p.grad.copy() for name, p in self.params.items()}

    def load_state_dict(self, state):
        """Copy values in; refuse missing, unexpected or mis-shaped entries, naming them."""
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
        for name, p in self.params.items():
            p.data[...] = state[name]
