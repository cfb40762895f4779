"""Command line: `transformer-jit train` and `transformer-jit sample` (also `python -m transformer_jit`)."""
import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .checkpoint import load_checkpoint, split_prefix
from .data import TextDataset, default_corpus, load_text
from .gpt import GPT, GPTConfig
from .optim import OPTIMIZERS
from .tokenizer import CharTokenizer
from .trainer import TrainConfig, Trainer, write_run_config


def build_parser():
    parser = argparse.ArgumentParser(prog="transformer-jit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a character-level GPT",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--data", default="", help="UTF-8 text file; empty uses the built-in corpus (Python's help topics)")
    train.add_argument("--out-dir", default="out", help="where checkpoints, config.json and metrics.csv go")
    train.add_argument("--resume", action="store_true", help="continue the run saved in --out-dir")
    model = train.add_argument_group("model")
    model.add_argument("--n-layer", type=int, default=4)
    model.add_argument("--n-head", type=int, default=4)
    model.add_argument("--n-embd", type=int, default=128)
    model.add_argument("--block-size", type=int, default=64)
    model.add_argument("--dropout", type=float, default=0.0)
    model.add_argument("--no-bias", action="store_true", help="no biases in linear and layer-norm layers")
    model.add_argument("--positional", choices=["learned", "sinusoidal"], default="learned")
    opt = train.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, default=12)
    opt.add_argument("--max-iters", type=int, default=None, help="training steps (default 1000; with --resume, the saved value)")
    opt.add_argument("--lr", type=float, default=1e-3)
    opt.add_argument("--min-lr", type=float, default=1e-4)
    opt.add_argument("--warmup-iters", type=int, default=100)
    opt.add_argument("--weight-decay", type=float, default=0.1)
    opt.add_argument("--grad-clip", type=float, default=1.0)
    opt.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adamw")
    opt.add_argument("--eval-interval", type=int, default=250)
    opt.add_argument("--eval-iters", type=int, default=20)
    opt.add_argument("--patience", type=int, default=0, help="early stopping after this many evaluations without improvement (0: off)")
    opt.add_argument("--seed", type=int, default=1337)
    opt.add_argument("--sample-tokens", type=int, default=300, help="length of the sample printed at the end")

    sample = commands.add_parser("sample", help="generate text from a trained model",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sample.add_argument("--out-dir", default="out")
    sample.add_argument("--checkpoint", choices=["best", "last"], default="best")
    sample.add_argument("--prompt", default="\n")
    sample.add_argument("--max-new-tokens", type=int, default=500)
    sample.add_argument("--temperature", type=float, default=0.8)
    sample.add_argument("--top-k", type=int, default=None)
    sample.add_argument("--seed", type=int, default=None)
    return parser


def train(args):
    out_dir = Path(args.out_dir)
    if args.resume:
        _, meta = load_checkpoint(out_dir / "last.npz")
        model_config = GPTConfig(**meta["model_config"])
        saved = dict(meta["train_config"])
        if args.max_iters is not None:
            saved["max_iters"] = args.max_iters
        config = TrainConfig.from_dict(saved)
        tokenizer = CharTokenizer.from_dict(meta["tokenizer"])
        text = load_text(config.data) if config.data else default_corpus()
    else:
        text = load_text(args.data) if args.data else default_corpus()
        tokenizer = CharTokenizer.from_text(text)
        model_config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                                 n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout,
                                 bias=not args.no_bias, positional=args.positional)
        config = TrainConfig(batch_size=args.batch_size, max_iters=args.max_iters or 1000, lr=args.lr,
                             min_lr=args.min_lr, warmup_iters=args.warmup_iters, weight_decay=args.weight_decay,
                             grad_clip=args.grad_clip, optimizer=args.optimizer, eval_interval=args.eval_interval,
                             eval_iters=args.eval_iters, patience=args.patience, seed=args.seed,
                             out_dir=str(out_dir), data=args.data)
    data = TextDataset(tokenizer.encode(text), model_config.block_size)
    model = GPT(model_config, seed=config.seed)
    print(f"data: {config.data or 'built-in corpus'} ({len(text):,} characters, vocabulary {tokenizer.vocab_size})")
    print(f"model: {model.num_params():,} parameters")
    print("configuration:", json.dumps({"model": model_config.to_dict(), "training": asdict(config)}, indent=2))
    write_run_config(out_dir, model=model_config.to_dict(), training=asdict(config))
    trainer = Trainer(model, data, config, tokenizer)
    if args.resume:
        trainer.restore(out_dir / "last.npz")
        print(f"resumed from {out_dir / 'last.npz'} at step {trainer.step}")
    try:
        trainer.fit()
    except KeyboardInterrupt:
        return 130
    prompt = "\n" if "\n" in tokenizer.stoi else tokenizer.chars[0]
    out = model.generate(tokenizer.encode(prompt)[None, :], args.sample_tokens, temperature=0.8, seed=config.seed)
    print(f"best validation loss {trainer.best_val_loss:.4f}; checkpoints in {out_dir}/")
    print("--- sample ---")
    print(tokenizer.decode(out[0]))
    return 0


def load_gpt(path):
    """A GPT and its tokenizer from a checkpoint written by the trainer."""
    arrays, meta = load_checkpoint(path)
    if meta.get("kind") != "gpt":
        raise ValueError(f"{path} holds a {meta.get('kind')!r} model, not a GPT")
    model = GPT(GPTConfig(**meta["model_config"]))
    model.load_state_dict(split_prefix(arrays, "model."))
    return model, CharTokenizer.from_dict(meta["tokenizer"])


def sample(args):
    out_dir = Path(args.out_dir)
    path = out_dir / f"{args.checkpoint}.npz"
    if not path.exists() and args.checkpoint == "best":
        path = out_dir / "last.npz"
    model, tokenizer = load_gpt(path)
    if not args.prompt:
        raise ValueError("the prompt must not be empty")
    idx = tokenizer.encode(args.prompt)[None, :]
    out = model.generate(idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                         seed=args.seed, progress=True)
    print(tokenizer.decode(out[0]))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    command = {"train": train, "sample": sample}[args.command]
    try:
        return command(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
