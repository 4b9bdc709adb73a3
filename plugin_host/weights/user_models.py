"""Models the user trained or installed by hand: ``NAME.pth`` files with a ``NAME.pth.json`` card.

The folder is ``$PLUGIN_HOST_MODELS`` or the per-user data folder (``plugin_host/models``). It is
on the weights search path, and a plugin turns the cards of its model kind into registry entries
with :func:`installed_models`, so a newly trained model appears as a choice everywhere (CLI,
``info``, GIMP dialog) without code changes. Cards are JSON, so listing models never imports torch.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from .registry import UrlSource, WeightsEntry

CARD_SUFFIX = ".json"


def user_models_dir() -> Path:
    env = os.environ.get("PLUGIN_HOST_MODELS")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("plugin_host")) / "models"


def card_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + CARD_SUFFIX)


def write_card(model_path: Path, card: Mapping[str, Any]) -> Path:
    """Write the JSON card beside ``model_path`` atomically (temp file + rename)."""
    from ..imaging._atomic import atomic_write

    path = card_path(Path(model_path))
    text = (json.dumps(dict(card), indent=1, sort_keys=True) + "\n").encode()
    atomic_write(path, lambda fp: fp.write(text))
    return path


def read_card(model_path: Path) -> dict[str, Any] | None:
    try:
        card = json.loads(card_path(Path(model_path)).read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def installed_models(model_kind: str, folder: Path | None = None, packaged: bool = False) -> list[WeightsEntry]:
    """Registry entries for the cards of ``model_kind`` in ``folder`` (default: the user models folder).

    Unreadable cards are skipped. ``packaged=True`` is for models a plugin ships inside its package:
    their cards carry ``sha256`` and ``size``, and the file is used in place, verified like a download.
    """
    folder = folder or user_models_dir()
    if not folder.is_dir():
        return []
    entries = []
    for model in sorted(folder.glob("*.pth")):
        card = read_card(model)
        if not card or card.get("model_kind") != model_kind:
            continue
        entries.append(WeightsEntry(
            name=str(card.get("name") or model.stem), file=model.name, model_kind=model_kind,
            architecture=str(card.get("architecture", "")), input_convention=str(card.get("input_convention", "raw")),
            source=UrlSource(model.resolve().as_uri()) if packaged else None,
            sha256=card.get("sha256") if packaged else None, size=card.get("size") if packaged else None,
            licence=str(card.get("licence", "" if packaged else "yours")),
            description=str(card.get("description", f"installed model {model.name}")),
            extra={"card": card, "user_model": not packaged}))
    return entries


def package_model(model_path: Path, folder: Path, card: Mapping[str, Any]) -> Path:
    """Copy a trained model into a plugin's ``weights/`` folder with a card holding its sha256 and size.

    This is how a plugin ships models it trained: ``installed_models(kind, folder, packaged=True)``
    then registers them, verified like downloads.
    """
    import shutil

    from .download import sha256_file

    model_path, folder = Path(model_path), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{card['name']}.pth"
    if dest.resolve() != model_path.resolve():
        shutil.copyfile(model_path, dest)
    write_card(dest, {**card, "sha256": sha256_file(dest), "size": dest.stat().st_size})
    return dest
