"""loss.png: drawn at every evaluation of a training run when matplotlib is installed, skipped with
one line otherwise, never stopping training; and the plot command over several runs."""
import struct
import sys

import pytest
from refusals import assert_refused

from transformer_jit.cli import main
from transformer_jit.train import loss_plot

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40
TRAIN = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
         "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0", "--max-iters", "6"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def train(tmp_path, name="run"):
    (tmp_path / "input.txt").write_text(TEXT)
    assert main(["train", "--data", str(tmp_path / "input.txt"), "--out-dir", str(tmp_path / name), *TRAIN]) == 0
    return tmp_path / name


def png_size(path):
    """(width, height) of a PNG file, which must start with the PNG signature and its IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", data[:16]
    return struct.unpack(">II", data[16:24])


def write_metrics(run, rows, header="step,train_loss,val_loss,lr,tokens_per_s"):
    run.mkdir()
    (run / "metrics.csv").write_text(header + "\n" + "".join(row + "\n" for row in rows))
    return run


@pytest.fixture
def without_matplotlib(monkeypatch):
    """As if matplotlib were not installed: importing it raises ImportError."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.mark.interop
def test_training_draws_loss_png_at_every_evaluation(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    drawn = []
    draw = loss_plot.draw_runs
    monkeypatch.setattr(loss_plot, "draw_runs", lambda *a, **k: drawn.append(a[0]) or draw(*a, **k))
    run = train(tmp_path)
    assert len(drawn) == 3  # steps 2, 4 and 6
    width, height = png_size(run / "loss.png")
    assert width > 300 and height > 200
    assert (run / "loss.png").stat().st_size < 60_000
    assert not list(run.glob(".loss.png.*"))  # no temporary file left behind


def test_without_matplotlib_training_says_once_that_loss_png_is_skipped(tmp_path, capsys, without_matplotlib):
    run = train(tmp_path)
    out = capsys.readouterr().out
    assert out.count("drawing loss curves needs matplotlib: pip install") == 1, out
    assert "training goes on without loss.png" in out
    assert not (run / "loss.png").exists() and (run / "best.npz").exists()


def test_a_failing_picture_never_stops_training(tmp_path, capsys, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(loss_plot, "draw_runs", fail)
    run = train(tmp_path)
    out = capsys.readouterr().out
    assert out.count("could not draw") == 1 and "No space left on device" in out
    assert (run / "last.npz").exists() and "step 6:" in out


@pytest.mark.interop
def test_a_picture_that_fails_while_written_leaves_the_previous_one(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    run = write_metrics(tmp_path / "run", ["2,3.0,3.1,0.001,100", "4,2.5,2.7,0.0009,100"])
    (run / "loss.png").write_bytes(b"the previous picture")

    def fail(self, *args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Figure, "savefig", fail)
    with pytest.raises(OSError):
        loss_plot.draw_runs([run], run / "loss.png")
    assert (run / "loss.png").read_bytes() == b"the previous picture"
    assert sorted(p.name for p in run.iterdir()) == ["loss.png", "metrics.csv"]


@pytest.mark.interop
def test_plot_draws_several_runs_on_one_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    local = write_metrics(tmp_path / "local", ["2,3.0,3.1,0.001,100", "4,2.5,2.7,0.0009,100"])
    shared = write_metrics(tmp_path / "global", ["2,3.2,3.3", "4,2.9,3.0"], header="step,train_loss,val_loss")
    out = tmp_path / "compare.png"
    assert main(["plot", str(local), str(shared), "--out", str(out)]) == 0
    assert f"wrote {out} (2 runs)" in capsys.readouterr().out
    png_size(out)
    lines = [line.get_label() for ax in loss_plot.figure([local, shared]).axes for line in ax.get_lines()]
    assert sorted(lines) == sorted([f"{local}: train loss", f"{local}: validation loss", f"{local}: learning rate",
                                    f"{shared}: train loss", f"{shared}: validation loss"])


def test_plot_without_matplotlib_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch, without_matplotlib):
    run = write_metrics(tmp_path / "run", ["2,3.0,3.1,0.001,100"])
    err = assert_refused(["plot", str(run), "--out", str(tmp_path / "x.png")], "needs matplotlib: pip install",
                         tmp_path, capsys, monkeypatch, status=1)
    assert "[plot]" in err


@pytest.mark.parametrize("rows, argv, message", [
    (None, ["{root}/nowhere"], "nowhere/metrics.csv not found"),
    ([], ["{root}/run"], "metrics.csv holds no evaluations"),
    (["2,3.0,oops,0.001,100"], ["{root}/run"], "metrics.csv, line 2: val_loss is 'oops', not a number"),
    (["2,3.0,nan,0.001,100"], ["{root}/run"], "line 2: val_loss is 'nan', not a finite number"),
    (["2,3.0,3.1,0.001,100"], ["{root}/run", "--out", "{root}/run/metrics.csv"], "must name a .png file"),
    (["2,3.0,3.1,0.001,100"], ["{root}/run", "--out", "{root}/no/such/dir/x.png"], "does not exist"),
])
def test_plot_refuses_bad_runs_and_destinations(tmp_path, capsys, monkeypatch, rows, argv, message):
    if rows is not None:
        write_metrics(tmp_path / "run", rows)
    assert_refused(["plot", *[a.format(root=tmp_path) for a in argv]], message, tmp_path, capsys, monkeypatch)
