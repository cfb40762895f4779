"""The repository's kernels/ folder is transformer_jit.kernels. Run from the clone's root, where
Python looks first, it must not shadow an installed package named `kernels`, and the project must
still find its own kernels, installed editable or not."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOTH = ("import kernels, transformer_jit.kernels as K; assert kernels.STAND_IN; "
        "print(K.__file__, K.linear_forward.__name__)")
REVERSED = ("import transformer_jit.kernels as K, kernels; assert kernels.STAND_IN; "
            "print(K.__file__, K.linear_forward.__name__)")


@pytest.fixture
def stand_in(tmp_path):
    """A directory holding another package named `kernels`, as an installed one would be."""
    site = tmp_path / "site"
    (site / "kernels").mkdir(parents=True)
    (site / "kernels" / "__init__.py").write_text("STAND_IN = True\n")
    return site


def python(args, cwd, path, isolated=False):
    """Run python with PYTHONPATH `path`; isolated: without site's .pth files, so without the hook of
    an editable install, as a regular install sees it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, path)))
    result = subprocess.run([sys.executable, *(["-S"] if isolated else []), "-c", args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("order", [BOTH, REVERSED])
def test_from_the_root_the_installed_kernels_package_wins(stand_in, order):
    out = python(order, ROOT, [stand_in])
    assert out.split() == [str(ROOT / "kernels" / "__init__.py"), "linear_forward"]


def test_from_the_root_without_an_installed_kernels_package_the_name_is_free(tmp_path):
    env = dict(os.environ, PYTHONPATH="")
    result = subprocess.run([sys.executable, "-c", "import kernels"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1 and "ModuleNotFoundError: No module named 'kernels'" in result.stderr


def test_a_regular_install_finds_its_kernels_from_the_root_and_elsewhere(tmp_path, stand_in):
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    assert (target / "transformer_jit" / "kernels" / "__init__.py").is_file()
    dependencies = [p for p in sys.path if p.endswith("site-packages")]  # numba, numpy, tqdm
    path = [stand_in, target, *dependencies]
    # From the root, the clone's transformer_jit comes first on sys.path: it finds kernels/ beside it.
    assert python(BOTH, ROOT, path, isolated=True).split()[0] == str(ROOT / "kernels" / "__init__.py")
    # Elsewhere, the installed copy, with its kernels inside it.
    assert python(BOTH, tmp_path, path, isolated=True).split()[0] == \
        str(target / "transformer_jit" / "kernels" / "__init__.py")
