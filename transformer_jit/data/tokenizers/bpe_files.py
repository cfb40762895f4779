"""GPT-2's vocabulary files, in the two layouts in use, read and written for BPETokenizer.

    Hugging Face   vocab.json   {token: id}        merges.txt   "#version: 0.2", then "left right" per line
    OpenAI         encoder.json {token: id}        vocab.bpe    the same format as merges.txt

Tokens are written in the byte-level alphabet (byte_unicode.py: b" the" is "Ġthe"), so a
merge line's two tokens never hold a space. Merges are in rank order, the first line first.
Special tokens (<|endoftext|>) are in the vocabulary under their own text. Every other entry
must be one of the 256 bytes or made by a merge line, so a merges file that lost lines is refused
rather than its tokens turned into special tokens that match as raw text.
"""
import json
import re
from pathlib import Path

from ...util.atomic import atomic_write
from ...util.json_file import read_json
from ...util.regular_file import read_regular_file
from .byte_unicode import bytes_to_text, text_to_bytes

LAYOUTS = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))
MERGES_HEADER = "#version: 0.2"
# How a vocabulary declares a special token: GPT-2's convention, <|name|> (<|endoftext|>), or an
# entry of Hugging Face's added_tokens.json beside it.
SPECIAL_NAME = re.compile(r"<\|[^|\s]+\|>")
ADDED_TOKENS = "added_tokens.json"


def read_pretrained(directory):
    """(tokens, merges, special_tokens, directory) from a tokenizer directory: tokens as bytes by
    id, merges as (left id, right id) in rank order, special tokens {text: id}. A vocabulary entry
    that is neither one of the 256 bytes nor made by a merge line must be a declared special token
    (SPECIAL_NAME, ADDED_TOKENS)."""
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"tokenizer directory not found: {directory}")
    if not directory.is_dir():
        raise ValueError(f"{directory} is a file, not a tokenizer directory (vocab.json + merges.txt, or "
                         f"encoder.json + vocab.bpe)")
    layout = next((names for names in LAYOUTS if (directory / names[0]).exists()), None)
    if layout is None:
        raise FileNotFoundError(f"{directory} holds no tokenizer: expected vocab.json and merges.txt (Hugging Face's "
                                f"layout) or encoder.json and vocab.bpe (OpenAI's)")
    vocab_path, merges_path = directory / layout[0], directory / layout[1]
    names = _read_vocab(vocab_path)
    merges = _read_merges(merges_path)
    data = {}
    for name in names:
        try:
            data[name] = text_to_bytes(name)
        except ValueError:
            pass  # not byte-level text: a special token, if declared as one
    made = {bytes([b]) for b in range(256)} | {left + right for left, right, _ in merges}
    index = {data[name]: i for i, name in enumerate(names) if name in data and data[name] in made}
    specials = {name: i for i, name in enumerate(names) if not (name in data and data[name] in made)}
    merge_ids = []
    for left, right, line in merges:
        for part in (left, right, left + right):
            if part not in index:
                known = any(data.get(name) == part for name in specials)
                raise ValueError(f"{merges_path} line {line}: {_name(part)} is " + (
                    "neither a byte nor made by any merge line" if known else f"not a token of {vocab_path.name}"))
        merge_ids.append((index[left], index[right]))
    declared = _declared_specials(directory)
    undeclared = [name for name in specials if not (SPECIAL_NAME.fullmatch(name) or name in declared)]
    if undeclared:
        first = undeclared[0]
        raise ValueError(f"{vocab_path}: {len(undeclared)} entries, such as {first!r} (id {specials[first]}), are "
                         f"neither a byte, nor made by a line of {merges_path.name}, nor special tokens (<|name|>, "
                         f"or listed in {ADDED_TOKENS}): the two files do not belong together")
    tokens = [data.get(name, b"") for name in names]
    return tokens, merge_ids, specials, directory


def _declared_specials(directory):
    """The special tokens that added_tokens.json ({token: id}) declares, if the directory has one."""
    path = directory / ADDED_TOKENS
    if not path.exists():
        return set()
    added = read_json(path, "added-tokens file")
    if not isinstance(added, dict):
        raise ValueError(f"{path} must hold a JSON object of token -> id, got {type(added).__name__}")
    return set(added)


def _name(data):
    return repr(bytes_to_text(data))


def _read_vocab(path):
    """The names of the tokens of a vocab.json / encoder.json, by id."""
    vocab = read_json(path, "vocabulary file")
    if not isinstance(vocab, dict) or not vocab:
        raise ValueError(f"{path} must hold a JSON object of token -> id")
    bad = [k for k, v in vocab.items() if not isinstance(v, int) or isinstance(v, bool)]
    if bad:
        raise ValueError(f"{path}: the id of {bad[0]!r} is {vocab[bad[0]]!r}, not an integer")
    names = [None] * len(vocab)
    for name, i in vocab.items():
        if not 0 <= i < len(vocab):
            raise ValueError(f"{path}: {name!r} has id {i}; the {len(vocab)} ids must be 0 .. {len(vocab) - 1}")
        if names[i] is not None:
            raise ValueError(f"{path}: {names[i]!r} and {name!r} both have id {i}")
        names[i] = name
    return names


def _read_merges(path):
    """[(left bytes, right bytes, line number)] of a merges.txt / vocab.bpe, in rank order."""
    raw = read_regular_file(path, "merges file")
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e})") from None
    merges = []
    for number, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        if not line or line.startswith("#version"):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{path} line {number}: expected two tokens separated by one space, got {line!r}")
        try:
            merges.append((text_to_bytes(parts[0]), text_to_bytes(parts[1]), number))
        except ValueError as e:
            raise ValueError(f"{path} line {number}: {e}") from None
    return merges


def write_pretrained(directory, names, merges):
    """Write vocab.json ({name: id} for `names` by id) and merges.txt (the (left, right) name
    pairs of `merges`, in rank order) into `directory`, each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = json.dumps({name: i for i, name in enumerate(names)}, ensure_ascii=False)
    with atomic_write(directory / "vocab.json") as f:
        f.write(vocab.encode("utf-8"))
    with atomic_write(directory / "merges.txt") as f:
        f.write("".join([MERGES_HEADER + "\n", *(f"{a} {b}\n" for a, b in merges)]).encode("utf-8"))
