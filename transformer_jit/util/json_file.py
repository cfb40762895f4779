"""JSON read from files this package did not write itself: every file is untrusted.

Python's json module turns some valid-looking inputs into errors that name nothing (an integer of
thousands of digits, nesting deeper than the interpreter's stack) or into values no reader wants
(NaN, Infinity, 1e999). Here each is one ValueError that names the file; the caller checks the
structure.
"""
import json
import math

from .regular_file import read_regular_file

# vocab.json and tokenizer.json of the largest vocabularies are a few MB; this is far above them.
MAX_JSON_BYTES = 256 * 1024 * 1024
# Long enough for every integer a reader here wants (a 128-bit RNG state is 39 digits).
MAX_INT_DIGITS = 100


def read_json(path, what, limit=MAX_JSON_BYTES):
    """The value of the JSON file `path` (a regular file of at most `limit` bytes)."""
    return parse_json(read_regular_file(path, what, limit), f"{what} {path}")


def parse_json(data, where, object_pairs_hook=None, non_finite=False):
    """The value of the JSON text `data` (bytes in UTF-8, or str); `where` names it in errors.
    non_finite=True accepts NaN and Infinity, as Python's json writes them (a checkpoint's best
    validation loss before the first evaluation)."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{where} is not valid JSON (not UTF-8 text: byte {e.start})") from None
    try:
        return json.loads(data, parse_int=_bounded_int, parse_float=None if non_finite else _finite_float,
                          parse_constant=None if non_finite else _refuse_constant, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise ValueError(f"{where} is not valid JSON (nested too deeply to be read)") from None
    except ValueError as e:  # json.JSONDecodeError, and the two parse hooks
        raise ValueError(f"{where} is not valid JSON ({e})") from None


def _bounded_int(text):
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text):,} digits, more than the {MAX_INT_DIGITS} allowed")
    return int(text)


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]!r} is too large for a float")
    return value


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")
