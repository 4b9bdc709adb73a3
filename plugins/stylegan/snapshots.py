"""KID snapshots while a generator trains: the curve over training, and the best generator kept.

Every ``kid_every`` thousand images the trainer's averaged generator is measured against the training
pictures (:func:`.evaluate.generator_kid`, per class) and saved as it is then. The values go to
``OUT.kid.jsonl`` (one line per snapshot: step, kimg, kid, kid per class) and the generator, with its
card, to ``OUT-snapshots/NAME-STEP.pth`` (numbered by step, as the preview grids are): a sub-folder, so
snapshots do not crowd the menus when OUT is in the models folder. Install the one with the lowest KID.
The measurement uses its own random numbers, so training resumes exactly whether or not snapshots are taken.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from plugin_host.sdk import DEFAULT_ENCODER, JsonlLog, TrainingRun, export_model, write_card

from .evaluate import FEATURE_LAYERS, PooledFeatures, generator_kid, reference_pictures


class KidSnapshots:
    def __init__(self, run: TrainingRun, classes: Sequence[tuple[str, Sequence[Path]]], resolution: int,
                 every_kimg: float, images: int, images_per_step: int) -> None:
        self.run, self.classes, self.resolution = run, classes, resolution
        self.every, self.images, self.images_per_step = every_kimg, images, images_per_step
        self.folder = run.out.with_name(run.out.stem + "-snapshots")
        self.log = JsonlLog(run.out.with_name(run.out.name + ".kid.jsonl"), resume_step=run.start)
        self._features: PooledFeatures | None = None
        self._references: dict[str, torch.Tensor] = {}

    def due(self, index: int) -> bool:
        """Whether step ``index`` takes the image count past a multiple of ``every_kimg``."""
        before, after = (i * self.images_per_step / 1000 / self.every for i in (index, index + 1))
        return int(after) > int(before)

    def take(self, index: int, generator: torch.nn.Module, metadata: dict[str, Any], card: dict[str, Any]) -> dict:
        """Measure ``generator``, log it and save it; returns the logged values."""
        if self._features is None:
            encoder = self.run.ctx.load_encoder(DEFAULT_ENCODER, FEATURE_LAYERS)
            self._features = PooledFeatures(encoder)
            self._references = {name: reference_pictures(folders, self.resolution, self.images)
                                for name, folders in self.classes}
        kimg = round((index + 1) * self.images_per_step / 1000, 3)
        values = {"kimg": kimg, **generator_kid(generator, self._references, self._features, images=self.images)}
        self.log.write(index + 1, **values)
        path = self.folder / f"{self.run.out.stem}-{index + 1:07d}.pth"
        self.folder.mkdir(parents=True, exist_ok=True)
        export_model(path, generator, {**metadata, "steps": index + 1, "kimg": kimg})
        write_card(path, {**card, "steps": index + 1, "kimg": kimg, "kid": round(values["kid"], 5)})
        return values
