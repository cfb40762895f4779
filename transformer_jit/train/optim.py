"""Optimizers over a model's flat parameter buffer: each step is one kernel call.

    opt = AdamW(model, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    model.zero_grad(); model.forward(x, y); model.backward(); opt.step()

`lr` is a plain attribute, so a schedule sets it before each step. State (step count and the
per-parameter buffers) round-trips through `state_dict()` / `load_state_dict()` for exact resume.
"""
import math

import numpy as np

from .. import kernels as K
from ..nn.memory import aligned_zeros
from ..nn.parameters import check_finite_floats
from ..util.config import is_number


class Optimizer:
    state_buffers = ()  # names of per-parameter state buffers, each as long as the parameters

    def __init__(self, model, lr):
        _check_hyperparameter("lr", lr, 0.0, math.inf)
        self.model = model
        self.lr = lr
        self.step_count = 0
        for name in self.state_buffers:
            setattr(self, name, aligned_zeros(model.params.shape, model.params.dtype))

    def step(self):
        self.step_count += 1
        self._update(self.model.params, self.model.grads)

    def state_dict(self):
        state = {name: getattr(self, name).copy() for name in self.state_buffers}
        state["step_count"] = np.array(self.step_count)
        return state

    def load_state_dict(self, state):
        expected = set(self.state_buffers) | {"step_count"}
        if set(state) != expected:
            raise ValueError(f"{type(self).__name__} state must have keys {sorted(expected)}, got {sorted(state)}")
        for name in self.state_buffers:
            buf = getattr(self, name)
            if state[name].shape != buf.shape:
                raise ValueError(f"optimizer state {name!r} has shape {state[name].shape}, expected {buf.shape}")
            check_finite_floats(f"optimizer state {name!r}", state[name])
        count = state["step_count"]
        if count.shape != () or count.dtype.kind not in "iu" or count < 0:
            raise ValueError(f"optimizer step_count must be one integer >= 0, got {count!r}")
        for name in self.state_buffers:
            getattr(self, name)[...] = state[name]
        self.step_count = int(count)


class SGD(Optimizer):
    """w <- w - lr g"""

    def _update(self, params, grads):
        K.sgd_step(params, grads, self.lr)


class Momentum(Optimizer):
    """v <- momentum v + lr g ;  w <- w - v"""

    state_buffers = ("velocity",)

    def __init__(self, model, lr, momentum=0.9):
        super().__init__(model, lr)
        self.momentum = _check_hyperparameter("momentum", momentum, 0.0, 1.0)

    def _update(self, params, grads):
        K.momentum_step(params, grads, self.velocity, self.lr, self.momentum)


class AdaGrad(Optimizer):
    """G <- G + g² ;  w <- w - lr g / (sqrt(G) + eps)"""

    state_buffers = ("sum_sq",)

    def __init__(self, model, lr, eps=1e-10):
        super().__init__(model, lr)
        self.eps = _check_hyperparameter("eps", eps, 0.0, math.inf)

    def _update(self, params, grads):
        K.adagrad_step(params, grads, self.sum_sq, self.lr, self.eps)


class RMSprop(Optimizer):
    """s <- alpha s + (1 - alpha) g² ;  w <- w - lr g / (sqrt(s) + eps)"""

    state_buffers = ("sq_avg",)

    def __init__(self, model, lr, alpha=0.99, eps=1e-8):
        super().__init__(model, lr)
        self.alpha = _check_hyperparameter("alpha", alpha, 0.0, 1.0)
        self.eps = _check_hyperparameter("eps", eps, 0.0, math.inf)

    def _update(self, params, grads):
        K.rmsprop_step(params, grads, self.sq_avg, self.lr, self.alpha, self.eps)


class Adam(Optimizer):
    """Adam with bias correction: m, v are running means of g and g², divided by (1 - beta^step)."""

    state_buffers = ("m", "v")

    def __init__(self, model, lr, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(model, lr)
        beta1, beta2 = betas
        self.beta1 = _check_hyperparameter("beta1", beta1, 0.0, 1.0)
        self.beta2 = _check_hyperparameter("beta2", beta2, 0.0, 1.0)
        self.eps = _check_hyperparameter("eps", eps, 0.0, math.inf)

    def _update(self, params, grads):
        K.adam_step(params, grads, self.m, self.v, self.lr, self.beta1, self.beta2, self.eps, self.step_count)


class AdamW(Adam):
    """Adam with decoupled weight decay w <- w - lr wd w, applied to matrices and embeddings only."""

    def __init__(self, model, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(model, lr, betas, eps)
        self.weight_decay = _check_hyperparameter("weight_decay", weight_decay, 0.0, math.inf)

    def _update(self, params, grads):
        K.adamw_step(params, grads, self.m, self.v, self.lr, self.beta1, self.beta2, self.eps,
                     self.weight_decay, self.step_count, self.model.n_decay)


def _check_hyperparameter(name, value, low, high):
    """value, if it is a finite number in [low, high); else a ValueError naming it."""
    if not (is_number(value) and low <= value < high):
        raise ValueError(f"{name} must be a finite number in [{low}, {high}), got {value!r}")
    return value


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": AdaGrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def make_optimizer(name, model, lr, weight_decay=0.0, betas=(0.9, 0.999)):
    """Build an optimizer by name with the options that apply to it."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose from {sorted(OPTIMIZERS)}") from None
    if cls is AdamW:
        return cls(model, lr, betas=betas, weight_decay=weight_decay)
    if cls is Adam:
        return cls(model, lr, betas=betas)
    return cls(model, lr)
