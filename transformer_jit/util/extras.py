"""Optional dependencies (pyproject's extras) and the command that installs one, worded for how
this copy of the package was installed: from a clone, `pip install -e '.[plot]'`; otherwise by
the distribution's name, `pip install 'transformer-jit[plot]'`."""
import importlib
import os
from pathlib import Path

DISTRIBUTION = "transformer-jit"


class MissingExtra(RuntimeError):
    """An optional dependency that a requested feature needs is not installed."""


def clone_root():
    """The root of the clone this package was imported from (pyproject.toml and kernels/ beside
    transformer_jit/), or None for an installed copy."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "kernels").is_dir():
        return root
    return None


def install_hint(extra):
    """The pip command that installs `extra`."""
    root = clone_root()
    if root is None:
        return f"pip install '{DISTRIBUTION}[{extra}]'"
    where = "." if Path(os.getcwd()).resolve() == root else str(root)
    return f"pip install -e '{where}[{extra}]'"


def require(module, extra, purpose):
    """Import `module`, or raise MissingExtra: '<purpose> needs <module>: <install command>'."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{purpose} needs {module.split('.')[0]}: {install_hint(extra)}") from None
