"""Atomic file writes: a reader sees the old file or the complete new one, never half of one."""
import os
import secrets
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path):
    """`with atomic_write(path) as f:` yields a binary file; on success its bytes replace `path`.

    The bytes go to a new temporary file in the same directory (so the final rename stays on one
    file system, where it is atomic), are flushed and fsynced, then renamed over `path`. On any
    error the temporary file is removed and `path` is left as it was. The directory is fsynced
    after the rename, so the new name survives a power cut too.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    f = open(tmp, "xb")  # "x": never reuse a file someone else is writing
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
