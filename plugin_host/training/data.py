"""Training data: random crops from image folders, in a stream that resumes at any step."""
from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from ..errors import InputImageError
from ..image_files import IMAGE_SUFFIXES, image_files
from ..imaging._checks import check_positive_int
from ..imaging.io import load_image
from ..imaging.resize import resize_to

PathLike = str | os.PathLike


def _seed(*parts: int | str) -> int:
    """A 63-bit seed mixed from ``parts``; stable across processes and platforms, unlike ``hash``."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


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
