"""How close an AdaIN result's feature statistics are to its style's: the quality bar of the shipped
decoder, shared by its test and by ``docs/make_adain_sheet.py``."""
from __future__ import annotations

import torch

from plugin_host.sdk import mean_std

from .net import ENCODER_LAYERS, encode


def style_distance(encoder: torch.nn.Module, image: torch.Tensor, style: torch.Tensor) -> float:
    """Sum over ``relu1_1 … relu4_1`` of the mean squared differences of channel means and of channel
    standard deviations between ``image`` and ``style`` (AdaIN's style loss, in the encoder's raw units).

    Compare a result's distance with the content's: below it, the result took on the style's statistics.
    """
    with torch.no_grad():
        a, b = encode(encoder, image), encode(encoder, style)
    total = 0.0
    for layer in ENCODER_LAYERS:
        (mean_a, std_a), (mean_b, std_b) = mean_std(a[layer].float()), mean_std(b[layer].float())
        total += float((mean_a - mean_b).square().mean() + (std_a - std_b).square().mean())
    return total
