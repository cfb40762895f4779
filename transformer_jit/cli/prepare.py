"""The prepare command: a text file to token files that training memory-maps.

    transformer-jit prepare --data corpus.txt --tokenizer bpe --vocab-size 4096 --out-dir data/corpus
    transformer-jit train --data data/corpus
"""
from pathlib import Path

from ..data.prepare import prepare
from ..util.overlap import check_apart
from .common import bpe_vocab_size


def add_commands(commands, common):
    p = commands.add_parser("prepare", help="encode a text file into token files (train.bin, val.bin)",
                            parents=[common])
    p.add_argument("--data", required=True, help="the UTF-8 text file, read in chunks (any size)")
    p.add_argument("--tokenizer", default="char",
                   help="char, bpe (a byte-level BPE trained on the text), or a directory holding a pretrained "
                        "one: vocab.json + merges.txt, or encoder.json + vocab.bpe (default: char)")
    p.add_argument("--vocab-size", type=bpe_vocab_size, default=None,
                   help="the new BPE vocabulary's size, <|endoftext|> included")
    p.add_argument("--out-dir", required=True, help="where train.bin, val.bin, tokenizer.json and meta.json go: a "
                   "new or empty directory, or one that holds token files only")
    p.add_argument("--overwrite", action="store_true", help="replace token files already in --out-dir (in one step, "
                   "once the new ones are complete)")
    p.set_defaults(run=prepare_cmd)


def prepare_cmd(args):
    out_dir = Path(args.out_dir)
    tokenizer_dir = "" if args.tokenizer in ("char", "bpe") else args.tokenizer
    check_apart("--out-dir", out_dir, [("--data", args.data), ("--tokenizer", tokenizer_dir)])
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out-dir {out_dir} is a file, not a directory")
    if (out_dir / "meta.json").exists() and not args.overwrite:
        raise ValueError(f"{out_dir} already holds token files: replace them with --overwrite")
    if args.vocab_size is not None and args.tokenizer != "bpe":
        raise ValueError("--vocab-size is for a new BPE tokenizer (--tokenizer bpe)")
    meta = prepare(args.data, args.tokenizer, out_dir, args.vocab_size)
    tokens = meta["tokens"]
    print(f"{out_dir}: {tokens['train']:,} training and {tokens['val']:,} validation tokens "
          f"({meta['dtype']}, vocabulary {meta['vocab_size']:,}) from {meta['source']['bytes']:,} bytes")
    print(f"train on them with: transformer-jit train --data {out_dir}")
    return 0
