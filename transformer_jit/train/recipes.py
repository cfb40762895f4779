"""Tuned settings for the built-in tasks, shared by the command line and the scripts.

Each recipe is the best measured on a 2-core CPU (see README): 100% exact match on held-out
dates after 81 s of training, and 98.75-99.65% accuracy on bracket strings of held-out
lengths at three seeds, after 22,000 steps (9.8 minutes). `data` says how many examples to generate
and how long they may be; `model` and `train` are keyword arguments of the model's config and of
TrainConfig.
"""
import copy

from .seqdata import SeqTokenizer

DATES = {
    "data": {"n_train": 50_000, "n_test": 2_000, "seed": 0, "val_fraction": 0.02,
             "max_src_len": 32, "max_tgt_len": 12},  # inputs are at most 29 characters; ISO + BOS is 11
    "model": {"n_encoder_layer": 2, "n_decoder_layer": 2, "n_head": 4, "n_embd": 64},
    "train": {"batch_size": 64, "max_iters": 3_000, "lr": 2e-3, "min_lr": 1e-4, "warmup_iters": 200,
              "weight_decay": 0.01, "eval_interval": 500, "eval_iters": 10},
}

BRACKETS = {
    "data": {"n_train": 40_000, "n_test": 2_000, "seed": 0, "val_fraction": 0.05,
             "max_len": 32},  # strings are at most 24 brackets
    # With mean pooling the classifier rejected a third of the balanced strings of the one held-out
    # length longer than 16 (22): 88.75% overall. A classification token did better, but by seed:
    # 97.90% at seed 1337, 84.30% and 87.10% at seeds 1 and 2 (16,000 steps). Its errors were
    # balanced strings of held-out lengths called unbalanced, as if the model had tied "the last
    # bracket" to the positions where trained lengths end. Numbering each training batch's
    # positions from a random start in 0..8 (position_shift) removed that pattern (89.35% and
    # 92.65% at seeds 1 and 2, errors spread over all held-out lengths, training loss still
    # high), and 22,000 steps then fit the training set: 99.65%, 99.40% and 98.75% at seeds 1, 2
    # and 1337. (Dropout 0.1, and 20,000 steps without the shift, did not help.)
    "model": {"n_layer": 3, "n_head": 8, "n_embd": 64, "pooling": "cls", "position_shift": 8},
    "train": {"batch_size": 64, "max_iters": 22_000, "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 200,
              "weight_decay": 0.01, "eval_interval": 1000, "eval_iters": 10},
}

RECIPES = {"dates": DATES, "brackets": BRACKETS}


def recipe(task):
    """A copy of the task's recipe (safe to modify)."""
    try:
        return copy.deepcopy(RECIPES[task])
    except KeyError:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(RECIPES)}") from None


class TokenizerPair:
    """The source and target tokenizers of a seq2seq model, saved together in its checkpoints."""

    def __init__(self, src, tgt):
        self.src, self.tgt = src, tgt

    def to_dict(self):
        return {"type": "pair", "src": self.src.to_dict(), "tgt": self.tgt.to_dict()}

    @classmethod
    def from_dict(cls, d):
        if d.get("type") != "pair":
            raise ValueError(f"not a tokenizer pair: {d.get('type')!r}")
        return cls(SeqTokenizer.from_dict(d["src"]), SeqTokenizer.from_dict(d["tgt"]))
