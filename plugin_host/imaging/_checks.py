"""Argument checks shared by the imaging modules (kornia style: validate first, say expected vs got)."""
from __future__ import annotations

import torch


def check_image(image: object, name: str = "image", channels: int | None = None,
                batch: int | None = None) -> None:
    """Raise ValueError unless ``image`` is a floating tensor of shape ``(B, C, H, W)``."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(image).__name__}")
    if image.dim() != 4:
        raise ValueError(f"{name}: expected shape (B, C, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {image.dtype}")
    if channels is not None and image.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channels (B, {channels}, H, W), "
                         f"got shape {tuple(image.shape)}")
    if batch is not None and image.shape[0] != batch:
        raise ValueError(f"{name}: expected batch size {batch}, got shape {tuple(image.shape)}")
    if image.shape[-1] == 0 or image.shape[-2] == 0:
        raise ValueError(f"{name}: expected a non-empty image, got shape {tuple(image.shape)}")


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is an int > 0 (bools rejected), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value
