"""Command line (also `python -m transformer_jit`):

    transformer-jit train | sample                         a character-level GPT
    transformer-jit train-seq2seq | translate              an encoder-decoder on a built-in task (dates)
    transformer-jit train-classifier | classify            an encoder classifier on a built-in task (brackets)
"""
import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from .checkpoint import load_checkpoint, split_prefix
from .data import TextDataset, default_corpus, load_text
from .cli_common import add_optimisation_args, print_config, resume_meta, train_config_from_args
from .cli_seq import add_commands
from .gpt import GPT, GPTConfig
from .tokenizer import CharTokenizer
from .trainer import Trainer, write_run_config


def build_parser():
    parser = argparse.ArgumentParser(prog="transformer-jit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    opt = add_optimisation_args(train, {"max_iters": 1000})
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

    add_commands(commands)  # train-seq2seq, train-classifier, translate, classify: each sets args.run
    return parser


def train(args):
    out_dir = Path(args.out_dir)
    if args.resume:
        meta, config = resume_meta(out_dir, args.max_iters)
        model_config = GPTConfig(**meta["model_config"])
        tokenizer = CharTokenizer.from_dict(meta["tokenizer"])
        text = load_text(config.data) if config.data else default_corpus()
    else:
        text = load_text(args.data) if args.data else default_corpus()
        tokenizer = CharTokenizer.from_text(text)
        model_config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                                 n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout,
                                 bias=not args.no_bias, positional=args.positional)
        config = train_config_from_args(args, out_dir, data=args.data)
    data = TextDataset(tokenizer.encode(text), model_config.block_size)
    model = GPT(model_config, seed=config.seed)
    print(f"data: {config.data or 'built-in corpus'} ({len(text):,} characters, vocabulary {tokenizer.vocab_size})")
    print(f"model: {model.num_params():,} parameters")
    print_config(model_config, config)
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
    command = {"train": train, "sample": sample}.get(args.command) or args.run
    try:
        return command(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
