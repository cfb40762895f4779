"""GPT-2's byte-level alphabet: the 256 byte values written as 256 printable characters.

GPT-2's vocabulary files store tokens (byte strings) as text. The 188 bytes that are printable
Latin-1 characters ('!' to '~', '¡' to '¬', '®' to 'ÿ') stand for themselves; the other 68
(controls, space, soft hyphen, ...) are written as the characters U+0100, U+0101, ... in byte
order, so that the space byte is 'Ġ' (U+0120) and the newline 'Ċ' (U+010A). Token ids 0-255 of
GPT-2's vocabulary are the bytes in the order of these characters, and so are they here.
"""
_PRINTABLE = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
_EXTRA = [b for b in range(256) if b not in _PRINTABLE]

BYTE_CHARS = [""] * 256  # BYTE_CHARS[b]: the character that stands for byte b
for _i, _b in enumerate(_EXTRA):
    BYTE_CHARS[_b] = chr(0x100 + _i)
for _b in _PRINTABLE:
    BYTE_CHARS[_b] = chr(_b)

# The bytes in the order of their characters: GPT-2's ids 0-255.
BYTE_ORDER = sorted(range(256), key=lambda b: BYTE_CHARS[b])

_ALPHABET = frozenset(BYTE_CHARS)
_TO_TEXT = {b: c for b, c in enumerate(BYTE_CHARS)}
# Alphabet characters to the Latin-1 character of their byte; the other characters below U+0144
# (the end of the alphabet) are deleted, so a text that had any comes out shorter.
_TO_LATIN1 = {**{c: None for c in range(0x144)}, **{ord(c): chr(b) for b, c in enumerate(BYTE_CHARS)}}


def bytes_to_text(data):
    """The byte-level text of a byte string: b' the' -> 'Ġthe'."""
    return bytes(data).decode("latin-1").translate(_TO_TEXT)


def text_to_bytes(text):
    """The byte string of a byte-level text: 'Ġthe' -> b' the'. ValueError if a character is not
    one of the 256 (vocabulary files name the file and line in their own message)."""
    latin1 = text.translate(_TO_LATIN1)
    if len(latin1) == len(text):
        try:
            return latin1.encode("latin-1")
        except UnicodeEncodeError:
            pass  # a character past U+00FF that translate kept: not in the alphabet
    bad = next(c for c in text if c not in _ALPHABET)
    raise ValueError(f"{bad!r} (U+{ord(bad):04X}) is not a character of GPT-2's byte-level alphabet")
