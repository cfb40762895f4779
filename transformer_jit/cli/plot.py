"""The plot command: the loss curves of one or several runs on one figure.

    transformer-jit plot out                                  one run (training keeps out/loss.png itself)
    transformer-jit plot out-local out-global --out compare.png
"""
from pathlib import Path

from ..train.loss_plot import draw_runs


def add_commands(commands, common):
    p = commands.add_parser("plot", help="draw the loss curves of one or several runs on one figure (PNG)",
                            parents=[common])
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (each with its metrics.csv)")
    p.add_argument("--out", default="loss.png", help="the PNG file to write (default: loss.png)")
    p.set_defaults(run=plot_runs)


def plot_runs(args):
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out} must name a .png file")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory: give the PNG file to write")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: the directory {out.parent} does not exist")
    draw_runs(args.runs, out)
    print(f"wrote {out} ({len(args.runs)} run{'s' if len(args.runs) > 1 else ''})")
    return 0
