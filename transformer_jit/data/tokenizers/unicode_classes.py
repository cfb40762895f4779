"""The character classes of GPT-2's pattern for every code point, from Python's own Unicode data.

\\p{L} is the general categories Lu Ll Lt Lm Lo, \\p{N} is Nd Nl No, and \\s is the White_Space
property, which `str.isspace` follows except for U+001C-U+001F (information separators, white
space to Python, not to Unicode). Python's `re` has no \\p{...}; `unicodedata` has the categories,
so the table needs no other package. It follows the Unicode version of this Python
(`unicodedata.unidata_version`): a code point assigned only in a later version is OTHER here.

Asking `unicodedata` about 1.1 million code points takes a fraction of a second, so the table is
kept in the user's cache directory ($XDG_CACHE_HOME or ~/.cache, under transformer-jit/), one
file per Unicode version; if that directory cannot be written, each process builds its own.
"""
import functools
import os
import unicodedata
from pathlib import Path

import numpy as np

from ...kernels.pretokenize import LETTER, NUMBER, OTHER, SPACE
from ...util.atomic import atomic_write

N_CODE_POINTS = 0x110000
_NOT_WHITE_SPACE = range(0x1C, 0x20)
_FORMAT = 1  # bump when the meaning of the stored values changes


def build_code_point_classes():
    """(0x110000,) uint8: OTHER, LETTER, NUMBER or SPACE for every code point, from unicodedata."""
    categories = list(map(unicodedata.category, map(chr, range(N_CODE_POINTS))))
    names = sorted(set(categories))
    codes = np.fromiter(map({c: i for i, c in enumerate(names)}.__getitem__, categories), np.uint8, N_CODE_POINTS)
    classes = np.array([LETTER if c[0] == "L" else NUMBER if c[0] == "N" else OTHER for c in names], np.uint8)[codes]
    # White space is in the categories Zs, Zl, Zp and Cc, none of them L or N.
    maybe_space = np.flatnonzero(np.isin(codes, [i for i, c in enumerate(names) if c in ("Zs", "Zl", "Zp", "Cc")]))
    for cp in maybe_space:
        if chr(cp).isspace() and cp not in _NOT_WHITE_SPACE:
            classes[cp] = SPACE
    return classes


def _cache_path():
    """The cache file, or None without a home directory to put it in."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(root):
        return None
    return Path(root) / "transformer-jit" / f"unicode-classes-{unicodedata.unidata_version}-v{_FORMAT}.npy"


def _read_cache(path):
    try:
        classes = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if classes.dtype != np.uint8 or classes.shape != (N_CODE_POINTS,) or classes.max() > SPACE:
        return None
    return classes


def _write_cache(path, classes):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            np.save(f, classes)
    except OSError:
        pass  # a cache that cannot be written only costs the next process the build


@functools.cache
def code_point_classes():
    """The table of `build_code_point_classes`, from the cache file when there is a valid one;
    read-only, one per process."""
    path = _cache_path()
    classes = _read_cache(path) if path else None
    if classes is None:
        classes = build_code_point_classes()
        if path:
            _write_cache(path, classes)
    classes.flags.writeable = False
    return classes
