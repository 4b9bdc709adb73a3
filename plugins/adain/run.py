"""AdaIN stylisation: encode, re-normalise the content features with the style's statistics, decode.

Style statistics (per-channel mean and std at relu4_1) are computed once from the whole
style image(s), and kept for the next runs with the same pixels (a warm server restyling with one
style skips its encoder pass, about a third of a 512² call). A content image larger than one tile is
encoded tile by tile, each tile with some of its neighbours around it, into one relu4_1 map of the
whole image (1/8 of its size, kept on the CPU); its statistics are then exact, and the map is normalised and decoded in
overlapping tiles. Device memory holds one tile; the encoder runs once per pixel.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
import torch.nn.functional as F

from plugin_host.sdk import (InputImageError, Inputs, Params, RunContext, match_color_statistics, mean_std,
                             pad_to_min_side, preserve_luminance, resize_max_side, resize_to, tiled_apply)

from .models import load_models
from .net import adain, decoder_input

STRIDE = 8  # three 2x poolings between the image and relu4_1
ENCODE_CONTEXT = 64  # pixels of the neighbouring image around a tile while it is encoded
# Decoded tiles overlap by 128 px and drop its outer quarter (32 px) on each side: the decoder sees about 3.25
# feature pixels (26 px) around an output pixel, so the pixels kept never see a tile's edge.
TILE_OVERLAP = 128
MIN_TILE = 128
MIN_SIDE = 2 * STRIDE  # the decoder's first reflection padding needs a relu4_1 map of 2x2 at least
STYLE_STATS_KEPT = 16  # style statistics remembered per decoder (2 x 512 numbers each)


def run(inputs: Inputs, params: Params, ctx: RunContext) -> torch.Tensor:
    original = resize_max_side(inputs["content"], params.max_size or None)
    content, crop_back = pad_to_min_side(original, MIN_SIDE)
    styles = [pad_to_min_side(resize_max_side(s, params.style_size or None), MIN_SIDE)[0] for s in inputs["style"]]
    if params.preserve_colors == "histogram":
        styles = [match_color_statistics(style, content) for style in styles]
    encoder, decoder = load_models(ctx, params.decoder)
    ctx.progress.stage("style statistics", total=len(styles))
    stats = []
    remembered = ctx.cache.get(("adain", "style statistics", params.decoder, *ctx.placement), OrderedDict)
    with torch.no_grad():
        for style in styles:
            ctx.cancel.raise_if_cancelled()
            stats.append(_style_stats(style, remembered, lambda s: mean_std(decoder_input(encoder, decoder, s))))
            ctx.progress.advance()
    weights = torch.tensor(inputs.blend_weights("style"), device=content.device, dtype=content.dtype)
    masks = _masks(inputs, len(styles), original)
    masks = None if masks is None else pad_to_min_side(masks, MIN_SIDE)[0]

    def stylise(features: torch.Tensor, content_stats=None, regions=None) -> torch.Tensor:
        target = _transfer(features, stats, weights, content_stats, regions)
        return decoder(params.strength * target + (1 - params.strength) * features)

    with torch.no_grad():
        tile = params.tile_size
        if not tile or max(content.shape[-2:]) <= tile:
            ctx.progress.stage("decode", total=1)
            ctx.cancel.raise_if_cancelled()
            padded, (height, width) = _pad_to_stride(content)
            padded_masks = None if masks is None else _pad_to_stride(masks)[0]
            out = stylise(decoder_input(encoder, decoder, padded), regions=padded_masks)[..., :height, :width]
            ctx.progress.advance()
        else:
            # Padded to the stride and cut at multiples of it, every tile sees the same 8-px grid.
            padded, (height, width) = _pad_to_stride(content)
            tile = max(MIN_TILE, tile - tile % STRIDE)
            features, regions, sums = _encode_in_tiles(
                lambda image: decoder_input(encoder, decoder, image), padded,
                None if masks is None else _pad_to_stride(masks)[0], tile, ctx)
            content_stats = [(m.to(ctx.device), s.to(ctx.device)) for m, s in _region_stats(sums, features.dtype)]
            channels = features.shape[1]
            stacked = features if masks is None else torch.cat([features, regions[:, 1:].to(features.dtype)], 1)

            def decode_tile(piece: torch.Tensor) -> torch.Tensor:  # features (and region weights) → pixels
                piece = piece.to(ctx.device)
                return stylise(piece[:, :channels], content_stats, piece[:, channels:] if masks is not None else None)

            small = tile // STRIDE
            out = tiled_apply(stacked, decode_tile, tile=small, overlap=min(TILE_OVERLAP // STRIDE, small // 4),
                              scale=STRIDE, cancel=ctx.cancel, progress=ctx.progress, stage="decode tiles")
            out = out[..., :height, :width].to(content.device)
    out = crop_back(out).clamp(0, 1)
    if params.preserve_colors == "luminance":
        out = preserve_luminance(out, original)
    return out


def _style_stats(style: torch.Tensor, remembered: OrderedDict, compute) -> tuple[torch.Tensor, torch.Tensor]:
    """``compute(style)``, or what it gave for a style of exactly these pixels before (least recently used
    entries beyond :data:`STYLE_STATS_KEPT` are forgotten)."""
    key = (tuple(style.shape), str(style.dtype),
           hashlib.blake2b(style.detach().float().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest())
    if key in remembered:
        remembered.move_to_end(key)
        return remembered[key]
    remembered[key] = stats = compute(style)
    while len(remembered) > STYLE_STATS_KEPT:
        remembered.popitem(last=False)
    return stats


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


def _encode_in_tiles(encode_fn, content: torch.Tensor, masks: torch.Tensor | None, tile: int, ctx: RunContext):
    """The decoder's input map (``encode_fn``: relu4_1, with the colour path also its colours) of the whole
    ``content`` (padded to the stride; ``tile`` a multiple of it) on the CPU, the region weights on its grid
    (:func:`_region_weights`) and their :func:`_weighted_sums`.

    Each tile is encoded with ``ENCODE_CONTEXT`` pixels of its neighbours around it and only its own
    part of the result is kept: without them, the features along every tile's border (zero padding
    instead of the image) would differ from the whole image's, shift its statistics and show as seams.
    """
    height, width = content.shape[-2:]
    rows, cols = range(0, height, tile), range(0, width, tile)
    features = regions = sums = None
    ctx.progress.stage("encode tiles", total=len(rows) * len(cols))
    for top in rows:
        for left in cols:
            ctx.cancel.raise_if_cancelled()
            y0, x0 = max(0, top - ENCODE_CONTEXT), max(0, left - ENCODE_CONTEXT)
            y1, x1 = min(height, top + tile + ENCODE_CONTEXT), min(width, left + tile + ENCODE_CONTEXT)
            encoded = encode_fn(content[..., y0:y1, x0:x1].contiguous())
            bottom, right = min(height, top + tile), min(width, left + tile)
            own = encoded[..., (top - y0) // STRIDE:(bottom - y0) // STRIDE, (left - x0) // STRIDE:(right - x0) // STRIDE]
            if features is None:
                features = torch.empty(content.shape[0], encoded.shape[1], height // STRIDE, width // STRIDE,
                                       dtype=encoded.dtype)
                regions = _region_weights(features, None if masks is None else masks.cpu())
            window = (..., slice(top // STRIDE, bottom // STRIDE), slice(left // STRIDE, right // STRIDE))
            features[window] = own.cpu()
            piece = _weighted_sums(features[window], regions[window])  # in pieces: float64 copies stay small
            sums = piece if sums is None else tuple(a + b for a, b in zip(sums, piece))
            ctx.progress.advance()
    return features, regions, sums
