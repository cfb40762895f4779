"""Command-line pieces every training command shares: the optimisation options and resuming."""
import json
import time
from dataclasses import asdict
from pathlib import Path

from ..train.checkpoint import load_checkpoint, load_model
from ..train.optim import OPTIMIZERS
from ..train.schedules import SCHEDULES
from ..train.trainer import TrainConfig, Trainer, write_run_config


def add_optimisation_args(parser, defaults):
    """Add the TrainConfig options to `parser`; `defaults` overrides TrainConfig's own defaults."""
    d = {**asdict(TrainConfig()), **defaults}
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, default=d["batch_size"])
    opt.add_argument("--max-iters", type=int, default=None,
                     help=f"training steps (default {d['max_iters']}; with --resume, the saved value)")
    opt.add_argument("--lr", type=float, default=d["lr"], help="peak learning rate, reached after warm-up")
    opt.add_argument("--min-lr", type=float, default=d["min_lr"], help="where the cosine schedule ends")
    opt.add_argument("--warmup-iters", type=int, default=d["warmup_iters"])
    opt.add_argument("--schedule", choices=SCHEDULES, default=d["schedule"],
                     help="cosine: linear warm-up, then cosine decay to --min-lr; noam: the paper's linear "
                          "warm-up, then lr ~ 1/sqrt(step)")
    opt.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    opt.add_argument("--beta1", type=float, default=d["beta1"], help="Adam/AdamW first-moment decay")
    opt.add_argument("--beta2", type=float, default=d["beta2"], help="Adam/AdamW second-moment decay")
    opt.add_argument("--grad-clip", type=float, default=d["grad_clip"])
    opt.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=d["optimizer"])
    opt.add_argument("--eval-interval", type=int, default=d["eval_interval"])
    opt.add_argument("--eval-iters", type=int, default=d["eval_iters"])
    opt.add_argument("--patience", type=int, default=d["patience"],
                     help="early stopping after this many evaluations without improvement (0: off)")
    opt.add_argument("--seed", type=int, default=d["seed"])
    parser.set_defaults(default_max_iters=d["max_iters"])
    return opt


def train_config_from_args(args, out_dir, data=""):
    return TrainConfig(batch_size=args.batch_size, max_iters=args.max_iters or args.default_max_iters, lr=args.lr,
                       min_lr=args.min_lr, warmup_iters=args.warmup_iters, weight_decay=args.weight_decay,
                       beta1=args.beta1, beta2=args.beta2,
                       grad_clip=args.grad_clip, optimizer=args.optimizer, eval_interval=args.eval_interval,
                       eval_iters=args.eval_iters, patience=args.patience, seed=args.seed, out_dir=str(out_dir),
                       data=data, schedule=args.schedule)


def resume_meta(out_dir, max_iters):
    """(meta of out_dir/last.npz, its TrainConfig with max_iters replaced if given)."""
    _, meta = load_checkpoint(out_dir / "last.npz")
    saved = dict(meta["train_config"])
    if max_iters is not None:
        saved["max_iters"] = max_iters
    return meta, TrainConfig.from_dict(saved)


def print_config(model_config, train_config, **extra):
    for name, value in extra.items():
        print(f"{name} config:", json.dumps(value))
    print("model config:", json.dumps(model_config.to_dict()))
    print("training config:", json.dumps(asdict(train_config)))


def run_training(args, model, data, config, tokenizer, kind, description, info=None):
    """What every training command does once it has a model and its data: print what it trains,
    save config.json, continue from last.npz with --resume, train, and time it. Returns the
    Trainer, or None when Ctrl-C stopped training (last.npz then holds the state to resume from)."""
    out_dir = Path(args.out_dir)
    sections = {"task": info} if info else {}
    print(description)
    print(f"model: {model.num_params():,} parameters")
    print_config(model.config, config, **sections)
    write_run_config(out_dir, **sections, model=model.config.to_dict(), training=asdict(config))
    trainer = Trainer(model, data, config, tokenizer, kind=kind, info=info)
    if args.resume:
        trainer.restore(out_dir / "last.npz")
        print(f"resumed from {out_dir / 'last.npz'} at step {trainer.step}")
    start_step, t0 = trainer.step, time.perf_counter()
    try:
        trainer.fit()
    except KeyboardInterrupt:
        return None
    elapsed = time.perf_counter() - t0
    steps = trainer.step - start_step
    per_step = f", {1000 * elapsed / steps:.0f} ms/step" if steps else ""
    print(f"training wall time: {format_duration(elapsed)} ({elapsed:.0f} s) for {steps} steps{per_step}")
    return trainer


def format_duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s"


USING_COMMAND = {"gpt": "sample", "seq2seq": "translate", "classifier": "classify"}


def load_trained(args, kind):
    """(model, tokenizer) from --out-dir/--checkpoint.npz, which must hold a `kind` model; best
    falls back to last when no evaluation has improved yet."""
    out_dir = Path(args.out_dir)
    path = out_dir / f"{args.checkpoint}.npz"
    if not path.exists() and args.checkpoint == "best":
        path = out_dir / "last.npz"
    model, tokenizer, meta = load_model(path)
    if meta["kind"] != kind:
        raise ValueError(f"{path} holds a {meta['kind']} model; use {USING_COMMAND[meta['kind']]}")
    return model, tokenizer
