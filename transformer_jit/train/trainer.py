"""The training loop: schedule, clipping, evaluation, logging, checkpoints, early stopping, resume.

The trainer works with any model that has `forward(*batch) -> (output, loss)`, `backward()`,
`zero_grad()`, `params`/`grads` buffers, `state_dict()`/`load_state_dict()` and a `config`
dataclass; and any data object with `batch(split, batch_size, rng) -> tuple of arrays`.

Everything that decides the future of a run is saved in the checkpoint (weights, optimizer
state, step, batch-sampling RNG state, dropout counter, early-stopping state), so a resumed run
takes exactly the steps the uninterrupted run would have taken.
"""
import csv
import json
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import kernels as K
from .checkpoint import load_checkpoint, save_checkpoint, split_prefix
from .optim import OPTIMIZERS, make_optimizer
from .schedules import SCHEDULES, warmup_cosine, warmup_rsqrt


@dataclass
class TrainConfig:
    batch_size: int = 12
    max_iters: int = 2000
    lr: float = 1e-3               # peak learning rate, reached at the end of warm-up
    min_lr: float = 1e-4           # cosine schedule only
    warmup_iters: int = 100
    lr_decay_iters: int = 0        # where the cosine reaches min_lr; 0 means max_iters
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0         # 0 disables clipping
    optimizer: str = "adamw"
    eval_interval: int = 250
    eval_iters: int = 20
    patience: int = 0              # stop after this many evaluations without improvement; 0 never stops
    seed: int = 1337
    out_dir: str = "out"
    data: str = ""                 # path of the training text; empty means the built-in corpus
    schedule: str = "cosine"       # warm-up + cosine decay, or "noam": the paper's warm-up + 1/sqrt(step)

    def __post_init__(self):
        positive = ("batch_size", "max_iters", "eval_interval", "eval_iters")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "warmup_iters", "lr_decay_iters", "patience"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {sorted(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose from {list(SCHEDULES)}")
        if self.schedule == "noam" and self.warmup_iters < 1:
            raise ValueError("the noam schedule needs warmup_iters >= 1")

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class Trainer:
    def __init__(self, model, data, config, tokenizer=None, kind="gpt", log=None, info=None):
        """`kind` names the model type in checkpoints ("gpt", "seq2seq", "classifier"); `info` is
        any JSON-serialisable description of the run (e.g. which task and data) saved with them."""
        self.model, self.data, self.config = model, data, config
        self.tokenizer, self.kind, self.log = tokenizer, kind, log or log_line
        self.info = info or {}
        self.optimizer = make_optimizer(config.optimizer, model, config.lr, config.weight_decay,
                                        (config.beta1, config.beta2))
        self.out_dir = Path(config.out_dir)
        self.rng = np.random.default_rng(config.seed)
        # Fixed evaluation batches: the same every time, so losses compare across evaluations,
        # and drawn from their own RNG, so evaluating does not change the training batches.
        eval_rng = np.random.default_rng([config.seed, 1])
        self.eval_batches = {split: [data.batch(split, config.batch_size, eval_rng) for _ in range(config.eval_iters)]
                             for split in ("train", "val")}
        self.step = 0
        self.best_val_loss = float("inf")
        self.evals_since_best = 0
        self.history = []

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self, until=None):
        """Train up to step `until` (default: config.max_iters). Returns the last evaluation.

        Ctrl-C saves `last.npz` before the KeyboardInterrupt propagates.
        """
        c = self.config
        until = c.max_iters if until is None else min(until, c.max_iters)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tokens_per_step = int(np.prod(self.eval_batches["train"][0][0].shape))  # B * T of the first input
        # disable=None: the bar shows on a terminal and stays quiet when output is redirected
        bar = tqdm(total=until, initial=self.step, desc="training", unit="step", dynamic_ncols=True, disable=None)
        result = None
        t_last, step_last = time.perf_counter(), self.step
        try:
            while self.step < until:
                loss = self.train_step()
                bar.update(1)
                now = time.perf_counter()
                tok_s = (self.step - step_last) * tokens_per_step / max(now - t_last, 1e-9)
                bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}", refresh=False)
                if self.step % c.eval_interval == 0 or self.step == until:
                    result = self.evaluate_and_save(tok_s)
                    t_last, step_last = time.perf_counter(), self.step
                    if c.patience and self.evals_since_best >= c.patience:
                        self.log(f"early stop: no validation improvement in {c.patience} evaluations")
                        break
        except KeyboardInterrupt:
            bar.close()
            path = self.save("last")
            self.log(f"interrupted at step {self.step}; checkpoint saved to {path}")
            raise
        bar.close()
        return result

    def learning_rate(self, step):
        c = self.config
        if c.schedule == "noam":
            return warmup_rsqrt(step, c.lr, c.warmup_iters)
        return warmup_cosine(step, c.lr, c.min_lr, c.warmup_iters, c.lr_decay_iters or c.max_iters)

    def train_step(self):
        c = self.config
        self.optimizer.lr = self.learning_rate(self.step)
        batch = self.data.batch("train", c.batch_size, self.rng)
        self.model.zero_grad()
        _, loss = self.model.forward(*batch)
        self.model.backward()
        if c.grad_clip > 0:
            K.clip_grad_norm(self.model.grads, c.grad_clip)
        self.optimizer.step()
        self.step += 1
        return loss

    def evaluate(self):
        """Mean loss over the fixed evaluation batches of each split, with dropout off."""
        with self.model.evaluating():
            return {split: float(np.mean([self.model.forward(*b)[1] for b in batches]))
                    for split, batches in self.eval_batches.items()}

    def evaluate_and_save(self, tokens_per_s):
        losses = self.evaluate()
        row = {"step": self.step, "train_loss": round(losses["train"], 6), "val_loss": round(losses["val"], 6),
               "lr": self.optimizer.lr, "tokens_per_s": round(tokens_per_s, 1)}
        self.history.append(row)
        self._append_csv(row)
        improved = losses["val"] < self.best_val_loss
        if improved:
            self.best_val_loss, self.evals_since_best = losses["val"], 0
        else:
            self.evals_since_best += 1
        self.log(f"step {self.step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}, "
                 f"lr {self.optimizer.lr:.2e}, {tokens_per_s:,.0f} tok/s" + (" (best)" if improved else ""))
        if improved:
            self.save("best")
        self.save("last")
        return row

    def _append_csv(self, row):
        path = self.out_dir / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    # -- checkpoints -------------------------------------------------------------------------------
    def save(self, name):
        path = self.out_dir / f"{name}.npz"
        arrays = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        arrays.update({f"optimizer.{k}": v for k, v in self.optimizer.state_dict().items()})
        meta = {
            "kind": self.kind,
            "model_config": self.model.config.to_dict(),
            "train_config": asdict(self.config),
            "tokenizer": self.tokenizer.to_dict() if self.tokenizer is not None else None,
            "step": self.step,
            "rng_state": self.rng.bit_generator.state,
            "dropout_seed": self.model.seed,
            "forward_count": self.model.forward_count,
            "best_val_loss": self.best_val_loss,
            "evals_since_best": self.evals_since_best,
            "info": self.info,
        }
        save_checkpoint(path, arrays, meta)
        return path

    def restore(self, path):
        """Continue from a checkpoint written by `save`: weights, optimizer, step and RNG states."""
        arrays, meta = load_checkpoint(path)
        if meta.get("kind") != self.kind:
            raise ValueError(f"{path} holds a {meta.get('kind')!r} model, not {self.kind!r}")
        self.model.load_state_dict(split_prefix(arrays, "model."))
        self.optimizer.load_state_dict(split_prefix(arrays, "optimizer."))
        self.step = meta["step"]
        self.rng.bit_generator.state = meta["rng_state"]
        self.model.seed, self.model.forward_count = meta["dropout_seed"], meta["forward_count"]
        self.best_val_loss = meta["best_val_loss"]
        self.evals_since_best = meta["evals_since_best"]
        return meta


def log_line(message):
    """Print above the progress bar, and flush, so redirected output shows each evaluation as it happens."""
    tqdm.write(message)
    sys.stdout.flush()


def write_run_config(out_dir, **sections):
    """Save the resolved configuration of a run as JSON, for people and for reproducing it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(sections, indent=2) + "\n")
