"""Resizing with antialiasing (a triangle filter as wide as the scale step, like Pillow's).

Bilinear with ``antialias=True`` only averages, so values stay in the input's range.
"""
from __future__ import annotations

import math

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
