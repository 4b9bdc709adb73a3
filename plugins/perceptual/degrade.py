"""Low-resolution inputs as in Johnson et al.: Gaussian blur (σ = 1.0), then bicubic downsampling."""
from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F


def degrade(image: torch.Tensor, factor: int, sigma: float = 1.0) -> torch.Tensor:
    """``image`` (B, 3, H, W) in 0..1 → (B, 3, H // factor, W // factor), blurred then bicubic-downsampled."""
    if sigma > 0:
        size = 2 * round(3 * sigma) + 1
        image = kornia.filters.gaussian_blur2d(image, (size, size), (sigma, sigma), border_type="reflect")
    height, width = image.shape[-2] // factor, image.shape[-1] // factor
    small = F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return small.clamp(0, 1)
