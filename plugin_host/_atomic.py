"""Atomic file writes: a temp file next to the target, fsync, ``os.replace``.

Standard library only: image outputs, model cards, checkpoints and fetched weights all write through it,
and listing or fetching weights must not import torch.
"""
from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import InputImageError
from .image_files import shown_path


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` via ``write(fp)`` on a temp file in the same folder, fsync, then rename.

    Readers see the old file or the complete new one, never a partial one; on any exception the
    temp file is removed. OSErrors become :class:`InputImageError`.
    """
    tmp = _temp_file(path)
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


def check_writable(path: Path) -> None:
    """Create and remove the temp file :func:`atomic_write` would use for ``path``: raises
    :class:`InputImageError` where the folder is missing, read-only or full, or the name too long."""
    tmp = _temp_file(path)
    tmp.close()
    os.unlink(tmp.name)


def name_max(folder: Path) -> int:
    """The longest file name (in bytes) the file system holding ``folder`` allows."""
    with contextlib.suppress(OSError, ValueError):
        return os.pathconf(folder, "PC_NAME_MAX")
    return 255


def _temp_file(path: Path):  # noqa: ANN202 - tempfile._TemporaryFileWrapper
    # ".NAME.XXXXXXXX.part": NAME cut so the whole stays within the file system's limit (an
    # output name of 255 bytes is valid; its temp name would not be).
    room = max(1, name_max(path.parent) - len(".." + "XXXXXXXX" + ".part"))
    stem = os.fsdecode(os.fsencode(path.name)[:room])
    try:
        return tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{stem}.", suffix=".part", delete=False)
    except OSError as exc:
        raise InputImageError(f"cannot write into folder '{shown_path(path.parent)}': {exc.strerror or exc}",
                              hint="check that the folder exists and is writable") from exc


def _new_file_mode(path: Path) -> int:
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o7777
    return 0o666 & ~_umask()


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read the umask is to set it
    os.umask(mask)
    return mask
