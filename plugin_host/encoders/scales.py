"""Per-channel activation scales of an encoder, for losses that should weigh every channel alike.

Gatys et al. (2016) normalised their VGG19 so that each filter's mean activation over images is
one; AdaIN's published encoder is that network. Other VGGs (torchvision's, the Caffe ports, the
HED VGG16) are not normalised: in the HED VGG16 a handful of ``relu2_1`` channels average 70–80
while most stay under 5, and a squared-error loss on their statistics is all about those few
channels. Dividing features by :func:`channel_scales` makes any encoder look normalised to a loss.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor


def channel_scales(encode: Callable[[Tensor], Mapping[str, Tensor]], batches: Iterable[Tensor],
                   floor: float = 0.1) -> dict[str, Tensor]:
    """Mean activation of every channel over ``batches``, per layer the encoder returns.

    Args:
        encode: image batch :math:`(B, 3, H, W)` → ``{layer: (B, C, h, w)}``.
        batches: a few representative image batches (e.g. the first of the training data).
        floor: no scale is smaller than ``floor`` × its layer's mean scale, so a (nearly) dead
            channel is not blown up by dividing by almost zero.

    Returns:
        ``{layer: (C,)}`` float32 scales on the encoder's device; divide ``(B, C, h, w)`` features by
        ``scale[:, None, None]``.

    Raises:
        ValueError: ``batches`` is empty.
    """
    sums: dict[str, Tensor] = {}
    count = 0
    with torch.no_grad():
        for batch in batches:
            for layer, features in encode(batch).items():
                total = features.float().mean(dim=(2, 3)).sum(dim=0)
                sums[layer] = sums[layer] + total if layer in sums else total
            count += batch.shape[0]
    if not count:
        raise ValueError("channel_scales needs at least one image batch")
    scales = {}
    for layer, total in sums.items():
        mean = total / count
        scales[layer] = mean.clamp(min=floor * float(mean.mean()))
    return scales


def normalise(features: Mapping[str, Tensor], scales: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``features`` with every channel divided by its scale (layers without a scale are kept as they are)."""
    return {layer: value / scales[layer][:, None, None].to(value.dtype) if layer in scales else value
            for layer, value in features.items()}
