"""loss.png: train and validation loss against step, the learning rate on a second axis, drawn
from runs' metrics.csv; one run (the picture a training run keeps up to date) or several on one
figure, to compare them.

matplotlib is an optional extra (`plot`), imported when a picture is first drawn, never with the
package, and used through its Agg canvas: no display and no GUI toolkit are ever touched.
"""
import csv
import math
from pathlib import Path

from ..util.atomic import atomic_write
from ..util.extras import MissingExtra, require

COLUMNS = ("step", "train_loss", "val_loss")  # lr is drawn when present


def read_metrics(run_dir):
    """{column: [float per evaluation]} of run_dir/metrics.csv, with errors that name the file."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a run directory, or its run has not "
                                f"evaluated yet")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{path} holds no evaluations" + (f" (no column {', '.join(missing)})" if missing else ""))
    columns = [c for c in (*COLUMNS, "lr") if c in rows[0]]
    metrics = {c: [] for c in columns}
    for line, row in enumerate(rows, start=2):
        for c in columns:
            try:
                value = float(row[c])
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {line}: {c} is {row[c]!r}, not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{path}, line {line}: {c} is {row[c]!r}, not a finite number")
            metrics[c].append(value)
    return metrics


def figure(run_dirs, labels=None):
    """A matplotlib Figure of the runs in `run_dirs`, on an Agg canvas. labels: one legend name per
    run (default: the directories as given)."""
    runs = [read_metrics(d) for d in run_dirs]  # every file is checked before anything is drawn
    labels = [str(d) for d in run_dirs] if labels is None else labels
    figure_module = require("matplotlib.figure", "plot", "drawing loss curves")
    agg = require("matplotlib.backends.backend_agg", "plot", "drawing loss curves")
    fig = figure_module.Figure(figsize=(7, 4.2), layout="constrained")
    agg.FigureCanvasAgg(fig)
    loss_axis = fig.add_subplot()
    lr_axis = loss_axis.twinx() if any("lr" in m for m in runs) else None
    one = len(runs) == 1
    for i, (label, m) in enumerate(zip(labels, runs)):
        colour, name = f"C{i}", "" if one else f"{label}: "
        loss_axis.plot(m["step"], m["train_loss"], color=colour, label=f"{name}train loss")
        loss_axis.plot(m["step"], m["val_loss"], color=colour, linestyle="--", label=f"{name}validation loss")
        if "lr" in m:
            lr_axis.plot(m["step"], m["lr"], color="grey" if one else colour, linestyle=":", alpha=0.7,
                         label=f"{name}learning rate")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss (nats per token)")
    loss_axis.grid(alpha=0.3)
    handles, names = loss_axis.get_legend_handles_labels()
    if lr_axis is not None:
        lr_axis.set_ylabel("learning rate")
        lr_axis.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        more = lr_axis.get_legend_handles_labels()
        handles, names = handles + more[0], names + more[1]
    loss_axis.legend(handles, names, fontsize=8, loc="upper right")
    loss_axis.set_title(labels[0] if one else "runs compared", fontsize=10)
    return fig


def draw_runs(run_dirs, path, labels=None):
    """Draw the runs in `run_dirs` on one figure and write it to `path` as a PNG, atomically: a
    reader sees the previous picture or the new one, never part of one."""
    fig = figure(run_dirs, labels)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=90)
    return path


class LossPlot:
    """Keeps a run directory's loss.png up to date, one redraw per evaluation. A picture never
    stops training: without matplotlib, or when drawing fails, the log says so once and training
    goes on."""

    def __init__(self, out_dir, log):
        self.path, self.log = Path(out_dir) / "loss.png", log
        self.enabled, self.failed = True, False

    def update(self):
        if not self.enabled:
            return
        try:
            draw_runs([self.path.parent], self.path, labels=[self.path.parent.name or str(self.path.parent)])
        except MissingExtra as e:  # no matplotlib: nothing to try again
            self.enabled = False
            self.log(f"{e}; training goes on without {self.path.name}")
        except Exception as e:  # noqa: BLE001 (whatever went wrong with a picture, training goes on)
            if not self.failed:
                self.log(f"could not draw {self.path}: {e}; training goes on")
            self.failed = True
