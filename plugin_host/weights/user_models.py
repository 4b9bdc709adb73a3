"""Model files with a card: ``NAME.pth`` beside ``NAME.pth.json``, in the user's models folder or in a package.

Two routes turn cards into registry entries, so a model appears as a choice everywhere (CLI, ``info``,
GIMP dialog) without code changes:

* :func:`installed_models`: what the user trained or installed by hand, in ``$PLUGIN_HOST_MODELS`` or
  the per-user data folder (``plugin_host/models``), which is on the weights search path.
* :func:`packaged_models`: models a package ships (a style pack, or a method's own), checked against
  the sha256 and size on their cards like downloads; :func:`package_model` (``plugin_host weights
  package``) writes such a folder.

Cards are JSON, so listing models never imports torch.
"""
from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Any, Mapping

from .._atomic import atomic_write
from ..errors import ParameterError, WeightsError
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


def check_output_or_name(params: Any) -> None:
    """A trainer's ``out`` / ``name`` check: one of them must be given, and ``name`` must be a safe model name.

    ParameterError (one line) otherwise. ``params`` has ``out`` (a path or None) and ``name`` (text).
    """
    if params.out is None and not params.name:
        raise ParameterError("out", "give --out FILE, or --name NAME to install into your models folder",
                             hint="`plugin_host weights list` shows installed models")
    if params.name:
        check_model_name(params.name)


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


def installed_models(model_kind: str, folder: Path | None = None) -> list[WeightsEntry]:
    """Registry entries for the user's models of ``model_kind``: the cards in ``folder`` (default: the
    user models folder). Unreadable cards and cards of other kinds are skipped; the files carry no
    digest (the user made them)."""
    folder = folder or user_models_dir()
    if not folder.is_dir():
        return []
    entries = []
    for model in sorted(folder.glob("*.pth")):
        card = read_card(model)
        if card and card.get("model_kind") == model_kind:
            entries.append(_entry(model, card, packaged=False))
    return entries


def packaged_models(folder: Path, model_kind: str | None = None) -> list[WeightsEntry]:
    """Registry entries for the models a package ships in ``folder`` (of ``model_kind`` only, if given).

    Every ``NAME.pth`` there needs its card, as :func:`package_model` writes it: ``name``,
    ``model_kind`` and the file's ``sha256`` and ``size``, against which the file is checked before
    each use, like a download; it is used in place, never copied. A style pack registers its
    models with this alone::

        @hookimpl
        def register_weights(register):
            for entry in packaged_models(Path(__file__).parent / "models"):
                register(entry)

    :raises WeightsError: naming the file, when a model has no card or its card lacks those fields
        (the plugin is then listed as failed, with this reason).
    """
    folder = Path(folder)
    entries = []
    for model in sorted(folder.glob("*.pth")):
        card = read_card(model)
        missing = ["a readable card"] if card is None else [k for k in ("name", "model_kind", "sha256", "size")
                                                            if not card.get(k)]
        if missing:
            raise WeightsError(f"packaged model {model} lacks {', '.join(missing)} ({card_path(model).name})",
                               hint=f"write it with `plugin_host weights package MODEL --into {folder}`")
        if model_kind is None or card["model_kind"] == model_kind:
            entries.append(_entry(model, card, packaged=True))
    return entries


def _entry(model: Path, card: Mapping[str, Any], packaged: bool) -> WeightsEntry:
    return WeightsEntry(
        name=str(card.get("name") or model.stem), file=model.name, model_kind=str(card["model_kind"]),
        architecture=str(card.get("architecture", "")), input_convention=str(card.get("input_convention", "raw")),
        source=UrlSource(model.resolve().as_uri()) if packaged else None,
        sha256=card.get("sha256") if packaged else None, size=card.get("size") if packaged else None,
        licence=str(card.get("licence", "" if packaged else "yours")),
        description=str(card.get("description", f"installed model {model.name}")),
        extra={"card": dict(card), "user_model": not packaged})


def package_model(model_path: Path, folder: Path, card: Mapping[str, Any]) -> Path:
    """Copy a trained model into a package's models ``folder`` as ``NAME.pth``, with its card plus sha256 and size.

    This is how a package ships models (``plugin_host weights package`` calls it):
    :func:`packaged_models` then registers them, verified like downloads. ``card`` needs ``name``
    and ``model_kind``.
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
