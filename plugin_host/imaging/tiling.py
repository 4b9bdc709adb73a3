"""Tiled inference for feed-forward methods: bounded device memory on images of any size.

The image is cut into overlapping tiles, ``fn`` runs on one tile at a time, and the outputs are
blended on the CPU. Across each overlap the outer quarter next to a tile's edge is ignored (that
is where ``fn``'s padding differs from the real neighbours) and the middle half is cross-faded
linearly. So a filter whose receptive field radius is at most a quarter of the overlap gives the
untiled result up to rounding, and wider ones get a smooth seam.
"""
from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Protocol

import torch

from ._checks import check_image, check_positive_int

# Smallest blend weight: keeps every output pixel defined while ignored pixels add < 1e-4 error.
_FLOOR = 1e-4


class CancelLike(Protocol):
    def raise_if_cancelled(self) -> None: ...


class ProgressLike(Protocol):
    def stage(self, name: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...


def _check_tiling(tile: int, overlap: int) -> None:
    check_positive_int(tile, "tile")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= 2 * overlap < tile:
        raise ValueError(f"overlap: expected an int with 0 <= overlap < tile / 2 = {tile / 2:g}, got {overlap!r}")


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile offsets along one axis: a regular stride, the last tile flush with the edge."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, tile - overlap), length - tile]


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[tuple[slice, slice]]:
    """``(rows, cols)`` slices of the tiles covering a ``height`` x ``width`` image, row-major.

    Tiles are ``tile`` square (or the whole side where the image is smaller), neighbours overlap
    by at least ``overlap`` pixels (more for the last row/column, which is aligned to the edge).
    """
    check_positive_int(height, "height")
    check_positive_int(width, "width")
    _check_tiling(tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    return [(slice(y, y + th), slice(x, x + tw))
            for y in _starts(height, tile, overlap) for x in _starts(width, tile, overlap)]


def _ramp(offset: torch.Tensor, shared: int) -> torch.Tensor:
    """Weight at ``offset`` pixels in from a tile side that shares ``shared`` pixels with a neighbour.

    ~0 on the outer quarter of the overlap (where the tile's own padding corrupts ``fn``'s output),
    a linear cross-fade over the middle half, 1 beyond; the two neighbours' weights sum to 1.
    """
    margin = shared // 4
    return ((offset - margin + 0.5) / (shared - 2 * margin)).clamp(_FLOOR, 1.0)


def _weights(starts: list[int], size: int, scale: int) -> list[torch.Tensor]:
    """1-D blend weights per tile along one axis, in output pixels; image borders not feathered."""
    n = size * scale
    offset = torch.arange(n, dtype=torch.float32)
    ramps = []
    for i, start in enumerate(starts):
        weight = torch.ones(n)
        before = starts[i - 1] + size - start if i > 0 else 0
        after = start + size - starts[i + 1] if i + 1 < len(starts) else 0
        if before > 0:
            weight = torch.minimum(weight, _ramp(offset, before * scale))
        if after > 0:
            weight = torch.minimum(weight, _ramp(offset.flip(0), after * scale))
        ramps.append(weight)
    return ramps


def _run(fn: Callable[[torch.Tensor], torch.Tensor], piece: torch.Tensor, scale: int,
         channels: int | None) -> torch.Tensor:
    out = fn(piece)
    batch, _, height, width = piece.shape
    expected = (batch, channels or "C", height * scale, width * scale)
    if (not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != batch
            or tuple(out.shape[-2:]) != expected[-2:] or (channels is not None and out.shape[1] != channels)):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"fn: expected an output of shape {expected} for a tile of shape "
                         f"{tuple(piece.shape)} at scale {scale}, got {got}")
    return out


def tiled_apply(image: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], tile: int = 512,
                overlap: int = 32, scale: int = 1, cancel: CancelLike | None = None,
                progress: ProgressLike | None = None, stage: str = "tiles") -> torch.Tensor:
    """Apply ``fn`` to ``image`` (B, C, H, W) tile by tile and blend the results.

    ``fn`` maps a (B, C, h, w) tile to (B, C', h * scale, w * scale) for an integer ``scale``
    (e.g. 4 for super-resolution); C' may differ from C. Tiles are ``tile`` square with at least
    ``overlap`` pixels shared with each neighbour (``overlap < tile / 2``). Across each overlap
    the outer quarter next to a tile's edge is ignored and the middle half cross-faded, so ``fn``
    with a receptive-field radius up to ``overlap / 4`` matches the untiled result. Outputs are
    accumulated in a CPU buffer, so the device holds one tile at a time; the result has ``fn``'s
    dtype and device. No gradient flows through the blend.

    ``cancel.raise_if_cancelled()`` is called before each tile; ``progress.stage(stage, total)``
    once and ``progress.advance()`` after each tile. An image within one tile is a single call.
    """
    check_image(image)
    _check_tiling(tile, overlap)
    check_positive_int(scale, "scale")
    if not callable(fn):
        raise ValueError(f"fn: expected a callable, got {type(fn).__name__}")
    batch, _, height, width = image.shape
    rows, cols = _starts(height, tile, overlap), _starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    if progress is not None:
        progress.stage(stage, len(rows) * len(cols))
    if len(rows) * len(cols) == 1:
        if cancel is not None:
            cancel.raise_if_cancelled()
        result = _run(fn, image, scale, None)
        if progress is not None:
            progress.advance()
        return result
    row_weights, col_weights = _weights(rows, th, scale), _weights(cols, tw, scale)
    out = weight = None
    dtype = device = None
    for row, y in zip(row_weights, rows, strict=True):
        for col, x in zip(col_weights, cols, strict=True):
            if cancel is not None:
                cancel.raise_if_cancelled()
            # A contiguous copy: strided views make some CPU kernels (e.g. conv2d) many times slower.
            tile_in = image[..., y:y + th, x:x + tw].contiguous()
            piece = _run(fn, tile_in, scale, None if out is None else out.shape[1])
            if out is None:
                dtype, device = piece.dtype, piece.device
                out = torch.zeros(batch, piece.shape[1], height * scale, width * scale)
                weight = torch.zeros(1, 1, height * scale, width * scale)
            blend = row[:, None] * col[None, :]
            region = (..., slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale))
            out[region] += piece.detach().to("cpu", torch.float32) * blend
            weight[region] += blend
            del piece
            if progress is not None:
                progress.advance()
    return out.div_(weight).to(device=device, dtype=dtype)


@contextlib.contextmanager
def frozen_instance_norm(net: torch.nn.Module, reference: torch.Tensor,
                         run: Callable[[torch.Tensor], object] | None = None) -> Iterator[None]:
    """Within the block, every ``InstanceNorm2d`` of ``net`` uses the statistics it saw on ``reference``.

    Instance normalisation is global: run tile by tile, each tile would be normalised by its own
    mean and variance, and neighbouring tiles would differ in tone and contrast. Running ``net``
    (through ``run``, default ``net(reference)``) once on the whole image, or on a downscaled copy
    when the whole one is too large, fixes one set of statistics for all tiles.
    """
    norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    stats: dict[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    # Statistics and the normalisation are computed in float32 even when the net runs in bfloat16.
    def record(module: torch.nn.Module, args: tuple) -> None:
        x = args[0].float()
        stats[module] = (x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, unbiased=False))

    def normalise(module: torch.nn.InstanceNorm2d, args: tuple, output: torch.Tensor) -> torch.Tensor:
        mean, var = stats[module]
        y = (args[0].float() - mean) * torch.rsqrt(var + module.eps)
        if module.affine:
            y = y * module.weight.float().view(1, -1, 1, 1) + module.bias.float().view(1, -1, 1, 1)
        return y.to(output.dtype)

    handles = [m.register_forward_pre_hook(record) for m in norms]
    try:
        with torch.no_grad():
            (run or net)(reference)
    finally:
        for handle in handles:
            handle.remove()
    handles = [m.register_forward_hook(normalise) for m in norms]
    _FROZEN.update({m: stats.get(m) for m in norms})  # None: not run on the reference (e.g. an unused branch)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module in norms:
            _FROZEN.pop(module, None)


#: Instance norms inside a :func:`frozen_instance_norm` block → the (mean, var) they use there.
_FROZEN: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]" = weakref.WeakKeyDictionary()


def is_frozen(module: torch.nn.Module) -> bool:
    """Whether ``module`` is an instance norm inside a :func:`frozen_instance_norm` block (the hooks on it are
    that block's)."""
    return module in _FROZEN


def frozen_statistics(norm: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The float32 ``(mean, var)``, each ``(N, C, 1, 1)``, that ``norm`` uses inside a :func:`frozen_instance_norm`
    block (its forward hook applies them); ``None`` outside one. For code that computes the norm itself.

    :raises RuntimeError: inside a block, for a norm that did not run on the reference picture.
    """
    if norm in _FROZEN and _FROZEN[norm] is None:
        raise RuntimeError("this instance norm did not run on the reference picture of frozen_instance_norm, so it "
                           "has no shared statistics; run the reference through the same branches as the tiles")
    return _FROZEN.get(norm)
