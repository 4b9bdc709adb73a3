"""Applying a Gated-GAN generator: a gate from the chosen style, blend and strength; tiled when large."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from plugin_host.sdk import (Inputs, ParameterError, Params, RunContext, frozen_instance_norm, pad_to_min_side,
                             preserve_colors, resize_max_side, resize_to, scale, tiled_apply)

from .models import load_model
from .net import from_network, to_network

#: Tile overlap in pixels: the outer quarter next to a tile's edge is ignored, the middle half cross-faded.
#: The generator sees about 63 px around each pixel; ignoring 32 px keeps a tiled result within 0.1 of an
#: 8-bit level of the untiled one (measured on random and trained networks of the paper's depth), 16 px
#: (overlap 64) does not (7 levels). Tiles under 258 px get less, at most half a tile.
TILE_OVERLAP = 128
#: Longest side of the copy whose instance-norm statistics all tiles share; up to it they are exactly
#: those of the untiled run.
STATS_SIDE = 1536
#: The 7×7 reflection padding and the two stride-2 stages need a few pixels: smaller pictures are
#: padded to this and cropped back.
MIN_SIDE = 16
#: Smallest tile used, whatever tile_size asks: a smaller one would be mostly overlap.
MIN_TILE = 64


def run(inputs: Inputs, params: Params, ctx: RunContext) -> torch.Tensor:
    content = inputs["content"]
    net, styles = load_model(ctx, params.model)
    gate = make_gate(styles, params).to(content.device)
    scaled = scale(content, params.content_scale) if params.content_scale != 1 else content
    out = stylise(net, scaled, gate, params.tile_size, ctx)
    if out.shape[-2:] != content.shape[-2:]:
        out = resize_to(out, tuple(content.shape[-2:]))
    if params.preserve_colors != "none":
        out = preserve_colors(out, content, params.preserve_colors)
    return out.clamp(0, 1)


def make_gate(styles: Sequence[str], params: Params) -> torch.Tensor:
    """The (1, n_styles + 1) gate: the style mix (``style_blend`` normalised, else one-hot ``style``)
    times ``strength``, and ``1 − strength`` on the identity branch."""
    mix = style_mix(styles, params)
    return torch.tensor([[*(params.strength * weight for weight in mix), 1.0 - params.strength]])


def style_mix(styles: Sequence[str], params: Params) -> list[float]:
    known = ", ".join(styles)
    if params.style_blend:
        weights = params.style_blend
        unknown = [name for name in weights if name not in styles]
        if unknown:
            raise ParameterError("style_blend", f"model {params.model!r} has no style {unknown[0]!r}",
                                 hint=f"its styles: {known}")
        total = sum(weights.values())
        return [weights.get(name, 0.0) / total for name in styles]
    name = params.style or styles[0]
    if name not in styles:
        raise ParameterError("style", f"model {params.model!r} has no style {name!r}", hint=f"its styles: {known}")
    return [1.0 if style == name else 0.0 for style in styles]


def stylise(net: torch.nn.Module, image: torch.Tensor, gate: torch.Tensor, tile: int, ctx: RunContext) -> torch.Tensor:
    """The generator on a 0..1 image with ``gate``, whole or tile by tile (``tile`` pixels; 0 = never)."""
    padded, crop_back = pad_to_min_side(image, MIN_SIDE)

    def apply(piece: torch.Tensor) -> torch.Tensor:
        return from_network(net(to_network(piece), gate)).clamp(0, 1)

    tile = max(tile, MIN_TILE) if tile else 0
    ctx.cancel.raise_if_cancelled()
    with torch.no_grad():
        if not tile or max(padded.shape[-2:]) <= tile:
            ctx.progress.stage("network", total=1)
            out = apply(padded)
            ctx.progress.advance()
            return crop_back(out)
        ctx.progress.stage("normalisation statistics", total=1)
        reference = resize_max_side(padded, max(tile, STATS_SIDE))
        with frozen_instance_norm(net, to_network(reference), run=lambda x: net(x, gate)):
            ctx.progress.advance()
            overlap = min(TILE_OVERLAP, (tile - 1) // 2)
            out = tiled_apply(padded, apply, tile=tile, overlap=overlap, cancel=ctx.cancel, progress=ctx.progress,
                              stage="network tiles")
        return crop_back(out.to(image.device))
