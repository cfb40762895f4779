"""Pictures of attention: which source token each target token looks at.

    render_text(probs, row_labels, col_labels)  -> str, a heatmap for the terminal
    render_png(probs_per_head, row_labels, col_labels, path, title=None)  -> a PNG, one panel per head
    class_token_attention(vit, pixels)  -> (n_layer, NH, NP), a vision transformer's class token over its patches

probs is (T, S): row t holds the attention probabilities of query token t over the S key tokens
(for self-attention S = T; for cross-attention S is the source length).
"""
import numpy as np

from ..util.extras import require

SHADES = " .:-=+*#%@"  # light to dark


def _label(token):
    """A token as a short printable label: whitespace made visible, everything else as is."""
    return str(token).replace(" ", "␣").replace("\n", "\\n").replace("\t", "\\t") or "''"


def _check(probs, row_labels, col_labels, ndim):
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != ndim:
        raise ValueError(f"expected a {ndim}-D array of attention probabilities, got shape {probs.shape}")
    T, S = probs.shape[-2:]
    if len(row_labels) != T or len(col_labels) != S:
        raise ValueError(f"attention is {T} x {S} but there are {len(row_labels)} row labels "
                         f"and {len(col_labels)} column labels")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("attention probabilities must be finite and >= 0")
    return probs


def render_text(probs, row_labels, col_labels):
    """A (T, S) attention map as text: one line per row token, one shaded cell per column token.

    Shades run from ' ' to '@' over [0, largest weight in the map]: exact zeros (masked
    positions) stay blank and any positive weight shows at least '.', so a causal mask is
    visible. Column labels are written downwards above their columns; cells are two characters
    wide (one when S > 32, to stay within ~100 columns), which looks roughly square in a terminal.
    """
    probs = _check(probs, row_labels, col_labels, 2)
    T, S = probs.shape
    rows = [_label(t) for t in row_labels]
    cols = [_label(t) for t in col_labels]
    vmax = probs.max() if probs.size else 0.0
    levels = np.zeros(probs.shape, dtype=np.int64)
    if vmax > 0:
        # positive weights map to shades 1..9, so the smallest still differs from a masked 0
        levels = np.where(probs > 0, np.clip(np.ceil(probs / vmax * (len(SHADES) - 1)), 1, len(SHADES) - 1), 0)
    cell = 2 if S <= 32 else 1
    width = max(len(r) for r in rows) if rows else 0
    height = max(len(c) for c in cols) if cols else 0
    lines = []
    for k in range(height):  # column labels, read top to bottom, bottom-aligned on the grid
        chars = [c[k - (height - len(c))] if k >= height - len(c) else " " for c in cols]
        lines.append(" " * (width + 2) + "".join(ch.ljust(cell) for ch in chars).rstrip())
    for label, row in zip(rows, levels):
        lines.append(label.rjust(width) + " |" + "".join(SHADES[int(v)] * cell for v in row) + "|")
    lines.append(f"{T} x {S}; ' ' = 0, '{SHADES[1]}'..'{SHADES[-1]}' = up to {vmax:.3g}")
    return "\n".join(lines)


def render_png(probs_per_head, row_labels, col_labels, path, title=None):
    """Save a grid of heatmaps, one per head, of probs_per_head (NH, T, S) (or one (T, S) map)
    to `path`, on one colour scale from 0 to 1 so heads compare. Needs matplotlib."""
    probs = np.asarray(probs_per_head, dtype=np.float64)
    if probs.ndim == 2:
        probs = probs[None]
    probs = _check(probs, row_labels, col_labels, 3)
    # imported here: matplotlib is an optional extra, and only this function needs it
    Figure = require("matplotlib.figure", "plot", "render_png").Figure
    NH, T, S = probs.shape
    ncols = int(np.ceil(np.sqrt(NH)))  # a squarish grid: 4 heads 2 x 2, 8 heads 3 x 3
    nrows = -(-NH // ncols)
    # Figure() without pyplot: no GUI backend, no global figure list, nothing left open
    fig = Figure(figsize=(0.9 + 0.22 * S * ncols + 0.6 * ncols, 0.9 + 0.22 * T * nrows + 0.6 * nrows),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= NH:
            ax.axis("off")
            continue
        image = ax.imshow(probs[h], vmin=0.0, vmax=1.0, cmap="viridis", aspect="equal")
        ax.set_title(f"head {h}", fontsize=9)
        ax.set_xticks(range(S), [_label(c) for c in col_labels], rotation=90, fontsize=7)
        ax.set_yticks(range(T), [_label(r) for r in row_labels], fontsize=7)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120)
    return path


def class_token_attention(model, pixels):
    """The class token's attention over the patches for one image, in every layer:
    (n_layer, NH, NP) float64, row-major over the grid of patches (reshape the last axis to
    (H / P, W / P) for a picture). pixels: (CI, H, W) or (1, CI, H, W). The class token's weight
    on itself is left out, so a row sums to 1 minus it."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 3:
        pixels = pixels[None]
    if pixels.ndim != 4 or pixels.shape[0] != 1:
        raise ValueError(f"class_token_attention takes one image (CI, H, W), got shape {pixels.shape}")
    maps = model.attention_maps(pixels)
    return np.stack([probs[0, :, 0, 1:] for probs in maps.values()]).astype(np.float64)
