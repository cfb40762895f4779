"""Token files: a corpus as flat arrays of token ids on disk, read through memory maps.

    DATA_DIR/train.bin    token ids, flat little-endian uint16 (uint32 past 65,536 tokens), as nanoGPT
    DATA_DIR/val.bin      the same for the validation text
    DATA_DIR/tokenizer.json   the tokenizer that made them (this project's own format)
    DATA_DIR/meta.json        dtype, token counts, the source's size and hash

Training reads each batch's windows from the two files as it needs them, so it holds the model
and a batch, not the corpus. (It reads them with os.preadv rather than through a memory map: the
kernel maps a fault's whole page-cache folio, up to 2 MB, into the process, so random windows from
a mapped file pile the corpus up in the run's resident memory; see docs/performance.md.)
A directory of token files is written beside its place and switched in whole
(util/atomic.py: replaced_directory), so it is always the old set or the new one, never a mix.
"""
import json
import os
from pathlib import Path

import numpy as np

from ..util.atomic import replaced_directory
from ..util.config import is_int
from ..util.json_file import read_json
from ..util.regular_file import check_readable_file, open_regular_file
from .text import TextDataset
from .tokenizers import tokenizer_from_dict

FORMAT = "transformer-jit-tokens"
SPLITS = {"train": "train.bin", "val": "val.bin"}
TOKEN_DIR_FILES = (*SPLITS.values(), "tokenizer.json", "meta.json")


def token_dtype(vocab_size):
    return np.dtype("<u2") if vocab_size <= 65536 else np.dtype("<u4")


def is_token_dir(path):
    return Path(path).is_dir() and (Path(path) / "meta.json").exists()


def write_token_dir(out_dir, tokenizer, splits, source):
    """Write token files: splits maps "train" and "val" to iterables of id arrays; source() describes
    the text (name, bytes, sha256) once they are consumed.

    The files are written into a new directory beside out_dir, which takes out_dir's place in one
    step once they are all complete: a reader finds the old token files or the new ones, and an
    error or an interrupt (Ctrl-C, SIGTERM) at any point leaves out_dir exactly as it was. out_dir
    may be missing, empty, or hold token files; a directory that holds anything else is refused
    (ValueError), since replacing it would delete those files."""
    dtype = token_dtype(tokenizer.vocab_size)
    counts = {}
    with replaced_directory(out_dir, TOKEN_DIR_FILES, "token files") as staging:
        for split, chunks in splits.items():
            counts[split] = 0
            with open(staging / SPLITS[split], "xb") as f:
                for ids in chunks:
                    f.write(np.asarray(ids).astype(dtype, copy=False).tobytes())
                    counts[split] += len(ids)
        (staging / "tokenizer.json").write_bytes(json.dumps(tokenizer.to_dict()).encode("utf-8"))
        meta = {"format": FORMAT, "version": 1, "dtype": dtype.name, "vocab_size": tokenizer.vocab_size,
                "tokens": counts, "source": source()}
        (staging / "meta.json").write_bytes((json.dumps(meta, indent=2) + "\n").encode("utf-8"))
    return meta


def open_token_dir(path, block_size):
    """(TextDataset over the memory-mapped splits, tokenizer, meta) of a token directory; every
    inconsistency is an error naming the file."""
    path = Path(path)
    meta = _read_json(path / "meta.json", "token-file description")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path / 'meta.json'} does not describe token files of this project")
    if meta.get("dtype") not in ("uint16", "uint32") or not is_int(meta.get("vocab_size")):
        raise ValueError(f"{path / 'meta.json'} has no valid dtype (uint16 or uint32) and vocab_size")
    dtype, vocab_size = np.dtype(meta["dtype"]).newbyteorder("<"), meta["vocab_size"]
    saved = _read_json(path / "tokenizer.json", "tokenizer file")
    try:
        tokenizer = tokenizer_from_dict(saved)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path / 'tokenizer.json'} is damaged: {e}") from None
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(f"{path / 'tokenizer.json'} has {tokenizer.vocab_size} tokens but meta.json says {vocab_size}")
    arrays = {}
    for split, name in SPLITS.items():
        file = path / name
        check_readable_file(file, "token file")
        size = file.stat().st_size
        if size % dtype.itemsize:
            raise ValueError(f"{file} holds {size:,} bytes, not a whole number of {dtype.name} ids")
        expected = meta.get("tokens", {}).get(split) if isinstance(meta.get("tokens"), dict) else None
        if size // dtype.itemsize != expected:
            raise ValueError(f"{file} holds {size // dtype.itemsize:,} tokens but meta.json says {expected}")
        if size == 0:
            raise ValueError(f"{file} is empty: the {split} split has no tokens")
        arrays[split] = TokenFile(file, dtype, vocab_size)
    return TextDataset.from_splits(arrays["train"], arrays["val"], block_size), tokenizer, meta


class TokenFile:
    """The ids of a token file, read window by window. Each window is checked against the
    vocabulary, so a damaged file is an error naming it, not an out-of-range embedding row."""

    def __init__(self, path, dtype, vocab_size):
        self.path, self.dtype, self.vocab_size = Path(path), np.dtype(dtype), vocab_size
        self.file = open_regular_file(path, "token file")
        self.fd = self.file.fileno()
        self.length = os.fstat(self.fd).st_size // self.dtype.itemsize

    def __len__(self):
        return self.length

    def __del__(self):
        if getattr(self, "file", None) is not None:
            self.file.close()

    def windows(self, starts, length):
        """(len(starts), length) ids: the window at each start."""
        out = np.empty((len(starts), length), dtype=self.dtype)
        size = length * self.dtype.itemsize
        for row, start in zip(out, starts.tolist()):
            if os.preadv(self.fd, [row], start * self.dtype.itemsize) != size:
                raise ValueError(f"{self.path} ended early: it was changed while training read it")
        if out.size and out.max() >= self.vocab_size:
            raise ValueError(f"{self.path} holds token id {int(out.max())}, outside the vocabulary of "
                             f"{self.vocab_size}")
        return out


def _read_json(path, what):
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} not found: the directory is not (a finished set of) token files")
    return read_json(path, what)
