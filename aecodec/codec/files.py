"""Reading inputs and writing outputs safely: ``-`` for stdio, atomic replace, no silent overwrite."""

import glob
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


def _temp_prefix(target: Path) -> str:
    """Name prefix of the temporary files for ``target``: hidden, naming the target; the writer's pid follows."""
    return f".{target.name}.aecodec-"


def _remove_stale_temps(target: Path) -> None:
    """Delete temporary files that killed writers (SIGKILL, power loss) left beside ``target``."""
    prefix = _temp_prefix(target)
    for temp in target.parent.glob(f"{glob.escape(prefix)}*-*.tmp"):
        pid = temp.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            temp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (its temporary files may still be in use)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def write_atomic(path: str, data: bytes, force: bool) -> None:
    """Write ``data`` to ``path`` through a temporary file, or to stdout for ``-``.

    With ``force`` the file is renamed over the target; without, it is hard-linked to it, which fails
    if the target exists, so a file created meanwhile (another process) is never clobbered. A failure
    (full disk, interrupt) leaves no partial output: the temporary file is removed.
    """
    if path == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    check_writable(path, force)
    target = Path(path)
    _remove_stale_temps(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(target)}{os.getpid()}-", suffix=".tmp", dir=target.parent)
    except FileNotFoundError:  # removed since check_writable: name the folder, never the temporary file
        raise InputError(f"output folder {target.parent} does not exist") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if force:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)
    except FileExistsError:
        raise InputError(f"{path} exists (use --force to overwrite)") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
