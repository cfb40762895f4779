"""Input files opened only when they are regular files.

A pipe or a device where a file belongs would block a read forever (or never end), so it is
refused by name instead. The check is made on the path and again on the opened descriptor, which
is opened without blocking: opening a FIFO for reading otherwise waits for a writer.
"""
import os
import stat
from pathlib import Path


def check_readable_file(path, what):
    """FileNotFoundError or ValueError that says what `path` is, unless it is a regular file;
    `what` names the role ("data file", "checkpoint")."""
    path = Path(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{what} not found: {path}") from None
    _require_regular(info, path, what)


def open_regular_file(path, what):
    """A binary file object for `path`, which must be a regular file (see check_readable_file)."""
    check_readable_file(path, what)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        _require_regular(os.fstat(fd), Path(path), what)  # replaced since the check
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path, what, limit=None):
    """The bytes of the regular file `path`; a ValueError, before reading, if it holds more than
    `limit` bytes."""
    with open_regular_file(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if limit is not None and size > limit:
            raise ValueError(f"{what} {path} is {size:,} bytes, more than the {limit:,} such a file may hold")
        return f.read()


def _require_regular(info, path, what):
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{what} {path} is not a regular file (a pipe, a device or a socket)")
