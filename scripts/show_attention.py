"""Show what a trained model attends to, for one input: text heatmaps in the terminal, a PNG on request.

    python scripts/show_attention.py --out-dir out-dates "3rd of March 2021"             # cross-attention
    python scripts/show_attention.py --out-dir out-dates "3rd of March 2021" --map encoder --layer 0
    python scripts/show_attention.py --out-dir out-brackets "([()])" --png brackets.png   # needs matplotlib

For a seq2seq model the input is translated first (greedy), then one teacher-forced pass over that
output gives the maps; a decoder row is labelled with the token that position predicts. For a
classifier, rows and columns are the input's characters (with <cls> in front if it pools a CLS token).
"""
import argparse
import sys

from transformer_jit.models.attention_maps import render_png, render_text
from transformer_jit.models.translation import translate
from transformer_jit.train import load_model
from transformer_jit.util.extras import MissingExtra, require


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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("text", help="the input")
    parser.add_argument("--out-dir", default="out-dates", help="a run of train-seq2seq or train-classifier")
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best")
    parser.add_argument("--map", choices=["cross", "encoder", "decoder"], default="cross",
                        help="seq2seq only: cross-attention, encoder or decoder self-attention")
    parser.add_argument("--layer", type=int, default=-1, help="which layer (negative counts from the last)")
    parser.add_argument("--head", type=int, default=None, help="one head (default: every head)")
    parser.add_argument("--png", default=None, help="also save every head of the layer as a PNG (matplotlib)")
    args = parser.parse_args()
    if args.png:  # before any work: a missing matplotlib must not come after the text maps
        try:
            require("matplotlib", "plot", "--png")
        except MissingExtra as e:
            sys.exit(f"error: {e}")

    model, tok, meta = load_model(f"{args.out_dir}/{args.checkpoint}.npz")
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
