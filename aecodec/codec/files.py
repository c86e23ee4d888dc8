"""Reading inputs and writing outputs safely: ``-`` for stdio, atomic replace, no silent overwrite."""

import os
import sys
import tempfile
from pathlib import Path

from aecodec.codec.images import read_binary
from aecodec.errors import InputError

STDIO = "-"


def read_bytes(path: str, limit: int) -> bytes:
    """Bytes of a file (or stdin for ``-``), refusing more than ``limit`` bytes."""
    return read_binary(sys.stdin.buffer if path == STDIO else path, path, limit)


def check_writable(path: str, force: bool) -> None:
    """Refuse early (before any work) to overwrite an existing file without ``force``."""
    if path != STDIO and os.path.lexists(path) and not force:
        raise InputError(f"{path} exists (use --force to overwrite)")
    if path != STDIO and Path(path).is_dir():
        raise InputError(f"{path} is a directory")
    if path != STDIO and not Path(path).parent.is_dir():
        raise InputError(f"output folder {Path(path).parent} does not exist")


def write_atomic(path: str, data: bytes, force: bool) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, or to stdout for ``-``.

    A failure (full disk, interrupt) leaves no partial output: the temporary file is removed.
    """
    if path == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    check_writable(path, force)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
