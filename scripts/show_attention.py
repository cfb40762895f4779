"""Show what a trained model attends to, for one input: text heatmaps in the terminal, a PNG on request.

    python scripts/show_attention.py --out-dir out-dates "3rd of March 2021"             # cross-attention
    python scripts/show_attention.py --out-dir out-dates "3rd of March 2021" --map encoder --layer 0
    python scripts/show_attention.py --out-dir out-brackets "([()])" --png brackets.png   # needs matplotlib
    python scripts/show_attention.py --out-dir out-vit held-out --index 3 --png marks.png  # needs Pillow
    python scripts/show_attention.py --out-dir out-vit photo.png                         # or an .npz, --index

For a seq2seq model the input is translated first (greedy), then one teacher-forced pass over that
output gives the maps; a decoder row is labelled with the token that position predicts. For a
classifier, rows and columns are the input's characters (with <cls> in front if it pools a CLS token).
For a vision transformer the input is an image (a PNG or JPEG file, an image of an .npz, or
`held-out`: an image of the split the run scored); the class token's attention over the patches is
printed as a grid of percentages per layer (the mean of the heads, or --head), and --png draws it
over the image, one panel per layer (Pillow, the images extra).
"""
import argparse
import sys

import numpy as np

from transformer_jit.data.image_files import read_images
from transformer_jit.data.image_tasks import image_shape, image_task
from transformer_jit.data.images import prepare_pixels
from transformer_jit.models.attention_maps import class_token_attention, render_png, render_text
from transformer_jit.models.image_classification import vit_preprocessing
from transformer_jit.models.translation import translate
from transformer_jit.train import load_model
from transformer_jit.train.checkpoint import load_checkpoint
from transformer_jit.util.extras import MissingExtra, require

PANEL = 192  # pixels per side of one layer's overlay


def seq2seq_maps(model, tok, text, which):
    """{name: probs (NH, T, S)} of the chosen kind, with row and column labels, and the translation."""
    output = translate(model, tok.src, tok.tgt, [text])[0]
    src = tok.src.encode(text)[None, :]
    tgt_in = tok.tgt.encode(output, bos=True)[None, :model.config.max_tgt_len]  # unfinished: no room for EOS
    maps = model.attention_maps(src, tgt_in)
    predicted = (list(output) + ["<eos>"])[:tgt_in.shape[1]]  # what each decoder position writes
    labels = {"encoder": (list(text), list(text)), "cross": (predicted, list(text)),
              "decoder": (predicted, (["<bos>"] + list(output))[:tgt_in.shape[1]])}[which]
    prefix, suffix = {"encoder": ("encoder", "self_attn"), "cross": ("decoder", "cross_attn"),
                      "decoder": ("decoder", "self_attn")}[which]
    chosen = {name: probs[0] for name, probs in maps.items() if name.startswith(prefix) and name.endswith(suffix)}
    return chosen, labels, f"{text} -> {output}"


def classifier_maps(model, tok, text):
    ids = tok.encode(text)[None, :]
    label = int(model.predict(ids)[0])
    chars = (["<cls>"] if model.config.pooling == "cls" else []) + list(text)
    maps = {name: probs[0] for name, probs in model.attention_maps(ids).items()}
    return maps, (chars, chars), f"{text} -> class {label}"


def vit_maps(model, meta, source, index, head):
    """(the image (H, W, C) uint8, class-token maps (n_layer, H / P, W / P) of `head` or the mean
    of the heads, title)."""
    c = model.config
    if source == "held-out":
        images = image_task(meta["info"]["data"], *c.normalisation).test
    else:
        images = read_images(source, "the input", image_shape(c.image_size), c.num_channels)
    if not 0 <= index < len(images):
        raise ValueError(f"--index {index}: {source} holds {len(images)} images")
    image = images.images[index]
    pixels = prepare_pixels(image[None], vit_preprocessing(c))
    maps = class_token_attention(model, pixels)  # (n_layer, NH, N)
    maps = maps.mean(axis=1) if head is None else maps[:, head]
    H, W = image.shape[:2]
    grid = maps.reshape(len(maps), H // c.patch_size, W // c.patch_size)
    names = c.label_names or [str(i) for i in range(c.n_classes)]
    title = f"{images.sources[index]} -> {names[int(model.predict(pixels)[0])]}"
    if images.labels is not None:
        title += f" (labelled {images.names[images.labels[index]]})"
    return image, grid, title


def print_grids(grid, head):
    for layer, cells in enumerate(grid):
        print(f"\nlayer {layer}, {'mean of the heads' if head is None else f'head {head}'}: % of the class "
              f"token's attention on each patch")
        for row in cells:
            print(" ".join(f"{100 * v:3.0f}" for v in row))


def overlay_png(image, grid, path):
    """One panel per layer: the image in gray, each patch's attention in red (full red: the largest
    weight of any layer)."""
    pil = require("PIL.Image", "images", "--png for a vision transformer")
    gray = image.mean(axis=2) / 255
    base = np.asarray(pil.fromarray(np.uint8(255 * gray)).resize((PANEL, PANEL), pil.NEAREST)) / 255
    panels = []
    for cells in grid:
        heat = np.asarray(pil.fromarray(np.float32(cells / grid.max())).resize((PANEL, PANEL), pil.NEAREST))
        rgb = np.stack([base * (1 - heat) + heat, base * (1 - heat), base * (1 - heat)], axis=2)
        panels += [np.uint8(255 * np.clip(rgb, 0, 1)), np.full((PANEL, 4, 3), 255, np.uint8)]
    pil.fromarray(np.concatenate(panels[:-1], axis=1)).save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("text", help="the input: a text, or for a vision transformer an image file, an .npz or "
                        "held-out")
    parser.add_argument("--index", type=int, default=0, help="vision transformer: which image of an .npz or of "
                        "held-out (default: 0)")
    parser.add_argument("--out-dir", default="out-dates", help="a run of train-seq2seq, train-classifier or train-vit")
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best")
    parser.add_argument("--map", choices=["cross", "encoder", "decoder"], default="cross",
                        help="seq2seq only: cross-attention, encoder or decoder self-attention")
    parser.add_argument("--layer", type=int, default=-1, help="which layer (negative counts from the last)")
    parser.add_argument("--head", type=int, default=None, help="one head (default: every head)")
    parser.add_argument("--png", default=None, help="also save every head of the layer as a PNG (matplotlib); "
                        "a vision transformer: every layer over the image (Pillow)")
    args = parser.parse_args()
    path = f"{args.out_dir}/{args.checkpoint}.npz"
    try:
        kind = load_checkpoint(path, arrays=False)[1]["kind"]  # the description alone, before any model is built
        if args.png:  # a missing package must not come after the text maps
            require(*(("PIL.Image", "images") if kind == "vit" else ("matplotlib", "plot")), "--png")
    except (FileNotFoundError, ValueError, MissingExtra) as e:
        sys.exit(f"error: {e}")
    model, tok, meta = load_model(path)
    if meta["kind"] == "vit":
        try:
            image, grid, title = vit_maps(model, meta, args.text, args.index, args.head)
        except ValueError as e:
            sys.exit(f"error: {e}")
        print(title)
        print_grids(grid, args.head)
        if args.png:
            overlay_png(image, grid, args.png)
            print(f"\nsaved {args.png}")
        return
    try:
        if meta["kind"] == "seq2seq":
            maps, (rows, cols), title = seq2seq_maps(model, tok, args.text, args.map)
        else:
            maps, (rows, cols), title = classifier_maps(model, tok, args.text)
    except ValueError as e:
        sys.exit(f"error: {e}")
    names = list(maps)
    name = names[args.layer]  # IndexError names the problem well enough for a script
    probs = maps[name]  # (NH, T, S)
    heads = range(probs.shape[0]) if args.head is None else [args.head]
    print(title)
    for h in heads:
        print(f"\n{name}, head {h}")
        print(render_text(probs[h], rows, cols))
    if args.png:
        render_png(probs, rows, cols, args.png, title=f"{title}  ({name})")
        print(f"\nsaved {args.png}")


if __name__ == "__main__":
    main()
