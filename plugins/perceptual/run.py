"""Applying trained perceptual-loss networks: style transfer and super-resolution, tiled when large."""
from __future__ import annotations

import torch

from plugin_host.sdk import (Inputs, Params, RunContext, frozen_instance_norm, pad_to_min_side, preserve_colors,
                             resize_max_side, resize_to, scale, tiled_apply)

from .models import load_model
from .net import apply_net

#: Tile overlap in input pixels. The style network sees about 54 px around each pixel, more than the
#: quarter of the overlap that the tiling helper reproduces exactly, so tiles are cross-faded over
#: 64 px: seams are measured in benchmarks/ and tests, not guaranteed zero.
TILE_OVERLAP = 128
#: Longest side (in output pixels) of the copy whose instance-norm statistics all tiles share;
#: below it the statistics are exactly those of the untiled run.
STATS_SIDE = 1536
#: The networks' 9x9 reflection padding needs 5 px, their two stride-2 stages sizes divisible by 4:
#: smaller pictures are padded to this and cropped back.
MIN_SIDE = 8


def forward(net: torch.nn.Module, image: torch.Tensor, tile: int, ctx: RunContext, factor: int = 1) -> torch.Tensor:
    """``apply_net`` on the whole image, or tile by tile when it is larger than ``tile`` (input pixels)."""
    padded, crop_back = pad_to_min_side(image, MIN_SIDE)
    return crop_back(_forward(net, padded, tile, ctx, factor))


def _forward(net: torch.nn.Module, image: torch.Tensor, tile: int, ctx: RunContext, factor: int) -> torch.Tensor:
    ctx.cancel.raise_if_cancelled()
    with torch.no_grad():
        if not tile or max(image.shape[-2:]) <= tile:
            ctx.progress.stage("network", total=1)
            out = apply_net(net, image)
            ctx.progress.advance()
            return out
        overlap = min(TILE_OVERLAP, tile // 4)
        tiled = lambda: tiled_apply(image, lambda piece: apply_net(net, piece), tile=tile,  # noqa: E731
                                    overlap=overlap, scale=factor, cancel=ctx.cancel, progress=ctx.progress,
                                    stage="network tiles").to(image.device)
        if not any(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules()):
            return tiled()
        ctx.progress.stage("normalisation statistics", total=1)
        reference = resize_max_side(image, max(tile, STATS_SIDE // factor))
        with frozen_instance_norm(net, reference, run=lambda x: apply_net(net, x)):
            ctx.progress.advance()
            return tiled()


def run_style(inputs: Inputs, params: Params, ctx: RunContext) -> torch.Tensor:
    content = inputs["content"]
    if params.strength == 0:
        return content
    net, _ = load_model(ctx, params.model, "style")
    scaled = scale(content, params.content_scale) if params.content_scale != 1 else content
    out = forward(net, scaled, params.tile_size, ctx)
    if out.shape[-2:] != content.shape[-2:]:
        out = resize_to(out, tuple(content.shape[-2:]))
    if params.preserve_colors != "none":
        out = preserve_colors(out, content, params.preserve_colors)
    return torch.lerp(content, out, params.strength)


def run_sr(inputs: Inputs, params: Params, ctx: RunContext) -> torch.Tensor:
    net, metadata = load_model(ctx, params.model, "sr")
    factor = int(metadata.get("scale", 4))
    # tile_size counts output pixels; a tile is at least 16 input pixels
    tile = max(16, params.tile_size // factor) if params.tile_size else 0
    return forward(net, inputs["content"], tile, ctx, factor=factor)
