"""Models the user trained or installed by hand: ``NAME.pth`` files with a ``NAME.pth.json`` card.

The folder is ``$PLUGIN_HOST_MODELS`` or the per-user data folder (``plugin_host/models``). It is
on the weights search path, and a plugin turns the cards of its model kind into registry entries
with :func:`installed_models`, so a newly trained model appears as a choice everywhere (CLI,
``info``, GIMP dialog) without code changes. Cards are JSON, so listing models never imports torch.
"""
from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Any, Mapping

from .._atomic import atomic_write
from ..errors import ParameterError
from .registry import UrlSource, WeightsEntry

CARD_SUFFIX = ".json"
#: Longest model name in UTF-8 bytes: NAME.pth.log.jsonl's temporary name (~30 bytes more) must fit in 255.
MAX_NAME_BYTES = 200
#: Characters no file name may hold on some system we run on (Windows forbids all of these).
_FORBIDDEN = set('/\\<>:"|?*')
_UNPRINTABLE = ("Cc", "Cf", "Cs")


def user_models_dir() -> Path:
    env = os.environ.get("PLUGIN_HOST_MODELS")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("plugin_host")) / "models"


def printable(text: str) -> str:
    """``text`` with control, format and surrogate characters written as escapes (``\\x1b``), so that a
    name or path from a file cannot move the cursor, recolour or retitle the user's terminal."""
    return "".join(ascii(ch)[1:-1] if unicodedata.category(ch) in _UNPRINTABLE else ch for ch in text)


def check_model_name(name: str, param: str = "name") -> str:
    """``name`` if it can name ``NAME.pth`` inside the models folder; else ParameterError (one line).

    A path separator (``../x``) would write outside the folder, a leading dot would hide the file,
    control characters would reach terminals raw.
    """
    problem = None
    bad = sorted({ch for ch in name if ch in _FORBIDDEN or unicodedata.category(ch) in _UNPRINTABLE})
    if not name.strip():
        problem = "is empty"
    elif bad:
        shown = " ".join(printable(ch) for ch in bad)
        problem = f"holds {shown}" + (" (a path separator)" if set(bad) & {"/", "\\"} else "")
    elif name.startswith("."):
        problem = "starts with a dot"
    elif len(name.encode("utf-8")) > MAX_NAME_BYTES:
        problem = f"is longer than {MAX_NAME_BYTES} bytes"
    if problem:
        raise ParameterError(param, f"'{printable(name)}' {problem}; a model name becomes a file name in "
                             "your models folder: use letters, digits, '-' and '_' (or --out PATH to write elsewhere)")
    return name


def user_model_path(name: str) -> Path:
    """``NAME.pth`` in the user models folder (created), after :func:`check_model_name`."""
    folder = user_models_dir()
    path = folder / f"{check_model_name(name)}.pth"
    folder.mkdir(parents=True, exist_ok=True)
    return path


def card_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + CARD_SUFFIX)


def write_card(model_path: Path, card: Mapping[str, Any]) -> Path:
    """Write the JSON card beside ``model_path`` atomically (temp file + rename)."""
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
