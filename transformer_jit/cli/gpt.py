"""Commands for the GPT: train (a character-level GPT on a text file) and sample (from a trained one)."""
import argparse
from pathlib import Path

from ..data.text import TextDataset, default_corpus, load_text
from ..data.tokenizers import CharTokenizer
from ..models import GPT, GPTConfig
from .common import add_optimisation_args, load_trained, resume_meta, run_training, train_config_from_args


def add_commands(commands):
    fmt = argparse.ArgumentDefaultsHelpFormatter
    train = commands.add_parser("train", help="train a character-level GPT", formatter_class=fmt)
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
    train.set_defaults(run=train_gpt)

    sample = commands.add_parser("sample", help="generate text from a trained model", formatter_class=fmt)
    sample.add_argument("--out-dir", default="out")
    sample.add_argument("--checkpoint", choices=["best", "last"], default="best")
    sample.add_argument("--prompt", default="\n")
    sample.add_argument("--max-new-tokens", type=int, default=500)
    sample.add_argument("--temperature", type=float, default=0.8)
    sample.add_argument("--top-k", type=int, default=None)
    sample.add_argument("--seed", type=int, default=None)
    sample.set_defaults(run=sample_gpt)


def train_gpt(args):
    out_dir = Path(args.out_dir)
    if args.resume:
        meta, config = resume_meta(out_dir, args.max_iters)
        model_config = GPTConfig.from_dict(meta["model_config"])
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
    description = (f"data: {config.data or 'built-in corpus'} ({len(text):,} characters, "
                   f"vocabulary {tokenizer.vocab_size})")
    trainer = run_training(args, model, data, config, tokenizer, "gpt", description)
    if trainer is None:
        return 130
    prompt = "\n" if "\n" in tokenizer.stoi else tokenizer.chars[0]
    out = model.generate(tokenizer.encode(prompt)[None, :], args.sample_tokens, temperature=0.8, seed=config.seed)
    print(f"best validation loss {trainer.best_val_loss:.4f}; checkpoints in {out_dir}/")
    print("--- sample ---")
    print(tokenizer.decode(out[0]))
    return 0


def sample_gpt(args):
    model, tokenizer = load_trained(args, "gpt")
    if not args.prompt:
        raise ValueError("the prompt must not be empty")
    idx = tokenizer.encode(args.prompt)[None, :]
    out = model.generate(idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                         seed=args.seed, progress=True)
    print(tokenizer.decode(out[0]))
    return 0
