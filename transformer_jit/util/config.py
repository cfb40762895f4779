"""Configuration checks, shared by every layer: the model configs, TrainConfig, decoding options.

A configuration checks its fields with `check_fields` (types, lowest values, choices) and
`check_range`, and raises ConfigError, which names the field, so the command line can name the
flag instead. `config_from_dict` rebuilds a config read from a file (a checkpoint's JSON).
"""
import math
import typing
from dataclasses import fields

import numpy as np


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


def is_per_channel(value, channels, positive=False):
    """Whether `value` is a list of `channels` finite numbers, each > 0 if `positive`: an image
    normalisation's mean or std. per_channel_wanted says what it should have been."""
    return (isinstance(value, list) and len(value) == channels and all(map(is_number, value))
            and (not positive or min(value) > 0))


def per_channel_wanted(channels, positive=False):
    return f"{channels} finite numbers (one per channel){', each > 0' if positive else ''}"


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
