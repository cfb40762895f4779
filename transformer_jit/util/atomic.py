"""Atomic writes: a reader sees the old file (or directory) or the complete new one, never half of
one, and a failure or an interrupt at any point leaves the old one as it was and no temporary behind.

    with atomic_write(path) as f: ...                          one file
    with replaced_directory(path, names, what) as staging: ... a directory of files, switched in one step

Ctrl-C and SIGTERM are held back (util/signals.py) while a temporary is created and until
its cleanup is armed, and during a switch, so that no interrupt lands in between; they act as soon
as the step is done. Only SIGKILL or a power cut can leave a temporary (a hidden name ending in
.tmp beside the target), never a damaged target.
"""
import ctypes
import errno
import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path

from .signals import HeldInterrupts


@contextmanager
def atomic_write(path):
    """`with atomic_write(path) as f:` yields a binary file; on success its bytes replace `path`.

    The bytes go to a new temporary file in the same directory (so the final rename stays on one
    file system, where it is atomic), are flushed and fsynced, then renamed over `path`. On any
    error the temporary file is removed and `path` is left as it was. The directory is fsynced
    after the rename, so the new name survives a power cut too.
    """
    path = Path(path)
    tmp = _temporary_name(path)
    with HeldInterrupts() as held:
        created = False
        try:
            with _naming(path):
                f = open(tmp, "xb")  # "x": never reuse a file someone else is writing
            created = True
            with f:
                with held.released():
                    yield f
                    f.flush()
                    os.fsync(f.fileno())
            with _naming(path):
                os.replace(tmp, path)
        except BaseException:
            if created:
                tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)


@contextmanager
def replaced_directory(path, names, what):
    """`with replaced_directory(path, names, what) as staging:` write the new contents into the
    empty directory `staging`; when the block ends without an error they take `path`'s place in
    one step. On any error or interrupt `path` is left exactly as it was and `staging` removed.

    names: the entries that `what` (say "token files") consists of. `path` must be missing or a
    directory that holds nothing else (ValueError otherwise, checked on entry and again just before
    the switch), so that no one's other files are ever deleted with it. A missing `path` is created
    with its missing parents (removed again on failure); a symlink's target is replaced, and the
    link kept. An existing directory's permissions carry over to the new one.

    `staging` is made beside `path` (on the same file system) and fsynced with all it holds before
    the switch. The switch exchanges the two directories in one rename where the system can
    (Linux's renameat2 with RENAME_EXCHANGE), so a reader always finds `path` complete, old or new;
    elsewhere `path` is moved aside, `staging` moved in, and for that instant `path` is missing.
    Readers that already opened the old files keep reading them; the old directory is then removed.
    """
    path = Path(path)
    target = path.resolve()
    check_replaceable(path, names, what)
    with HeldInterrupts() as held:
        made, staging = [], None
        try:
            _make_parents(target.parent, made)
            name = _temporary_name(target)
            with _naming(target.parent):
                os.mkdir(name)
            staging = name
            with held.released():
                yield staging
                _fsync_tree(staging)
            check_replaceable(path, names, what)
            staging = _switch(staging, target)  # now the old directory, if there was one
        except BaseException:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            for directory in reversed(made):
                _remove_if_empty(directory)
            raise
        _fsync_directory(target.parent)
        if staging is not None:
            shutil.rmtree(staging)


def check_replaceable(path, names, what):
    """Refuse (ValueError) a `path` that replaced_directory(path, names, what) must not replace:
    one that exists but is not a writable directory, that holds entries other than `names`, or
    that cannot be moved (a mount point; the current directory, which would be left deleted)."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise ValueError(f"{path} is a file, not a directory")
    if os.path.ismount(path):
        raise ValueError(f"{path} is a mount point, which cannot be replaced in one step: write into a new "
                         f"directory inside it")
    if path.resolve() == Path.cwd().resolve():
        raise ValueError(f"{path} is the current directory, which cannot be replaced: run from outside it")
    try:
        others = sorted(set(os.listdir(path)) - set(names))
    except OSError as e:
        raise ValueError(f"cannot read the directory {path}: {e.strerror}") from None
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ValueError(f"{path} holds files that are not {what} ({shown}): move them away or choose another "
                         f"directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"cannot replace {path}: the directory is not writable")


def _fsync_directory(directory):
    """Make the names in `directory` (a rename into it) survive a power cut."""
    with HeldInterrupts():  # a raw descriptor: no interrupt between opening it and the finally
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temporary_name(path):
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


@contextmanager
def _naming(path):
    """An OSError names `path`, the file the caller asked for, not a temporary."""
    try:
        yield
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None


def _make_parents(directory, made):
    """Create `directory` and its missing parents, appending each to `made` as soon as it exists."""
    for d in [d for d in (directory, *directory.parents) if not d.exists()][::-1]:
        try:
            d.mkdir()
        except FileExistsError:
            continue  # made by someone else meanwhile: not ours to remove
        made.append(d)


def _remove_if_empty(directory):
    try:
        directory.rmdir()
    except OSError:
        pass


def _fsync_tree(root):
    for directory, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name), "rb") as f:  # a file object is closed however it is dropped
                os.fsync(f.fileno())
        _fsync_directory(directory)


def _switch(new, target):
    """Put the directory `new` at `target`. Returns where the old `target` now is, or None if
    there was none."""
    if not target.exists():
        os.rename(new, target)
        return None
    os.chmod(new, stat.S_IMODE(target.stat().st_mode))
    if _exchange(new, target):
        return new
    aside = _temporary_name(target)
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    return aside


AT_FDCWD, RENAME_EXCHANGE = -100, 2


def _exchange(a, b):
    """Swap two directory entries in one step (Linux's renameat2 with RENAME_EXCHANGE); False where
    the system or the file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(b))
