"""torchrun / DistributedDataParallel: joining the job, wrapping a model, leaving cleanly."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import PluginHostError


@dataclass(frozen=True)
class DistributedInfo:
    """This process's place in a torchrun job; a plain run is rank 0 of 1 (no process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, exports, logs and previews."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def cleanup(self) -> None:
        cleanup()

    def average(self, values: Mapping[str, float]) -> dict[str, float]:
        """``values`` (a step's losses) averaged over all ranks, so the log and the progress show the
        whole batch rather than rank 0's share; unchanged in a plain run. Every rank must call it."""
        if not self.is_distributed:
            return dict(values)
        names = sorted(values)
        totals = torch.tensor([float(values[name]) for name in names], dtype=torch.float64, device=self.device)
        dist.all_reduce(totals)
        return {name: float(total) / self.world_size for name, total in zip(names, totals.tolist())}


def init_distributed(device_type: str | None = None, backend: str | None = None) -> DistributedInfo:
    """Join the job torchrun describes in RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT.

    Without WORLD_SIZE (or with 1) this is a single process on ``device_type`` (any, e.g. "mps") and
    nothing is initialised. A distributed job runs on "cuda" or "cpu" (default: cuda when available);
    with CUDA each process uses ``cuda:LOCAL_RANK`` and the backend defaults to nccl, else to gloo.
    """
    cuda = device_type == "cuda" or (device_type is None and torch.cuda.is_available())
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistributedInfo(device=torch.device("cuda", 0) if cuda else torch.device(device_type or "cpu"))
    if device_type not in (None, "cuda", "cpu"):
        raise PluginHostError(f"training under torchrun runs on CUDA or on the CPU, not on {device_type!r}",
                              hint="pass --device cuda or --device cpu, or train in one process without torchrun")
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK", 0)
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    backend = backend or ("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, rank=rank, world_size=world_size)
        except ValueError as err:  # env:// rendezvous without MASTER_ADDR / MASTER_PORT
            raise PluginHostError(f"cannot join the distributed job: {err}",
                                  hint="start it with torchrun, which sets MASTER_ADDR and MASTER_PORT") from err
    return DistributedInfo(rank, world_size, local_rank, device, backend)


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw and default is not None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise PluginHostError(f"environment variable {name}={raw!r} is not a whole number",
                              hint="start distributed training with torchrun, which sets it") from None


def wrap_ddp(model: nn.Module, info: DistributedInfo, **ddp_options: Any) -> nn.Module:
    """``model`` on ``info.device`` in DistributedDataParallel; ``model`` unchanged in a single process."""
    if not info.is_distributed:
        return model
    model = model.to(info.device)
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **ddp_options)


#: How long a leaving gloo rank waits for the others before it leaves anyway (a rank that failed never comes).
LEAVE_TIMEOUT_S = 30


def cleanup() -> None:
    """Leave the process group, if one was joined.

    Under gloo, ranks first wait for one another: rank 0 hosts the rendezvous store, and a rank still
    talking to it when rank 0 has torn it down aborts in C++ ("terminate called without an active
    exception"), which turns a finished run into a crash now and then.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_backend() == "gloo":
        import datetime

        try:
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=LEAVE_TIMEOUT_S))
        except RuntimeError:
            pass  # another rank failed or left: nothing to wait for
    dist.destroy_process_group()
