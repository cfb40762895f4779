"""How much memory a training run will need, estimated before any of it is allocated.

    parameters, gradients and optimizer state   4 bytes x parameters x (2 + optimizer buffers)
    activations                                 4 bytes x tokens per step x floats kept per token

Per token, a block keeps its layer norms, projections and residual sums (about 10 C floats), the
feed-forward hidden layer before and after the activation (2 x 4C), and a row of attention
probabilities per head (NH x T); the backward temporaries of one block are shared by all. The
output layer keeps logits, probabilities and their gradient (3 V). This matches the measured peak
of the benchmark configurations to within about a tenth, which is enough to refuse a run that
cannot fit before it starts instead of failing a minute later.
"""
import os
from pathlib import Path

from ..models import GPT, EncoderClassifier, Seq2SeqTransformer

GB = 1024 ** 3


def _stack_floats(n_layer, C, n_head, keys, cross_keys=0):
    """Floats per token that a transformer stack keeps: its blocks, plus one block's backward
    temporaries; cross-attention (cross_keys > 0) adds its projections and probabilities."""
    per_block = 10 * C + 2 * 4 * C + n_head * keys + (6 * C + n_head * cross_keys if cross_keys else 0)
    return n_layer * per_block + per_block + 4 * C


def activation_floats(model_config, kind, batch_size):
    """Floats a training step of this model keeps, for batches of batch_size at the longest length."""
    c = model_config
    if kind == "gpt":
        T = c.block_size
        return batch_size * T * (_stack_floats(c.n_layer, c.n_embd, c.n_head, T) + 3 * c.vocab_size)
    if kind == "seq2seq":
        S, T = c.max_src_len, c.max_tgt_len
        encoder = batch_size * S * _stack_floats(c.n_encoder_layer, c.n_embd, c.n_head, S)
        decoder = batch_size * T * (_stack_floats(c.n_decoder_layer, c.n_embd, c.n_head, T, S) + 3 * c.tgt_vocab_size)
        return encoder + decoder
    T = c.max_len + 1  # a classifier: room for the classification token
    return batch_size * T * _stack_floats(c.n_layer, c.n_embd, c.n_head, T)


MODEL_CLASSES = {"gpt": GPT, "seq2seq": Seq2SeqTransformer, "classifier": EncoderClassifier}
OPTIMIZER_BUFFERS = {"sgd": 0, "momentum": 1, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2}


def training_memory(model_config, kind, train_config):
    """(bytes for parameters, gradients and optimizer state, bytes for activations), float32."""
    n_params = MODEL_CLASSES[kind](model_config, allocate=False).num_params()
    weights = 4 * n_params * (2 + OPTIMIZER_BUFFERS[train_config.optimizer])
    return weights, 4 * activation_floats(model_config, kind, train_config.batch_size)


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
