"""Which files in a folder count as images (for CLI batches, training sets and SR evaluation), and
the checks of an input path before anything opens it.

Free of torch, so the CLI can list and check its inputs before importing it.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import InputImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The files in ``folder`` (and its subfolders when ``recursive``) ending in an image suffix, any case.

    Sorted; hidden names (starting with ".", also hidden subfolders) are skipped.
    """
    folder = Path(folder)
    return sorted(path for path in folder.glob("**/*" if recursive else "*")
                  if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts))


def folder_images(folder: Path) -> list[Path]:
    """:func:`image_files` of an input folder; an :class:`InputImageError` where it cannot be read or has none."""
    try:
        with os.scandir(folder) as entries:  # glob() would take an unreadable folder for an empty one
            count = sum(1 for _ in entries)
        found = image_files(folder)
    except OSError as exc:
        raise path_error(folder, exc, "input folder") from exc
    if not found:
        what = "is empty" if not count else f"has no image files among its {count} entries"
        raise InputImageError(f"input folder '{shown_path(folder)}' {what}",
                              hint=f"image files end in {', '.join(sorted(IMAGE_SUFFIXES))}; "
                                   "give another folder or the files themselves")
    return found


def check_input_file(path: Path) -> Path:
    """``path`` if it is a regular file, else an :class:`InputImageError` naming what it is.

    Checked before opening: a named pipe would block the read forever and a device never ends.
    """
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise InputImageError(f"not found: '{shown_path(path)}' (no such file or folder)",
                              hint="check the path and the current folder") from exc
    except OSError as exc:
        raise path_error(path, exc, "image file") from exc
    if stat.S_ISDIR(info.st_mode):
        raise InputImageError(f"'{shown_path(path)}' is a folder, not an image file",
                              hint="pass the path of an image file")
    if not stat.S_ISREG(info.st_mode):
        raise InputImageError(f"'{shown_path(path)}' is a {_file_kind(info.st_mode)}, not a regular file",
                              hint="save the image to a file and pass that file")
    return path


def path_error(path: Path, exc: OSError, what: str) -> InputImageError:
    """The :class:`InputImageError` for an ``OSError`` met while looking ``path`` up."""
    if exc.errno == errno.ENAMETOOLONG:
        longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
        return InputImageError(
            f"{what} path '{shown_path(path)}' is too long for the file system "
            f"({len(os.fsencode(str(path)))} bytes in all, {longest} in its longest name)",
            hint="use shorter folder and file names, or run from a folder nearer to the file")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return InputImageError(f"cannot reach {what} '{shown_path(path)}': permission denied "
                               "(the file or a folder on its path is not readable)",
                               hint="check the permissions of the file and of its folders")
    return InputImageError(f"cannot reach {what} '{shown_path(path)}': {exc.strerror or exc}",
                           hint="check the path")


def shown_path(path: str | os.PathLike, limit: int = 160) -> str:
    """``path`` as text, its middle elided when longer than ``limit`` characters (error messages stay one line)."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2 - 1]}…{text[-(limit // 2):]}"


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))
    return next((name for test, name in kinds if test(mode)), "special file")
