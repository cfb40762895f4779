"""Argument checks at the places where users call in.

Kernels trust their arguments (checking inside a hot loop would cost every call), so the classes
that wrap them check once per call, here, and raise an error that names the argument and says
what was expected instead of letting a kernel compute garbage or crash.

Configurations (the model configs, TrainConfig) check their fields with `check_fields` and raise
ConfigError, which names the field, so the command line can name the flag instead.
"""
import math
import typing
from dataclasses import fields

import numpy as np


def check_array(name, a, dtype, shape):
    """Require a C-contiguous ndarray of `dtype` whose shape matches `shape`.

    `shape` is a tuple whose entries are ints or None (any size on that axis).
    """
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {a.dtype.name}")
    if a.ndim != len(shape) or any(want is not None and got != want for got, want in zip(a.shape, shape)):
        expected = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {expected}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; pass np.ascontiguousarray({name})")


def check_token_ids(name, ids, vocab_size, ignore_index=None):
    """Require a 2-D integer array (B, T) of token ids in [0, vocab_size).

    Returns the ids as a C-contiguous int64 array (a copy only when needed). `ignore_index`, when
    given, is also allowed (padding positions in targets).
    """
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype.name}")
    if ids.ndim != 2:
        raise ValueError(f"{name} must have shape (B, T), got {ids.shape}")
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {ids.shape}")
    valid = (ids >= 0) & (ids < vocab_size)
    if ignore_index is not None:
        valid |= ids == ignore_index
    if not valid.all():
        bad = np.unique(ids[~valid])[:10].tolist()
        raise ValueError(f"{name} has ids outside the vocabulary [0, {vocab_size}): {bad}")
    return np.ascontiguousarray(ids, dtype=np.int64)


def head_size(n_embd, n_head, owner="attention"):
    """hs = C / NH: the heads split the channels evenly, or the model cannot be built."""
    if n_embd % n_head:
        raise ConfigError(owner, "n_embd", f"must be divisible by n_head ({n_head})", n_embd)
    return n_embd // n_head


class ConfigError(ValueError):
    """A configuration value that is out of range: names the field and what it must be."""

    def __init__(self, owner, field, requirement, value):
        self.owner, self.field, self.requirement, self.value = owner, field, requirement, value
        super().__init__(f"{owner}.{field} {requirement}, got {value!r}")

    def naming(self, name):
        """The same message about `name` (a command-line flag, say) instead of owner.field."""
        return f"{name} {self.requirement}, got {self.value!r}"


def is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value):
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)) and math.isfinite(value))


def check_fields(config, at_least=None, choices=None):
    """Check a dataclass config field by field: every field has its annotated type (int, float:
    finite, bool, str); at_least maps fields to their lowest allowed value, choices to their
    allowed values. Raises ConfigError for the first field that is wrong."""
    owner = type(config).__name__
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        value, kind = getattr(config, f.name), hints[f.name]
        if (kind is int and not is_int(value)) or (kind is float and not is_number(value)):
            raise ConfigError(owner, f.name, "must be " + ("an integer" if kind is int else "a finite number"), value)
        if kind in (bool, str) and not isinstance(value, kind):
            raise ConfigError(owner, f.name, f"must be a {kind.__name__}", value)
    for name, low in (at_least or {}).items():
        if getattr(config, name) < low:
            raise ConfigError(owner, name, f"must be >= {low}", getattr(config, name))
    for name, allowed in (choices or {}).items():
        if getattr(config, name) not in allowed:
            raise ConfigError(owner, name, f"must be one of {sorted(allowed)}", getattr(config, name))


def check_range(config, name, low, high, high_open=True):
    """ConfigError unless low <= config.name < high (<= high with high_open=False)."""
    value = getattr(config, name)
    if not (low <= value < high if high_open else low <= value <= high):
        bracket = ")" if high_open else "]"
        raise ConfigError(type(config).__name__, name, f"must be in [{low}, {high}{bracket}", value)


def config_from_dict(cls, d):
    """cls(**d) for a dataclass config read from a file: anything but a dict of its fields is an
    error that names the problem."""
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__} must be built from a dict, got {type(d).__name__}")
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {unknown}")
    return cls(**d)
