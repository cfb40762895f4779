"""Living beside other tools: --version, a --help that lists every command, install hints worded
for how the package was installed, the first run's compile notice, show_attention.py --png
without matplotlib, and the benchmarks' warning on a busy machine."""
import io
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numba
import pytest

import transformer_jit
from transformer_jit.cli import build_parser, main
from transformer_jit.cli.compile_notice import CompileNotice
from transformer_jit.util import extras

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"transformer-jit {transformer_jit.__version__}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1) == transformer_jit.__version__


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"train", "sample", "export", "eval", "plot"} <= set(commands)
    listed = set(re.findall(r"^    transformer-jit ([a-z0-9|\- ]+?)\s{2,}", text, re.M))
    listed = {name.strip() for line in listed for name in line.split("|")}
    assert set(commands) | {"serve"} <= listed, set(commands) - listed


def fake_layout(tmp_path, clone):
    """A package copy at tmp_path/<...>/transformer_jit/util/extras.py, in a clone or installed."""
    base = tmp_path / ("clone" if clone else "site-packages")
    (base / "transformer_jit" / "util").mkdir(parents=True)
    if clone:
        (base / "pyproject.toml").write_text("[project]\n")
        (base / "kernels").mkdir()
    return base, str(base / "transformer_jit" / "util" / "extras.py")


def test_install_hints_fit_how_the_package_was_installed(tmp_path, monkeypatch):
    clone, file = fake_layout(tmp_path, clone=True)
    monkeypatch.setattr(extras, "__file__", file)
    monkeypatch.chdir(clone)
    assert extras.install_hint("plot") == "pip install -e '.[plot]'"
    monkeypatch.chdir(tmp_path)
    assert extras.install_hint("plot") == f"pip install -e '{clone.resolve()}[plot]'"
    _, file = fake_layout(tmp_path, clone=False)
    monkeypatch.setattr(extras, "__file__", file)
    assert extras.install_hint("mpi") == "pip install 'transformer-jit[mpi]'"


def test_require_names_the_feature_the_module_and_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(extras.MissingExtra, match=r"^drawing needs matplotlib: pip install .*\[plot\]'$"):
        extras.require("matplotlib.figure", "plot", "drawing")
    assert extras.require("json", "none", "reading") is sys.modules["json"]


def test_show_attention_names_a_missing_run_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["show_attention.py", "--out-dir", str(tmp_path / "no-run"), "()"])
    with pytest.raises(SystemExit) as exit:
        runpy.run_path(str(ROOT / "scripts" / "show_attention.py"), run_name="__main__")
    assert str(exit.value.code) == f"error: checkpoint not found: {tmp_path / 'no-run' / 'best.npz'}"
    assert capsys.readouterr().out == ""


def test_the_compile_notice_says_when_kernels_compile_and_how_long_it_took():
    stream = io.StringIO()
    with CompileNotice(stream):
        numba.njit(lambda x: x + 1)(1)  # a new function: a real compilation, nothing cached
    lines = stream.getvalue().splitlines()
    assert lines[0] == "compiling kernels for this CPU (first run only: later runs load them from the cache)"
    assert re.fullmatch(r"compiled 1 kernel in \d+\.\d s", lines[1]) and len(lines) == 2
    quiet = io.StringIO()
    with CompileNotice(quiet):
        pass
    assert quiet.getvalue() == ""


def test_the_first_command_says_it_compiles_and_a_warm_one_stays_quiet(tmp_path):
    """A real command in a fresh process with an empty Numba cache, then again with the cache warm."""
    (tmp_path / "input.txt").write_text("the quick brown fox jumps over the lazy dog.\n" * 30)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    argv = [sys.executable, "-m", "transformer_jit", "prepare", "--data", str(tmp_path / "input.txt"),
            "--tokenizer", "bpe", "--vocab-size", "260", "--out-dir", str(tmp_path / "tokens"), "--overwrite"]
    cold = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert cold.returncode == 0, cold.stderr
    assert "compiling kernels for this CPU (first run only" in cold.stderr
    assert re.search(r"^compiled \d+ kernels in \d+\.\d s$", cold.stderr, re.M), cold.stderr
    warm = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert warm.returncode == 0 and "compil" not in warm.stderr, warm.stderr


def bench():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import _bench
    finally:
        sys.path.pop(0)
    return _bench


def test_benchmarks_on_a_busy_machine_say_so_and_suggest_fewer_threads():
    message = bench().busy_message(cores=2, others_busy=1.6, load_average=2.1, threads=2)
    assert "the machine is busy: other programs keep 1.6 of its 2 cores busy (load average 2.1)" in message
    assert message.endswith("or with --threads 1.")
    assert bench().busy_message(cores=2, others_busy=0.1, load_average=0.2, threads=2) is None
    assert bench().busy_message(cores=8, others_busy=2.0, load_average=2.0, threads=4) is None  # 6 free
