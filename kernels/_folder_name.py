"""This folder is the package transformer_jit.kernels. Python reaches it by its folder's name,
`kernels`, only when the repository's root is on sys.path (a command run from a clone): that
name belongs to whatever is installed under it, which must not be shadowed."""
import importlib.machinery
import importlib.util
import os
import sys


def hand_over(init_file):
    """Import the installed package `kernels` in place of this folder, or fail as if the folder
    were not there."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(init_file)))
    elsewhere = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != root]
    spec = importlib.machinery.PathFinder.find_spec("kernels", elsewhere)
    if spec is None:
        raise ModuleNotFoundError("No module named 'kernels' (this repository's kernels/ folder is "
                                  "transformer_jit.kernels)", name="kernels")
    module = importlib.util.module_from_spec(spec)
    sys.modules["kernels"] = module  # the import statement returns what sys.modules holds at the end
    spec.loader.exec_module(module)
