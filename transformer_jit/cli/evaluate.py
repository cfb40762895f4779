"""The eval command: a GPT's loss, perplexity and bits per byte on a text, the context sliding.

    transformer-jit eval --out-dir out --data input.txt               a run, on a text file
    transformer-jit eval --pretrained gpt2 --data data/corpus         GPT-2, on token files' val.bin
"""
from pathlib import Path

import numpy as np

from ..data.text import load_text
from ..data.token_files import is_token_dir, open_token_dir
from ..data.tokenizers import encode_text
from ..models.perplexity import evaluate_perplexity, token_byte_lengths
from ..models.pretrained import load_pretrained
from .common import add_checkpoint_args, load_trained, positive_int


def add_commands(commands, common):
    p = commands.add_parser("eval", help="a GPT's loss, perplexity and bits per byte on a text", parents=[common])
    add_checkpoint_args(p, "out")
    p.add_argument("--pretrained", default=None, help="evaluate pretrained weights instead of a run: a Hugging "
                   "Face GPT-2 directory or an llm.c file, with its tokenizer beside it")
    p.add_argument("--data", required=True, help="a UTF-8 text file, or a directory of token files made by "
                   "`prepare` (its --split)")
    p.add_argument("--split", choices=["val", "train"], default="val",
                   help="which token file of a --data directory (default: val, the held-out text)")
    p.add_argument("--stride", type=positive_int, default=None,
                   help="tokens between the starts of two windows of block_size tokens; each window scores the "
                        "tokens after the previous one, so each has at least block_size - stride of context "
                        "(default: block_size / 2)")
    p.add_argument("--batch-size", type=positive_int, default=4, help="windows per forward pass (default: 4)")
    p.set_defaults(run=eval_gpt)


def eval_gpt(args):
    if args.pretrained:
        model, tokenizer = load_pretrained(args.pretrained)
    else:
        model, tokenizer = load_trained(args, "gpt")
    block_size = model.config.block_size
    if args.stride is not None and args.stride > block_size:
        raise ValueError(f"--stride {args.stride} is longer than the model's block_size ({block_size})")
    ids, what = read_tokens(args.data, args.split, tokenizer)
    print(f"data: {what}")
    stride = args.stride or max(1, block_size // 2)
    print(f"windows of {block_size} tokens, every {stride} tokens, {args.batch_size} per forward")
    result = evaluate_perplexity(model, ids, stride, args.batch_size, token_byte_lengths(tokenizer), progress=True)
    print(f"loss {result.loss:.6f} (nats per token, over {result.tokens:,} tokens)")
    print(f"perplexity {significant(result.perplexity)}")
    print(f"bits per byte {result.bits_per_byte:.6f} (over {result.bytes:,} bytes)")
    return 0


def read_tokens(path, split, tokenizer):
    """(token ids, a description) of --data: a text file encoded with the model's tokenizer, or
    one split of a token directory, which must have been made with that tokenizer."""
    if is_token_dir(path):
        data, files_tokenizer, _ = open_token_dir(path, 1)
        if files_tokenizer.to_dict() != tokenizer.to_dict():
            raise ValueError(f"--data {path} was made with another tokenizer than the model's: make it with "
                             f"`transformer-jit prepare` and the model's tokenizer")
        file = data.splits[split]
        ids, what = file.windows(np.zeros(1, dtype=np.int64), len(file))[0], file.path
    elif Path(path).is_dir():
        raise ValueError(f"--data {path} is a directory without a finished set of token files: give a UTF-8 text "
                         f"file, or a directory made by `transformer-jit prepare`")
    else:
        text = load_text(path)
        try:
            ids = encode_text(tokenizer, text)
        except ValueError as e:
            raise ValueError(f"--data {path}: {e}") from None
        what = f"{path} ({len(text.encode('utf-8')):,} bytes)"
    if len(ids) < 2:
        raise ValueError(f"--data {path} holds {len(ids)} token(s): perplexity needs at least 2")
    return ids, f"{what}, {len(ids):,} tokens"


def significant(x, digits=6):
    """x >= 1 with at least `digits` significant digits and no exponent: 23.4567, 4.40515, 1234.57."""
    decimals = max(0, digits - 1 - int(np.floor(np.log10(x)))) if x > 0 else digits
    return f"{x:.{decimals}f}"
