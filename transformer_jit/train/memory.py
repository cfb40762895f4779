"""How much memory a training run will need, estimated before any of it is allocated.

    parameters, gradients and optimizer state   4 bytes x parameters x (2 + optimizer buffers)
    activations                                 4 bytes x tokens per step x floats kept per token

Each model says what its activations take (`activation_floats(batch_size)`, with the formula of
a transformer stack in nn/stack.py), and each optimizer what state it keeps (`state_buffers`). This
matches the measured peak of the benchmark configurations to within about a tenth, which is enough
to refuse a run that cannot fit before it starts instead of failing a minute later.
"""
import os
from pathlib import Path

from ..models.registry import MODELS
from .optim import OPTIMIZERS

GB = 1024 ** 3


def training_memory(model_config, kind, train_config):
    """(bytes for parameters, gradients and optimizer state, bytes for activations), float32."""
    model = MODELS[kind].model_class(model_config, allocate=False)  # its sizes, nothing allocated
    weights = 4 * model.num_params() * (2 + len(OPTIMIZERS[train_config.optimizer].state_buffers))
    return weights, 4 * model.activation_floats(train_config.batch_size)


def available_memory():
    """Bytes the system can give this process now (MemAvailable on Linux), or None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_training_memory(model_config, kind, train_config, available=None):
    """A ValueError with the estimate, if this run needs more memory than the system has free."""
    weights, activations = training_memory(model_config, kind, train_config)
    available = available_memory() if available is None else available
    if available is not None and weights + activations > available:
        raise ValueError(f"this run needs about {(weights + activations) / GB:.1f} GB (weights, gradients and "
                         f"optimizer state {weights / GB:.1f} GB, activations {activations / GB:.1f} GB) but "
                         f"{available / GB:.1f} GB is available: make the model or the batch smaller")
    return weights + activations
