"""Text to the UTF-8 bytes that the BPE kernels read, and the spans between special tokens."""
import numpy as np

EOT = "<|endoftext|>"


def check_text(text):
    if not isinstance(text, str):
        raise TypeError(f"text to encode must be a str, not {type(text).__name__}")


def utf8(text):
    """The UTF-8 bytes of `text`; ValueError for a lone surrogate, which has none."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"the text holds a lone surrogate {text[e.start]!r} at character {e.start}, which is "
                         f"not Unicode text (no UTF-8 bytes)") from None


def special_spans(data, specials):
    """(starts, ends, ids), (S,) int64 each: the spans of the UTF-8 bytes `data` between
    occurrences of the special tokens {text: id}, each span followed by the id of the special
    token that ends it (-1 after the last span). Where occurrences overlap, the first to start
    wins, and of those the longest."""
    found = []
    for s, token in specials.items():
        b = s.encode("utf-8")
        i = data.find(b)
        while i >= 0:
            found.append((i, -len(b), token))
            i = data.find(b, i + 1)
    starts, ends, ids = [], [], []
    pos = 0
    for i, minus_length, token in sorted(found):
        if i >= pos:
            starts.append(pos)
            ends.append(i)
            ids.append(token)
            pos = i - minus_length
    starts.append(pos)
    ends.append(len(data))
    ids.append(-1)
    return np.array(starts, np.int64), np.array(ends, np.int64), np.array(ids, np.int64)
