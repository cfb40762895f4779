"""Argument checks at the places where users call in.

Kernels trust their arguments (checking inside a hot loop would cost every call), so the classes
that wrap them check once per call, here, and raise an error that names the argument and says
what was expected instead of letting a kernel compute garbage or crash.

Configuration checks (ConfigError, check_fields, ...) live in transformer_jit.util.config.
"""
import numpy as np

from ..util.config import ConfigError


def check_rows(name, a, dtype, width):
    """Require a C-contiguous ndarray (N, width) of `dtype`: rows as a layer's kernels read them.
    (Called on every forward of a linear or layer-norm layer, so it does no more than that.)"""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {a.dtype.name}")
    if a.ndim != 2 or a.shape[1] != width:
        raise ValueError(f"{name} must have shape (*, {width}), got {a.shape}")
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


def check_labels(labels, batch_size, n_classes):
    """Require class labels (B,) integers in [0, n_classes); returns them C-contiguous int64."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.shape != (batch_size,):
        raise ValueError(f"labels must be integers of shape ({batch_size},), got {labels.dtype.name} {labels.shape}")
    if ((labels < 0) | (labels >= n_classes)).any():
        raise ValueError(f"labels must be in [0, {n_classes}), got {np.unique(labels).tolist()[:10]}")
    return np.ascontiguousarray(labels, dtype=np.int64)


def head_size(n_embd, n_head, owner="attention"):
    """hs = C / NH: the heads split the channels evenly, or the model cannot be built."""
    if n_embd % n_head:
        raise ConfigError(owner, "n_embd", f"must be divisible by n_head ({n_head})", n_embd)
    return n_embd // n_head
