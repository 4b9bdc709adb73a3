"""The posterize computation; imported by plugin_host only when the method runs."""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: Rows per step: the image is processed in horizontal bands so progress and cancel stay responsive.
BAND_ROWS = 32


def run(inputs, params, ctx) -> torch.Tensor:
    """``inputs["content"]`` is (1, 3, H, W) in 0..1 on ``ctx.device``; returns the same shape in 0..1."""
    original = inputs["content"]
    image = smooth(original) if params.smooth else original
    bands = torch.split(image, BAND_ROWS, dim=2)
    ctx.progress.stage("posterize", total=len(bands))
    out = []
    for band in bands:
        ctx.cancel.raise_if_cancelled()
        out.append(quantise(band, params.levels))
        ctx.progress.advance()
    poster = torch.cat(out, dim=2)
    return torch.lerp(original, poster, params.strength)


def quantise(image: torch.Tensor, levels: int) -> torch.Tensor:
    """Round each value to the nearest of ``levels`` evenly spaced tones from 0 to 1."""
    steps = levels - 1
    return torch.round(image.clamp(0, 1) * steps) / steps


def smooth(image: torch.Tensor) -> torch.Tensor:
    """A 3×3 box blur that keeps the size (edges repeat)."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    return F.avg_pool2d(padded, kernel_size=3, stride=1)
