"""Training-loop helpers for methods that train (AdaIN decoders, Johnson perceptual nets).

What pytorch/examples' short scripts leave out: exact resume (data order and random crops follow
from the seed and the sample's position, RNG states travel in the checkpoint), atomic checkpoints
that load with ``torch.load(weights_only=True)``, a JSONL loss log that stays consistent on resume,
and torchrun / DDP setup. Under DDP only rank 0 (``DistributedInfo.is_main``) writes files.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .errors import InputImageError, PluginHostError, WeightsError
from ._atomic import atomic_write
from .imaging._checks import check_positive_int
from .image_files import IMAGE_SUFFIXES, image_files
from .imaging.io import load_image, save_image
from .imaging.resize import resize_to
from .progress import CancelToken, Progress
from .weights.checkpoint import load_weights_file

CHECKPOINT_FORMAT = "plugin_host.training/1"

PathLike = str | os.PathLike


def _seed(*parts: int | str) -> int:
    """A 63-bit seed mixed from ``parts``; stable across processes and platforms, unlike ``hash``."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


# --- data -------------------------------------------------------------------------------------

class ImageFolder(Dataset):
    """The image files under one or more folders, served as random ``crop``×``crop`` RGB crops in 0..1.

    Files (:data:`IMAGE_SUFFIXES`, any case; hidden names skipped) are listed sorted, searching
    subfolders unless ``recursive=False``. An item is loaded with :func:`load_image`, its short side
    resized to ``resize_short`` (antialiased) if given, upscaled if still shorter than ``crop``, then
    cropped at a random position. ``dataset[(index, seed)]`` draws that position from a generator
    seeded with ``seed`` (what :func:`infinite_batches` does, so crops do not depend on workers);
    ``dataset[index]`` uses torch's global RNG.

    Unreadable files (damaged, not images, above ``max_pixels``) do not stop a long run: the next
    readable file stands in, with one warning per file; ``skipped`` holds them (per process).
    """

    def __init__(self, root: PathLike | Sequence[PathLike], crop: int, resize_short: int | None = None,
                 recursive: bool = True, max_pixels: int | None = None) -> None:
        roots = [Path(root)] if isinstance(root, (str, os.PathLike)) else [Path(r) for r in root]
        if not roots:
            raise ValueError("root: expected at least one folder")
        self.crop = check_positive_int(crop, "crop")
        self.resize_short = None if resize_short is None else check_positive_int(resize_short, "resize_short")
        self.max_pixels = max_pixels
        self.files: list[Path] = []
        self.skipped: set[Path] = set()
        for folder in roots:
            if not folder.is_dir():
                raise InputImageError(f"training image folder '{folder}' does not exist",
                                      hint="check the path and the current folder")
            found = image_files(folder, recursive)
            if not found:
                where = " or its subfolders" if recursive else ""
                raise InputImageError(f"no image files in '{folder}'{where}",
                                      hint=f"add images ending in {', '.join(sorted(IMAGE_SUFFIXES))}")
            self.files += found

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> torch.Tensor:
        index, seed = key if isinstance(key, tuple) else (key, None)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        return self._random_crop(self._load(index), generator)

    def _load(self, index: int) -> torch.Tensor:
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            if path in self.skipped:
                continue
            try:
                return load_image(path, self.max_pixels).rgb
            except InputImageError as err:
                self.skipped.add(path)
                warnings.warn(f"skipping training image: {err.message}", stacklevel=3)
        raise InputImageError(f"none of the {len(self.files)} training images can be read",
                              hint="check the warnings above; the files may be damaged or too large")

    def _random_crop(self, rgb: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        height, width = rgb.shape[-2:]
        short = min(height, width)
        target = max(self.resize_short or short, self.crop)
        if target != short:
            rgb = resize_to(rgb, (round(height * target / short), round(width * target / short)))
            height, width = rgb.shape[-2:]
        top = int(torch.randint(height - self.crop + 1, (1,), generator=generator))
        left = int(torch.randint(width - self.crop + 1, (1,), generator=generator))
        return rgb[0, :, top:top + self.crop, left:left + self.crop].contiguous()


def infinite_batches(dataset: Dataset, batch_size: int, seed: int, *, start_step: int = 0,
                     rank: int | None = None, world_size: int | None = None,
                     num_workers: int = 0) -> Iterator[torch.Tensor]:
    """Endless batches for this rank, the same on every run with ``seed``, resumable at any step.

    The samples form one stream: epoch ``e`` is ``randperm(len(dataset))`` seeded from
    ``(seed, e)``, epochs follow one another, and the sample at stream position ``p`` is
    ``dataset[(index, s)]`` with ``s`` a seed derived from ``(seed, p)`` (see :class:`ImageFolder`).
    Step ``k`` takes positions ``[k·B·W, (k+1)·B·W)`` (B = ``batch_size``, W = ``world_size``),
    rank ``r`` the ``r``-th run of B of them, so ranks get disjoint shards that together cover each
    epoch. Resuming at ``start_step`` computes where the stream stands instead of replaying it:
    nothing is loaded to skip ahead. A batch may span two epochs. ``rank``/``world_size`` default
    to the process group's.
    """
    check_positive_int(batch_size, "batch_size")
    grouped = dist.is_available() and dist.is_initialized()
    world_size = world_size if world_size is not None else dist.get_world_size() if grouped else 1
    rank = rank if rank is not None else dist.get_rank() if grouped else 0
    if not 0 <= rank < world_size:
        raise ValueError(f"rank: expected 0 <= rank < world_size = {world_size}, got {rank}")
    if start_step < 0:
        raise ValueError(f"start_step: expected >= 0, got {start_step}")
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        raise ValueError("dataset: expected at least one sample")
    stride = batch_size * world_size
    keys = _stream_keys(size, seed, start_step * stride + rank * batch_size, batch_size, stride)
    # Its own generator: without one, starting the loader draws its workers' base seed from torch's
    # global RNG, so a resumed run (which restores that RNG, then starts its loader) would step
    # with another global RNG state than the uninterrupted run did (dropout, noise, random augmentation).
    generator = torch.Generator().manual_seed(_seed(seed, "loader", rank))
    loader = DataLoader(dataset, batch_size=batch_size, sampler=keys, num_workers=num_workers,  # type: ignore[arg-type]
                        generator=generator)
    return iter(loader)


def _stream_keys(size: int, seed: int, first: int, run: int, stride: int) -> Iterator[tuple[int, int]]:
    """``(index, crop seed)`` for stream positions ``first + i·stride + j``, ``0 <= j < run``."""
    epoch, order = -1, []
    while True:
        for position in range(first, first + run):
            if position // size != epoch:
                epoch = position // size
                generator = torch.Generator().manual_seed(_seed(seed, "epoch", epoch))
                order = torch.randperm(size, generator=generator).tolist()
            yield order[position % size], _seed(seed, "crop", position)
        first += stride


# --- checkpoints ------------------------------------------------------------------------------

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


# --- log and previews -------------------------------------------------------------------------

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


# --- distributed ------------------------------------------------------------------------------

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


# --- loop -------------------------------------------------------------------------------------

def run_steps(total_steps: int, start_step: int, step_fn: Callable[[int], Mapping[str, float]], *,
              progress: Progress | None = None, cancel: CancelToken | None = None, log: JsonlLog | None = None,
              checkpoint_every: int = 0, save_fn: Callable[[int], None] | None = None,
              log_every: int = 1) -> int:
    """Call ``step_fn(i)`` for ``i`` in ``start_step .. total_steps - 1``; return ``total_steps``.

    Step counts are of completed steps: after ``step_fn(i)`` returns, ``i + 1`` are done. Then the
    progress advances by one with the returned values, ``log`` gets them every ``log_every``
    steps and ``save_fn(done)`` runs every ``checkpoint_every`` steps, both also at the end
    (0: only at the end).
    The caller starts the progress stage. Cancellation is checked before each step: the current
    state is saved (unless just saved) so that training resumes there, then Cancelled is raised.
    """
    progress = progress or Progress()
    saved = start_step
    for index in range(start_step, total_steps):
        if cancel is not None and cancel.cancelled:
            if save_fn is not None and saved != index:
                save_fn(index)
            cancel.raise_if_cancelled()
        values = {name: float(value) for name, value in step_fn(index).items()}
        done = index + 1
        progress.advance(1, **values)
        if log is not None and ((log_every and done % log_every == 0) or done == total_steps):
            log.write(done, **values)
        if save_fn is not None and ((checkpoint_every and done % checkpoint_every == 0) or done == total_steps):
            save_fn(done)
            saved = done
    return total_steps
