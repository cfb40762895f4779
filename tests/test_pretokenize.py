"""GPT-2's pre-tokenizer (kernels/pretokenize.py) and its character classes against the regex
engines that run GPT-2's pattern: tiktoken's (in Rust) for the classes of every code point, the
`regex` module (tiktoken's own dependency) for the pieces."""
import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from transformer_jit.data.tokenizers.unicode_classes import N_CODE_POINTS, build_code_point_classes, code_point_classes
from transformer_jit.kernels._jit import interpreted
from transformer_jit.kernels.pretokenize import LETTER, NUMBER, SPACE, last_split_point, pretokenize, split_point

# GPT-2's own pattern, from its published source (see the file), not this project's constant
GPT2_PATTERN = json.loads((Path(__file__).parent / "data" / "gpt2_published.json").read_text("utf-8"))["pattern"]

# Characters that exercise every branch: contractions (and their upper case), letters and
# numbers of several scripts, the space and other white space (U+00A0, U+3000, U+2028, U+0085;
# U+001C is white space to str.isspace but not to Unicode), punctuation, emoji.
TRICKY = list("aAbzé日ß1٣Ⅻ½ 's't'S'T'r're've'll'd'm\t\n\r.,!?-_@") + ["\u00a0", "\u3000", "\u2028", "\x85", "\x1c",
                                                                    "🎉", "\u0301"]


def pieces(text):
    data = np.frombuffer(text.encode("utf-8"), np.uint8)
    ends = np.empty(len(data), np.int64)
    n = pretokenize(ends, data, 0, len(data), code_point_classes())
    starts = np.concatenate([[0], ends[:n - 1]]).astype(np.int64)
    return [data[s:e].tobytes().decode("utf-8") for s, e in zip(starts, ends[:n])]


def test_classes_match_tiktoken_on_every_code_point():
    """tiktoken's \\p{L}, \\p{N} and \\s, code point by code point: one encode of all code points per
    class, with single bytes as the whole vocabulary, returns exactly the characters that match.
    They agree on every code point this Python's Unicode version assigns; tiktoken's engine may
    know a newer version, whose new letters and digits are unassigned (OTHER) here."""
    tiktoken = pytest.importorskip("tiktoken")
    classes = code_point_classes()
    text = "".join(map(chr, [*range(0xD800), *range(0xE000, N_CODE_POINTS)]))  # no surrogates
    for pattern, cls in ((r"\p{L}", LETTER), (r"\p{N}", NUMBER), (r"\s", SPACE)):
        single_bytes = {bytes([b]): b for b in range(256)}
        enc = tiktoken.Encoding(f"class {pattern}", pat_str=pattern, mergeable_ranks=single_bytes, special_tokens={})
        theirs = np.zeros(N_CODE_POINTS, bool)
        theirs[list(map(ord, bytes(enc.encode_ordinary(text)).decode("utf-8")))] = True
        ours = classes == cls
        differ = np.flatnonzero(theirs != ours)
        unassigned = [unicodedata.category(chr(c)) == "Cn" for c in differ]
        assert all(unassigned), (pattern, [hex(c) for c, u in zip(differ, unassigned) if not u][:10])
        assert not ours[differ].any(), "a class here that tiktoken does not have"
        if cls == SPACE:
            assert len(differ) == 0


def test_white_space_is_unicode_white_space_not_isspace():
    classes = code_point_classes()
    assert [c for c in range(0x20) if classes[c] == SPACE] == [9, 10, 11, 12, 13]
    assert all(chr(c).isspace() for c in range(0x1C, 0x20))
    assert classes[0x85] == classes[0xA0] == classes[0x3000] == classes[0x2028] == SPACE


def test_cached_table_is_the_built_one():
    assert np.array_equal(code_point_classes(), build_code_point_classes())


def test_pieces_match_the_regex_module():
    regex = pytest.importorskip("regex")
    rng = np.random.default_rng(0)
    pattern = regex.compile(GPT2_PATTERN)
    for _ in range(3000):
        text = "".join(rng.choice(TRICKY, size=rng.integers(0, 25)))
        assert pieces(text) == pattern.findall(text), repr(text)
    for text in ("", " ", "  ", "a", " a", "  a", "\n\na", "x  ", "it's", "IT'S", "'''s", " 's", "''re", "'r", "'",
                 "a\u00a0b", "1 23  456", "\t\t x", "¿Qué tal?", "日本語 テキスト"):
        assert pieces(text) == pattern.findall(text), repr(text)


@pytest.mark.parametrize("text", ["ab cd", "word\nnext", "x. y", "a\u3000b", "é b"])
def test_split_points_are_piece_boundaries(text):
    """A split point is where a piece certainly starts: white space after an ASCII non-space."""
    data = np.frombuffer(text.encode("utf-8"), np.uint8)
    classes = code_point_classes()
    first = split_point(data, 0, len(data), classes)
    last = last_split_point(data, 0, len(data), classes)
    boundaries = np.cumsum([len(p.encode("utf-8")) for p in pieces(text)]).tolist()
    for cut in {first, last} - {0, len(data)}:
        assert cut in boundaries
        assert data[cut] < 0x80 and classes[data[cut]] == SPACE and classes[data[cut - 1]] != SPACE
    expected = {"ab cd": 2, "word\nnext": 4, "x. y": 2, "a\u3000b": len(data), "é b": len(data)}[text]
    assert first == expected


def test_kernel_runs_interpreted():
    text = "Hi there's 12\n\n  é!"
    data = np.frombuffer(text.encode("utf-8"), np.uint8)
    ends = np.zeros(len(data), np.int64)
    with interpreted(pretokenize) as f:
        n = f(ends, data, 0, len(data), code_point_classes())
    starts = [0, *ends[:n - 1]]
    assert [data[s:e].tobytes().decode() for s, e in zip(starts, ends[:n])] == pieces(text)
