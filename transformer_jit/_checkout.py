"""Installed, the kernels are the subpackage transformer_jit/kernels. In a clone they are the
folder kernels/ beside transformer_jit/, which pyproject maps to that name: an editable install
finds them through its own import hook, but a command run from the clone's root imports this
package from the clone, where no hook may know the folder (a regular install elsewhere)."""
import importlib.util
import os
import sys

PACKAGE = "transformer_jit.kernels"


def find_kernels():
    """Make `transformer_jit.kernels` the clone's kernels/ folder when nothing else provides it."""
    if PACKAGE in sys.modules or importlib.util.find_spec(PACKAGE) is not None:
        return
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels")
    spec = importlib.util.spec_from_file_location(PACKAGE, os.path.join(folder, "__init__.py"),
                                                  submodule_search_locations=[folder])
    if spec is None:
        return  # not a clone either: the import that follows reports what is missing
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
