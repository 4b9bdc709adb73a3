"""Which files in a folder count as images: for CLI batches, training sets and SR evaluation.

Free of torch, so the CLI can list its inputs before importing it.
"""
from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The files in ``folder`` (and its subfolders when ``recursive``) ending in an image suffix, any case.

    Sorted; hidden names (starting with ".", also hidden subfolders) are skipped.
    """
    folder = Path(folder)
    return sorted(path for path in folder.glob("**/*" if recursive else "*")
                  if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts))
