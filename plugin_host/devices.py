"""Device selection: ``auto`` picks the best device present."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .errors import PluginHostError

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def select_device(name: str = "auto") -> "torch.device":
    """``auto`` → CUDA if present, else Apple MPS, else CPU; ``cuda:1`` style names are accepted."""
    import torch

    base = name.split(":", 1)[0]
    if base not in DEVICE_CHOICES:
        raise PluginHostError(f"unknown device {name!r}", hint="use one of " + ", ".join(DEVICE_CHOICES))
    cuda, mps = torch.cuda.is_available(), _mps_available()
    if not cuda:
        _skip_triton()
    if base == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if base == "cuda" and not cuda:
        raise PluginHostError("--device cuda was asked for but no CUDA GPU is visible to torch",
                              hint="use --device auto or cpu, or install a CUDA build of torch")
    if base == "mps" and not mps:
        raise PluginHostError("--device mps was asked for but Apple's MPS backend is not available",
                              hint="use --device auto or cpu")
    return torch.device(name)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def _skip_triton() -> None:
    """Keep torch from importing Triton where there is no CUDA GPU for it to compile for.

    ``torch.optim`` imports ``torch._dynamo``, which imports Triton when it is installed (the
    CUDA wheels of torch bring it): 80 MiB of resident memory and 0.2 s that a CPU run never
    uses. A ``None`` entry in ``sys.modules`` makes that import fail at once, which torch reads
    as "Triton is not installed". Left alone if something imported Triton already.
    """
    sys.modules.setdefault("triton", None)
