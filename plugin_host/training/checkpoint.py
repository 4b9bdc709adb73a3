"""Checkpoints that resume a run exactly (models, optimisers, schedulers, RNG states) and the fp16 export."""
from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_write
from ..errors import InputImageError, PluginHostError, WeightsError
from ..weights.checkpoint import load_weights_file

CHECKPOINT_FORMAT = "plugin_host.training/1"

PathLike = str | os.PathLike


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper, else ``model`` itself."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


def save_checkpoint(path: PathLike, *, models: Mapping[str, nn.Module], optimizers: Mapping[str, Any],
                    schedulers: Mapping[str, Any] | None = None, step: int,
                    metadata: Mapping[str, Any] | None = None, rng: bool = True) -> Path:
    """Write all that :func:`restore` needs to go on after ``step`` to ``path``, atomically.

    The file holds only tensors and plain values (RNG states as tensors) so that it loads with
    ``torch.load(weights_only=True)``; ``metadata`` may hold str, int, float, bool, None and lists
    and str-keyed dicts of them. Models are stored unwrapped (no ``module.`` prefix from DDP).
    The folder is created if needed; a failed or interrupted save leaves the previous file intact.
    """
    payload = {
        "format": CHECKPOINT_FORMAT, "step": int(step), "metadata": dict(metadata or {}),
        "models": {name: unwrap(model).state_dict() for name, model in models.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "schedulers": {name: sched.state_dict() for name, sched in (schedulers or {}).items()},
        "rng": _rng_state() if rng else None,
    }
    _check_plain(payload, "checkpoint")  # else it would save fine and then refuse to load
    return _atomic_save(payload, Path(path))


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """Read a :func:`save_checkpoint` file with ``weights_only=True``; WeightsError if it is not one.

    Read into memory, not mapped: the optimiser keeps the loaded tensors as its state and updates
    them in place, and the run replaces this very file at its next checkpoint.
    """
    path = Path(path)
    obj = load_weights_file(path, mmap=False)
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path.name} is not a plugin_host training checkpoint",
                           hint="pass the checkpoint a training run wrote, or start without resuming")
    return obj


def restore(checkpoint: Mapping[str, Any], models: Mapping[str, nn.Module],
            optimizers: Mapping[str, Any] | None = None, schedulers: Mapping[str, Any] | None = None,
            *, rng: bool = True) -> int:
    """Load the named states from ``checkpoint`` into the objects given, and the RNG states; return its step.

    Restore before wrapping in DDP (or pass the wrapper: it is unwrapped), and models before
    optimizers. Under DDP every rank gets rank 0's RNG state.
    """
    for kind, objects in (("models", models), ("optimizers", optimizers or {}), ("schedulers", schedulers or {})):
        saved = checkpoint.get(kind, {})
        missing = sorted(set(objects) - set(saved))
        if missing:
            raise WeightsError(f"the checkpoint has no {kind} named {', '.join(missing)} "
                               f"(it has {', '.join(sorted(saved)) or 'none'})",
                               hint="resume with the method and settings that wrote it")
        for name, obj in objects.items():
            try:
                unwrap(obj).load_state_dict(saved[name])
            except (RuntimeError, ValueError, KeyError, TypeError) as err:
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
                raise WeightsError(f"the checkpoint's {kind[:-1]} {name!r} does not fit: {reason}",
                                   hint="resume with the settings that wrote it, or start afresh") from None
    if rng and checkpoint.get("rng") is not None:
        _set_rng_state(checkpoint["rng"])
    return int(checkpoint["step"])


def export_model(path: PathLike, module: nn.Module, metadata: Mapping[str, Any] | None = None,
                 dtype: torch.dtype = torch.float16) -> Path:
    """Write ``{"state_dict", "metadata"}`` for inference, floating tensors as ``dtype``, atomically."""
    state = {key: value.detach().cpu().to(dtype) if value.is_floating_point() else value.detach().cpu()
             for key, value in unwrap(module).state_dict().items()}
    payload = {"state_dict": state, "metadata": dict(metadata or {})}
    _check_plain(payload, "export")
    return _atomic_save(payload, Path(path))


def _rng_state() -> dict[str, Any]:
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    # Only the current CUDA device's state: asking for all would create a context on every GPU.
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return {"torch": torch.get_rng_state(), "cuda": cuda,
            "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(cached)}}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["gauss"]))


def _check_plain(obj: object, where: str) -> None:
    """Raise ValueError unless ``obj`` is tensors and plain values that ``weights_only`` loading accepts."""
    if obj is None or isinstance(obj, (torch.Tensor, str, int, float, bool)):
        return
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            _check_plain(item, f"{where}[{i}]")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise ValueError(f"{where}: key {key!r} is a {type(key).__name__}; use str keys")
            _check_plain(value, f"{where}[{key!r}]")
    else:
        raise ValueError(f"{where} holds a {type(obj).__name__}; checkpoints store only tensors, numbers, "
                         "strings, None, lists and dicts")


def _atomic_save(obj: object, path: Path) -> Path:
    _atomic_write(path, lambda fp: torch.save(obj, fp))
    return path


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
    except OSError as err:
        raise PluginHostError(f"cannot create folder '{path.parent}': {err.strerror or err}",
                              hint="check the path and permissions") from err
    except InputImageError as err:  # atomic_write speaks of images; these files are not
        raise PluginHostError(err.message, err.hint) from err.__cause__
