"""Attention maps as text and as pictures."""
import sys

import numpy as np
import pytest

from transformer_jit.models.attention_maps import SHADES, render_png, render_text


def causal_probs(T, seed=0):
    p = np.tril(np.random.default_rng(seed).random((T, T)) + 0.01)
    return p / p.sum(axis=1, keepdims=True)


def grid(text):
    """The heatmap rows: (row label, cells between the bars)."""
    rows = [line for line in text.splitlines() if line.endswith("|") and " |" in line]
    return [(line.split(" |")[0].strip(), line.split(" |", 1)[1][:-1]) for line in rows]


def test_render_text_shapes_and_shades():
    probs = np.array([[1.0, 0.0, 0.0],
                      [0.5, 0.5, 0.0],
                      [0.2, 0.3, 0.5]])
    text = render_text(probs, ["<bos>", "a", "b"], ["<bos>", "a", "b"])
    rows = grid(text)
    assert [label for label, _ in rows] == ["<bos>", "a", "b"]
    assert all(len(cells) == 3 * 2 for _, cells in rows)  # two characters per cell
    first, second, third = (cells[::2] for _, cells in rows)
    assert first == "@  "  # the largest weight is the darkest shade; masked zeros are blank
    assert second[0] == second[1] and second[2] == " "
    assert SHADES.index(third[0]) < SHADES.index(third[1]) < SHADES.index(third[2]) < len(SHADES) - 1
    header = text.splitlines()[:5]  # "<bos>" is written downwards above its column
    assert "".join(line[len("<bos>") + 2] for line in header) == "<bos>"
    assert text.splitlines()[-1].startswith("3 x 3")


def test_render_text_cross_attention_and_whitespace_labels():
    probs = np.full((2, 4), 0.25)
    text = render_text(probs, ["x", "y"], ["a", " ", "\n", "b"])
    assert "␣" in text and "\\" in text
    assert [cells for _, cells in grid(text)] == ["@" * 8, "@" * 8]  # equal weights, equal shade
    with pytest.raises(ValueError, match="2 x 4 but there are 2 row labels and 3 column labels"):
        render_text(probs, ["x", "y"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="finite"):
        render_text(np.array([[np.nan]]), ["x"], ["y"])


def test_render_text_stays_readable_at_40_tokens():
    labels = list("the quick brown fox jumps over the lazy.")
    text = render_text(causal_probs(40), labels, labels)
    rows = grid(text)
    assert len(rows) == 40 and all(len(cells) == 40 for _, cells in rows)  # one character per cell past 32
    assert max(len(line) for line in text.splitlines()) <= 100
    for i, (_, cells) in enumerate(rows):  # causal: everything right of the diagonal is blank
        assert cells[i + 1:].strip() == "" and " " not in cells[:i + 1]


@pytest.mark.interop
def test_render_png_writes_an_image(tmp_path):
    pytest.importorskip("matplotlib")
    labels = list("abcde")
    probs = np.stack([causal_probs(5, seed) for seed in range(3)])
    path = render_png(probs, labels, labels, tmp_path / "attn.png", title="three heads")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_png_without_matplotlib_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` fail
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(RuntimeError, match=r"render_png needs matplotlib: pip install .*\[plot\]'"):
        render_png(causal_probs(3), list("abc"), list("abc"), tmp_path / "x.png")
