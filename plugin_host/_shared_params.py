"""Parameters several methods take, declared once so that name, label, help, default and bounds agree.

A method puts them in its :class:`~plugin_host.schema.Schema` as they are (``Schema((..., PRESERVE_COLORS,
TILE_SIZE))``); the SDK exports them. Standard library only.
"""
from __future__ import annotations

from .schema import BoolParam, ChoiceParam, FloatParam, IntParam

#: The colour modes of :func:`plugin_host.imaging.color.preserve_colors` and of :data:`PRESERVE_COLORS`.
COLOR_MODES = ("none", "luminance", "histogram")

PRESERVE_COLORS = ChoiceParam(
    "preserve_colors", "Preserve colours",
    "keep the content's colours: luminance styles the brightness only and keeps the content's chroma; "
    "histogram matches the colours to the content's statistics", "none", choices=COLOR_MODES)

TILE_SIZE = IntParam(
    "tile_size", "Tile size",
    "images larger than this many pixels on a side are processed in tiles of about this size, to bound "
    "memory (0 = never tile; seams are invisible from 512 up)", 1024, min=0, max=8192)

#: What every trainer's schema declares for :class:`plugin_host.training.TrainingRun` (besides its own
#: ``iterations``, whose default differs per method): ``Schema((..., *TRAINING_RUN_PARAMS))``.
TRAINING_RUN_PARAMS = (
    IntParam("checkpoint_every", "Checkpoint every", "steps between resumable checkpoints", 500, min=1),
    IntParam("log_every", "Log every", "steps between JSONL log lines", 10, min=1),
    IntParam("preview_every", "Preview every", "steps between preview grids (0 = never)", 500, min=0),
    BoolParam("resume", "Resume", "continue from OUT.ckpt when it exists", True),
    IntParam("workers", "Data workers", "data-loading processes", 0, min=0, max=64),
)

__all__ = ["COLOR_MODES", "PRESERVE_COLORS", "TILE_SIZE", "TRAINING_RUN_PARAMS", "shift_weight_param"]


def shift_weight_param(default: float = 0.0) -> FloatParam:
    """The weight of :func:`plugin_host.losses.shift_equivariance_loss` in a trainer's schema, in grey levels²
    (its default differs per method: the recipe that worked for each)."""
    return FloatParam(
        "shift_weight", "Shift weight",
        "weight of the shift-equivariance loss (grey levels squared): the output for the photo shifted by "
        "1-3 px must be the output shifted alike, so no pattern locks to the pixel grid (0 = off)",
        default, min=0.0, max=1e6)
