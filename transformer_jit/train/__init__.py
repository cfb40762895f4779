"""Training: the loop and everything it saves, restores and measures.

    trainer      Trainer and TrainConfig: schedule, clipping, evaluation, logging, checkpoints, resume
    optim        SGD, Momentum, AdaGrad, RMSprop, Adam, AdamW over a model's flat buffers
    schedules    warm-up + cosine, and the paper's warm-up + 1/sqrt(step)
    checkpoint   the checkpoint file: one atomic .npz of arrays and a checked JSON description
    saved_model  load_model: a trained model and its tokenizer, built from a checkpoint
    loading      load: any model with its tokenizer, from a run, a checkpoint or GPT-2's files
    evaluate     task metrics of the encoder models (exact match, accuracy)
    loss_plot    loss.png: runs' metrics.csv drawn (needs matplotlib, the plot extra)
    recipes      tuned settings of the built-in tasks
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .loading import Loaded, load
from .optim import SGD, AdaGrad, Adam, AdamW, Momentum, RMSprop, make_optimizer
from .recipes import recipe
from .saved_model import load_model
from .schedules import noam, warmup_cosine, warmup_rsqrt
from .trainer import TrainConfig, Trainer

__all__ = ["Loaded", "load", "load_checkpoint", "load_model", "save_checkpoint", "SGD", "AdaGrad", "Adam", "AdamW",
           "Momentum", "RMSprop", "make_optimizer", "recipe", "noam", "warmup_cosine", "warmup_rsqrt", "TrainConfig",
           "Trainer"]
