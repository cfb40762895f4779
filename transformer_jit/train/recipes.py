"""Tuned settings for the built-in tasks, shared by the command line and the scripts.

Each recipe is the best found on a 2-core CPU; the README gives what each reaches on the held-out
split. `data` says how many examples to generate and how long they may be; `model` and `train` are
keyword arguments of the model's config and of TrainConfig.
"""
import copy

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
    # A classification token, and positions numbered from a random start in 0..8 for each training
    # batch (position_shift): without the shift the model tied "the last bracket" to the positions
    # where trained lengths end and called balanced strings of held-out lengths unbalanced.
    "model": {"n_layer": 3, "n_head": 8, "n_embd": 64, "pooling": "cls", "position_shift": 8},
    "train": {"batch_size": 64, "max_iters": 22_000, "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 200,
              "weight_decay": 0.01, "eval_interval": 1000, "eval_iters": 10},
}

RECIPES = {"dates": DATES, "brackets": BRACKETS}

# The vision transformer's, by dataset ("files": the user's images). `data` and `model` are
# train-vit's options: the data's split and augmentation, the ViTConfig's sizes.
VIT_RECIPES = {
    "marks": {
        "data": {"n_train": 20_000, "n_test": 1_000, "val_fraction": 0.1, "augment": 0},
        "model": {"patch_size": 4, "n_layer": 3, "n_head": 4, "n_embd": 64, "n_inner": 0, "dropout": 0.0},
        "train": {"batch_size": 64, "max_iters": 8_000, "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 100,
                  "weight_decay": 0.05, "eval_interval": 500, "eval_iters": 10},
    },
    "digits": {
        "data": {"val_fraction": 0.3, "augment": 1},
        "model": {"patch_size": 2, "n_layer": 3, "n_head": 4, "n_embd": 64, "n_inner": 0, "dropout": 0.1,
                  "attn_dropout": 0.1},
        "train": {"batch_size": 64, "max_iters": 8_000, "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 100,
                  "weight_decay": 0.05, "eval_interval": 500, "eval_iters": 10},
    },
    "files": {
        "data": {"val_fraction": 0.1, "augment": 0},
        "model": {"patch_size": 4, "n_layer": 4, "n_head": 4, "n_embd": 64, "n_inner": 0, "dropout": 0.0},
        "train": {"batch_size": 32, "max_iters": 2_000, "lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 100,
                  "weight_decay": 0.05, "eval_interval": 250, "eval_iters": 10},
    },
}


def vit_recipe(dataset):
    """A copy of the vision transformer's recipe for `dataset` ("marks", "digits" or "files")."""
    return copy.deepcopy(VIT_RECIPES[dataset])


def recipe(task):
    """A copy of the task's recipe (safe to modify)."""
    try:
        return copy.deepcopy(RECIPES[task])
    except KeyError:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(RECIPES)}") from None

