"""What the commands share: options whose given values can be told apart from defaults, the
optimisation options, the flow of a training run, and loading a trained model."""
import argparse
import json
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..data.tokenizers.bpe_train import check_vocab_size
from ..models.registry import MODELS
from ..train.checkpoint import load_checkpoint
from ..train.compile_ahead import compile_training
from ..train.distributed import Distributed, resumed_batch_size
from ..train.memory import available_memory, check_training_memory
from ..train.optim import OPTIMIZERS
from ..train.run_dir import LOCK, RUN_FILES, clear_run, holds_run, is_being_written, run_lock
from ..train.saved_model import load_model
from ..train.schedules import SCHEDULES
from ..train.trainer import TrainConfig, Trainer, write_run_config
from ..util.overlap import check_apart

# Config fields whose flag is not simply --field-name.
FLAGS = {"bias": "--no-bias", "norm_first": "--post-ln", "tie_weights": "--untied"}


def flag_for(field):
    return FLAGS.get(field, "--" + field.replace("_", "-"))


class Options:
    """Options whose defaults are filled in after parsing, so that a value given on the command line
    can be told apart from a default: --resume keeps the saved run's value of every option not
    given, takes the given training options, and refuses to change the model."""

    def __init__(self, parser):
        self.defaults, self.fixed = {}, set()
        parser.set_defaults(options=self)

    def add(self, group, flag, default, help="", fixed=False, **kwargs):
        """fixed: the option describes the model or its data, which --resume cannot change."""
        dest = flag[2:].replace("-", "_")
        self.defaults[dest] = default
        if fixed:
            self.fixed.add(dest)
        shown = "" if kwargs.get("action") == "store_true" else f" (default: {default})"
        group.add_argument(flag, default=None, help=(help + shown).strip(), **kwargs)

    def resolve(self, args):
        """Record which options were given (args.given), then fill in the defaults of the rest."""
        args.given = {dest for dest in self.defaults if getattr(args, dest) is not None}
        for dest, default in self.defaults.items():
            if getattr(args, dest) is None:
                setattr(args, dest, default)


def add_run_args(parser, out_dir):
    run = parser.add_argument_group("run directory")
    run.add_argument("--out-dir", default=out_dir,
                     help=f"where checkpoints, config.json and metrics.csv go (default: {out_dir})")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run saved in --out-dir")
    mode.add_argument("--overwrite", action="store_true", help="replace the run saved in --out-dir")


def add_optimisation_args(parser, options, defaults):
    """The TrainConfig options; `defaults` overrides TrainConfig's own defaults."""
    d = {**asdict(TrainConfig()), **defaults}
    opt = parser.add_argument_group("optimisation")
    add = options.add
    add(opt, "--batch-size", d["batch_size"], type=int)
    add(opt, "--max-iters", d["max_iters"], "training steps; with --resume, the saved run's unless given", type=int)
    add(opt, "--lr", d["lr"], "peak learning rate, reached after warm-up", type=float)
    add(opt, "--min-lr", d["min_lr"], "where the cosine schedule ends; with --lr alone, at most --lr / 10",
        type=float)
    add(opt, "--warmup-iters", d["warmup_iters"], type=int)
    add(opt, "--lr-decay-iters", d["lr_decay_iters"], "where the cosine reaches --min-lr; 0: --max-iters (with "
        "--resume, the saved run's)", type=int)
    add(opt, "--schedule", d["schedule"], "cosine: linear warm-up, then cosine decay to --min-lr; noam: the "
        "paper's linear warm-up, then lr ~ 1/sqrt(step)", choices=SCHEDULES)
    add(opt, "--weight-decay", d["weight_decay"], type=float)
    add(opt, "--beta1", d["beta1"], "Adam/AdamW first-moment decay", type=float)
    add(opt, "--beta2", d["beta2"], "Adam/AdamW second-moment decay", type=float)
    add(opt, "--grad-clip", d["grad_clip"], "largest gradient norm; 0: no clipping", type=float)
    add(opt, "--optimizer", d["optimizer"], choices=sorted(OPTIMIZERS))
    add(opt, "--eval-interval", d["eval_interval"], type=int)
    add(opt, "--eval-iters", d["eval_iters"], type=int)
    add(opt, "--patience", d["patience"], "stop after this many evaluations without improvement; 0: never", type=int)
    add(opt, "--seed", d["seed"], type=int)
    return opt


TRAIN_OPTIONS = [f.name for f in fields(TrainConfig) if f.name not in ("out_dir", "data")]
# Options only some optimizers read: giving one to another is a mistake worth a word.
OPTIMIZER_OPTIONS = {"weight_decay": ("adamw",), "beta1": ("adam", "adamw"), "beta2": ("adam", "adamw")}


@dataclass
class RunSetup:
    """What a training command builds before training: the model's config and the data."""
    model_config: object
    data: object
    tokenizer: object
    description: str
    info: dict = None
    data_path: str = ""       # the text file or token directory trained on, if any
    build_model: object = None  # build_model(seed) -> the model, when not a new one of model_config
    report: object = None       # report(model) -> a line logged after each evaluation


def train_command(args, kind, setup):
    """The flow every training command shares. `setup(args, meta)` builds the RunSetup, from the
    options (meta None) or from the saved run (--resume, meta of last.npz). Everything is checked
    before anything is written (the run directory must not be or hold what the run reads); then
    the run directory is locked, config.json written, and the model trained (and timed). Returns
    (trainer, model), or None when a signal stopped training (last.npz then holds the state to
    resume from).

    Under `mpiexec -n N` it trains on N ranks (train/distributed.py): rank 0 alone prints, writes and
    reads the run directory, and alone returns; the other ranks end after training."""
    out_dir = Path(args.out_dir)
    world = Distributed.from_environment()
    writer = world is None or world.rank == 0
    if not writer:
        sys.stdout = open(os.devnull, "w")  # rank 0 alone prints; errors still reach stderr
    meta = resumable_meta(out_dir, kind) if args.resume and writer else None
    if world is not None and args.resume:
        meta = world.broadcast_json(meta, "the description of the run to resume")
    check_apart("--out-dir", out_dir, run_inputs(args, meta), writes=(*RUN_FILES, LOCK))
    run = setup(args, meta)
    config = _train_config(args, meta, run.data_path, world.size if world is not None else 1)
    available = available_memory()
    if world is not None and available is not None:
        available //= world.ranks_here  # the ranks on this host share its memory
    check_training_memory(run.model_config, kind, config, available)
    model_class = MODELS[kind].model_class
    with run_lock(out_dir) if writer else nullcontext():
        if writer and not args.resume and holds_run(out_dir):
            if not args.overwrite:
                raise ValueError(f"{out_dir} already holds a run: continue it with --resume, or replace it with "
                                 f"--overwrite")
            clear_run(out_dir)
        model = (run.build_model or (lambda seed: model_class(run.model_config, seed=seed)))(config.seed)
        sections = {"task": run.info} if run.info else {}
        print(run.description)
        if world is not None:
            print(f"data-parallel: {world.describe()}; global batch {world.size} x {config.batch_size}")
            print(f"processes: {world.describe_processes()}")
        print(f"model: {model.num_params():,} parameters")
        for name, value in sections.items():
            print(f"{name} config:", json.dumps(value))
        print("model config:", json.dumps(run.model_config.to_dict()))
        print("training config:", json.dumps(asdict(config)))
        if writer:
            write_run_config(out_dir, **sections, model=run.model_config.to_dict(), training=asdict(config))
        trainer = Trainer(model, run.data, config, run.tokenizer, kind=kind, info=run.info, distributed=world,
                          report=run.report)
        if args.resume:
            trainer.restore(out_dir / "last.npz")
            print(f"resumed from {out_dir / 'last.npz'} at step {trainer.step}")
        if world is None:  # (ranks would each start a helper, on cores that other ranks use)
            compile_training(model_class, run.model_config, run.data, config)
        start_step, t0 = trainer.step, time.perf_counter()
        try:
            trainer.fit()
        except KeyboardInterrupt:
            if world is not None and not trainer.stop_requested():
                raise  # a second Ctrl-C stopped this rank mid-step: the ranks are out of step, all must end
            print(f"interrupted: resume with --resume --out-dir {out_dir}")
            return None
    elapsed = time.perf_counter() - t0
    steps = trainer.step - start_step
    per_step = f", {1000 * elapsed / steps:.0f} ms/step" if steps else ""
    print(f"training wall time: {format_duration(elapsed)} ({elapsed:.0f} s) for {steps} steps{per_step}")
    if not writer:
        raise SystemExit(0)  # rank 0 alone goes on to sample or score the trained model
    return trainer, model


def run_inputs(args, meta):
    """(option, path) of what a training run reads, which its run directory must not hold: --data (a
    resumed run's own unless given) and --init-from."""
    data = getattr(args, "data", "")
    if meta is not None and "data" not in args.given:
        data = meta["train_config"].get("data", "")
    return [("--data", data), ("--init-from", getattr(args, "init_from", ""))]


def resumable_meta(out_dir, kind):
    """The description of out_dir/last.npz, which must hold a `kind` run."""
    path = out_dir / "last.npz"
    if not path.exists() and is_being_written(out_dir):
        raise ValueError(f"the run in {out_dir} is in progress in another process and has saved no checkpoint "
                         f"yet: resume it once that process has stopped")
    if not path.exists():
        raise FileNotFoundError(f"{out_dir} has no last.npz to resume from")
    _, meta = load_checkpoint(path, arrays=False)
    try:  # the saved options, checked as the checkpoint's (not as flags the user never gave)
        meta["train_config"] = asdict(TrainConfig.from_dict(meta["train_config"]))
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path} has a damaged training config: {e}") from None
    if meta["kind"] != kind:
        raise ValueError(f"{path} holds a {meta['kind']} run; resume it with {TRAINING_COMMAND[meta['kind']]} --resume")
    return meta


def _train_config(args, meta, data_path, ranks=1):
    """TrainConfig of the options, or of the saved run with the given training options changed; a
    run resumed on another number of ranks keeps its global batch."""
    values = {name: getattr(args, name) for name in TRAIN_OPTIONS}
    if meta is not None:
        changed = sorted(args.given & args.options.fixed)
        if changed:
            raise ValueError(f"--resume continues the saved run: {', '.join(map(flag_for, changed))} cannot change")
        saved = {k: v for k, v in meta["train_config"].items() if k not in ("out_dir", "data")}
        values = {**saved, **{name: values[name] for name in TRAIN_OPTIONS if name in args.given}}
        if values["schedule"] == "cosine" and not values["lr_decay_iters"] and "max_iters" in args.given:
            # A longer run continues the schedule it was on, rather than stretching the decay under it.
            values["lr_decay_iters"] = saved["max_iters"]
            print(f"the learning rate keeps its cosine decay to --min-lr at step {saved['max_iters']}, where "
                  f"the run was to end, and stays there (--lr-decay-iters N decays to step N instead)")
        if meta.get("world_size", 1) != ranks:
            values["batch_size"] = resumed_batch_size(meta.get("world_size", 1), saved["batch_size"], ranks,
                                                      args.batch_size if "batch_size" in args.given else None)
    if "lr" in args.given and "min_lr" not in args.given:  # a lower --lr alone lowers the floor with it
        values["min_lr"] = min(values["min_lr"], values["lr"] / 10)
    config = TrainConfig(**values, out_dir=str(args.out_dir), data=data_path)
    unused = sorted(option for option, users in OPTIMIZER_OPTIONS.items()
                    if option in args.given and config.optimizer not in users)
    if unused:
        raise ValueError(f"--optimizer {config.optimizer} has no use for {', '.join(map(flag_for, unused))} "
                         f"(weight decay: adamw; betas: adam and adamw)")
    if meta is not None and config.max_iters <= meta["step"]:
        raise ValueError(f"the run in {args.out_dir} is already at step {meta['step']}: give --max-iters above it "
                         f"to train further")
    return config


def format_duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s"


TRAINING_COMMAND = {"gpt": "train", "seq2seq": "train-seq2seq", "classifier": "train-classifier", "vit": "train-vit"}
USING_COMMAND = {"gpt": "sample", "seq2seq": "translate", "classifier": "classify", "vit": "classify-image"}


def add_checkpoint_args(parser, out_dir):
    parser.add_argument("--out-dir", default=out_dir, help=f"the run directory (default: {out_dir})")
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best", help="(default: best)")


def load_trained(args, kind, with_meta=False):
    """(model, tokenizer) from --out-dir/--checkpoint.npz, which must hold a `kind` model (or one of
    the kinds of a tuple); best falls back to last when no evaluation has improved yet. with_meta:
    (model, tokenizer, meta)."""
    out_dir = Path(args.out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {out_dir}" if not out_dir.exists() else
                                f"--out-dir {out_dir} is a file: give the run directory that holds it")
    path = out_dir / f"{args.checkpoint}.npz"
    if not path.exists() and args.checkpoint == "best":
        path = out_dir / "last.npz"
    if not path.exists():
        names = "best.npz or last.npz" if args.checkpoint == "best" else path.name
        raise FileNotFoundError(f"{out_dir} holds no {names}: not a run directory, or a run that has saved no "
                                f"checkpoint yet")
    model, tokenizer, meta = load_model(path)
    if meta["kind"] not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ValueError(f"{path} holds a {meta['kind']} model; use {USING_COMMAND[meta['kind']]}")
    return (model, tokenizer, meta) if with_meta else (model, tokenizer)


def _int_at_least(low):
    def parse(text):
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = "integer"  # argparse's message: "invalid integer value"
    return parse


non_negative_int = _int_at_least(0)  # argparse types: an integer >= 0, >= 1
positive_int = _int_at_least(1)


def bpe_vocab_size(text):
    """argparse type of --vocab-size: a size a new BPE (with <|endoftext|>) can have."""
    value = int(text)  # not an integer: argparse's "invalid integer value"
    try:
        return check_vocab_size(value, name="the vocabulary size")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


bpe_vocab_size.__name__ = "integer"
