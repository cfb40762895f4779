"""How much memory a training run will need, estimated before any of it is allocated.

    parameters, gradients and optimizer state   4 bytes x parameters x (2 + optimizer buffers)
    a checkpoint's copies of them               4 bytes x parameters x (1 + optimizer buffers)
    activations                                 4 bytes x tokens per step x floats kept per token

Each model says what its activations take (`activation_floats(batch_size)`, with the formula of
a transformer stack in nn/stack.py), and each optimizer what state it keeps (`state_buffers`). A
checkpoint is written from copies of the weights and of that state (state_dict), which exist
beside everything else while it is written. This matches the measured peak of the benchmark
configurations and of fine-tuning GPT-2 (scripts/bench_gpt2_context.py) to within about a tenth,
which is enough to refuse a run that cannot fit before it starts instead of failing a minute later.
"""
import os
from pathlib import Path

from ..models.registry import MODELS
from .optim import OPTIMIZERS

GB = 1024 ** 3


def training_memory(model_config, kind, train_config):
    """(bytes for parameters, gradients, optimizer state and a checkpoint's copies of the parameters
    and the state, bytes for activations), float32."""
    model = MODELS[kind].model_class(model_config, allocate=False)  # its sizes, nothing allocated
    buffers = len(OPTIMIZERS[train_config.optimizer].state_buffers)
    weights = 4 * model.num_params() * ((2 + buffers) + (1 + buffers))
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
        raise ValueError(f"this run needs about {(weights + activations) / GB:.1f} GB (weights, gradients, "
                         f"optimizer state and a checkpoint's copies {weights / GB:.1f} GB, activations "
                         f"{activations / GB:.1f} GB) but {available / GB:.1f} GB is available: make the model or "
                         f"the batch smaller")
    return weights + activations
