"""AdaIN stylisation: encode, re-normalise the content features with the style's statistics, decode.

Style statistics (per-channel mean and std at relu4_1) are computed once from the whole
style image(s). Large content images are processed in tiles in two passes: the first
collects the content's feature statistics over the whole image, the second normalises each
tile with those global statistics and decodes it, so tiles agree and memory stays bounded.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from plugin_host.context import RunContext
from plugin_host.errors import InputImageError
from plugin_host.imaging.color import match_color_statistics, preserve_luminance
from plugin_host.imaging.resize import resize_max_side, resize_to
from plugin_host.imaging.tiling import tiled_apply
from plugin_host.losses import mean_std
from plugin_host.runner import Inputs
from plugin_host.schema import Params

from .models import load_models
from .net import adain, encode

FEATURE_LAYER = "relu4_1"
STRIDE = 8  # three 2x poolings between the image and relu4_1
TILE_OVERLAP = 64


def run(inputs: Inputs, params: Params, ctx: RunContext) -> torch.Tensor:
    content = resize_max_side(inputs["content"], params.content_size or None)
    styles = [resize_max_side(s, params.style_size or None) for s in inputs["style"]]
    if params.preserve_colors == "histogram":
        styles = [match_color_statistics(style, content) for style in styles]
    encoder, decoder = load_models(ctx, params.decoder)
    ctx.progress.stage("style statistics", total=len(styles))
    stats = []
    with torch.no_grad():
        for style in styles:
            ctx.cancel.raise_if_cancelled()
            stats.append(mean_std(encode(encoder, style)[FEATURE_LAYER]))
            ctx.progress.advance()
    weights = torch.tensor(inputs.blend_weights("style"), device=content.device, dtype=content.dtype)
    masks = _masks(inputs, len(styles), content)

    def stylise(image: torch.Tensor, content_stats=None, mask_tile=None) -> torch.Tensor:
        padded, (height, width) = _pad_to_stride(image)
        features = encode(encoder, padded)[FEATURE_LAYER]
        target = _transfer(features, stats, weights, content_stats,
                           None if mask_tile is None else _pad_to_stride(mask_tile)[0])
        mixed = params.alpha * target + (1 - params.alpha) * features
        return decoder(mixed)[..., :height, :width].clamp(0, 1)

    with torch.no_grad():
        tile = params.tile_size
        if not tile or max(content.shape[-2:]) <= tile:
            ctx.progress.stage("decode", total=1)
            out = stylise(content, mask_tile=masks)
            ctx.progress.advance()
        else:
            content_stats = _global_content_stats(encoder, content, tile, ctx)
            stacked = content if masks is None else torch.cat([content, masks], 1)

            def tile_fn(piece: torch.Tensor) -> torch.Tensor:
                image, mask = piece[:, :3], (piece[:, 3:] if masks is not None else None)
                return stylise(image, content_stats, mask)

            out = tiled_apply(stacked, tile_fn, tile=tile, overlap=min(TILE_OVERLAP, tile // 4), cancel=ctx.cancel,
                              progress=ctx.progress, stage="decode tiles").to(content.device)
    if params.preserve_colors == "luminance":
        out = preserve_luminance(out, content)
    return out


def _transfer(features, stats, weights, content_stats, masks) -> torch.Tensor:
    if masks is None:  # interpolation: blend the statistics (AdaIN is affine in them)
        mean = sum(w * m for w, (m, _) in zip(weights, stats))
        std = sum(w * s for w, (_, s) in zip(weights, stats))
        return adain(features, mean, std, content_stats=content_stats)
    small = F.interpolate(masks, size=features.shape[-2:], mode="bilinear", align_corners=False)
    coverage = small.sum(1, keepdim=True)
    shares = small / coverage.clamp_min(1e-6)  # overlapping masks share a pixel
    styled = sum(shares[:, i:i + 1] * adain(features, m, s, content_stats=content_stats)
                 for i, (m, s) in enumerate(stats))
    coverage = coverage.clamp(max=1)  # where no mask is set the content stays unstyled
    return coverage * styled + (1 - coverage) * features


def _masks(inputs: Inputs, count: int, content: torch.Tensor) -> torch.Tensor | None:
    given = inputs.get("mask")
    if not given:
        return None
    if len(given) != count:
        raise InputImageError(f"{len(given)} masks for {count} styles", hint="give one mask per style, in order")
    masks = [resize_to(m.mean(1, keepdim=True), tuple(content.shape[-2:])) for m in given]
    return torch.cat(masks, 1).clamp(0, 1)


def _pad_to_stride(image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % STRIDE, -width % STRIDE
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode="reflect" if min(height, width) > STRIDE else "replicate")
    return image, (height, width)


def _global_content_stats(encoder, content: torch.Tensor, tile: int, ctx: RunContext):
    """Mean and std of the content's relu4_1 features over the whole image, accumulated tile by tile."""
    total = squares = None
    count = 0
    rows = range(0, content.shape[-2], tile)
    cols = range(0, content.shape[-1], tile)
    ctx.progress.stage("content statistics", total=len(rows) * len(cols))
    for top in rows:
        for left in cols:
            ctx.cancel.raise_if_cancelled()
            piece = content[..., top:top + tile, left:left + tile]
            features = encode(encoder, _pad_to_stride(piece)[0])[FEATURE_LAYER].double()
            sums = features.sum((2, 3))
            total = sums if total is None else total + sums
            squared = features.square().sum((2, 3))
            squares = squared if squares is None else squares + squared
            count += features.shape[-2] * features.shape[-1]
            ctx.progress.advance()
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).add(1e-5).sqrt()
    return mean.to(content.dtype), std.to(content.dtype)
