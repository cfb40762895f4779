"""Compiling a training run's kernels before its first step, two processes at once.

A training step and an evaluation run first on a throwaway model with every kernel call recorded
rather than run (kernels/_jit.py's `recording_calls`): a model of the same kind and options, one
layer deep, two channels per head, on batches of two rows, since the kernels' argument types
depend on those options and never on the sizes (any size above 1 leaves every array's layout as
it is). It is freed before the real run allocates its activations, which are no smaller, so the
run's peak memory stays what it was; kernels/compile_ahead.py then compiles what the cache lacks
of those, here and in a helper process. The real first step and evaluation find them loaded or
cached. With a warm cache this costs a few milliseconds: the record, and a look at the cache's index.
"""
import gc
from dataclasses import replace

from ..kernels._jit import recording_calls
from ..kernels.compile_ahead import compile_ahead
from .trainer import Trainer


def training_calls(model_class, model_config, data, config):
    """The kernel calls, as (kernel, argument types), of the first step and evaluation of
    `Trainer(model_class(model_config), data, config)`, recorded without running them."""
    model = model_class.for_loading(_smallest(model_config))
    config = replace(config, batch_size=min(2, config.batch_size), eval_iters=1)
    trainer = Trainer(model, data, config, log=lambda message: None)
    with recording_calls() as calls:
        try:
            trainer.train_step()
            trainer.evaluate()
        except (ArithmeticError, ValueError):
            pass  # a check of values that recorded calls never wrote: the calls before it are still worth compiling
    return calls


def _smallest(model_config):
    """`model_config` one layer deep with two channels per head (and in the feed-forward layer)."""
    if not hasattr(model_config, "n_head"):
        return model_config
    small = {"n_embd": 2 * model_config.n_head}
    small.update({name: 1 for name in ("n_layer", "n_encoder_layer", "n_decoder_layer") if hasattr(model_config, name)})
    if getattr(model_config, "n_inner", 0):
        small["n_inner"] = 2
    return replace(model_config, **small)


def compile_training(model_class, model_config, data, config):
    """Compile, two at a time, what such a run compiles in its first step and evaluation. Returns
    how many compiled versions were missing."""
    calls = training_calls(model_class, model_config, data, config)
    gc.collect()  # the throwaway model, whose layers refer to each other, goes now
    return compile_ahead(calls)
