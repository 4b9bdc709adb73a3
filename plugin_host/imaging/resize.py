"""Resizing with antialiasing (a triangle filter as wide as the scale step, like Pillow's).

Bilinear with ``antialias=True`` only averages, so values stay in the input's range.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._checks import check_image, check_positive_int


def resize_to(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``image`` (B, C, H, W) to ``size`` = (h, w), antialiased when shrinking.

    Returns (B, C, h, w) with the input's dtype and device.
    """
    check_image(image)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"size: expected (height, width), got {size!r}")
    height, width = (check_positive_int(v, "size") for v in size)
    if (height, width) == tuple(image.shape[-2:]):
        return image
    return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def resize_max_side(image: torch.Tensor, max_side: int | None) -> torch.Tensor:
    """Shrink ``image`` (B, C, H, W) so its longer side is at most ``max_side``, keeping the aspect.

    No-op (the same tensor) when ``max_side`` is None or the image already fits. The shorter side
    is rounded and at least 1.
    """
    check_image(image)
    if max_side is None:
        return image
    check_positive_int(max_side, "max_side")
    height, width = image.shape[-2:]
    longest = max(height, width)
    if longest <= max_side:
        return image
    factor = max_side / longest
    return resize_to(image, (max(1, round(height * factor)), max(1, round(width * factor))))


def scale(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Resize ``image`` (B, C, H, W) by ``factor`` (> 0) on both sides; sizes rounded, at least 1."""
    check_image(image)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < math.inf:
        raise ValueError(f"factor: expected a number > 0, got {factor!r}")
    height, width = image.shape[-2:]
    return resize_to(image, (max(1, round(height * factor)), max(1, round(width * factor))))


def pad_to_min_side(image: torch.Tensor, min_side: int) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """Pad ``image`` (B, C, H, W) so both sides are at least ``min_side``, for networks that need a
    minimum size; returns the padded image and ``crop_back``, which cuts a result of it back to the
    part that shows ``image``.

    The edge pixels are repeated, evenly on both sides, so the image stays centred and a 1×1 input
    becomes a flat patch of its colour. ``crop_back`` accepts the result at any scale (a ×4
    super-resolution of the padded image too). An image already large enough comes back unchanged.
    """
    check_image(image)
    check_positive_int(min_side, "min_side")
    height, width = image.shape[-2:]
    pad_h, pad_w = max(0, min_side - height), max(0, min_side - width)
    if not (pad_h or pad_w):
        return image, lambda result: result
    top, left = pad_h // 2, pad_w // 2
    padded = F.pad(image, (left, pad_w - left, top, pad_h - top), mode="replicate")

    def crop_back(result: torch.Tensor) -> torch.Tensor:
        scale_h, scale_w = result.shape[-2] / padded.shape[-2], result.shape[-1] / padded.shape[-1]
        y0, x0 = round(top * scale_h), round(left * scale_w)
        return result[..., y0:y0 + max(1, round(height * scale_h)), x0:x0 + max(1, round(width * scale_w))]

    return padded, crop_back
