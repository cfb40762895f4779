"""The training loop: schedule, clipping, evaluation, logging, checkpoints, early stopping, resume.

The trainer works with any model that has `forward(*batch) -> (output, loss)`, `backward()`,
`zero_grad()`, `params`/`grads` buffers, `state_dict()`/`load_state_dict()` and a `config`
dataclass; and any data object with `batch(split, batch_size, rng) -> tuple of arrays`.

Everything that decides the future of a run is saved in the checkpoint (weights, optimizer
state, step, batch-sampling RNG state, dropout counter, early-stopping state), so a resumed run
takes exactly the steps the uninterrupted run would have taken. Ctrl-C finishes the step it
interrupts before saving, and a step whose loss or gradient norm is not finite is never applied:
training stops with the last evaluated state on disk.

With `distributed` (train/distributed.py) the same loop runs data-parallel on every rank of an MPI
job: config.batch_size is per rank, each rank takes its rows of the same global batch, losses and
gradients are combined over the ranks, and rank 0 alone writes logs, metrics and checkpoints.
"""
import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import kernels as K
from ..util.config import ConfigError, check_fields, check_range, config_from_dict
from .checkpoint import load_checkpoint, save_checkpoint, split_prefix
from .distributed import resumed_batch_size
from .interrupts import DeferredInterrupts
from .loss_plot import LossPlot
from .optim import OPTIMIZERS, make_optimizer
from .run_dir import append_metrics, run_lock, trim_metrics, write_json
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
        check_fields(self, at_least={"batch_size": 1, "max_iters": 1, "eval_interval": 1, "eval_iters": 1,
                                     "warmup_iters": 0, "lr_decay_iters": 0, "patience": 0, "seed": 0, "lr": 0.0,
                                     "min_lr": 0.0, "weight_decay": 0.0, "grad_clip": 0.0},
                     choices={"optimizer": OPTIMIZERS, "schedule": SCHEDULES})
        if self.min_lr > self.lr:
            raise ConfigError("TrainConfig", "min_lr", f"must be <= lr ({self.lr})", self.min_lr)
        check_range(self, "beta1", 0.0, 1.0)
        check_range(self, "beta2", 0.0, 1.0)
        if self.schedule == "noam" and self.warmup_iters < 1:
            raise ConfigError("TrainConfig", "warmup_iters", "must be >= 1 with the noam schedule", self.warmup_iters)

    @classmethod
    def from_dict(cls, d):
        """Build from a saved dict; unknown keys are an error that names them."""
        return config_from_dict(cls, d)


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm stopped being finite; the step that saw it was not applied."""


class CheckpointError(RuntimeError):
    """A checkpoint could not be written; the previous one is intact."""


class Trainer:
    def __init__(self, model, data, config, tokenizer=None, kind="gpt", log=None, info=None, distributed=None,
                 report=None):
        """`kind` names the model type in checkpoints ("gpt", "seq2seq", "classifier"); `info` is
        any JSON-serialisable description of the run (e.g. which task and data) saved with them.
        `report(model)`: a line logged after each evaluation (a task's metrics on its validation split).
        `distributed`: a train.distributed.Distributed to train data-parallel over its ranks (the
        model must then have `counted_targets()`), or None for this process alone."""
        self.model, self.data, self.config = model, data, config
        self.tokenizer, self.kind, self.log = tokenizer, kind, log or log_line
        self.info, self.report = info or {}, report
        self.distributed = distributed
        self.world_size = distributed.size if distributed is not None else 1
        self.writes_files = distributed is None or distributed.rank == 0  # logs, metrics.csv, checkpoints
        if not self.writes_files:
            self.log = _quiet
        if distributed is not None:
            distributed.replicate(model, json.dumps([kind, model.config.to_dict(), model.num_params(),
                                                     {**asdict(config), "out_dir": "", "data": ""}]))
        self._interrupts, self._stop_agreed = None, False
        self.optimizer = make_optimizer(config.optimizer, model, config.lr, config.weight_decay,
                                        (config.beta1, config.beta2))
        self.out_dir = Path(config.out_dir)
        self.rng = np.random.default_rng(config.seed)
        # Fixed evaluation batches: the same every time, so losses compare across evaluations,
        # and drawn from their own RNG, so evaluating does not change the training batches.
        eval_rng = np.random.default_rng([config.seed, 1])
        self.eval_batches = {split: [self._rows(data.batch(split, config.batch_size * self.world_size, eval_rng))
                                     for _ in range(config.eval_iters)]
                             for split in ("train", "val")}
        self.step = 0
        self.best_val_loss = float("inf")
        self.evals_since_best = 0
        self.history = []
        self.loss_plot = LossPlot(self.out_dir, self.log)

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self, until=None):
        """Train up to step `until` (default: config.max_iters). Returns the last evaluation.

        Ctrl-C (or SIGTERM) finishes the current step, saves `last.npz` and raises
        KeyboardInterrupt. A non-finite loss or gradient norm raises TrainingDiverged.
        """
        c = self.config
        until = c.max_iters if until is None else min(until, c.max_iters)
        tokens_per_step = self.model.tokens_in(self.eval_batches["train"][0][0]) * self.world_size  # all ranks
        result = None
        with run_lock(self.out_dir) if self.writes_files else nullcontext(), DeferredInterrupts() as interrupts:
            self._interrupts, self._stop_agreed = interrupts, False
            # disable=None: the bar shows on a terminal and stays quiet when output is redirected
            with tqdm(total=until, initial=self.step, desc="training", unit="step", dynamic_ncols=True,
                      disable=None if self.writes_files else True) as bar:
                t_last, step_last = time.perf_counter(), self.step
                while self.step < until and not self.stop_requested():
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
            if self.stop_requested():
                path = self.save("last")
                self.log(f"{interrupts.requested or 'a signal to another rank'}: stopped after step {self.step}; "
                         f"checkpoint saved to {path}")
                raise KeyboardInterrupt
        return result

    def stop_requested(self):
        """Whether a signal asked fit() to stop. The ranks of a distributed run stop after the same
        step: the first whose reduction carried a request from any of them."""
        if self.distributed is not None:
            return self._stop_agreed
        return self._interrupts is not None and self._interrupts.requested

    def _rows(self, batch):
        """This rank's rows of a global batch (all of it in a single process)."""
        return batch if self.distributed is None else self.distributed.rows(batch)

    def learning_rate(self, step):
        c = self.config
        if c.schedule == "noam":
            return warmup_rsqrt(step, c.lr, c.warmup_iters)
        return warmup_cosine(step, c.lr, c.min_lr, c.warmup_iters, c.lr_decay_iters or c.max_iters)

    def train_step(self):
        """One step. A non-finite loss or gradient norm raises TrainingDiverged before the
        optimizer touches the weights."""
        c = self.config
        self.optimizer.lr = self.learning_rate(self.step)
        batch = self._rows(self.data.batch("train", c.batch_size * self.world_size, self.rng))
        self.model.zero_grad()
        _, loss = self.model.forward(*batch)
        self.model.backward()
        grads = self.model.grads
        if self.distributed is not None:  # every rank gets the gradient and the loss of the global batch
            asked = self._interrupts is not None and self._interrupts.requested
            count = self.model.counted_targets()
            loss, self._stop_agreed = self.distributed.combine_gradients(grads, loss, count, asked)
        norm = K.clip_grad_norm(grads, c.grad_clip) if c.grad_clip > 0 else K.grad_norm(grads)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise self._diverged(f"the loss is {loss} and the gradient norm {norm}")
        self.optimizer.step()
        self.step += 1
        return loss

    def _diverged(self, what):
        """TrainingDiverged naming the step, the likely cause and the checkpoint to resume from:
        last.npz as the last evaluation saved it, with finite losses, is kept as it is."""
        c = self.config
        cause = (f"a learning rate too high for this model (this step used {self.optimizer.lr:.3g}"
                 f"{', with no warm-up' if c.warmup_iters == 0 else ''})")
        if c.grad_clip == 0:
            cause += ", without gradient clipping (--grad-clip)"
        last = self.out_dir / "last.npz"
        if last.exists():
            kept = f"{last} holds step {load_checkpoint(last, arrays=False)[1]['step']}, the last evaluated state; " \
                   f"resume from it with a lower learning rate"
        else:
            kept = "it diverged before the first checkpoint: start again with a lower learning rate"
        return TrainingDiverged(f"training diverged at step {self.step + 1}: {what}. Likely cause: {cause}. {kept}")

    def evaluate(self):
        """Mean loss over the fixed evaluation batches of each split, with dropout off."""
        with self.model.evaluating():
            if self.distributed is not None:
                return self._evaluate_over_ranks()
            return {split: float(np.mean([self.model.forward(*b)[1] for b in batches]))
                    for split, batches in self.eval_batches.items()}

    def _evaluate_over_ranks(self):
        """evaluate() with each batch split over the ranks: a batch's loss is the count-weighted mean
        of its slices' losses, as one process with the whole batch computes it."""
        parts = []
        for batches in self.eval_batches.values():
            for b in batches:
                loss, count = self.model.forward(*b)[1], self.model.counted_targets()
                parts.append([loss * count if count else 0.0, count])
        totals = self.distributed.sum(parts, "the evaluation losses")
        losses = [float(total / count) if count else 0.0 for total, count in totals]
        self.distributed.check_replicas(K.grad_norm(self.model.params))
        n = self.config.eval_iters
        return {split: float(np.mean(losses[i * n:(i + 1) * n])) for i, split in enumerate(self.eval_batches)}

    def evaluate_and_save(self, tokens_per_s):
        losses = self.evaluate()
        if not all(math.isfinite(v) for v in losses.values()):
            raise self._diverged(f"the evaluation losses are {losses}")
        row = {"step": self.step, "train_loss": round(losses["train"], 6), "val_loss": round(losses["val"], 6),
               "lr": self.optimizer.lr, "tokens_per_s": round(tokens_per_s, 1)}
        self.history.append(row)
        # The row goes first: after a crash before the checkpoints below, resuming from the
        # previous checkpoint trims it and logs it again, so a row is never lost or doubled.
        if self.writes_files:
            append_metrics(self.out_dir, row)
        improved = losses["val"] < self.best_val_loss
        if improved:
            self.best_val_loss, self.evals_since_best = losses["val"], 0
        else:
            self.evals_since_best += 1
        self.log(f"step {self.step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}, "
                 f"lr {self.optimizer.lr:.2e}, {tokens_per_s:,.0f} tok/s" + (" (best)" if improved else ""))
        if self.report is not None and self.writes_files:
            self.log(f"step {self.step}: {self.report(self.model)}")
        if improved:
            self.save("best")
        self.save("last")
        if self.writes_files:
            self.loss_plot.update()
        return row

    # -- checkpoints -------------------------------------------------------------------------------
    def save(self, name):
        path = self.out_dir / f"{name}.npz"
        if not self.writes_files:
            return path
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
            "world_size": self.world_size,
        }
        try:
            save_checkpoint(path, arrays, meta)
        except OSError as e:
            raise CheckpointError(f"could not write {path}: {e.strerror or e}; the previous {path.name}, if any, "
                                  f"is intact") from None
        return path

    def restore(self, path):
        """Continue from a checkpoint written by `save`: weights, optimizer, step and RNG states.
        metrics.csv loses any rows logged after the checkpoint's step. Under MPI, rank 0 reads the
        checkpoint and sends it to the others; on another number of ranks the global batch must stay."""
        if self.distributed is None:
            arrays, meta = load_checkpoint(path)
        else:
            arrays, meta = self.distributed.broadcast_checkpoint(lambda: load_checkpoint(path))
        if meta["kind"] != self.kind:
            raise ValueError(f"{path} holds a {meta['kind']!r} run, not {self.kind!r}")
        if meta.get("world_size", 1) != self.world_size:
            resumed_batch_size(meta.get("world_size", 1), meta["train_config"]["batch_size"], self.world_size,
                               self.config.batch_size)
        self.model.load_state_dict(split_prefix(arrays, "model."))
        self.optimizer.load_state_dict(split_prefix(arrays, "optimizer."))
        try:
            self.rng.bit_generator.state = meta["rng_state"]
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"{path} has a damaged random-number state ({e})") from None
        self.step = meta["step"]
        self.model.seed, self.model.forward_count = meta["dropout_seed"], meta["forward_count"]
        self.best_val_loss = meta["best_val_loss"]
        self.evals_since_best = meta["evals_since_best"]
        if self.writes_files:
            with run_lock(self.out_dir):
                trim_metrics(self.out_dir, self.step)
        return meta


def log_line(message):
    """Print above the progress bar, and flush, so redirected output shows each evaluation as it happens."""
    tqdm.write(message)
    sys.stdout.flush()


def _quiet(message):
    """The log of ranks other than 0: rank 0 alone reports."""


def write_run_config(out_dir, **sections):
    """Save the resolved configuration of a run as JSON, for people and for reproducing it."""
    write_json(Path(out_dir) / "config.json", sections)
