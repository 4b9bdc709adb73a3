"""The training scaffold: a trainer builds its networks and a step function, :class:`TrainingRun` runs them.

::

    with TrainingRun(ctx, out, params, label="train adain") as run:
        decoder = Decoder().to(run.device)                    # built under the run's seed
        adam = torch.optim.Adam(decoder.parameters(), lr=1e-4)
        run.track(models={"decoder": decoder}, optimizers={"adam": adam})   # resumes here
        model = run.ddp(decoder)
        photos = run.batches(ImageFolder(folder, crop=256), batch_size=8)

        def step(index: int) -> dict[str, float]:
            ...                                               # forward, backward, optimiser steps
            return {"loss": float(loss)}

        run.train(step, export=lambda steps: ..., preview=lambda index: [photos_batch, output])

What it does for every trainer: joins a torchrun job (and leaves it), keeps the trainer off the shared
run context (its own device under DDP) and off the caller's random state (the run seeds torch's RNG itself
and gives back the caller's RNG states when it ends), resumes exactly from ``OUT.ckpt``, writes the JSONL log
``OUT.log.jsonl``, preview grids ``OUT-preview-NNNNNNN.png``, checkpoints and the export (rank 0 only),
averages the logged losses over ranks, reports progress and honours cancel (saving first).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .checkpoint import _rng_state, _set_rng_state, load_checkpoint, restore, save_checkpoint
from .data import infinite_batches
from .distributed import DistributedInfo, init_distributed, wrap_ddp
from .loop import run_steps
from .records import JsonlLog, save_grid

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    from ..context import RunContext

#: What a :class:`TrainingRun` reads from a trainer's parameters (every train schema declares them).
RUN_PARAMS = ("iterations", "checkpoint_every", "log_every", "preview_every", "resume")


class TrainingRun:
    """One training run of a method: its files, device, seed, tracked state and loop.

    Args:
        ctx: the run context the host made; not changed (under torchrun the run has its own copy whose
            device is this rank's, :attr:`ctx`).
        out: the exported model's path; the checkpoint, log and previews are named after it.
        params: the trainer's parameters; :data:`RUN_PARAMS` are read from them, ``workers`` if present.
        label: the progress stage's name, e.g. ``"train adain"``.
        metadata: stored in every checkpoint (plain values), e.g. the settings that must match on resume.

    Attributes:
        dist: this process's place in a torchrun job (rank 0 of 1 without one).
        device: where the trainer's tensors live.
        seed: the run's seed (the context's, else 0).
        start: the first step to run: 0, or the step the checkpoint was written at once :meth:`track` resumed.
    """

    def __init__(self, ctx: RunContext, out: str | Path, params: Any, *, label: str,
                 metadata: Mapping[str, Any] | None = None) -> None:
        self.out = Path(out)
        self.checkpoint_path = self.out.with_name(self.out.name + ".ckpt")
        self.label = label
        self.metadata = dict(metadata or {})
        self.iterations, self.checkpoint_every, self.log_every, self.preview_every, self.resume = (
            getattr(params, name) for name in RUN_PARAMS)
        self.workers = int(getattr(params, "workers", 0) or 0)
        self.seed = ctx.seed if ctx.seed is not None else 0
        self._ctx = ctx
        self.dist: DistributedInfo = DistributedInfo()
        self.device = ctx.device
        self.ctx = ctx
        self.start = 0
        self._models: dict[str, nn.Module] = {}
        self._optimizers: dict[str, Any] = {}
        self._schedulers: dict[str, Any] = {}
        self._caller_rng: dict[str, Any] | None = None

    # --- lifetime -------------------------------------------------------------------------------

    def __enter__(self) -> TrainingRun:
        self._caller_rng = _rng_state()
        self.dist = init_distributed(device_type=self._ctx.device.type)
        if self.dist.is_distributed:  # one GPU per process under torchrun
            self.device = self.dist.device
            self.ctx = dataclasses.replace(self._ctx, device=self.device)
        torch.manual_seed(self.seed)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            self.dist.cleanup()
        finally:
            if self._caller_rng is not None:
                _set_rng_state(self._caller_rng)

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.dist.is_main

    # --- state ----------------------------------------------------------------------------------

    def track(self, models: Mapping[str, nn.Module], optimizers: Mapping[str, Any] | None = None,
              schedulers: Mapping[str, Any] | None = None) -> int:
        """Name what checkpoints hold (networks, EMA copies, optimisers, schedulers), and resume them.

        With ``resume`` and an existing checkpoint, every object named here gets its saved state and the
        RNG states are restored; call it once, after building them all and before the first batch.
        Returns :attr:`start`.
        """
        self._models.update(models)
        self._optimizers.update(optimizers or {})
        self._schedulers.update(schedulers or {})
        if self.resume and self.checkpoint_path.exists():
            self.start = restore(load_checkpoint(self.checkpoint_path), self._models, self._optimizers,
                                 self._schedulers)
        return self.start

    def ddp(self, model: nn.Module, **options: Any) -> nn.Module:
        """``model`` wrapped for DistributedDataParallel under torchrun, else ``model`` itself."""
        return wrap_ddp(model, self.dist, **options)

    def batches(self, dataset: Dataset, batch_size: int, stream: int = 0) -> Iterator[torch.Tensor]:
        """Endless batches of ``dataset`` for this rank from the current step (see :func:`infinite_batches`).

        ``stream`` tells a trainer's data streams apart (photos 0, paintings 1, …): each has its own order.
        """
        return infinite_batches(dataset, batch_size, self.seed + stream, start_step=self.start,
                                rank=self.dist.rank, world_size=self.dist.world_size, num_workers=self.workers)

    def save(self, at_step: int) -> None:
        """Write the checkpoint of the tracked state at ``at_step`` (rank 0; the others return)."""
        if self.is_main:
            save_checkpoint(self.checkpoint_path, models=self._models, optimizers=self._optimizers,
                            schedulers=self._schedulers, step=at_step, metadata=self.metadata)

    # --- the loop -------------------------------------------------------------------------------

    def train(self, step: Callable[[int], Mapping[str, float]], *, export: Callable[[int], None],
              preview: Callable[[int], Sequence[torch.Tensor]] | None = None, nrow: int | None = None) -> Path:
        """Run ``step(index)`` from :attr:`start` to ``iterations``; return the exported model's path.

        ``step`` does one optimisation step and returns its losses (plain floats), which are averaged over
        ranks, shown by the progress and logged every ``log_every`` steps. Every ``checkpoint_every`` steps,
        at the end and on cancel, rank 0 saves the checkpoint and calls ``export(steps_done)`` to write the
        model and its card. Every ``preview_every`` steps ``preview(index)`` gives (B, 3, H, W) batches of one
        size, written as a grid (one row per batch unless ``nrow``) and announced to the progress.
        """
        log = JsonlLog(self.out.with_name(self.out.name + ".log.jsonl"), resume_step=self.start) \
            if self.is_main else None

        # The method's callbacks run nested: a stage they begin (a first download of the encoder an evaluation
        # needs) is shown, then the training's own stage and count resume.
        progress = self._ctx.progress

        def one_step(index: int) -> dict[str, float]:
            with progress.nested():
                losses = self.dist.average(step(index))
            if preview is not None and self.is_main and self.preview_every and (index + 1) % self.preview_every == 0:
                grid = self.out.with_name(f"{self.out.stem}-preview-{index + 1:07d}.png")
                with progress.nested():
                    images = [image.detach() for image in preview(index)]
                save_grid(grid, images, nrow=nrow)
                progress.preview(str(grid))
            return losses

        def save_and_export(at_step: int) -> None:
            self.save(at_step)
            if self.is_main:
                with progress.nested():
                    export(at_step)

        # A resumed run reports the steps left, so its ETA is not skewed by steps done earlier.
        progress.stage(self.label + (f" from step {self.start}" if self.start else ""),
                       total=self.iterations - self.start)
        run_steps(self.iterations, self.start, one_step, progress=progress, cancel=self._ctx.cancel,
                  log=log, checkpoint_every=self.checkpoint_every, save_fn=save_and_export,
                  log_every=self.log_every)
        return self.out


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, decay: float) -> None:
    """``average ← decay · average + (1 − decay) · model`` for floating parameters and buffers; others copied.

    The exponential moving average of a generator's weights (StyleGAN's ``G_ema``); ``average`` is a copy of
    ``model`` made once at the start and tracked like any network.
    """
    model_state = dict(model.named_parameters()) | dict(model.named_buffers())
    for name, value in list(average.named_parameters()) + list(average.named_buffers()):
        source = model_state[name].detach()
        if value.is_floating_point():
            value.lerp_(source.to(value.dtype), 1.0 - decay)
        else:
            value.copy_(source)
