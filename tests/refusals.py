"""The check every bad input gets: refused with exit status 2 (as the README promises for a bad
input or option) and one line naming the problem, no traceback, and every file that existed
before byte-identical afterwards."""
import hashlib
import io
import sys
from pathlib import Path

from transformer_jit.cli import main


def snapshot(root):
    """{relative path: sha256} of every regular file under root, and the directories."""
    root = Path(root)
    state = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            state[key] = "special"
        elif path.is_dir():
            state[key] = "dir"
        else:
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def assert_refused(argv, message, root, capsys, monkeypatch, status=2):
    """Run the command line `argv` and check that it is refused as described above (with exit
    status `status`: 1 for what is not the input's fault, such as a missing optional package)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    before = snapshot(root)
    try:
        got = main(argv)
    except SystemExit as e:  # argparse's usage errors
        got = e.code
    err = capsys.readouterr().err.strip()
    assert got not in (0, None), f"accepted: {argv}"
    assert got == status, f"exit status {got}, not {status}, for {argv}"
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert message in err, err
    assert len(err) < 400
    after = snapshot(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"{argv} changed {changed}"
    return err
