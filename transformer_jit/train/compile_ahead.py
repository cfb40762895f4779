"""Compiling a training run's kernels before its first step, two processes at once.

A training step and an evaluation run first on a throwaway model of the same configuration (its
parameters allocated, never written) with every kernel call recorded rather than run
(kernels/_jit.py's `recording_calls`); kernels/compile_ahead.py then compiles what the cache lacks
of those, here and in a helper process. The real first step and evaluation find them loaded or
cached. With a warm cache this costs a few milliseconds: the record, and a look at the cache's index.
"""
from dataclasses import replace

from ..kernels._jit import recording_calls
from ..kernels.compile_ahead import compile_ahead
from .trainer import Trainer


def compile_training(model_class, model_config, data, config):
    """Compile, two at a time, what `Trainer(model_class(model_config), data, config)` compiles in
    its first step and evaluation. Returns how many compiled versions were missing."""
    model = model_class.for_loading(model_config)
    trainer = Trainer(model, data, replace(config, eval_iters=1), log=lambda message: None)
    with recording_calls() as calls:
        trainer.train_step()
        trainer.evaluate()
    return compile_ahead(calls)
