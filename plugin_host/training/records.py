"""What a run leaves to read: the JSONL loss log and preview grids."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from ..imaging.io import save_image
from .checkpoint import _atomic_write

PathLike = str | os.PathLike


class JsonlLog:
    """A training log: one JSON object per line (``step``, ``time``, then the values given).

    Opening it drops the lines with ``step > resume_step`` (and a torn last line), so after resuming
    at step k the log holds what led to k, then what follows; ``resume_step=0`` starts it empty.
    Each :meth:`write` appends and closes the file, so the lines are on disk as training goes.
    """

    def __init__(self, path: PathLike, resume_step: int = 0) -> None:
        self.path = Path(path)
        kept = [line for line, record in self._lines() if record["step"] <= resume_step]
        _atomic_write(self.path, lambda fp: fp.write("".join(line + "\n" for line in kept).encode("utf-8")))

    def write(self, step: int, **values: float) -> None:
        record = {"step": int(step), "time": round(time.time(), 3)}
        record.update({k: v.item() if isinstance(v, torch.Tensor) else v for k, v in values.items()})
        with open(self.path, "a", encoding="utf-8") as fp:
            fp.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        return [record for _, record in self._lines()]

    def _lines(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if not self.path.exists():
            return
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                yield line, record


def save_grid(path: PathLike, images: Sequence[torch.Tensor], nrow: int | None = None, padding: int = 2) -> Path:
    """Tile (B, 3, H, W) batches of one size into one image file, ``nrow`` images per row (default: B).

    With the default each batch is a row, e.g. ``[contents, styles, outputs]``. Written atomically.
    """
    from torchvision.utils import make_grid

    batch = torch.cat([image.detach().float().cpu() for image in images]).clamp(0, 1)
    grid = make_grid(batch, nrow=nrow or images[0].shape[0], padding=padding)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_image(path, grid[None])
