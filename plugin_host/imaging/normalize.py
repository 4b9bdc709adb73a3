"""Input conventions of image encoders (what a network expects instead of 0..1 RGB).

* ``"torchvision"``: RGB in 0..1, minus the ImageNet mean, divided by the ImageNet std.
* ``"caffe"``: BGR order in 0..255 minus the per-channel mean (B, G, R), no std (VGG from Caffe).
* ``"raw"``: 0..1 RGB unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from ._checks import check_image

CONVENTIONS = ("torchvision", "caffe", "raw")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# convention -> (reverse channel order, scale, mean, std); mean/std in the encoder's order.
_SPECS: dict[str, tuple[bool, float, tuple[float, ...], tuple[float, ...]]] = {
    "torchvision": (False, 1.0, IMAGENET_MEAN, IMAGENET_STD),
    "caffe": (True, 255.0, CAFFE_MEAN_BGR, (1.0, 1.0, 1.0)),
    "raw": (False, 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def _spec(convention: str) -> tuple[bool, float, tuple[float, ...], tuple[float, ...]]:
    if convention not in _SPECS:
        raise ValueError(f"convention: expected one of {', '.join(CONVENTIONS)}, got {convention!r}")
    return _SPECS[convention]


def _constants(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, device=like.device, dtype=like.dtype).view(3, 1, 1)


def _forward(x: torch.Tensor, flip: bool, scale: float, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    if flip:
        x = x.flip(-3)
    return (x * scale - mean) / std


def _inverse(x: torch.Tensor, flip: bool, scale: float, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    x = (x * std + mean) / scale
    return x.flip(-3) if flip else x


def to_encoder_input(image: torch.Tensor, convention: str) -> torch.Tensor:
    """Map ``image`` (B, 3, H, W), RGB in 0..1, to what an encoder of ``convention`` expects.

    Returns (B, 3, H, W); ``"raw"`` returns ``image`` itself.
    """
    flip, scale, mean, std = _spec(convention)
    check_image(image, channels=3)
    if convention == "raw":
        return image
    return _forward(image, flip, scale, _constants(mean, image), _constants(std, image))


def from_encoder_input(x: torch.Tensor, convention: str) -> torch.Tensor:
    """Inverse of :func:`to_encoder_input`: (B, 3, H, W) in ``convention`` back to 0..1 RGB.

    Not clamped: an optimised image may leave 0..1 and the caller decides when to clamp.
    """
    flip, scale, mean, std = _spec(convention)
    check_image(x, "x", channels=3)
    if convention == "raw":
        return x
    return _inverse(x, flip, scale, _constants(mean, x), _constants(std, x))


class EncoderNormalize(nn.Module):
    """:func:`to_encoder_input` as a module; ``inverse`` is :func:`from_encoder_input`.

    Mean and std are non-persistent buffers: they follow ``.to(device)`` but stay out of the
    state dict, so encoder checkpoints load unchanged.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, convention: str) -> None:
        super().__init__()
        self.flip, self.scale, mean, std = _spec(convention)
        self.convention = convention
        self.register_buffer("mean", torch.tensor(mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_image(image, channels=3)
        if self.convention == "raw":
            return image
        return _forward(image, self.flip, self.scale, self.mean.to(image), self.std.to(image))

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "x", channels=3)
        if self.convention == "raw":
            return x
        return _inverse(x, self.flip, self.scale, self.mean.to(x), self.std.to(x))

    def extra_repr(self) -> str:
        return f"convention={self.convention!r}"
