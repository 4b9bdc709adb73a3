"""Safe loading of state dicts: tensors only, never code, with one clear report of layout problems."""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ..errors import WeightsError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

_SHOW = 5


def _is_zip(path: Path) -> bool:
    """Whether ``path`` is in torch's zip format, which ``torch.load(mmap=True)`` needs.

    Mapping the file instead of reading it means tensors that are converted (to bfloat16, to
    the GPU) never occupy a second copy in the process's memory.
    """
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _is_pickle(path: Path) -> bool:
    """Whether ``path`` starts like a pickle of protocol 2 or later (torch's legacy format does too)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(1) == b"\x80"
    except OSError:
        return False


def load_weights_file(path: Path, mmap: bool | None = None) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, with every failure turned into a clear WeightsError.

    ``mmap`` (default: for files in torch's zip format) maps the file instead of reading it; pass
    False for tensors that will be updated in place and for files that will be replaced while
    loaded (a training checkpoint: Windows cannot replace a mapped file).
    """
    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols it may not read: the error says it all
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True,
                             mmap=_is_zip(path) if mmap is None else mmap and _is_zip(path))
    except FileNotFoundError:
        raise WeightsError(f"weights file {path} does not exist") from None
    except OSError as err:
        raise WeightsError(f"cannot read weights file {path}: {err.strerror or err}") from None
    # Arbitrary bytes make the unpickler fail in many ways (UnpicklingError, RuntimeError,
    # BadZipFile, EOFError, even KeyError); all mean the file is not weights we can load.
    except Exception as err:  # noqa: BLE001
        raise refusal(path, err) from None
    return obj


#: Lines of torch's weights-only refusal that speak of torch itself, not of the file.
_BOILERPLATE = ("weights only load failed", "please file an issue", "check the documentation", "in pytorch 2.6")


def load_model_export(path: Path, what: str, hint: str) -> tuple[dict[str, "Tensor"], dict[str, object]]:
    """``(state_dict, metadata)`` of a trained model file: a plugin_host export (``export_model``'s
    ``{"state_dict", "metadata"}``) or a bare state dict as other projects publish them (empty metadata).

    Raises:
        WeightsError: ``"{path} is not {what}"`` with ``hint``, for anything else.
    """
    import torch

    obj = load_weights_file(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"], dict(obj.get("metadata") or {})
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    raise WeightsError(f"{path} is not {what}", hint=hint)


def refusal(path: Path, err: BaseException) -> WeightsError:
    """The WeightsError for a file ``torch.load(weights_only=True)`` refused with ``err``.

    A file that names a Python object (a class or function: the unpickler calls it to rebuild the
    object, which is how a pickle runs code) is reported as possibly holding code; anything else as
    damaged or not a weights file. torch's own advice (load with ``weights_only=False``) is left out.
    """
    text = str(err)
    wanted = re.search(r"GLOBAL\s+([\w.]+)", text)
    if wanted:
        return WeightsError(f"{path.name} was not loaded: besides tensors it names the Python object "
                            f"{wanted.group(1)}, which loading would call, so the file may contain code; "
                            "plugin_host loads weights only",
                            hint=f"use a file that holds tensors only (torch.save(model.state_dict(), ...)); "
                                 f"if you did not make {path} yourself, delete it")
    if "Unsupported operand" in text and _is_pickle(path):  # a pickle op it does not read: what it does is unknown
        return WeightsError(f"{path.name} was not loaded: it is a Python pickle that is not plain weights, so it "
                            "may contain code; plugin_host loads weights only",
                            hint=f"use a file that holds tensors only (torch.save(model.state_dict(), ...)); "
                                 f"if you did not make {path} yourself, delete it")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = next((line for line in lines if not line.lower().startswith(_BOILERPLATE)), "")
    detail = detail.removeprefix("WeightsUnpickler error:").strip().split(". ")[0][:200]
    if " " not in detail:  # KeyError: 101, EOFError: say what kind of failure it was
        detail = f"{type(err).__name__}: {detail}" if detail else type(err).__name__
    return WeightsError(f"{path.name} is not a PyTorch weights file: it is damaged, cut short or in another "
                        f"format ({detail})",
                        hint=f"check that {path} is the right file and complete; re-fetch or re-import it")


def load_state_dict(path: Path, expected: Mapping[str, tuple[int, ...]] | None = None,
                    strip_prefix: str | None = None, drop: str | None = None,
                    layout: str | None = None) -> dict[str, Tensor]:
    """Load a state dict with ``torch.load(weights_only=True)``.

    :param expected: key → shape the result must match exactly (checked after ``strip_prefix``/``drop``).
    :param strip_prefix: removed from the start of every key that has it (``"features."``).
    :param drop: regex; keys it matches (``re.search``) are removed, e.g. legacy running stats.
    :param layout: name of the expected layout, used in error messages.
    """
    import torch

    path = Path(path)
    obj = load_weights_file(path)
    state = _unwrap(obj)
    if state is None:
        raise WeightsError(f"{path.name} does not hold a state dict (got {type(obj).__name__})",
                           hint="plugin_host needs a file saved with torch.save(model.state_dict(), ...)")
    result: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path.name} is not a plain state dict: key {key!r} holds {type(value).__name__}",
                               hint="plugin_host needs a file saved with torch.save(model.state_dict(), ...)")
        if drop is not None and re.search(drop, key):
            continue
        if strip_prefix and key.startswith(strip_prefix):
            key = key[len(strip_prefix):]
        result[key] = value
    if expected is not None:
        _check_layout(path, result, expected, layout)
    return result


def check_weights_file(path: Path, check: str | None = None) -> None:
    """Raise WeightsError unless ``path`` loads with ``weights_only`` as a state dict of finite tensors
    (bare, or under ``state_dict``/``model``) and passes ``check`` (``"module:function"``, called with
    ``path``; it checks the network's layout). For files whose digest is not known in advance."""
    import importlib

    import torch

    path = Path(path)
    obj = load_weights_file(path)
    state = _unwrap(obj)
    if not state:
        raise WeightsError(f"{path.name} holds no state dict (got {type(obj).__name__})",
                           hint="expected a file saved with torch.save(model.state_dict(), ...)")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path.name} is not a plain state dict: {str(key)[:80]!r} holds a "
                               f"{type(value).__name__}, not a tensor",
                               hint="expected a file saved with torch.save(model.state_dict(), ...)")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise WeightsError(f"{path.name} holds NaN or infinite values (in {str(key)[:80]!r}): the network "
                               "would give no picture", hint="the file is damaged, or came from a training run "
                                                             "that diverged; use another")
    if check:
        module, _, function = check.partition(":")
        getattr(importlib.import_module(module), function)(path)


def _unwrap(obj: object) -> Mapping | None:
    if not isinstance(obj, Mapping):
        return None
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), Mapping):
            return obj[key]
    return obj


def layout_problems(state: Mapping[str, object], expected: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Missing keys, unexpected keys and wrong shapes of ``state`` against ``expected``, one phrase each."""
    import torch

    missing = [k for k in expected if k not in state]
    unexpected = [str(k) for k in state if k not in expected]
    mismatched = []
    for key, shape in expected.items():
        value = state.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            mismatched.append(f"{key} is a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != tuple(shape):
            mismatched.append(f"{key} {tuple(value.shape)} instead of {tuple(shape)}")
    return [_listing(label, items) for label, items in
            (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", mismatched)) if items]


def load_strict(module: "torch.nn.Module", state: Mapping[str, object], what: str, hint: str) -> None:
    """Load ``state`` into ``module`` exactly, or raise one :class:`WeightsError` listing every problem.

    ``what`` starts the message ("not an AdaIN decoder"), ``hint`` says which file is expected.
    """
    if not isinstance(state, Mapping):
        raise WeightsError(f"{what}: expected a state dict, got {type(state).__name__}", hint=hint)
    expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    problems = layout_problems(state, expected)
    if problems:
        raise WeightsError(f"{what}: " + "; ".join(problems), hint=hint)
    module.load_state_dict(dict(state))


def _check_layout(path: Path, state: Mapping[str, Tensor], expected: Mapping[str, tuple[int, ...]],
                  layout: str | None) -> None:
    problems = layout_problems(state, expected)
    if not problems:
        return
    what = f"the {layout} layout" if layout else f"the expected layout ({len(expected)} tensors)"
    raise WeightsError(f"{path.name} does not match {what}: " + "; ".join(problems),
                       hint="this file is for another network or another version of it; check which file "
                            "the method needs with `plugin_host weights list`")


def _listing(label: str, items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    more = f", and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
    return f"{len(items)} {label} ({shown}{more})"
