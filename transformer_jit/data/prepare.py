"""A text file to token files, streamed in chunks: a corpus larger than memory goes through.

    prepare("corpus.txt", "bpe", "data/corpus", vocab_size=4096)

The last tenth of the file (from the start of a line) becomes the validation split. The tokenizer
is a character tokenizer of every character in the file, a byte-level BPE trained on its first
BPE_SAMPLE bytes, or a pretrained BPE read from a directory (vocab.json + merges.txt, or
encoder.json + vocab.bpe). Special tokens' texts in the corpus (<|endoftext|> between documents)
become their tokens.
"""
import codecs
import hashlib
from pathlib import Path

from tqdm.auto import tqdm

from ..util.atomic import check_replaceable
from ..util.regular_file import check_readable_file
from .token_files import TOKEN_DIR_FILES, write_token_dir
from .tokenizers import BPETokenizer, CharTokenizer
from .tokenizers.bpe_train import check_vocab_size

CHUNK = 1 << 24        # bytes read and encoded at a time
BPE_SAMPLE = 1 << 26   # bytes of the corpus a new BPE vocabulary is trained on
VAL_FRACTION = 0.1


def prepare(path, tokenizer, out_dir, vocab_size=None, progress=True):
    """Write train.bin, val.bin, tokenizer.json and meta.json for the UTF-8 text file `path`.
    tokenizer: "char", "bpe" (with vocab_size) or a directory holding a pretrained BPE.
    Returns the meta.json dict.

    Token files already in out_dir are replaced in one step when the new ones are complete; until
    then, and after any failure, they stay as they were (token_files.py: write_token_dir). An
    out_dir that holds other files is refused before any work."""
    check_replaceable(out_dir, TOKEN_DIR_FILES, "token files")
    path = Path(path)
    check_readable_file(path, "data file")
    if tokenizer == "bpe" and vocab_size is not None:
        check_vocab_size(vocab_size)  # before the sample is read and trained on
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path} is empty")
    cut = _split_point(path, size)
    tok = _tokenizer(path, size, tokenizer, vocab_size, progress)
    digest = hashlib.sha256()
    with tqdm(total=size, desc="encoding", unit="B", unit_scale=True, disable=None if progress else True) as bar:
        def encoded(start, end):
            texts = _read_text(path, start, end, digest, bar)
            if isinstance(tok, BPETokenizer):
                return tok.encode_chunks(texts, allowed_special="all")
            return (tok.encode(text) for text in texts)

        return write_token_dir(out_dir, tok, {"train": encoded(0, cut), "val": encoded(cut, size)},
                               lambda: {"name": path.name, "bytes": size, "sha256": digest.hexdigest()})


def _tokenizer(path, size, kind, vocab_size, progress):
    if kind == "char":
        chars = set()
        with tqdm(total=size, desc="reading characters", unit="B", unit_scale=True,
                  disable=None if progress else True) as bar:
            for text in _read_text(path, 0, size, None, bar):
                chars.update(text)
        return CharTokenizer(sorted(chars))
    if kind == "bpe":
        if vocab_size is None:
            raise ValueError("a new BPE tokenizer needs a vocabulary size (--vocab-size)")
        end = _line_start(path, min(size, BPE_SAMPLE)) if size > BPE_SAMPLE else size
        return BPETokenizer.train("".join(_read_text(path, 0, end, None, None)), vocab_size, progress=progress)
    if Path(kind).is_dir():
        return BPETokenizer.from_pretrained(kind)
    raise ValueError(f"the tokenizer must be 'char', 'bpe' or a directory with a pretrained one, got {kind!r}")


def _read_text(path, start, end, digest, bar):
    """The UTF-8 text of bytes [start, end) of the file, in chunks of about CHUNK bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as f:
        f.seek(start)
        at = start
        while at < end:
            data = f.read(min(CHUNK, end - at))
            if not data:
                break
            if digest is not None:
                digest.update(data)
            try:
                text = decoder.decode(data, final=at + len(data) >= end)
            except UnicodeDecodeError as e:
                raise ValueError(f"{path} is not UTF-8 text (byte {at + e.start:,})") from None
            at += len(data)
            if bar is not None:
                bar.update(len(data))
            yield text


def _split_point(path, size):
    """Where validation starts: the start of the line that holds byte (1 - VAL_FRACTION) * size,
    so both splits are whole lines (whole characters at least)."""
    return _line_start(path, int(size * (1 - VAL_FRACTION)))


def _line_start(path, near):
    """The first byte after a newline at or after `near`, else the first character boundary."""
    with open(path, "rb") as f:
        f.seek(near)
        window = f.read(1 << 20)
    newline = window.find(b"\n")
    if newline >= 0:
        return near + newline + 1
    skip = next((i for i, b in enumerate(window) if b & 0xC0 != 0x80), len(window))  # not a UTF-8 continuation
    return near + skip
