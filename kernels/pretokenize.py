"""GPT-2's pre-tokenizer: its regular expression run as a state machine over UTF-8 bytes.

GPT-2 cuts text into pieces with
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
and byte-pair merges never cross a piece boundary. A regex engine tries the alternatives in order
at the end of the previous piece; the pattern needs only the class of each character (letter,
number, white space, other) and a few literal bytes, so one pass that looks at most two
characters ahead finds the same pieces (see `piece_end`).

`classes` is a uint8 table over all code points (0x110000 entries) holding OTHER, LETTER, NUMBER
or SPACE, built once by the caller from Unicode's general categories (L*, N*) and its White_Space
property. The text is valid UTF-8 (Python encoded it), so its characters are decoded unchecked.
"""
import numpy as np

from ._jit import kernel

OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3

APOSTROPHE, BLANK = 0x27, 0x20  # ' starts the contractions; only U+0020 is the optional space of " ?"


@kernel
def utf8_char(data, i):
    """(code point, length in bytes) of the character whose first byte is data[i]."""
    b = np.int64(data[i])
    if b < 0x80:
        return b, 1
    if b < 0xE0:
        return ((b & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F), 2
    if b < 0xF0:
        return ((b & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6) | (np.int64(data[i + 2]) & 0x3F), 3
    return (((b & 0x07) << 18) | ((np.int64(data[i + 1]) & 0x3F) << 12) | ((np.int64(data[i + 2]) & 0x3F) << 6)
            | (np.int64(data[i + 3]) & 0x3F)), 4


@kernel
def _contraction_end(data, start, end):
    """End of 's 't 'm 'd (start + 2) or 're 've 'll (start + 3) at data[start] == ', else start.
    Lower case only: GPT-2's pattern does not list 'S, 'T, ..."""
    if start + 1 < end:
        b1 = data[start + 1]
        if b1 == 0x73 or b1 == 0x74 or b1 == 0x6D or b1 == 0x64:  # s t m d
            return start + 2
        if start + 2 < end:
            b2 = data[start + 2]
            if (b1 == 0x72 and b2 == 0x65) or (b1 == 0x76 and b2 == 0x65) or (b1 == 0x6C and b2 == 0x6C):  # re ve ll
                return start + 3
    return start


@kernel
def _run_end(data, start, end, classes, cls):
    """End of the run of characters of class `cls` that starts at data[start]."""
    i = start
    while i < end:
        cp, n = utf8_char(data, i)
        if classes[cp] != cls:
            break
        i += n
    return i


@kernel
def piece_end(data, start, end, classes):
    """End of the piece that starts at data[start] (start < end); the next piece starts there.

    data     (n,) uint8, UTF-8 text; the pieces of data[start:end] are the pattern's matches
             in that slice alone (end is the end of the text, or a special token's start)
    classes  (0x110000,) uint8 OTHER / LETTER / NUMBER / SPACE per code point

    The alternatives, in the pattern's order:
      1. a contraction 's 't 're 've 'm 'll 'd;
      2-4. an optional U+0020 and then a maximal run of letters, of numbers, or of other
           characters: the space belongs to the run when the character after it is not white
           space, so " ?" is decided by one character of look-ahead;
      5. white space: \\s+(?!\\S) takes the run but leaves its last character when a non-space
           follows (that character then starts the next piece, e.g. the space of " word"),
           unless the run is that one character, which \\s+ then takes whole.
    """
    b0 = data[start]
    if b0 == APOSTROPHE:
        c = _contraction_end(data, start, end)
        if c > start:
            return c
    cp, n = utf8_char(data, start)
    cls = classes[cp]
    run = start
    if b0 == BLANK and start + 1 < end:
        cp1, n1 = utf8_char(data, start + 1)
        if classes[cp1] != SPACE:
            cls = classes[cp1]
            run = start + 1
    if cls != SPACE:
        return _run_end(data, run, end, classes, cls)
    # White space from `start`: find the run's last character and what follows it.
    last = start
    i = start + n
    while i < end:
        cp, n = utf8_char(data, i)
        if classes[cp] != SPACE:
            break
        last = i
        i += n
    if i == end or last == start:
        return i
    return last


@kernel
def _splits_before(data, i, classes):
    """True if a piece certainly starts at data[i]: data[i] is white space and data[i - 1] an ASCII
    character that is not. No piece holds white space after a non-space character (only
    contractions and ` ?X+` runs hold non-space characters, and those end before white space), and
    the pieces from a boundary on depend on the text after it alone, so text cut there encodes in
    two halves exactly as it does whole."""
    prev = data[i - 1]
    return data[i] < 0x80 and classes[data[i]] == SPACE and prev < 0x80 and classes[prev] != SPACE


@kernel
def split_point(data, start, end, classes):
    """The first i in (start, end) where `_splits_before` holds, or end if there is none."""
    for i in range(start + 1, end):
        if _splits_before(data, i, classes):
            return i
    return end


@kernel
def last_split_point(data, start, end, classes):
    """The last i in (start, end) where `_splits_before` holds, or start if there is none."""
    for i in range(end - 1, start, -1):
        if _splits_before(data, i, classes):
            return i
    return start


@kernel
def pretokenize(ends, data, start, end, classes):
    """Write the end of every piece of data[start:end] into `ends`; returns how many there are.

    ends     (m,) int64, written; m >= end - start is always enough (every piece has a byte)
    """
    k = 0
    i = start
    while i < end:
        i = piece_end(data, i, end, classes)
        ends[k] = i
        k += 1
    return k
