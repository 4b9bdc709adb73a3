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
STATS_CONTEXT = 64  # pixels of neighbouring image around a tile while its statistics are measured
TILE_OVERLAP = 128  # the tile-edge error of the default decoder is gone 48 px in; the outer quarter (32 px) is ignored


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
            # Padded to the stride, with tiles and overlaps in whole feature pixels, every tile sees the same
            # 8-px grid: neighbours then compute the same features in their overlap instead of shifted ones.
            padded, (height, width) = _pad_to_stride(content if masks is None else torch.cat([content, masks], 1))
            tile = max(STRIDE * 4, tile - tile % STRIDE)
            overlap = min(TILE_OVERLAP, tile // 4 - tile // 4 % STRIDE)
            content_stats = _global_content_stats(encoder, padded[:, :3], padded[:, 3:] if masks is not None else None,
                                                  tile, ctx)

            def tile_fn(piece: torch.Tensor) -> torch.Tensor:
                image, mask = piece[:, :3], (piece[:, 3:] if masks is not None else None)
                return stylise(image, content_stats, mask)

            out = tiled_apply(padded, tile_fn, tile=tile, overlap=overlap, cancel=ctx.cancel,
                              progress=ctx.progress, stage="decode tiles")[..., :height, :width].to(content.device)
    if params.preserve_colors == "luminance":
        out = preserve_luminance(out, content)
    return out


def _transfer(features, stats, weights, content_stats, masks) -> torch.Tensor:
    """AdaIN targets for ``features``. ``content_stats``: None to use the features' own statistics, else
    those of the whole image, as returned by :func:`_region_stats` (whole image first, then each mask's region)."""
    if masks is None:  # interpolation: blend the statistics (AdaIN is affine in them)
        mean = sum(w * m for w, (m, _) in zip(weights, stats))
        std = sum(w * s for w, (_, s) in zip(weights, stats))
        return adain(features, mean, std, content_stats=None if content_stats is None else content_stats[0])
    regions = _region_weights(features, masks)
    if content_stats is None:
        content_stats = _region_stats(_weighted_sums(features, regions), features.dtype)
    # Region i is normalised with its own content statistics (as in the paper's spatial control), so a
    # region unlike the image average (sky against buildings) still takes on exactly its style's statistics.
    small = regions[:, 1:]
    coverage = small.sum(1, keepdim=True)
    shares = small / coverage.clamp_min(1e-6)  # overlapping masks share a pixel
    styled = sum(shares[:, i:i + 1] * adain(features, m, s, content_stats=content_stats[i + 1])
                 for i, (m, s) in enumerate(stats))
    coverage = coverage.clamp(max=1)  # where no mask is set the content stays unstyled
    return coverage * styled + (1 - coverage) * features


def _region_weights(features: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """Per-region weights on the feature grid, (B, 1 + masks, h, w): the whole image, then each mask."""
    whole = features.new_ones(features.shape[0], 1, *features.shape[-2:])
    if masks is None:
        return whole
    small = F.interpolate(masks.to(features.dtype), size=features.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([whole, small], 1)


def _weighted_sums(features: torch.Tensor, regions: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per region: total weight (B, R), weighted sums of the features and of their squares (B, R, C)."""
    wide = torch.float32 if features.device.type == "mps" else torch.float64  # MPS has no float64
    f, w = features.to(wide), regions.to(wide)
    return w.sum((2, 3)), torch.einsum("brhw,bchw->brc", w, f), torch.einsum("brhw,bchw->brc", w, f * f)


def _region_stats(sums: tuple[torch.Tensor, ...], dtype: torch.dtype, eps: float = 1e-5) -> list:
    """``(mean, std)`` per region from :func:`_weighted_sums` (population variance + ``eps``, as
    :func:`plugin_host.losses.mean_std`); a region of less than one feature pixel takes the whole image's."""
    count, total, squares = sums
    count = count[..., None]
    mean = total / count.clamp_min(1e-12)
    std = (squares / count.clamp_min(1e-12) - mean.square()).clamp_min(0).add(eps).sqrt()
    empty = count < 1
    mean, std = torch.where(empty, mean[:, :1], mean), torch.where(empty, std[:, :1], std)
    return [(mean[:, r].to(dtype), std[:, r].to(dtype)) for r in range(mean.shape[1])]


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


def _global_content_stats(encoder, content: torch.Tensor, masks: torch.Tensor | None, tile: int, ctx: RunContext):
    """The content's relu4_1 statistics over the whole image (and over each mask's region), tile by tile.

    ``content`` (and ``masks``) are padded to the stride and ``tile`` is a multiple of it. Each tile is
    encoded with ``STATS_CONTEXT`` pixels of its neighbours around it and only its own features are
    counted: without them, the features along every tile's border (zero padding instead of the image)
    shift the statistics, and the decoder turns that into a change of tone over the whole result.
    """
    sums = None
    height, width = content.shape[-2:]
    rows, cols = range(0, height, tile), range(0, width, tile)
    ctx.progress.stage("content statistics", total=len(rows) * len(cols))
    for top in rows:
        for left in cols:
            ctx.cancel.raise_if_cancelled()
            y0, x0 = max(0, top - STATS_CONTEXT), max(0, left - STATS_CONTEXT)
            y1, x1 = min(height, top + tile + STATS_CONTEXT), min(width, left + tile + STATS_CONTEXT)
            features = encode(encoder, content[..., y0:y1, x0:x1])[FEATURE_LAYER]
            regions = _region_weights(features, None if masks is None else masks[..., y0:y1, x0:x1])
            own = (..., slice((top - y0) // STRIDE, (min(height, top + tile) - y0) // STRIDE),
                   slice((left - x0) // STRIDE, (min(width, left + tile) - x0) // STRIDE))
            piece = _weighted_sums(features[own], regions[own])
            sums = piece if sums is None else tuple(a + b for a, b in zip(sums, piece))
            ctx.progress.advance()
    return _region_stats(sums, content.dtype)
