"""Atomic file writes: a temp file next to the target, fsync, ``os.replace``."""
from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import InputImageError


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` via ``write(fp)`` on a temp file in the same folder, fsync, then rename.

    Readers see the old file or the complete new one, never a partial one; on any exception the
    temp file is removed. OSErrors become :class:`InputImageError`.
    """
    try:
        tmp = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False)
    except OSError as exc:
        raise InputImageError(f"cannot write into folder '{path.parent}': {exc.strerror or exc}",
                              hint="check that the folder is writable") from exc
    try:
        with tmp:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, _new_file_mode(path))  # NamedTemporaryFile creates 0600 files
        os.replace(tmp.name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        if isinstance(exc, OSError):
            raise InputImageError(f"cannot write '{path}': {exc.strerror or exc}",
                                  hint="check free disk space and permissions") from exc
        raise


def _new_file_mode(path: Path) -> int:
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o7777
    return 0o666 & ~_umask()


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read the umask is to set it
    os.umask(mask)
    return mask
